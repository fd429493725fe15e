//! The `sinter-ingest` binary against the real broker: a reading that was acknowledged is on
//! the telemetry topic even when the service is killed with SIGKILL right after the ack, and
//! the restarted service goes on taking readings.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::TestSolution;
use sinter_core::topic::Stream;
use sinter_grpc::BearerToken;
use sinter_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use sinter_proto::ingest::v1::reading_input::{Time, Value};
use sinter_proto::ingest::v1::{PublishRequest, PublishResponse, ReadingInput};
use sinter_tests::process::ChildProcess;
use sinter_tests::services::free_port;

fn spawn(solution_file: &std::path::Path, brokers: &str, port: u16, metrics: &str) -> ChildProcess {
    let args: Vec<String> = [
        "--solution",
        &solution_file.display().to_string(),
        "--bus",
        &format!("kafka://{brokers}"),
        "--grpc-addr",
        &format!("127.0.0.1:{port}"),
        "--metrics-addr",
        metrics,
        "--http-addr",
        "off",
        "--no-mqtt",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ChildProcess::spawn("sinter-ingest", &args, &[])
}

fn batch(solution: &str, first: usize, count: usize) -> PublishRequest {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    PublishRequest {
        solution: solution.to_owned(),
        batch_id: format!("from-{first}"),
        readings: (first..first + count)
            .map(|n| ReadingInput {
                device_id: format!("p-{}", n % 7),
                metric: "vibration_rms".into(),
                value: Some(Value::Number((n % 90) as f64)),
                time: Some(Time::Epoch(now_ms)),
                message_id: format!("restart-{n}"),
            })
            .collect(),
    }
}

/// Publish once the service answers; it may still be starting.
async fn publish_when_up(
    child: &mut ChildProcess,
    port: u16,
    request: PublishRequest,
) -> PublishResponse {
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            child.is_running(),
            "sinter-ingest exited:\n{}",
            child.output()
        );
        if let Ok(channel) = sinter_grpc::connect(&endpoint, BearerToken::default()).await {
            match IngestServiceClient::new(channel)
                .publish(request.clone())
                .await
            {
                Ok(response) => return response.into_inner(),
                Err(status) if Instant::now() < deadline => {
                    eprintln!("not yet: {status}");
                }
                Err(status) => panic!("publish failed: {status}\n{}", child.output()),
            }
        }
        assert!(Instant::now() < deadline, "never up:\n{}", child.output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_reading_survives_kill_9_and_restart() {
    let brokers = sinter_tests::services::require_kafka();
    let bus = common::kafka_bus().await;
    let solution = TestSolution::new("restart");
    solution.create_topics(bus.as_ref()).await;
    let file = std::env::temp_dir().join(format!("{}.yaml", solution.solution.name()));
    std::fs::write(&file, &solution.yaml).expect("write the Solution");
    let port = free_port();

    let mut first = spawn(&file, &brokers, port, "off");
    let acked = publish_when_up(&mut first, port, batch(&solution.qualified(), 0, 20)).await;
    // SIGKILL at once: no flush, no shutdown.
    drop(first);
    assert_eq!(acked.accepted, 20, "{acked:#?}");

    let metrics_port = free_port();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let mut second = spawn(&file, &brokers, port, &metrics);
    let after = publish_when_up(&mut second, port, batch(&solution.qualified(), 20, 10)).await;
    assert_eq!(after.accepted, 10);
    // The counters of what the restarted service did, as Prometheus scrapes them.
    let scraped = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics text");
    let accepted = scraped
        .lines()
        .find(|line| {
            line.starts_with("sinter_ingest_readings_accepted_total")
                && line.contains(r#"transport="grpc""#)
        })
        .unwrap_or_else(|| panic!("no accepted counter in:\n{scraped}"));
    assert!(accepted.ends_with(" 10"), "{accepted}");
    assert!(
        scraped.contains("sinter_ingest_batch_publish_duration"),
        "{scraped}"
    );
    let stopped = second.terminate(Duration::from_secs(20));
    assert_eq!(stopped, Some(0));

    let mut expected: Vec<String> = acked
        .results
        .iter()
        .chain(&after.results)
        .map(|r| r.reading_id.clone())
        .collect();
    expected.sort();
    let records = common::read_topic(
        bus.as_ref(),
        &solution.topic(Stream::Telemetry),
        Duration::from_secs(30),
        |records| records.len() >= expected.len(),
    )
    .await;
    let mut found: Vec<String> = common::readings(&records)
        .into_iter()
        .map(|r| r.id)
        .collect();
    found.sort();
    found.dedup();
    assert_eq!(found, expected);
    std::fs::remove_file(&file).ok();
}
