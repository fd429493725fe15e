//! The service's instruments: readings accepted and refused by reason and transport,
//! duplicates, batches, and how long publishing a batch took.

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};
use sinter_proto::events::v1::Transport;

/// The meter every instrument of this service comes from.
pub const METER: &str = "sinter-ingest";

/// Counters and histograms of the ingest pipeline.
#[derive(Clone)]
pub struct IngestMetrics {
    accepted: Counter<u64>,
    refused: Counter<u64>,
    duplicates: Counter<u64>,
    batches: Counter<u64>,
    publish_duration: Histogram<f64>,
}

impl IngestMetrics {
    /// Instruments from the global meter provider (installed by sinter-telemetry).
    pub fn new() -> Self {
        let meter = opentelemetry::global::meter(METER);
        IngestMetrics {
            accepted: meter
                .u64_counter("sinter_ingest_readings_accepted")
                .with_description("Readings accepted and on the telemetry stream.")
                .build(),
            refused: meter
                .u64_counter("sinter_ingest_readings_refused")
                .with_description("Readings refused, by reason; each is on the dead-letter stream.")
                .build(),
            duplicates: meter
                .u64_counter("sinter_ingest_duplicates")
                .with_description("Readings acknowledged but not published again (dedup hits).")
                .build(),
            batches: meter
                .u64_counter("sinter_ingest_batches")
                .with_description("Batches handled, by outcome.")
                .build(),
            publish_duration: meter
                .f64_histogram("sinter_ingest_batch_publish_duration")
                .with_unit("s")
                .with_description("From receiving a batch to every reading of it being durable.")
                .with_boundaries(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .build(),
        }
    }

    pub(crate) fn accepted(&self, solution: &str, transport: Transport, count: u64) {
        if count > 0 {
            self.accepted.add(count, &labels(solution, transport));
        }
    }

    pub(crate) fn refused(&self, solution: &str, transport: Transport, reason: &'static str) {
        let mut attributes = labels(solution, transport).to_vec();
        attributes.push(KeyValue::new("reason", reason));
        self.refused.add(1, &attributes);
    }

    pub(crate) fn duplicates(&self, solution: &str, transport: Transport, count: u64) {
        if count > 0 {
            self.duplicates.add(count, &labels(solution, transport));
        }
    }

    pub(crate) fn batch(
        &self,
        solution: &str,
        transport: Transport,
        outcome: &'static str,
        secs: f64,
    ) {
        let mut attributes = labels(solution, transport).to_vec();
        attributes.push(KeyValue::new("outcome", outcome));
        self.batches.add(1, &attributes);
        self.publish_duration.record(secs, &attributes);
    }
}

impl Default for IngestMetrics {
    fn default() -> Self {
        IngestMetrics::new()
    }
}

/// A transport as a metric label.
pub fn transport_label(transport: Transport) -> &'static str {
    match transport {
        Transport::Grpc => "grpc",
        Transport::Mqtt => "mqtt",
        Transport::Http => "http",
        Transport::Replay => "replay",
        Transport::Unspecified => "unspecified",
    }
}

fn labels(solution: &str, transport: Transport) -> [KeyValue; 2] {
    [
        KeyValue::new("solution", solution.to_owned()),
        KeyValue::new("transport", transport_label(transport)),
    ]
}
