//! The live output of `sinter dev`: a summary line from the services' own metrics every few
//! seconds, and a line for each change of a recommendation.

use std::time::{Duration, Instant};

use prometheus::proto::MetricFamily;
use sinter_orchestrator::client::{severity_text, state_text};
use sinter_proto::orchestrator::v1::RecommendationChange;
use sinter_runtime::Shutdown;
use tokio::sync::broadcast;

use crate::dev::simulator::clock_time;

/// The counters one summary line shows, read from the process's metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Counts {
    pub(crate) accepted: f64,
    pub(crate) refused: f64,
    /// Readings analytics counted as too late for their window (sent to dead letters).
    pub(crate) late: f64,
    pub(crate) detections: f64,
    pub(crate) situations: f64,
    pub(crate) opened: f64,
    pub(crate) escalated: f64,
    pub(crate) ended: f64,
    pub(crate) open: f64,
}

impl Counts {
    /// Read the counts from gathered metric families (as the Prometheus exporter names
    /// them: counters end in `_total`).
    pub(crate) fn from_families(families: &[MetricFamily]) -> Counts {
        let sum = |base: &str| total(families, base);
        Counts {
            accepted: sum("sinter_ingest_readings_accepted"),
            refused: sum("sinter_ingest_readings_refused"),
            late: sum("sinter_analytics_late_readings"),
            detections: sum("sinter_analytics_detections"),
            situations: sum("sinter_context_situations"),
            opened: sum("sinter_orchestrator_recommendations_opened"),
            escalated: sum("sinter_orchestrator_escalations"),
            ended: sum("sinter_orchestrator_recommendations_ended"),
            open: sum("sinter_orchestrator_open_recommendations"),
        }
    }
}

/// The sum over every series of the family `base` (or `base_total`).
fn total(families: &[MetricFamily], base: &str) -> f64 {
    families
        .iter()
        .filter(|family| {
            let name = family.name();
            name == base || name.strip_prefix(base) == Some("_total")
        })
        .map(|family| {
            let counter = family.get_field_type() == prometheus::proto::MetricType::COUNTER;
            family
                .get_metric()
                .iter()
                .map(|metric| {
                    if counter {
                        metric.get_counter().get_value()
                    } else {
                        metric.get_gauge().get_value()
                    }
                })
                .sum::<f64>()
        })
        // An empty f64 sum is -0.0; adding 0.0 prints it as 0.
        .sum::<f64>()
        + 0.0
}

/// Prints a summary line every `every`.
pub(crate) struct Summary {
    registry: prometheus::Registry,
    every: Duration,
}

impl Summary {
    pub(crate) fn new(registry: prometheus::Registry, every: Duration) -> Self {
        Summary { registry, every }
    }

    pub(crate) async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let mut ticker = tokio::time::interval(self.every);
        ticker.tick().await;
        let mut last = (Instant::now(), Counts::default());
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = shutdown.clone().wait() => return Ok(()),
            }
            let counts = Counts::from_families(&self.registry.gather());
            let elapsed = last.0.elapsed().as_secs_f64().max(1e-3);
            let rate = (counts.accepted - last.1.accepted) / elapsed;
            outln!("{}  {}", clock_time(), line(&counts, rate));
            last = (Instant::now(), counts);
        }
    }
}

/// One summary line.
pub(crate) fn line(counts: &Counts, readings_per_second: f64) -> String {
    format!(
        "readings {:.0}/s ({:.0} in all)  refused {:.0}  late {:.0}  detections {:.0}  \
         recommendations: opened {:.0}, escalated {:.0}, ended {:.0}, open now {:.0}",
        readings_per_second,
        counts.accepted,
        counts.refused,
        counts.late,
        counts.detections,
        counts.opened,
        counts.escalated,
        counts.ended,
        counts.open,
    )
}

/// Print a line for every change of a recommendation but a repeated occurrence.
pub(crate) async fn watch_recommendations(
    mut changes: broadcast::Receiver<RecommendationChange>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    loop {
        let change = tokio::select! {
            change = changes.recv() => change,
            () = shutdown.clone().wait() => return Ok(()),
        };
        match change {
            Ok(change) => {
                if let Some(text) = describe(&change) {
                    outln!("{}  {text}", clock_time());
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                outln!(
                    "{}  ({missed} recommendation changes not shown)",
                    clock_time()
                );
            }
            Err(broadcast::error::RecvError::Closed) => return Ok(()),
        }
    }
}

/// What a person reads for one change; `None` for one not worth a line.
pub(crate) fn describe(change: &RecommendationChange) -> Option<String> {
    let recommendation = change.recommendation.as_ref()?;
    let id = &recommendation.id;
    // The snapshot a watch starts with (what is open now) comes without an audit entry.
    let Some(entry) = change
        .change
        .as_ref()
        .filter(|entry| !entry.event.is_empty())
    else {
        return Some(format!(
            "recommendation {id} is {}: {}",
            state_text(recommendation.state),
            recommendation.title
        ));
    };
    let text = match entry.event.as_str() {
        "occurrence" => return None,
        "opened" => format!(
            "recommendation {id} opened: {} [{}]",
            recommendation.title,
            severity_text(recommendation.severity)
        ),
        "escalated" => format!(
            "recommendation {id} escalated to {}",
            recommendation.escalated_to
        ),
        event => {
            let state = state_text(recommendation.state);
            let by = if entry.actor.is_empty() || entry.actor == "sinter" {
                String::new()
            } else {
                format!(" by {}", entry.actor)
            };
            format!("recommendation {id} {event}{by}, now {state}")
        }
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_over_their_series_and_gauges_read() {
        let registry = prometheus::Registry::new();
        let accepted = prometheus::IntCounterVec::new(
            prometheus::Opts::new("sinter_ingest_readings_accepted_total", "accepted"),
            &["transport"],
        )
        .expect("counter");
        registry
            .register(Box::new(accepted.clone()))
            .expect("register");
        accepted.with_label_values(&["grpc"]).inc_by(7);
        accepted.with_label_values(&["http"]).inc_by(3);
        let open = prometheus::IntGauge::new("sinter_orchestrator_open_recommendations", "open")
            .expect("gauge");
        registry.register(Box::new(open.clone())).expect("register");
        open.set(2);

        let counts = Counts::from_families(&registry.gather());
        assert_eq!(counts.accepted, 10.0);
        assert_eq!(counts.open, 2.0);
        assert_eq!(counts.refused, 0.0);
        let text = line(&counts, 5.0);
        assert!(
            text.starts_with("readings 5/s (10 in all)  refused 0"),
            "{text}"
        );
        assert!(text.ends_with("open now 2"), "{text}");
    }

    #[test]
    fn occurrences_are_not_worth_a_line_and_escalations_name_the_role() {
        use sinter_proto::orchestrator::v1::{HistoryEntry, Recommendation, RecommendationState};
        let change = |event: &str| RecommendationChange {
            recommendation: Some(Recommendation {
                id: "rec-1".into(),
                title: "Inspect Pump P-07".into(),
                escalated_to: "maintenance-lead".into(),
                state: RecommendationState::Open as i32,
                ..Recommendation::default()
            }),
            change: Some(HistoryEntry {
                event: event.into(),
                actor: "ana".into(),
                ..HistoryEntry::default()
            }),
        };
        assert_eq!(describe(&change("occurrence")), None);
        assert_eq!(
            describe(&change("escalated")).as_deref(),
            Some("recommendation rec-1 escalated to maintenance-lead")
        );
        assert_eq!(
            describe(&change("commented")).as_deref(),
            Some("recommendation rec-1 commented by ana, now open")
        );
        // What a watch starts with: the open ones, with no audit entry.
        let snapshot = RecommendationChange {
            change: None,
            ..change("")
        };
        assert_eq!(
            describe(&snapshot).as_deref(),
            Some("recommendation rec-1 is open: Inspect Pump P-07")
        );
    }
}
