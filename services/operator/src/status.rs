//! A Solution's status: conditions that keep their transition time while they hold, and
//! the phase that sums them up.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::SolutionStatus;

/// The summary condition: the Solution runs as its spec says.
pub const READY: &str = "Ready";
/// Every topic exists as the spec asks.
pub const TOPICS_READY: &str = "TopicsReady";
/// The spec is valid and its ConfigMap is written.
pub const CONFIG_READY: &str = "ConfigReady";
/// Every Deployment has its replicas ready.
pub const WORKLOADS_READY: &str = "WorkloadsReady";

/// Phases, in the order a Solution usually goes through them.
pub mod phase {
    /// Applied, waiting for workloads to become ready.
    pub const PENDING: &str = "Pending";
    /// Everything as the spec says.
    pub const READY: &str = "Ready";
    /// Running, but something differs from the spec (a topic conflict).
    pub const DEGRADED: &str = "Degraded";
    /// The spec does not validate; nothing was changed.
    pub const INVALID: &str = "Invalid";
}

/// One condition's new state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// Which condition.
    pub kind: &'static str,
    /// Whether it holds.
    pub holds: bool,
    /// CamelCase reason.
    pub reason: String,
    /// What a person should know.
    pub message: String,
}

impl Observation {
    /// A condition that holds.
    pub fn holds(kind: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Observation {
            kind,
            holds: true,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    /// A condition that does not hold.
    pub fn fails(kind: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Observation {
            kind,
            holds: false,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// The status after `observations`, starting from `previous`: a condition whose truth did
/// not change keeps its `lastTransitionTime`, so an unchanged Solution gets an unchanged
/// status and no write.
pub fn next(
    previous: &SolutionStatus,
    generation: Option<i64>,
    observations: &[Observation],
    now: &Time,
) -> Vec<Condition> {
    observations
        .iter()
        .map(|observation| {
            let status = if observation.holds { "True" } else { "False" };
            let since = previous
                .conditions
                .iter()
                .find(|old| old.type_ == observation.kind && old.status == status)
                .map(|old| old.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: observation.kind.to_owned(),
                status: status.to_owned(),
                reason: observation.reason.clone(),
                message: truncate(&observation.message),
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

/// `previous` with the conditions of `updated` put in place of those of the same type.
pub fn merge(previous: &[Condition], updated: Vec<Condition>) -> Vec<Condition> {
    let mut merged: Vec<Condition> = previous
        .iter()
        .filter(|old| updated.iter().all(|new| new.type_ != old.type_))
        .cloned()
        .collect();
    merged.extend(updated);
    merged.sort_by_key(|condition| {
        [READY, TOPICS_READY, CONFIG_READY, WORKLOADS_READY]
            .iter()
            .position(|kind| *kind == condition.type_)
            .unwrap_or(usize::MAX)
    });
    merged
}

/// The most a condition message holds; the API server refuses longer ones.
const MAX_MESSAGE: usize = 32 * 1024;

fn truncate(message: &str) -> String {
    if message.len() <= MAX_MESSAGE {
        return message.to_owned();
    }
    let mut end = MAX_MESSAGE - 3;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).expect("valid"))
    }

    #[test]
    fn transition_time_moves_only_when_truth_changes() {
        let first = next(
            &SolutionStatus::default(),
            Some(1),
            &[Observation::fails(READY, "Pending", "waiting")],
            &time(100),
        );
        let previous = SolutionStatus {
            conditions: first,
            ..SolutionStatus::default()
        };
        let same = next(
            &previous,
            Some(2),
            &[Observation::fails(READY, "Pending", "still waiting")],
            &time(200),
        );
        assert_eq!(same[0].last_transition_time, time(100));
        assert_eq!(same[0].message, "still waiting");
        let flipped = next(
            &previous,
            Some(2),
            &[Observation::holds(READY, "Ready", "ok")],
            &time(300),
        );
        assert_eq!(flipped[0].last_transition_time, time(300));
        assert_eq!(flipped[0].status, "True");
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_MESSAGE);
        let cut = truncate(&long);
        assert!(cut.len() <= MAX_MESSAGE);
        assert!(cut.ends_with("..."));
    }
}
