//! Every service binary, as a separate process against the real broker: topics
//! provisioned by the operator, health and reflection served, tokens enforced, clean
//! shutdown on SIGTERM.

use std::time::{Duration, Instant};

use sinter_grpc::BearerToken;
use sinter_tests::cluster::{health, provision_topics};
use sinter_tests::process::{self, ChildProcess};
use sinter_tests::services::{free_port, require_kafka};
use tonic_health::pb::health_check_response::ServingStatus;

const SERVICES: [&str; 4] = [
    "sinter-ingest",
    "sinter-analytics",
    "sinter-context",
    "sinter-orchestrator",
];
const TOKEN: &str = "e2e-token";

async fn wait_for_status(endpoint: &str, wanted: ServingStatus, child: &mut ChildProcess) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if health(endpoint).await == Some(wanted as i32) {
            return;
        }
        assert!(
            child.is_running(),
            "service exited early:\n{}",
            child.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{endpoint} never reported {wanted:?}:\n{}", child.output());
}

fn service_args(solutions: &str, brokers: &str, grpc_port: u16, metrics: &str) -> Vec<String> {
    vec![
        "--solution".into(),
        solutions.into(),
        "--bus".into(),
        format!("kafka://{brokers}"),
        "--grpc-addr".into(),
        format!("127.0.0.1:{grpc_port}"),
        "--metrics-addr".into(),
        metrics.into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_binary_serves_health_reflection_and_metrics() {
    let brokers = require_kafka();
    let solution = sinter_tests::example_solution();
    provision_topics(&solution, &brokers);

    for name in SERVICES {
        let grpc_port = free_port();
        let metrics_port = free_port();
        let args = service_args(
            &solution.display().to_string(),
            &brokers,
            grpc_port,
            &format!("127.0.0.1:{metrics_port}"),
        );
        // Ingest's HTTP API would take port 8080; these tests only need gRPC.
        let envs = [
            ("SINTER_TOKENS", TOKEN.to_owned()),
            ("SINTER_HTTP_ADDR", "off".to_owned()),
        ];
        let mut child = ChildProcess::spawn(name, &args, &envs);
        let endpoint = format!("http://127.0.0.1:{grpc_port}");
        wait_for_status(&endpoint, ServingStatus::Serving, &mut child).await;

        let refused = sinter_grpc::list_services(&endpoint, BearerToken::default())
            .await
            .expect_err("reflection without a token must be refused");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{name}");

        let token = BearerToken::new(Some(TOKEN)).expect("token");
        let listed = sinter_grpc::list_services(&endpoint, token)
            .await
            .expect("reflection");
        assert!(
            listed.contains(&"grpc.health.v1.Health".to_owned()),
            "{name}: {listed:?}"
        );
        assert!(
            listed.contains(&"grpc.reflection.v1.ServerReflection".to_owned()),
            "{name}: {listed:?}"
        );

        let metrics = http_get(metrics_port, "/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200"), "{name}: {metrics}");

        assert_eq!(
            child.terminate(Duration::from_secs(15)),
            Some(0),
            "{name} exit code"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_is_not_serving_until_its_topics_exist_and_skips_a_bad_solution() {
    let brokers = require_kafka();
    let dir = std::env::temp_dir().join(format!("sinter-e2e-topics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let namespace = format!("e2e-{}", std::process::id());
    let example = std::fs::read_to_string(sinter_tests::example_solution()).expect("example");
    let fresh = example.replacen(
        "namespace: plant-north",
        &format!("namespace: {namespace}"),
        1,
    );
    assert_ne!(fresh, example, "the example must name its namespace");
    let good = dir.join("fresh.yaml");
    std::fs::write(&good, fresh).expect("write solution");
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, example.replacen("spec:", "spec:\n  colour: blue", 1)).expect("write");

    let grpc_port = free_port();
    let metrics_port = free_port();
    let solutions = format!("{},{}", good.display(), bad.display());
    let args = service_args(
        &solutions,
        &brokers,
        grpc_port,
        &format!("127.0.0.1:{metrics_port}"),
    );
    let mut child = ChildProcess::spawn("sinter-analytics", &args, &[]);
    let endpoint = format!("http://127.0.0.1:{grpc_port}");
    wait_for_status(&endpoint, ServingStatus::NotServing, &mut child).await;

    // Still not serving a little later: it waits for the topics instead of guessing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        health(&endpoint).await,
        Some(ServingStatus::NotServing as i32)
    );
    let output = child.output();
    assert!(
        output.contains(&format!("sinter.{namespace}.pump-health.telemetry")),
        "{output}"
    );
    assert!(
        output.contains("spec.colour"),
        "the bad Solution's error is logged:\n{output}"
    );

    let not_ready = http_get(metrics_port, "/ready").await;
    assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
    let alive = http_get(metrics_port, "/health").await;
    assert!(alive.starts_with("HTTP/1.1 200"), "{alive}");

    provision_topics(&good, &brokers);
    wait_for_status(&endpoint, ServingStatus::Serving, &mut child).await;
    let ready = http_get(metrics_port, "/ready").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert_eq!(child.terminate(Duration::from_secs(15)), Some(0));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_empty_token_file_is_refused_before_the_bus_is_tried() {
    let dir = std::env::temp_dir().join(format!("sinter-e2e-tokens-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let tokens = dir.join("tokens.txt");
    std::fs::write(&tokens, "# to be filled in\n").expect("write");
    let solution = sinter_tests::example_solution();
    let mut args = service_args(
        &solution.display().to_string(),
        "127.0.0.1:9",
        free_port(),
        "off",
    );
    args.extend(["--token-file".to_owned(), tokens.display().to_string()]);
    let (code, output) = process::run("sinter-ingest", &args);
    assert_ne!(code, 0, "{output}");
    assert!(output.contains("holds no token"), "{output}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_service_with_no_valid_solution_exits_with_the_errors() {
    let dir = std::env::temp_dir().join(format!("sinter-e2e-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: sinter.dev/v1alpha1\nkind: Solution\nspec: {}\n",
    )
    .expect("write");
    let args = service_args(
        &bad.display().to_string(),
        "127.0.0.1:9",
        free_port(),
        "off",
    );
    let (code, output) = process::run("sinter-ingest", &args);
    assert_ne!(code, 0, "{output}");
    assert!(output.contains("path=metadata"), "{output}");
    assert!(output.contains("no Solution could be loaded"), "{output}");
    std::fs::remove_dir_all(&dir).ok();
}

async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to metrics");
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
}
