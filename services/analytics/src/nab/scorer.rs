//! NAB's scoring rules: anomaly windows, the probationary period, the scaled sigmoid.
//!
//! Every row gets a weighted score as if it were a detection: inside a window, a true
//! positive worth more the earlier it comes; outside, a false positive that costs less the
//! closer it follows the previous window. At a threshold, each window counts its earliest
//! detection (or a miss), and each detection outside windows counts against.

use serde::Deserialize;

/// One of NAB's cost profiles.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// `standard`, `reward_low_FP_rate` or `reward_low_FN_rate`.
    pub name: String,
    pub tp_weight: f64,
    pub fp_weight: f64,
    pub fn_weight: f64,
    pub tn_weight: f64,
}

#[derive(Deserialize)]
pub(crate) struct RawProfile {
    #[serde(rename = "CostMatrix")]
    pub cost_matrix: RawCostMatrix,
}

#[derive(Deserialize)]
pub(crate) struct RawCostMatrix {
    #[serde(rename = "tpWeight")]
    pub tp: f64,
    #[serde(rename = "fpWeight")]
    pub fp: f64,
    #[serde(rename = "fnWeight")]
    pub fn_: f64,
    #[serde(rename = "tnWeight")]
    pub tn: f64,
}

/// Share of a file (at most `PROBATION_SHARE * 5000` rows) that is never scored.
pub const PROBATION_SHARE: f64 = 0.15;

/// The rows at the start of a file that are not scored: the detector is learning.
pub fn probationary_rows(rows: usize) -> usize {
    let share = (PROBATION_SHARE * rows as f64).floor();
    share.min(PROBATION_SHARE * 5000.0) as usize
}

/// NAB's sigmoid scaled to (-1, 1): +1 long before a window's end, -1 long after.
pub fn scaled_sigmoid(position: f64) -> f64 {
    if position > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * position).exp()) - 1.0
    }
}

/// How one row would count if it were a detection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowWeight {
    /// The weighted score of a detection at this row.
    pub weight: f64,
    /// The window the row is in (index into the file's windows), if any.
    pub window: Option<usize>,
    /// Rows in the probationary period are never scored.
    pub probationary: bool,
}

/// Weigh every row of a file. `windows` are `(start, end)` times that equal row times, as in
/// NAB's label files; a window is entered on the row whose time equals its start.
pub fn weigh_rows(times: &[i64], windows: &[(i64, i64)], profile: &Profile) -> Vec<RowWeight> {
    let max_tp = scaled_sigmoid(-1.0);
    let probation = probationary_rows(times.len());
    let first_index = |time: i64| times.iter().position(|t| *t == time);
    let mut pending = windows.iter().enumerate().peekable();
    let mut current: Option<(usize, i64, usize, f64)> = None;
    let mut previous: Option<(usize, f64)> = None;
    let mut rows = Vec::with_capacity(times.len());
    for (i, &time) in times.iter().enumerate() {
        if let Some(&(index, &(start, end))) = pending.peek()
            && time == start
        {
            pending.next();
            let right = first_index(end).unwrap_or(times.len() - 1);
            let left = first_index(start).unwrap_or(i);
            current = Some((index, end, right, (right as f64 - left as f64) + 1.0));
        }
        let (weight, window) = match current {
            Some((index, _, right, width)) => {
                let position = -((right as f64) - i as f64 + 1.0) / width;
                (
                    scaled_sigmoid(position) * profile.tp_weight / max_tp,
                    Some(index),
                )
            }
            None => {
                let unweighted = match previous {
                    None => -1.0,
                    Some((right, width)) => {
                        scaled_sigmoid((i as f64 - right as f64).abs() / (width - 1.0))
                    }
                };
                (unweighted * profile.fp_weight, None)
            }
        };
        rows.push(RowWeight {
            weight,
            window,
            probationary: i < probation,
        });
        if let Some((_, end, _, width)) = current
            && time == end
        {
            previous = Some((i, width));
            current = None;
        }
    }
    rows
}

/// A file's score at one threshold, with NAB's counts of rows.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FileScore {
    pub score: f64,
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
    pub tn: usize,
}

/// Score a file: rows whose anomaly score is at least `threshold` are detections.
pub fn score_at(
    rows: &[RowWeight],
    scores: &[f64],
    windows: usize,
    threshold: f64,
    profile: &Profile,
) -> FileScore {
    let mut result = FileScore::default();
    let mut best: Vec<Option<f64>> = vec![None; windows];
    let mut scored_windows = vec![false; windows];
    for (row, &score) in rows.iter().zip(scores) {
        if row.probationary {
            continue;
        }
        let detected = score >= threshold;
        match (row.window, detected) {
            (Some(window), true) => {
                result.tp += 1;
                scored_windows[window] = true;
                let entry = &mut best[window];
                *entry = Some(entry.map_or(row.weight, |b: f64| b.max(row.weight)));
            }
            (Some(window), false) => {
                result.fn_ += 1;
                scored_windows[window] = true;
            }
            (None, true) => {
                result.fp += 1;
                result.score += row.weight;
            }
            (None, false) => result.tn += 1,
        }
    }
    for (window, best) in best.iter().enumerate() {
        if !scored_windows[window] {
            continue;
        }
        result.score += best.unwrap_or(-profile.fn_weight);
    }
    result
}

/// The raw score of a detector that never detects, and of one that detects each window's
/// first row and nothing else.
pub fn null_and_perfect(rows: &[RowWeight], windows: usize, profile: &Profile) -> (f64, f64) {
    let mut scored = vec![false; windows];
    for row in rows.iter().filter(|row| !row.probationary) {
        if let Some(window) = row.window {
            scored[window] = true;
        }
    }
    let counted = scored.iter().filter(|s| **s).count() as f64;
    (-profile.fn_weight * counted, profile.tp_weight * counted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standard() -> Profile {
        Profile {
            name: "standard".into(),
            tp_weight: 1.0,
            fp_weight: 0.11,
            fn_weight: 1.0,
            tn_weight: 1.0,
        }
    }

    #[test]
    fn the_sigmoid_matches_nab() {
        assert!((scaled_sigmoid(-1.0) - 0.986_614_298).abs() < 1e-8);
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert_eq!(scaled_sigmoid(3.5), -1.0);
    }

    #[test]
    fn earliest_detection_in_a_window_counts_once() {
        // 100 rows, probation 15; one window over rows 50..=59.
        let times: Vec<i64> = (0..100).collect();
        let rows = weigh_rows(&times, &[(50, 59)], &standard());
        assert!((rows[50].weight - 1.0).abs() < 1e-12);
        let mut scores = vec![0.0; 100];
        scores[52] = 1.0;
        scores[55] = 1.0;
        scores[20] = 1.0;
        let score = score_at(&rows, &scores, 1, 0.5, &standard());
        assert_eq!((score.tp, score.fp, score.fn_), (2, 1, 8));
        let expected = rows[52].weight - 0.11;
        assert!((score.score - expected).abs() < 1e-12);
        // Probationary detections never count.
        scores[3] = 1.0;
        assert_eq!(score_at(&rows, &scores, 1, 0.5, &standard()), score);
    }
}
