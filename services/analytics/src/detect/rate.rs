//! Rate of change: the aggregate moving faster than allowed between consecutive windows.

use serde::{Deserialize, Serialize};
use sinter_core::solution::RateOfChange;

use super::{Change, aggregate_of};
use crate::window::ClosedWindow;

/// Per-series state of a rate-of-change detector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RateState {
    pub raised: bool,
    /// The previous window's start (microseconds) and aggregate.
    previous: Option<(i64, f64)>,
}

impl RateState {
    /// Judge one closed window against the one before it; the change is scaled to `per`.
    pub fn on_window(&mut self, rule: &RateOfChange, window: &ClosedWindow) -> Option<Change> {
        let value = aggregate_of(rule.aggregate, &window.summary);
        let start = window.start.as_micros();
        let previous = self.previous.replace((start, value));
        let (before_start, before) = previous?;
        let elapsed = (start - before_start) as f64;
        if elapsed <= 0.0 {
            return None;
        }
        let per = rule.per.as_micros() as f64;
        let change = (value - before) * per / elapsed;
        let too_fast_up = rule.max_increase.is_some_and(|limit| change > limit);
        let too_fast_down = rule.max_decrease.is_some_and(|limit| -change > limit);
        let exceeded = too_fast_up || too_fast_down;
        match (self.raised, exceeded) {
            (false, true) => {
                self.raised = true;
                Some(Change::Raise {
                    value: change,
                    score: 1.0,
                })
            }
            (true, false) => {
                self.raised = false;
                Some(Change::Clear {
                    value: change,
                    score: 0.0,
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sinter_core::solution::{Aggregate, Severity};

    use super::*;
    use crate::detect::threshold::tests::window;

    #[test]
    fn a_fast_rise_raises_and_a_steady_value_clears() {
        // Windows 30 s apart, limit 10 per minute: a rise of 6 in 30 s is 12 per minute.
        let rule = RateOfChange {
            max_increase: Some(10.0),
            max_decrease: None,
            per: Duration::from_secs(60),
            aggregate: Aggregate::Mean,
            severity: Severity::Minor,
        };
        let mut state = RateState::default();
        let changes: Vec<Option<Change>> = [0.0, 4.0, 10.0, 11.0]
            .iter()
            .enumerate()
            .map(|(i, mean)| state.on_window(&rule, &window(i as i64 * 30, 30, *mean)))
            .collect();
        assert_eq!(
            changes,
            [
                None,
                None,
                Some(Change::Raise {
                    value: 12.0,
                    score: 1.0
                }),
                Some(Change::Clear {
                    value: 2.0,
                    score: 0.0
                })
            ]
        );
    }
}
