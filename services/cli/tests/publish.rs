//! `sinter publish` against an ingest service running in this test on the embedded bus:
//! the summary names every refused line, and the exit code tells refusals apart.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use sinter_bus::Bus;
use sinter_bus::embedded::EmbeddedBus;
use sinter_core::{Solution, SystemClock};
use sinter_grpc::{Auth, GrpcServer, Tokens};
use sinter_ingest::{IngestConfig, IngestService};
use sinter_runtime::{Service, ServiceContext, Shutdown};

const EXAMPLE: &str = include_str!("../../../examples/pump-health.yaml");

async fn start_ingest() -> (String, Shutdown) {
    let solution = Solution::from_yaml(EXAMPLE).expect("the example validates");
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::new());
    for spec in sinter_operator::topics::plan(&solution) {
        bus.ensure_topic(&spec).await.expect("topic");
    }
    let shutdown = Shutdown::new();
    let context = ServiceContext {
        solutions: Arc::new(vec![solution]),
        bus,
        clock: Arc::new(SystemClock),
        shutdown: shutdown.clone(),
    };
    let config = IngestConfig {
        http_addr: None,
        mqtt_enabled: false,
        ..IngestConfig::loopback()
    };
    let service = IngestService::build(context, config)
        .await
        .expect("ingest builds");
    let server = service.register(GrpcServer::new(Auth::new(Tokens::from_list("cli-token"))));
    let (addr, serving) = server
        .bind(
            "127.0.0.1:0".parse().expect("addr"),
            shutdown.clone().wait(),
        )
        .await
        .expect("bind");
    tokio::spawn(serving);
    let worker = shutdown.clone();
    tokio::spawn(async move { Box::new(service).run(worker).await });
    (format!("http://{addr}"), shutdown)
}

fn publish(endpoint: &str, token: &str, input: &str) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sinter"))
        .args([
            "publish",
            "--endpoint",
            endpoint,
            "--solution",
            "plant-north/pump-health",
        ])
        .env("SINTER_TOKEN", token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sinter publish");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("wait");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_summarises_accepted_and_refused_readings() {
    let (endpoint, shutdown) = start_ingest().await;
    let now = sinter_core::Clock::now(&SystemClock).to_string();
    let good = format!(
        r#"{{"device": "p-17", "metric": "bearing_temperature", "value": 61.5, "ts": "{now}"}}"#
    );
    let unknown = format!(r#"{{"device": "p-17", "metric": "colour", "value": 1, "ts": "{now}"}}"#);
    let input = format!("{good}\n# a comment\n{unknown}\nnot json\n");

    let (code, output) = tokio::task::spawn_blocking({
        let endpoint = endpoint.clone();
        move || publish(&endpoint, "cli-token", &input)
    })
    .await
    .expect("join");
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("3 lines: 1 accepted (0 duplicates), 2 refused"),
        "{output}"
    );
    assert!(output.contains("line 3: UNKNOWN_METRIC"), "{output}");
    assert!(output.contains("line 4: MALFORMED"), "{output}");

    let (code, output) = tokio::task::spawn_blocking({
        let endpoint = endpoint.clone();
        let good = good.clone();
        move || publish(&endpoint, "wrong-token", &good)
    })
    .await
    .expect("join");
    assert_eq!(code, 2, "{output}");
    assert!(output.to_lowercase().contains("token"), "{output}");
    shutdown.trigger();
}
