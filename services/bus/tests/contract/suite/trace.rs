//! Contract case about trace context crossing the bus.

use anyhow::{Context, Result, ensure};
use sinter_bus::Record;

use super::{Harness, new_topic, recv_within, unique};

/// One trace runs from the span that sent a record to the span that consumed it.
pub async fn trace_context_crosses_the_bus(harness: &impl Harness) -> Result<()> {
    use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tracing::Instrument;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::layer::SubscriberExt;

    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("contract")));
    let _default = tracing::subscriber::set_default(subscriber);

    let bus = harness.bus().await;
    let topic = new_topic(&*bus, "trace", 1).await?;
    let ingest = tracing::info_span!("ingest reading");
    let ingest_context = ingest.context().span().span_context().clone();
    ensure!(
        ingest_context.is_valid(),
        "the test's tracing layer made no span context"
    );
    bus.producer()
        .send(&topic, Record::new("pump-7", "91.2"))
        .instrument(ingest.clone())
        .await?;
    // A batch carries the context too, replacing a stale one a record came with.
    let stale = Record::new("pump-8", "92.0").with_header("traceparent", "stale");
    let batch = bus
        .producer()
        .send_batch(&topic, vec![stale, Record::new("pump-9", "93.1")])
        .instrument(ingest.clone())
        .await;
    for outcome in batch {
        outcome?;
    }
    drop(ingest);

    let mut consumer = bus.subscribe(&unique("group"), &[&topic]).await?;
    let delivered = recv_within(&mut *consumer, harness.patience()).await?;
    ensure!(
        delivered.headers.get("traceparent").is_some(),
        "no traceparent header"
    );
    let carried = delivered.trace_context().span().span_context().clone();
    ensure!(
        carried.trace_id() == ingest_context.trace_id(),
        "header carries another trace"
    );
    for _ in 0..2 {
        let batched = recv_within(&mut *consumer, harness.patience()).await?;
        ensure!(
            batched.headers.get_all("traceparent").count() == 1,
            "a batched record has {} traceparent headers",
            batched.headers.get_all("traceparent").count()
        );
        let carried = batched.trace_context().span().span_context().clone();
        ensure!(
            carried.trace_id() == ingest_context.trace_id(),
            "a batched record carries another trace"
        );
    }

    let consume = sinter_bus::trace::consume_span(&delivered);
    consume.in_scope(|| tracing::info!("Processing the reading."));
    drop(consume);
    provider.force_flush()?;

    let spans = exporter.get_finished_spans()?;
    let consumed = spans
        .iter()
        .find(|span| span.name == "consume")
        .context("no consume span")?;
    ensure!(
        consumed.span_context.trace_id() == ingest_context.trace_id(),
        "consume span is in trace {} not {}",
        consumed.span_context.trace_id(),
        ingest_context.trace_id()
    );
    ensure!(
        consumed.parent_span_id == ingest_context.span_id(),
        "consume span has another parent"
    );
    ensure!(
        spans.iter().any(|span| span.name == "ingest reading"),
        "no producer span"
    );
    Ok(())
}
