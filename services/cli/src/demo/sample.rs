//! A generated machine-temperature series in NAB's file format (`timestamp,value`,
//! five-minute steps) with labelled anomaly windows, for demos and for tests on a
//! machine without the Numenta Anomaly Benchmark data.
//!
//! The series is three weeks of an industrial machine's temperature: a slow drift and
//! noise around 85, and two failures, each a climb over half a day that ends in a
//! sudden shutdown and a restart. The windows follow NAB's convention: a span around
//! each failure, starting before the first sign of it.

use std::fmt::Write as _;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use sinter_core::Timestamp;

/// Five minutes, NAB's step for this kind of file.
const STEP: Duration = Duration::from_secs(300);
/// 2025-11-03 00:00:00 UTC.
const START_SECS: i64 = 1_762_128_000;
const DAYS: u64 = 21;

/// One failure: when its first sign shows, how long it climbs, how long the machine is
/// down after the shutdown.
struct Failure {
    onset_hours: f64,
    climb_hours: f64,
    down_hours: f64,
}

const FAILURES: [Failure; 2] = [
    Failure {
        onset_hours: 7.0 * 24.0 + 5.0,
        climb_hours: 14.0,
        down_hours: 6.0,
    },
    Failure {
        onset_hours: 15.0 * 24.0 + 11.0,
        climb_hours: 10.0,
        down_hours: 9.0,
    },
];

/// The generated series: points and labelled windows.
pub(crate) struct Sample {
    pub(crate) points: Vec<(Timestamp, f64)>,
    pub(crate) windows: Vec<(Timestamp, Timestamp)>,
}

/// Generate the sample; the same every time.
pub(crate) fn machine_temperature() -> Sample {
    let mut rng = ChaCha8Rng::seed_from_u64(2025);
    let noise = Normal::new(0.0, 0.6).expect("a positive standard deviation");
    let drift_step = Normal::new(0.0, 0.05).expect("a positive standard deviation");
    let start = Timestamp::from_secs(START_SECS);
    let steps = DAYS * 86_400 / STEP.as_secs();
    let mut drift: f64 = 0.0;
    let mut points = Vec::with_capacity(steps as usize);
    for step in 0..steps {
        let at = start.saturating_add(STEP * step as u32);
        let hours = (step * STEP.as_secs()) as f64 / 3600.0;
        // A bounded random walk: the machine's load changes over hours.
        drift = (drift + drift_step.sample(&mut rng)).clamp(-4.0, 4.0);
        let daily = 1.5 * (hours / 24.0 * std::f64::consts::TAU).sin();
        let mut value = 85.0 + drift + daily + noise.sample(&mut rng);
        for failure in &FAILURES {
            let into = hours - failure.onset_hours;
            if into >= 0.0 && into < failure.climb_hours {
                // Accelerating climb: slow at first, steep before the trip.
                let x = into / failure.climb_hours;
                value += 20.0 * x * x;
            } else if into >= failure.climb_hours && into < failure.climb_hours + failure.down_hours
            {
                // Shut down: the machine cools towards ambient.
                let cooling = (into - failure.climb_hours) / failure.down_hours;
                value = 22.0 + 60.0 * (-6.0 * cooling).exp() + noise.sample(&mut rng);
            }
        }
        points.push((at, (value * 1e4).round() / 1e4));
    }
    let windows = FAILURES
        .iter()
        .map(|f| {
            let begin =
                start.saturating_add(Duration::from_secs_f64((f.onset_hours - 6.0) * 3600.0));
            let end = start.saturating_add(Duration::from_secs_f64(
                (f.onset_hours + f.climb_hours + f.down_hours + 2.0) * 3600.0,
            ));
            (begin, end)
        })
        .collect();
    Sample { points, windows }
}

/// NAB's timestamp text: `2013-12-02 21:15:00`.
fn nab_time(ts: Timestamp) -> String {
    let text = humantime::format_rfc3339_seconds(ts.to_system_time()).to_string();
    // "2025-11-03T00:00:00Z" -> "2025-11-03 00:00:00"
    text.replacen('T', " ", 1).trim_end_matches('Z').to_owned()
}

impl Sample {
    /// The series as NAB's CSV.
    pub(crate) fn to_csv(&self) -> String {
        let mut csv = String::from("timestamp,value\n");
        for (at, value) in &self.points {
            // Writing to a String cannot fail.
            let _ = writeln!(csv, "{},{value}", nab_time(*at));
        }
        csv
    }

    /// The windows as NAB's `labels/windows.json` entry for `file`.
    pub(crate) fn windows_json(&self, file: &str) -> String {
        let windows: Vec<[String; 2]> = self
            .windows
            .iter()
            .map(|(a, b)| {
                [
                    format!("{}.000000", nab_time(*a)),
                    format!("{}.000000", nab_time(*b)),
                ]
            })
            .collect();
        let mut object = serde_json::Map::new();
        object.insert(file.to_owned(), serde_json::json!(windows));
        let mut text = serde_json::to_string_pretty(&object).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// The file name the windows are keyed by, as NAB keys them (`<group>/<name>.csv`).
pub(crate) const NAB_KEY: &str = "sample/machine_temperature_sample.csv";

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the committed copy lives, relative to the repository root.
    const CSV_PATH: &str = "examples/data/machine_temperature_sample.csv";
    const WINDOWS_PATH: &str = "examples/data/machine_temperature_sample.windows.json";

    #[test]
    fn the_committed_sample_is_what_the_generator_makes() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../");
        let sample = machine_temperature();
        let csv = std::fs::read_to_string(format!("{root}{CSV_PATH}")).expect("committed csv");
        assert!(
            csv == sample.to_csv(),
            "{CSV_PATH} differs from the generator; run `sinter sample machine-temperature \
             --out examples/data`"
        );
        let windows =
            std::fs::read_to_string(format!("{root}{WINDOWS_PATH}")).expect("committed windows");
        assert_eq!(windows, sample.windows_json(NAB_KEY));
    }

    #[test]
    fn failures_climb_inside_their_windows_and_the_rest_is_normal() {
        let sample = machine_temperature();
        assert_eq!(sample.points.len(), 21 * 288);
        let inside = |t: Timestamp| sample.windows.iter().any(|(a, b)| (*a..=*b).contains(&t));
        let mut peak_inside: f64 = 0.0;
        for (at, value) in &sample.points {
            if inside(*at) {
                peak_inside = peak_inside.max(*value);
            } else {
                assert!(
                    (74.0..96.0).contains(value),
                    "{at}: {value} outside a window"
                );
            }
        }
        assert!(peak_inside > 98.0, "the failures climb: {peak_inside}");
        let lowest = sample.points.iter().map(|p| p.1).fold(f64::MAX, f64::min);
        assert!(lowest < 40.0, "the shutdowns cool the machine: {lowest}");
    }

    #[test]
    fn timestamps_are_in_nab_format() {
        let sample = machine_temperature();
        let csv = sample.to_csv();
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("timestamp,value"));
        assert!(
            lines
                .next()
                .is_some_and(|l| l.starts_with("2025-11-03 00:00:00,"))
        );
        assert!(
            sample
                .windows_json(NAB_KEY)
                .contains("\"sample/machine_temperature_sample.csv\"")
        );
    }
}
