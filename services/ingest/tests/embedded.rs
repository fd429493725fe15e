//! The service on the embedded bus, for what needs no broker: stream acknowledgements in
//! order, the HTTP API's paths and status codes, backpressure, limits on gRPC.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::TestSolution;
use futures::StreamExt;
use sinter_bus::embedded::EmbeddedBus;
use sinter_bus::{Bus, BusError, Consumer, Delivery, Producer, Record, TopicSpec};
use sinter_core::topic::Stream;
use sinter_ingest::IngestConfig;
use sinter_ingest::http::HttpResponse;
use sinter_proto::events::v1::{ReasonCode, TimestampUnit};
use sinter_proto::ingest::v1::reading_input::{Time, Value};
use sinter_proto::ingest::v1::{PublishRequest, ReadingInput};
use tokio::sync::Semaphore;

fn input(device: &str, value: Value, time: Option<Time>, id: &str) -> ReadingInput {
    ReadingInput {
        device_id: device.into(),
        metric: "vibration_rms".into(),
        value: Some(value),
        time,
        message_id: id.into(),
    }
}

fn config() -> IngestConfig {
    IngestConfig {
        mqtt_enabled: false,
        ..IngestConfig::loopback()
    }
}

async fn embedded(solution: &TestSolution) -> Arc<dyn Bus> {
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::new());
    solution.create_topics(bus.as_ref()).await;
    bus
}

#[tokio::test]
async fn a_stream_acknowledges_each_batch_in_order() {
    let solution = TestSolution::new("stream");
    let bus = embedded(&solution).await;
    let (_clock, clock) = common::manual_clock();
    let running = common::start(
        vec![solution.solution.clone()],
        bus.clone(),
        clock,
        config(),
    )
    .await;
    let mut client = running.grpc_client().await;
    let requests: Vec<PublishRequest> = (0..4)
        .map(|n| PublishRequest {
            solution: if n == 2 {
                "ingest-test/nope".into()
            } else {
                solution.qualified()
            },
            batch_id: format!("batch-{n}"),
            readings: (0..5)
                .map(|i| {
                    input(
                        "p-1",
                        Value::Number(f64::from(i)),
                        None,
                        &format!("s-{n}-{i}"),
                    )
                })
                .collect(),
        })
        .collect();
    let mut acks = client
        .stream(futures::stream::iter(requests))
        .await
        .expect("stream")
        .into_inner();
    let mut seen = Vec::new();
    while let Some(ack) = acks.next().await {
        let ack = ack.expect("ack");
        seen.push((ack.batch_id.clone(), ack.accepted, ack.refused));
        if ack.batch_id == "batch-2" {
            assert!(
                ack.results
                    .iter()
                    .all(|r| r.reason_code == ReasonCode::UnknownSolution as i32)
            );
        }
    }
    assert_eq!(
        seen,
        [
            ("batch-0".to_owned(), 5, 0),
            ("batch-1".to_owned(), 5, 0),
            ("batch-2".to_owned(), 0, 5),
            ("batch-3".to_owned(), 5, 0),
        ]
    );
    let status = client
        .publish(PublishRequest {
            solution: "ingest-test/nope".into(),
            ..PublishRequest::default()
        })
        .await
        .expect_err("unknown Solution");
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert!(
        status.message().contains("ingest-test/nope"),
        "{}",
        status.message()
    );
    running.stop().await;
}

#[tokio::test]
async fn grpc_specific_inputs_and_limits() {
    let solution = TestSolution::new("limits");
    let bus = embedded(&solution).await;
    let (_clock, clock) = common::manual_clock();
    let running = common::start(
        vec![solution.solution.clone()],
        bus.clone(),
        clock,
        config(),
    )
    .await;
    let mut client = running.grpc_client().await;
    let event_time = prost_types::Timestamp {
        seconds: common::NOW_SECS - 5,
        nanos: 500_000_000,
    };
    let readings = vec![
        input("p-1", Value::Number(f64::NAN), None, "n-0"),
        input("p-1", Value::Number(f64::NEG_INFINITY), None, "n-1"),
        input(
            "p-1",
            Value::Number(1.0),
            Some(Time::EventTime(event_time)),
            "n-2",
        ),
        input(
            "p-1",
            Value::Number(1.0),
            Some(Time::Epoch((common::NOW_SECS - 5) * 1_000_000)),
            "n-3",
        ),
        input(
            "p-1",
            Value::Number(1.0),
            Some(Time::Ts("last tuesday".into())),
            "n-4",
        ),
        input("p/1", Value::Number(1.0), None, "n-5"),
        input("q-1", Value::Number(1.0), None, "n-6"),
        input(
            "p-1",
            Value::Number(1.0),
            Some(Time::Epoch(common::NOW_SECS - 4 * 86_400)),
            "n-7",
        ),
    ];
    let response = client
        .publish(PublishRequest {
            solution: solution.qualified(),
            batch_id: String::new(),
            readings,
        })
        .await
        .expect("publish")
        .into_inner();
    let codes: Vec<i32> = response.results.iter().map(|r| r.reason_code).collect();
    let expected = [
        ReasonCode::NotFinite,
        ReasonCode::NotFinite,
        ReasonCode::Unspecified,
        ReasonCode::Unspecified,
        ReasonCode::BadTimestamp,
        ReasonCode::BadDeviceId,
        ReasonCode::UnknownDeviceType,
        ReasonCode::TooOld,
    ]
    .map(|code| code as i32);
    assert_eq!(codes, expected, "{response:#?}");

    // A batch over maxBatchReadings (20): every reading refused and dead-lettered; the
    // connection serves the next call.
    let oversized = PublishRequest {
        solution: solution.qualified(),
        batch_id: "big".into(),
        readings: (0..21)
            .map(|i| input("p-1", Value::Number(1.0), None, &format!("b-{i}")))
            .collect(),
    };
    let big = client
        .publish(oversized)
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(big.refused, 21);
    assert!(
        big.results
            .iter()
            .all(|r| r.reason_code == ReasonCode::BatchTooLarge as i32)
    );
    let after = client
        .publish(PublishRequest {
            solution: solution.qualified(),
            batch_id: String::new(),
            readings: vec![input("p-1", Value::Number(2.0), None, "after")],
        })
        .await
        .expect("next call")
        .into_inner();
    assert_eq!(after.accepted, 1);
    running.stop().await;

    let telemetry = common::readings(
        &common::read_topic(
            bus.as_ref(),
            &solution.topic(Stream::Telemetry),
            Duration::from_secs(2),
            |r| r.len() >= 3,
        )
        .await,
    );
    let units: Vec<(String, i32)> = telemetry
        .iter()
        .map(|r| (r.message_id.clone(), r.timestamp_unit))
        .collect();
    assert_eq!(
        units,
        [
            ("n-2".to_owned(), TimestampUnit::Protobuf as i32),
            ("n-3".to_owned(), TimestampUnit::Microseconds as i32),
            ("after".to_owned(), TimestampUnit::Unspecified as i32),
        ]
    );
    let letters = common::read_topic(
        bus.as_ref(),
        &solution.topic(Stream::Deadletter),
        Duration::from_secs(2),
        |r| r.len() >= 6 + 21,
    )
    .await;
    assert_eq!(letters.len(), 6 + 21);
}

#[tokio::test]
async fn http_paths_are_decoded_once_and_errors_have_statuses() {
    let solution = TestSolution::new("paths");
    let bus = embedded(&solution).await;
    let (_clock, clock) = common::manual_clock();
    let running = common::start(
        vec![solution.solution.clone()],
        bus.clone(),
        clock,
        config(),
    )
    .await;
    let http = reqwest::Client::new();
    let (namespace, name) = (solution.solution.namespace(), solution.solution.name());
    let reading = r#"{"device":"p-a.b:c_1","metric":"vibration_rms","value":1.5,
        "ts":"2026-12-03T09:00:00+01:00"}"#;
    let post = |path: String, body: String| {
        let request = http.post(format!("{}{path}", running.http)).body(body);
        async move { request.send().await.expect("POST") }
    };
    for path in [
        format!("/v1/solutions/{namespace}%2F{name}/readings"),
        format!("/v1/solutions/{namespace}%2f{name}/readings"),
        format!("/v1/solutions/{namespace}/{name}/readings"),
    ] {
        let answer = post(path.clone(), reading.into()).await;
        assert_eq!(answer.status(), 200, "{path}");
        let body: HttpResponse = answer.json().await.expect("json");
        assert_eq!(body.accepted, 1, "{path}");
    }
    let twice_encoded = post(
        format!("/v1/solutions/{namespace}%252F{name}/readings"),
        reading.into(),
    )
    .await;
    assert_eq!(twice_encoded.status(), 404);
    let text = twice_encoded.text().await.expect("body");
    assert!(text.contains(&format!("{namespace}%2F{name}")), "{text}");

    let wrapped = format!(r#"{{"batchId":"w-1","readings":[{reading}]}}"#);
    let answer = post(
        format!("/v1/solutions/{namespace}%2F{name}/readings"),
        wrapped,
    )
    .await;
    let body: HttpResponse = answer.json().await.expect("json");
    assert_eq!((body.batch_id.as_str(), body.duplicates), ("w-1", 1));

    let garbage = post(
        format!("/v1/solutions/{namespace}%2F{name}/readings"),
        "not json".into(),
    )
    .await;
    assert_eq!(garbage.status(), 400);
    let text = garbage.text().await.expect("body");
    assert!(text.contains("REASON_CODE_MALFORMED"), "{text}");
    running.stop().await;

    // The device id is the Kafka key byte for byte; the garbage body is dead-lettered.
    let records = common::read_topic(
        bus.as_ref(),
        &solution.topic(Stream::Telemetry),
        Duration::from_secs(2),
        |r| !r.is_empty(),
    )
    .await;
    assert_eq!(records.len(), 1, "three posts of one reading, stored once");
    assert_eq!(&records[0].key[..], b"p-a.b:c_1");
    let letters = common::dead_letters(
        &common::read_topic(
            bus.as_ref(),
            &solution.topic(Stream::Deadletter),
            Duration::from_secs(2),
            |r| !r.is_empty(),
        )
        .await,
    );
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].original, b"not json");
    assert_eq!(letters[0].reason_code, ReasonCode::Malformed as i32);
}

/// A bus whose producer waits at a gate: a slow bus, on demand.
struct GatedBus {
    inner: EmbeddedBus,
    gate: Arc<Semaphore>,
}

struct GatedProducer {
    inner: Arc<dyn Producer>,
    gate: Arc<Semaphore>,
}

#[async_trait]
impl Producer for GatedProducer {
    async fn send(&self, topic: &str, record: Record) -> Result<Delivery, BusError> {
        let _pass = self.gate.acquire().await.expect("gate open");
        self.inner.send(topic, record).await
    }
}

#[async_trait]
impl Bus for GatedBus {
    fn implementation(&self) -> &'static str {
        "gated"
    }
    async fn ensure_topic(&self, spec: &TopicSpec) -> Result<(), BusError> {
        self.inner.ensure_topic(spec).await
    }
    async fn probe_topics(&self, topics: &[&str]) -> Result<(), BusError> {
        self.inner.probe_topics(topics).await
    }
    async fn topic_partitions(&self, topic: &str) -> Result<Option<i32>, BusError> {
        self.inner.topic_partitions(topic).await
    }
    async fn delete_topic(&self, topic: &str) -> Result<(), BusError> {
        self.inner.delete_topic(topic).await
    }
    fn producer(&self) -> Arc<dyn Producer> {
        Arc::new(GatedProducer {
            inner: self.inner.producer(),
            gate: self.gate.clone(),
        })
    }
    async fn subscribe(&self, group: &str, topics: &[&str]) -> Result<Box<dyn Consumer>, BusError> {
        self.inner.subscribe(group, topics).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_bus_gets_http_clients_a_503_with_retry_after() {
    let solution = TestSolution::new("slow");
    let gate = Arc::new(Semaphore::new(0));
    let bus: Arc<dyn Bus> = Arc::new(GatedBus {
        inner: EmbeddedBus::new(),
        gate: gate.clone(),
    });
    solution.create_topics(bus.as_ref()).await;
    let (_clock, clock) = common::manual_clock();
    let mut config = config();
    config.pipeline.max_in_flight = 4;
    let running = common::start(vec![solution.solution.clone()], bus.clone(), clock, config).await;

    // Four readings over gRPC fill every slot and wait at the gate.
    let mut client = running.grpc_client().await;
    let blocked = PublishRequest {
        solution: solution.qualified(),
        batch_id: String::new(),
        readings: (0..4)
            .map(|i| input("p-1", Value::Number(1.0), None, &format!("slow-{i}")))
            .collect(),
    };
    let waiting = tokio::spawn(async move { client.publish(blocked).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the gRPC batch waits for the bus");

    let url = format!(
        "{}/v1/solutions/{}/readings",
        running.http,
        solution.qualified().replace('/', "%2F")
    );
    let body = r#"{"device":"p-1","metric":"vibration_rms","value":1,"id":"http-1"}"#;
    let answer = reqwest::Client::new()
        .post(&url)
        .body(body)
        .send()
        .await
        .expect("POST");
    assert_eq!(answer.status(), 503);
    assert_eq!(
        answer.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );

    gate.add_permits(1_000);
    let response = waiting.await.expect("task").expect("publish").into_inner();
    assert_eq!(response.accepted, 4);
    let answer = reqwest::Client::new()
        .post(&url)
        .body(body)
        .send()
        .await
        .expect("POST");
    assert_eq!(answer.status(), 200);
    running.stop().await;
}
