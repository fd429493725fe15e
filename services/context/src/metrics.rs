//! The context service's instruments: situations produced, cache hits and misses, lookup
//! latency, missing context.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, ObservableGauge};
use sinter_proto::events::v1::situation::ContextStatus;

/// Every instrument of the service, made once and shared.
#[derive(Clone)]
pub struct ContextMetrics {
    situations: Counter<u64>,
    missing_context: Counter<u64>,
    cache_lookups: Counter<u64>,
    lookup_duration: Histogram<f64>,
    provider_failures: Counter<u64>,
    dead_letters: Counter<u64>,
    /// Kept alive so the ratio keeps being reported.
    _hit_ratio: ObservableGauge<f64>,
    counts: Arc<Counts>,
}

/// Cache hits and misses and situations missing their asset since start, for the
/// hit-ratio gauge and for tests.
#[derive(Debug, Default)]
pub struct Counts {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub missing_assets: AtomicU64,
}

impl Counts {
    /// Hits over lookups; 0 before the first lookup.
    pub fn hit_ratio(&self) -> f64 {
        let hits = self.hits.load(Ordering::Relaxed) as f64;
        let misses = self.misses.load(Ordering::Relaxed) as f64;
        if hits + misses == 0.0 {
            0.0
        } else {
            hits / (hits + misses)
        }
    }
}

impl ContextMetrics {
    pub fn new() -> Self {
        let meter = opentelemetry::global::meter("sinter-context");
        let counts = Arc::new(Counts::default());
        let observed = counts.clone();
        ContextMetrics {
            situations: meter
                .u64_counter("sinter_context_situations")
                .with_description("Situations published, by context status.")
                .build(),
            missing_context: meter
                .u64_counter("sinter_context_missing_asset")
                .with_description("Detections for a device the registry binds to no asset.")
                .build(),
            cache_lookups: meter
                .u64_counter("sinter_context_cache_lookups")
                .with_description("Asset context lookups, by result (hit or miss).")
                .build(),
            lookup_duration: meter
                .f64_histogram("sinter_context_lookup_duration")
                .with_unit("s")
                .with_description("Time to get a device's asset context, cache included.")
                // Seconds: a cache hit takes microseconds, a cold lookup milliseconds.
                .with_boundaries(vec![
                    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                    0.1, 0.25, 1.0,
                ])
                .build(),
            provider_failures: meter
                .u64_counter("sinter_context_provider_failures")
                .with_description("Context provider lookups that failed, by provider.")
                .build(),
            dead_letters: meter
                .u64_counter("sinter_context_dead_letters")
                .with_description("Detections dead-lettered, by reason.")
                .build(),
            _hit_ratio: meter
                .f64_observable_gauge("sinter_context_cache_hit_ratio")
                .with_unit("1")
                .with_description("Cache hits over lookups since the service started.")
                .with_callback(move |gauge| gauge.observe(observed.hit_ratio(), &[]))
                .build(),
            counts,
        }
    }

    pub fn situation(&self, status: ContextStatus) {
        let label = match status {
            ContextStatus::Complete => "complete",
            ContextStatus::MissingAsset => "missing_asset",
            ContextStatus::Partial => "partial",
            ContextStatus::Unspecified => "unspecified",
        };
        self.situations
            .add(1, &[KeyValue::new("context_status", label)]);
        if status == ContextStatus::MissingAsset {
            self.missing_context.add(1, &[]);
            self.counts.missing_assets.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn cache_lookup(&self, hit: bool, took: Duration) {
        let counter = if hit {
            &self.counts.hits
        } else {
            &self.counts.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let result = if hit { "hit" } else { "miss" };
        self.cache_lookups
            .add(1, &[KeyValue::new("result", result)]);
        self.lookup_duration
            .record(took.as_secs_f64(), &[KeyValue::new("result", result)]);
    }

    /// `provider` comes from the Solution, so the label set is bounded by it.
    pub fn provider_failure(&self, provider: &str) {
        self.provider_failures
            .add(1, &[KeyValue::new("provider", provider.to_owned())]);
    }

    pub fn dead_letter(&self, reason: &'static str) {
        self.dead_letters.add(1, &[KeyValue::new("reason", reason)]);
    }

    pub fn counts(&self) -> &Counts {
        &self.counts
    }
}

impl Default for ContextMetrics {
    fn default() -> Self {
        ContextMetrics::new()
    }
}
