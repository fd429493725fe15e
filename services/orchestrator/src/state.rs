//! The recommendation lifecycle: its states, and which transitions each one allows.

use sinter_proto::orchestrator::v1::{Outcome, RecommendationState};

/// Where a recommendation stands.
///
/// `open`, `acknowledged` and `in_progress` are *active*: at most one active
/// recommendation exists per Solution, rule and asset (the database enforces it). The
/// other three end it: `resolved` (a person fixed it), `false_alarm` (a person judged it
/// a false alarm) and `closed` (the detection cleared and the rule's `resolveWhen` is
/// `cleared`, so Sinter ended it without a person).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    Open,
    Acknowledged,
    InProgress,
    Resolved,
    FalseAlarm,
    Closed,
}

/// The states counted as active, as SQL writes them in a `state IN ...` condition.
pub const ACTIVE_STATES_SQL: &str = "('open', 'acknowledged', 'in_progress')";

impl State {
    pub const ALL: [State; 6] = [
        State::Open,
        State::Acknowledged,
        State::InProgress,
        State::Resolved,
        State::FalseAlarm,
        State::Closed,
    ];

    /// The word stored in SQL and shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Acknowledged => "acknowledged",
            State::InProgress => "in_progress",
            State::Resolved => "resolved",
            State::FalseAlarm => "false_alarm",
            State::Closed => "closed",
        }
    }

    /// The state spelled `word`, as [`State::as_str`] writes it.
    pub fn from_word(word: &str) -> Option<State> {
        State::ALL.into_iter().find(|state| state.as_str() == word)
    }

    /// Whether the recommendation still needs work.
    pub fn is_active(self) -> bool {
        matches!(self, State::Open | State::Acknowledged | State::InProgress)
    }

    pub fn to_proto(self) -> RecommendationState {
        match self {
            State::Open => RecommendationState::Open,
            State::Acknowledged => RecommendationState::Acknowledged,
            State::InProgress => RecommendationState::InProgress,
            State::Resolved => RecommendationState::Resolved,
            State::FalseAlarm => RecommendationState::FalseAlarm,
            State::Closed => RecommendationState::Closed,
        }
    }

    pub fn from_proto(state: RecommendationState) -> Option<State> {
        match state {
            RecommendationState::Unspecified => None,
            RecommendationState::Open => Some(State::Open),
            RecommendationState::Acknowledged => Some(State::Acknowledged),
            RecommendationState::InProgress => Some(State::InProgress),
            RecommendationState::Resolved => Some(State::Resolved),
            RecommendationState::FalseAlarm => Some(State::FalseAlarm),
            RecommendationState::Closed => Some(State::Closed),
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a person (or Sinter) does to a recommendation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Someone has seen it: stops the escalation ladder.
    Acknowledge,
    /// Someone works on it; also acknowledges an open one.
    Assign,
    /// A person ends it, fixed or a false alarm.
    Resolve(Outcome),
    /// The detection cleared under `resolveWhen: cleared`.
    Clear,
    /// An ended recommendation is active again.
    Reopen,
}

impl Transition {
    /// The verb, for messages: `acknowledge`.
    pub fn verb(self) -> &'static str {
        match self {
            Transition::Acknowledge => "acknowledge",
            Transition::Assign => "assign",
            Transition::Resolve(_) => "resolve",
            Transition::Clear => "close",
            Transition::Reopen => "reopen",
        }
    }

    /// The history event this transition writes.
    pub fn event(self) -> &'static str {
        match self {
            Transition::Acknowledge => "acknowledged",
            Transition::Assign => "assigned",
            Transition::Resolve(Outcome::FalseAlarm) => "false_alarm",
            Transition::Resolve(_) => "resolved",
            Transition::Clear => "cleared",
            Transition::Reopen => "reopened",
        }
    }

    /// The state after this transition from `from`, or `None` when `from` does not allow it.
    pub fn apply(self, from: State) -> Option<State> {
        match (self, from) {
            (Transition::Acknowledge, State::Open) => Some(State::Acknowledged),
            (Transition::Assign, from) if from.is_active() => Some(State::InProgress),
            (Transition::Resolve(Outcome::FalseAlarm), from) if from.is_active() => {
                Some(State::FalseAlarm)
            }
            (Transition::Resolve(Outcome::Fixed), from) if from.is_active() => {
                Some(State::Resolved)
            }
            (Transition::Clear, from) if from.is_active() => Some(State::Closed),
            (Transition::Reopen, from) if !from.is_active() => Some(State::Open),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for state in State::ALL {
            assert_eq!(State::from_word(state.as_str()), Some(state));
            assert_eq!(State::from_proto(state.to_proto()), Some(state));
        }
        assert_eq!(State::from_word("done"), None);
    }

    #[test]
    fn the_lifecycle_allows_only_its_transitions() {
        use Transition::*;
        assert_eq!(Acknowledge.apply(State::Open), Some(State::Acknowledged));
        assert_eq!(Acknowledge.apply(State::Acknowledged), None);
        assert_eq!(Acknowledge.apply(State::InProgress), None);
        assert_eq!(Assign.apply(State::Acknowledged), Some(State::InProgress));
        assert_eq!(Assign.apply(State::Resolved), None);
        let fixed = Resolve(Outcome::Fixed);
        assert_eq!(fixed.apply(State::InProgress), Some(State::Resolved));
        assert_eq!(fixed.apply(State::Closed), None);
        let false_alarm = Resolve(Outcome::FalseAlarm);
        assert_eq!(false_alarm.apply(State::Open), Some(State::FalseAlarm));
        assert_eq!(Resolve(Outcome::Cleared).apply(State::Open), None);
        assert_eq!(Clear.apply(State::Acknowledged), Some(State::Closed));
        assert_eq!(Reopen.apply(State::Resolved), Some(State::Open));
        assert_eq!(Reopen.apply(State::Open), None);
    }
}
