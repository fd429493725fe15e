//! Threshold with hysteresis: raise past a level for a minimum time, clear back past another.

use serde::{Deserialize, Serialize};
use sinter_core::solution::Threshold;

use super::{Change, aggregate_of};
use crate::window::ClosedWindow;

/// Per-series state of a threshold detector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ThresholdState {
    /// Whether an incident is open.
    pub raised: bool,
    /// Start of the first window of the current unbroken run past the level.
    crossing_since: Option<i64>,
}

impl ThresholdState {
    /// Judge one closed window.
    pub fn on_window(&mut self, rule: &Threshold, window: &ClosedWindow) -> Option<Change> {
        let value = aggregate_of(rule.aggregate, &window.summary);
        let above = rule.above.is_some_and(|level| value > level);
        let below = rule.below.is_some_and(|level| value < level);
        if self.raised {
            let cleared_high = rule.clear_below.is_none_or(|clear| value < clear);
            let cleared_low = rule.clear_above.is_none_or(|clear| value > clear);
            let back = match (rule.above.is_some(), rule.below.is_some()) {
                (true, true) => cleared_high && cleared_low,
                (true, false) => cleared_high,
                _ => cleared_low,
            };
            if back {
                self.raised = false;
                self.crossing_since = None;
                return Some(Change::Clear { value, score: 0.0 });
            }
            return None;
        }
        if !(above || below) {
            self.crossing_since = None;
            return None;
        }
        let since = *self.crossing_since.get_or_insert(window.start.as_micros());
        let held = window.end.as_micros() - since;
        let needed = i64::try_from(rule.hold_for.as_micros()).unwrap_or(i64::MAX);
        if held >= needed {
            self.raised = true;
            return Some(Change::Raise { value, score: 1.0 });
        }
        None
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use sinter_core::Timestamp;
    use sinter_core::solution::{Aggregate, Severity};

    use super::*;
    use crate::stats::Summary;

    pub(crate) fn window(start_secs: i64, len: i64, mean: f64) -> ClosedWindow {
        ClosedWindow {
            start: Timestamp::from_secs(start_secs),
            end: Timestamp::from_secs(start_secs + len),
            summary: Summary {
                count: 1,
                min: mean,
                max: mean,
                mean,
                stddev: 0.0,
                last: mean,
                quantiles: Vec::new(),
                late: 0,
            },
        }
    }

    fn rule(hold_for: u64) -> Threshold {
        Threshold {
            above: Some(85.0),
            clear_below: Some(80.0),
            below: None,
            clear_above: None,
            hold_for: Duration::from_secs(hold_for),
            aggregate: Aggregate::Mean,
            severity: Severity::Major,
        }
    }

    #[test]
    fn a_value_hovering_at_the_limit_gives_one_incident() {
        let rule = rule(0);
        let mut state = ThresholdState::default();
        let series = [84.0, 86.0, 84.5, 85.5, 84.9, 86.2, 83.0, 85.1, 79.0, 84.0];
        let changes: Vec<(usize, Change)> = series
            .iter()
            .enumerate()
            .filter_map(|(i, mean)| {
                state
                    .on_window(&rule, &window(i as i64 * 60, 60, *mean))
                    .map(|change| (i, change))
            })
            .collect();
        assert_eq!(
            changes,
            [
                (
                    1,
                    Change::Raise {
                        value: 86.0,
                        score: 1.0
                    }
                ),
                (
                    8,
                    Change::Clear {
                        value: 79.0,
                        score: 0.0
                    }
                )
            ]
        );
    }

    #[test]
    fn the_level_must_hold_for_the_minimum_time() {
        // `for: 2m` with 1-minute windows: two windows past the level in a row raise.
        let rule = rule(120);
        let mut state = ThresholdState::default();
        let mut raised_at = Vec::new();
        for (i, mean) in [90.0, 70.0, 90.0, 90.0, 90.0].iter().enumerate() {
            if let Some(Change::Raise { .. }) =
                state.on_window(&rule, &window(i as i64 * 60, 60, *mean))
            {
                raised_at.push(i);
            }
        }
        assert_eq!(raised_at, [3]);
    }
}
