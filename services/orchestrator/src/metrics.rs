//! Business outcome metrics: how fast people acknowledge and resolve, how many
//! recommendations are open, how often a rule cries wolf, escalations and parked actions.
//!
//! Labels are bounded: `rule` (the Solution's rule names), `severity` and `outcome`
//! (closed word sets). Open counts and outcome tallies start from the database, so they
//! are right after a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};

/// Buckets for human reaction times, in seconds: a minute to a week.
const REACTION_BUCKETS: [f64; 12] = [
    60.0, 300.0, 900.0, 1_800.0, 3_600.0, 7_200.0, 14_400.0, 28_800.0, 86_400.0, 172_800.0,
    345_600.0, 604_800.0,
];

/// Counts that gauges report, kept per rule.
#[derive(Debug, Default)]
struct Tallies {
    open: HashMap<String, i64>,
    /// Per rule: (false alarms, every ended recommendation).
    outcomes: HashMap<String, (u64, u64)>,
}

/// The orchestrator's instruments.
#[derive(Clone)]
pub struct Metrics {
    time_to_acknowledge: Histogram<f64>,
    time_to_resolve: Histogram<f64>,
    opened: Counter<u64>,
    ended: Counter<u64>,
    escalations: Counter<u64>,
    parked: Counter<u64>,
    delivered: Counter<u64>,
    rule_failures: Counter<u64>,
    situations: Counter<u64>,
    tallies: Arc<Mutex<Tallies>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new(meter: &Meter) -> Metrics {
        let tallies = Arc::new(Mutex::new(Tallies::default()));
        let open_tallies = tallies.clone();
        meter
            .i64_observable_gauge("sinter_orchestrator_open_recommendations")
            .with_description("Recommendations open, acknowledged or in progress, per rule.")
            .with_callback(move |observer| {
                if let Ok(tallies) = open_tallies.lock() {
                    for (rule, open) in &tallies.open {
                        observer.observe(*open, &[KeyValue::new("rule", rule.clone())]);
                    }
                }
            })
            .build();
        let ratio_tallies = tallies.clone();
        meter
            .f64_observable_gauge("sinter_orchestrator_false_alarm_ratio")
            .with_description("Share of ended recommendations judged false alarms, per rule.")
            .with_callback(move |observer| {
                if let Ok(tallies) = ratio_tallies.lock() {
                    for (rule, (false_alarms, ended)) in &tallies.outcomes {
                        if *ended > 0 {
                            let ratio = *false_alarms as f64 / *ended as f64;
                            observer.observe(ratio, &[KeyValue::new("rule", rule.clone())]);
                        }
                    }
                }
            })
            .build();
        Metrics {
            time_to_acknowledge: meter
                .f64_histogram("sinter_orchestrator_time_to_acknowledge")
                .with_unit("s")
                .with_description("From opening to the first acknowledgement.")
                .with_boundaries(REACTION_BUCKETS.to_vec())
                .build(),
            time_to_resolve: meter
                .f64_histogram("sinter_orchestrator_time_to_resolve")
                .with_unit("s")
                .with_description("From opening to resolved, false alarm or closed.")
                .with_boundaries(REACTION_BUCKETS.to_vec())
                .build(),
            opened: meter
                .u64_counter("sinter_orchestrator_recommendations_opened")
                .with_description("Recommendations opened.")
                .build(),
            ended: meter
                .u64_counter("sinter_orchestrator_recommendations_ended")
                .with_description("Recommendations ended, by outcome.")
                .build(),
            escalations: meter
                .u64_counter("sinter_orchestrator_escalations")
                .with_description("Escalation steps fired.")
                .build(),
            parked: meter
                .u64_counter("sinter_orchestrator_actions_parked")
                .with_description("Actions parked after their last attempt failed.")
                .build(),
            delivered: meter
                .u64_counter("sinter_orchestrator_actions_delivered")
                .with_description("Actions delivered, by kind.")
                .build(),
            rule_failures: meter
                .u64_counter("sinter_orchestrator_rule_failures")
                .with_description("Rules that could not be judged on a situation.")
                .build(),
            situations: meter
                .u64_counter("sinter_orchestrator_situations")
                .with_description("Situations consumed, by result (applied, duplicate).")
                .build(),
            tallies,
        }
    }

    /// Start the gauges from what the database holds.
    pub fn seed(&self, open: Vec<(String, i64)>, outcomes: Vec<(String, u64, u64)>) {
        if let Ok(mut tallies) = self.tallies.lock() {
            tallies.open = open.into_iter().collect();
            tallies.outcomes = outcomes
                .into_iter()
                .map(|(rule, false_alarms, ended)| (rule, (false_alarms, ended)))
                .collect();
        }
    }

    pub fn opened(&self, rule: &str, severity: &str) {
        self.opened.add(1, &labels(rule, severity));
        self.adjust_open(rule, 1);
    }

    pub fn reopened(&self, rule: &str) {
        self.adjust_open(rule, 1);
    }

    pub fn acknowledged(&self, rule: &str, severity: &str, after: Duration) {
        self.time_to_acknowledge
            .record(after.as_secs_f64(), &labels(rule, severity));
    }

    /// A recommendation ended with `outcome` (`fixed`, `false_alarm`, `cleared`).
    pub fn ended(&self, rule: &str, severity: &str, outcome: &str, after: Duration) {
        let mut attributes = labels(rule, severity).to_vec();
        attributes.push(KeyValue::new("outcome", outcome.to_owned()));
        self.time_to_resolve
            .record(after.as_secs_f64(), &attributes);
        self.ended.add(1, &attributes);
        self.adjust_open(rule, -1);
        if let Ok(mut tallies) = self.tallies.lock() {
            let entry = tallies.outcomes.entry(rule.to_owned()).or_default();
            entry.1 += 1;
            if outcome == "false_alarm" {
                entry.0 += 1;
            }
        }
    }

    pub fn escalated(&self, rule: &str, severity: &str) {
        self.escalations.add(1, &labels(rule, severity));
    }

    pub fn action_parked(&self, kind: &str) {
        self.parked
            .add(1, &[KeyValue::new("kind", kind.to_owned())]);
    }

    pub fn action_delivered(&self, kind: &str) {
        self.delivered
            .add(1, &[KeyValue::new("kind", kind.to_owned())]);
    }

    pub fn rule_failed(&self, rule: &str) {
        self.rule_failures
            .add(1, &[KeyValue::new("rule", rule.to_owned())]);
    }

    pub fn situation(&self, result: &'static str) {
        self.situations.add(1, &[KeyValue::new("result", result)]);
    }

    /// How many recommendations of `rule` are active, as the gauge reports it.
    pub fn open_count(&self, rule: &str) -> i64 {
        self.tallies
            .lock()
            .map(|tallies| tallies.open.get(rule).copied().unwrap_or_default())
            .unwrap_or_default()
    }

    /// The false-alarm ratio of `rule`, as the gauge reports it.
    pub fn false_alarm_ratio(&self, rule: &str) -> Option<f64> {
        let tallies = self.tallies.lock().ok()?;
        let (false_alarms, ended) = tallies.outcomes.get(rule)?;
        (*ended > 0).then(|| *false_alarms as f64 / *ended as f64)
    }

    fn adjust_open(&self, rule: &str, by: i64) {
        if let Ok(mut tallies) = self.tallies.lock() {
            *tallies.open.entry(rule.to_owned()).or_default() += by;
        }
    }
}

fn labels(rule: &str, severity: &str) -> [KeyValue; 2] {
    [
        KeyValue::new("rule", rule.to_owned()),
        KeyValue::new("severity", severity.to_owned()),
    ]
}
