//! Trace context in record headers, so a produce and its consume share one trace.
//!
//! [`crate::Producer::send`] writes the W3C trace context (`traceparent`, `tracestate`) of the
//! current `tracing` span into the record's headers, through `tracing-opentelemetry`; a
//! consumer reads it back with [`Delivered::trace_context`], or makes its processing span a
//! child of the producer's with [`consume_span`]:
//!
//! ```
//! # async fn example(mut consumer: Box<dyn sinter_bus::Consumer>) -> Result<(), sinter_bus::BusError> {
//! use tracing::Instrument;
//!
//! let reading = consumer.recv().await?;
//! let span = sinter_bus::trace::consume_span(&reading);
//! async { /* process the reading */ }.instrument(span).await;
//! consumer.ack(&reading)?;
//! # Ok(())
//! # }
//! ```

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{Delivered, Headers};

/// Header carrying the W3C `traceparent`.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// Header carrying the W3C `tracestate`.
pub const TRACESTATE_HEADER: &str = "tracestate";

/// Writes the current span's trace context into `headers`, replacing any there. Does
/// nothing when the current span has no OpenTelemetry context (no tracing layer, or no span).
pub(crate) fn inject_current_context(headers: &mut Headers) {
    current_headers().apply(headers);
}

/// The current span's trace context as headers, taken once for many records.
pub(crate) struct TraceHeaders(Option<Headers>);

/// [`inject_current_context`] for a batch: the current span's trace context, read once.
pub(crate) fn current_headers() -> TraceHeaders {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return TraceHeaders(None);
    }
    let mut headers = Headers::new();
    TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(&mut headers));
    TraceHeaders(Some(headers))
}

impl TraceHeaders {
    /// Writes the trace context into `headers`, replacing any there.
    pub(crate) fn apply(&self, headers: &mut Headers) {
        let Some(trace) = &self.0 else {
            return;
        };
        for header in trace {
            headers.remove_all(&header.name);
            headers.push(header.name.clone(), header.value.clone());
        }
    }
}

impl Delivered {
    /// The producer's trace context carried in this record's headers; an empty context when
    /// there is none.
    pub fn trace_context(&self) -> opentelemetry::Context {
        TraceContextPropagator::new().extract(&HeaderExtractor(&self.headers))
    }
}

/// A span for processing `delivered`, child of the span that sent it.
///
/// Named `consume`, with the topic, partition and offset as fields. Without an OpenTelemetry
/// layer in the subscriber it is an ordinary span with no parent link.
pub fn consume_span(delivered: &Delivered) -> tracing::Span {
    let span = tracing::info_span!(
        "consume",
        otel.kind = "consumer",
        messaging.destination.name = %delivered.topic,
        messaging.destination.partition.id = delivered.partition,
        messaging.kafka.offset = delivered.offset,
    );
    // Fails only when no OpenTelemetry layer is installed: then there is no trace to join.
    let _ = span.set_parent(delivered.trace_context());
    span
}

/// Writes propagation fields as headers.
struct HeaderInjector<'a>(&'a mut Headers);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.remove_all(key);
        self.0.push(key, value);
    }
}

/// Reads propagation fields from headers; values that are not UTF-8 are ignored.
struct HeaderExtractor<'a>(&'a Headers);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|header| header.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    #[test]
    fn context_round_trips_through_headers() {
        let span_context = SpanContext::new(
            TraceId::from(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c_u128),
            SpanId::from(0xb7ad_6b71_6920_3331_u64),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let context = opentelemetry::Context::new().with_remote_span_context(span_context);
        let mut headers = Headers::new();
        headers.push(TRACEPARENT_HEADER, "stale");
        TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(&mut headers));
        assert_eq!(headers.get_all(TRACEPARENT_HEADER).count(), 1);

        let delivered = Delivered {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            key: "k".into(),
            payload: "p".into(),
            headers,
            timestamp: None,
        };
        let extracted = delivered.trace_context();
        let extracted = extracted.span().span_context().clone();
        assert_eq!(
            extracted.trace_id(),
            TraceId::from(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c)
        );
        assert_eq!(extracted.span_id(), SpanId::from(0xb7ad_6b71_6920_3331));
    }

    #[test]
    fn nothing_is_injected_outside_a_trace() {
        let mut headers = Headers::new();
        inject_current_context(&mut headers);
        assert!(headers.is_empty());
    }
}
