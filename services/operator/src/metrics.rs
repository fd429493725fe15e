//! The operator's own metrics: reconciles by result, their duration, errors by reason.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};

/// Instruments for reconciles.
#[derive(Clone)]
pub struct Metrics {
    reconciles: Counter<u64>,
    duration: Histogram<f64>,
    errors: Counter<u64>,
}

impl Metrics {
    /// Instruments registered with `meter`.
    pub fn new(meter: &Meter) -> Self {
        Metrics {
            reconciles: meter
                .u64_counter("sinter_operator_reconciles")
                .with_description("Reconciles of Solutions, by result (ok, error).")
                .build(),
            duration: meter
                .f64_histogram("sinter_operator_reconcile_duration")
                .with_unit("s")
                .with_description("How long one reconcile of a Solution took.")
                .with_boundaries(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .build(),
            errors: meter
                .u64_counter("sinter_operator_reconcile_errors")
                .with_description("Failed reconciles, by reason.")
                .build(),
        }
    }

    /// Counts one reconcile that took `took`; `error` names the failure's reason.
    pub fn record(&self, took: Duration, error: Option<&'static str>) {
        let result = if error.is_some() { "error" } else { "ok" };
        self.reconciles.add(1, &[KeyValue::new("result", result)]);
        self.duration.record(took.as_secs_f64(), &[]);
        if let Some(reason) = error {
            self.errors.add(1, &[KeyValue::new("reason", reason)]);
        }
    }
}
