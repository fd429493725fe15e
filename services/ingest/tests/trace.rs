//! One span per batch, in the sender's trace when it sent one, and carried on every record
//! so the downstream services continue the same trace.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestSolution;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use sinter_bus::Bus;
use sinter_bus::embedded::EmbeddedBus;
use sinter_core::topic::Stream;
use sinter_ingest::IngestConfig;
use sinter_proto::ingest::v1::reading_input::Value;
use sinter_proto::ingest::v1::{PublishRequest, ReadingInput};
use tracing_subscriber::layer::SubscriberExt;

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_span_joins_the_senders_trace_and_rides_on_the_records() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("ingest-test")));
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    let solution = TestSolution::new("trace");
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::new());
    solution.create_topics(bus.as_ref()).await;
    let (_clock, clock) = common::manual_clock();
    let config = IngestConfig {
        mqtt_enabled: false,
        ..IngestConfig::loopback()
    };
    let running = common::start(vec![solution.solution.clone()], bus.clone(), clock, config).await;

    let mut request = tonic::Request::new(PublishRequest {
        solution: solution.qualified(),
        batch_id: String::new(),
        readings: vec![ReadingInput {
            device_id: "p-3".into(),
            metric: "vibration_rms".into(),
            value: Some(Value::Number(4.0)),
            time: None,
            message_id: "traced-1".into(),
        }],
    });
    let traceparent = format!("00-{TRACE_ID}-b7ad6b7169203331-01");
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().expect("ascii"));
    let mut client = running.grpc_client().await;
    let response = client.publish(request).await.expect("publish").into_inner();
    assert_eq!(response.accepted, 1);

    let http_traceparent = "00-11111111111111111111111111111111-2222222222222222-01";
    let url = format!(
        "{}/v1/solutions/{}/readings",
        running.http,
        solution.qualified().replace('/', "%2F")
    );
    let answer = reqwest::Client::new()
        .post(url)
        .header("traceparent", http_traceparent)
        .body(r#"{"device":"p-3","metric":"vibration_rms","value":5,"id":"traced-2"}"#)
        .send()
        .await
        .expect("POST");
    assert_eq!(answer.status(), 200);
    running.stop().await;

    let records = common::read_topic(
        bus.as_ref(),
        &solution.topic(Stream::Telemetry),
        Duration::from_secs(2),
        |r| r.len() >= 2,
    )
    .await;
    let carried: Vec<String> = records
        .iter()
        .map(|record| {
            let header = record
                .headers
                .get("traceparent")
                .expect("a traceparent header");
            String::from_utf8(header.to_vec()).expect("text")
        })
        .collect();
    assert!(
        carried[0].starts_with(&format!("00-{TRACE_ID}-")),
        "{carried:?}"
    );
    assert!(
        carried[1].starts_with("00-11111111111111111111111111111111-"),
        "{carried:?}"
    );

    provider.force_flush().expect("flush");
    let spans = exporter.get_finished_spans().expect("spans");
    let batch = spans
        .iter()
        .find(|span| {
            span.name == "ingest_batch" && span.span_context.trace_id().to_string() == TRACE_ID
        })
        .expect("an ingest_batch span in the sender's trace");
    // The record carries the batch span itself, so consumers become its children.
    assert!(
        carried[0].contains(&batch.span_context.span_id().to_string()),
        "{carried:?}"
    );
}
