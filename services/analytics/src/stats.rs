//! Running statistics of a slice of readings: count, min, max, mean, deviation, last, sketch.

use serde::{Deserialize, Serialize};
use sinter_core::Timestamp;
use sketches_ddsketch::{Config, DDSketch};

/// The quantiles every window reports.
pub const QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];

/// Relative accuracy of the quantile sketch.
const SKETCH_ALPHA: f64 = 0.01;
/// Most bins one sketch may grow to before it merges the lowest ones.
const SKETCH_MAX_BINS: u32 = 512;
/// Up to this many values are kept exactly; beyond, they move into the sketch. A sketch
/// allocates its bins in chunks of a kilobyte, more than a minute of readings at 1 Hz needs.
const EXACT_VALUES: usize = 64;

fn sketch() -> DDSketch {
    DDSketch::new(Config::new(SKETCH_ALPHA, SKETCH_MAX_BINS, 1.0e-9))
}

/// Statistics over a set of numeric readings, mergeable with another set's.
#[derive(Clone, Serialize, Deserialize)]
pub struct RunningStats {
    count: u64,
    min: f64,
    max: f64,
    mean: f64,
    /// Sum of squared deviations from the mean (Welford).
    m2: f64,
    /// The value with the latest event time, and that time.
    last: f64,
    last_time: i64,
    /// The values themselves while there are few of them.
    exact: Vec<f64>,
    /// The sketch, once there are more than [`EXACT_VALUES`].
    sketch: Option<Box<DDSketch>>,
}

impl std::fmt::Debug for RunningStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningStats")
            .field("count", &self.count)
            .field("mean", &self.mean)
            .field("min", &self.min)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

/// Serde for [`Timestamp`] as microseconds since the epoch.
pub mod micros {
    use serde::{Deserialize, Deserializer, Serializer};
    use sinter_core::Timestamp;

    pub fn serialize<S: Serializer>(time: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(time.as_micros())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        i64::deserialize(deserializer).map(Timestamp::from_micros)
    }
}

impl Default for RunningStats {
    fn default() -> Self {
        RunningStats {
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            mean: 0.0,
            m2: 0.0,
            last: 0.0,
            last_time: i64::MIN,
            exact: Vec::new(),
            sketch: None,
        }
    }
}

/// A finished summary, as a window reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Population standard deviation.
    pub stddev: f64,
    pub last: f64,
    /// `(q, value)` for each of [`QUANTILES`].
    pub quantiles: Vec<(f64, f64)>,
    /// Readings refused as late since the previous window closed.
    pub late: u64,
}

impl RunningStats {
    /// Add one reading. Of two readings with the same event time the later arrival is `last`.
    pub fn add(&mut self, value: f64, event_time: Timestamp) {
        self.count += 1;
        let delta = value - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (value - self.mean);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        if event_time.as_micros() >= self.last_time {
            self.last = value;
            self.last_time = event_time.as_micros();
        }
        match &mut self.sketch {
            Some(sketch) => sketch.add(value),
            None if self.exact.len() < EXACT_VALUES => self.exact.push(value),
            None => {
                let mut sketch = self.spill();
                sketch.add(value);
                self.sketch = Some(sketch);
            }
        }
    }

    /// Move the exact values into a new sketch.
    fn spill(&mut self) -> Box<DDSketch> {
        let mut sketch = Box::new(sketch());
        for value in self.exact.drain(..) {
            sketch.add(value);
        }
        self.exact = Vec::new();
        sketch
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Fold `other` into `self` (Chan's parallel update for mean and deviation).
    pub fn merge(&mut self, other: &RunningStats) {
        if other.count == 0 {
            return;
        }
        let total = self.count + other.count;
        let delta = other.mean - self.mean;
        self.mean += delta * other.count as f64 / total as f64;
        self.m2 +=
            other.m2 + delta * delta * (self.count as f64 * other.count as f64) / total as f64;
        self.count = total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if other.last_time >= self.last_time {
            self.last = other.last;
            self.last_time = other.last_time;
        }
        match (&mut self.sketch, &other.sketch) {
            (None, None) if self.exact.len() + other.exact.len() <= EXACT_VALUES => {
                self.exact.extend_from_slice(&other.exact);
            }
            _ => {
                let mut sketch = match self.sketch.take() {
                    Some(sketch) => sketch,
                    None => self.spill(),
                };
                for value in &other.exact {
                    sketch.add(*value);
                }
                if let Some(theirs) = &other.sketch {
                    // Both sketches come from `sketch()`, so their configurations agree.
                    let _ = sketch.merge(theirs);
                }
                self.sketch = Some(sketch);
            }
        }
    }

    /// The summary, or `None` for no readings.
    pub fn summary(&self) -> Option<Summary> {
        if self.count == 0 {
            return None;
        }
        let mut sorted = self.exact.clone();
        sorted.sort_by(f64::total_cmp);
        let quantiles = QUANTILES
            .iter()
            .map(|&q| {
                let value = match &self.sketch {
                    Some(sketch) => sketch.quantile(q).ok().flatten().unwrap_or(self.mean),
                    // The value of rank floor(q * (n - 1)), as the sketch ranks them.
                    None => {
                        sorted[((q * (sorted.len() - 1) as f64).floor() as usize)
                            .min(sorted.len() - 1)]
                    }
                };
                (q, value.clamp(self.min, self.max))
            })
            .collect();
        Some(Summary {
            count: self.count,
            min: self.min,
            max: self.max,
            mean: self.mean,
            stddev: (self.m2 / self.count as f64).max(0.0).sqrt(),
            last: self.last,
            quantiles,
            late: 0,
        })
    }

    /// Bytes held on the heap by the sketch, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        // Limitation: the sketch's stores are private; their size is estimated from the
        // number of bins the sketch reports.
        self.exact.capacity() * std::mem::size_of::<f64>()
            + self.sketch.as_ref().map_or(0, |sketch| {
                std::mem::size_of::<DDSketch>() + sketch.length() * std::mem::size_of::<u64>()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(values: &[f64]) -> RunningStats {
        let mut stats = RunningStats::default();
        for (i, value) in values.iter().enumerate() {
            stats.add(*value, Timestamp::from_secs(i as i64));
        }
        stats
    }

    #[test]
    fn summary_matches_hand_computation() {
        let summary = stats(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
            .summary()
            .unwrap();
        assert_eq!(summary.count, 8);
        assert_eq!(summary.mean, 5.0);
        assert_eq!(summary.stddev, 2.0);
        assert_eq!((summary.min, summary.max, summary.last), (2.0, 9.0, 9.0));
        // Exact while small: ranks floor(0.5 * 7) = 3 and floor(0.9 * 7) = 6.
        assert_eq!(summary.quantiles[0], (0.5, 4.0));
        assert_eq!(summary.quantiles[1], (0.9, 7.0));
    }

    #[test]
    fn many_values_go_through_the_sketch_within_its_accuracy() {
        let values: Vec<f64> = (1..=1000).map(f64::from).collect();
        let mut halves = stats(&values[..500]);
        halves.merge(&stats(&values[500..]));
        for stats in [stats(&values), halves] {
            let summary = stats.summary().unwrap();
            assert!(stats.sketch.is_some());
            for (q, value) in summary.quantiles {
                let exact = (q * 999.0).floor() + 1.0;
                assert!(
                    (value - exact).abs() <= 0.02 * exact,
                    "q{q}: {value} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn merged_equals_whole() {
        let mut left = stats(&[1.0, 2.0, 3.0]);
        let right = stats(&[10.0, 20.0]);
        left.merge(&right);
        let whole = stats(&[1.0, 2.0, 3.0, 10.0, 20.0]).summary().unwrap();
        let merged = left.summary().unwrap();
        assert_eq!(merged.count, 5);
        assert!((merged.mean - whole.mean).abs() < 1e-12);
        assert!((merged.stddev - whole.stddev).abs() < 1e-12);
    }

    #[test]
    fn same_time_keeps_both_and_later_arrival_is_last() {
        let mut stats = RunningStats::default();
        stats.add(1.0, Timestamp::from_secs(5));
        stats.add(3.0, Timestamp::from_secs(5));
        stats.add(0.0, Timestamp::from_secs(4));
        let summary = stats.summary().unwrap();
        assert_eq!(summary.count, 3);
        assert_eq!(summary.last, 3.0);
    }
}
