//! Silence: no reading of a metric from a device for a configured time.
//!
//! Arrivals and the timer both go through the series' owner one at a time, so a clear can
//! never be lost to a timer that fires while a reading is being handled.

use serde::{Deserialize, Serialize};
use sinter_core::Timestamp;
use sinter_core::solution::Silence;

use super::Change;

/// Per-series state of a silence detector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SilenceState {
    pub raised: bool,
    /// When (processing time) the last reading arrived.
    last_arrival: Option<i64>,
}

impl SilenceState {
    /// A reading arrived at `now`: clears an open silence.
    pub fn on_reading(&mut self, now: Timestamp) -> Option<Change> {
        self.last_arrival = Some(now.as_micros());
        if self.raised {
            self.raised = false;
            return Some(Change::Clear {
                value: 0.0,
                score: 0.0,
            });
        }
        None
    }

    /// The timer at `now`: raises when the last reading is older than `after`. The event time of
    /// the raise is when the silence began to count, returned alongside.
    pub fn on_tick(&mut self, rule: &Silence, now: Timestamp) -> Option<(Change, Timestamp)> {
        let last = self.last_arrival?;
        let after = i64::try_from(rule.after.as_micros()).unwrap_or(i64::MAX);
        let due = last.saturating_add(after);
        if self.raised || now.as_micros() < due {
            return None;
        }
        self.raised = true;
        let silent_secs = (now.as_micros() - last) as f64 / 1e6;
        Some((
            Change::Raise {
                value: silent_secs,
                score: 1.0,
            },
            Timestamp::from_micros(due),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sinter_core::solution::Severity;

    use super::*;

    #[test]
    fn silence_raises_once_and_clears_on_the_next_reading() {
        let rule = Silence {
            after: Duration::from_secs(600),
            severity: Severity::Major,
        };
        let mut state = SilenceState::default();
        assert_eq!(state.on_tick(&rule, Timestamp::from_secs(10_000)), None);
        assert_eq!(state.on_reading(Timestamp::from_secs(1000)), None);
        assert_eq!(state.on_tick(&rule, Timestamp::from_secs(1599)), None);
        let (change, at) = state.on_tick(&rule, Timestamp::from_secs(1650)).unwrap();
        assert_eq!(
            change,
            Change::Raise {
                value: 650.0,
                score: 1.0
            }
        );
        assert_eq!(at, Timestamp::from_secs(1600));
        assert_eq!(state.on_tick(&rule, Timestamp::from_secs(5000)), None);
        assert_eq!(
            state.on_reading(Timestamp::from_secs(5001)),
            Some(Change::Clear {
                value: 0.0,
                score: 0.0
            })
        );
    }
}
