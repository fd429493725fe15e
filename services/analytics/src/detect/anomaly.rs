//! Streaming anomaly score in [0, 1] per reading, and raising above a level.
//!
//! Two layers. The first measures how far a reading is from what the series usually does
//! (a z-score against an exponentially weighted mean, an EWMA forecast, or a streaming median
//! and absolute deviation). The second turns that surprise into a likelihood: how unusual
//! the recent surprise is against the long-run distribution of surprises, through the normal
//! distribution's tail. A noisy series that is always surprising scores low; a quiet series
//! that suddenly moves scores high.

use serde::{Deserialize, Serialize};
use sinter_core::solution::{Anomaly, AnomalyMethod};

use super::Change;

/// The settings of the scoring, fixed for every series. The defaults were chosen on the NAB
/// files in the repository's shared data (one setting for all files).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AnomalyTuning {
    /// Weight of a new reading in the slow baseline of the value.
    pub baseline_alpha: f64,
    /// Weight of a new reading in the EWMA forecast (method `ewma`).
    pub forecast_alpha: f64,
    /// Weight of a new surprise in the recent mean surprise.
    pub recent_alpha: f64,
    /// Weight of a new surprise in the long-run distribution of surprises.
    pub history_alpha: f64,
    /// Readings before any score above zero is given.
    pub warmup: u32,
    /// Readings in a row below the level that clear an open incident.
    pub quiet_readings: u32,
}

impl Default for AnomalyTuning {
    fn default() -> Self {
        AnomalyTuning {
            baseline_alpha: 0.005,
            forecast_alpha: 0.6,
            recent_alpha: 0.6,
            history_alpha: 0.03,
            warmup: 200,
            quiet_readings: 100,
        }
    }
}

/// Per-series state of an anomaly detector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AnomalyState {
    pub raised: bool,
    seen: u32,
    quiet: u32,
    /// Baseline centre and spread (mean and variance, or median and absolute deviation).
    centre: f64,
    spread: f64,
    forecast: f64,
    recent: f64,
    history_mean: f64,
    history_var: f64,
    /// The latest score, for queries.
    pub score: f64,
}

/// The standard normal distribution function.
fn normal_cdf(x: f64) -> f64 {
    0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

/// The error function, to within 1.5e-7 (Abramowitz and Stegun 7.1.26).
fn erf(x: f64) -> f64 {
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    sign * (1.0 - poly * (-x * x).exp())
}

const TINY: f64 = 1e-9;

impl AnomalyState {
    /// The surprise of `value` against the baseline, then the baseline updated with it.
    fn surprise(&mut self, method: AnomalyMethod, tuning: &AnomalyTuning, value: f64) -> f64 {
        if self.seen == 0 {
            self.centre = value;
            self.forecast = value;
            self.spread = 0.0;
            return 0.0;
        }
        let a = tuning.baseline_alpha.max(1.0 / f64::from(self.seen + 1));
        match method {
            AnomalyMethod::Zscore => {
                let deviation = value - self.centre;
                let z = deviation.abs() / (self.spread.sqrt() + TINY);
                self.centre += a * deviation;
                self.spread = (1.0 - a) * (self.spread + a * deviation * deviation);
                z
            }
            AnomalyMethod::Ewma => {
                let residual = value - self.forecast;
                let z = residual.abs() / (self.spread.sqrt() + TINY);
                self.forecast += tuning.forecast_alpha * residual;
                self.spread = (1.0 - a) * self.spread + a * residual * residual;
                z
            }
            AnomalyMethod::RobustZscore => {
                // A winsorised baseline: each reading moves the centre and the spread by at
                // most three deviations, so past outliers barely shift it.
                let deviation = value - self.centre;
                let scale = self.spread.sqrt() + TINY;
                let z = deviation.abs() / scale;
                let clipped = if self.seen < 10 {
                    deviation
                } else {
                    deviation.clamp(-3.0 * scale, 3.0 * scale)
                };
                self.centre += a * clipped;
                self.spread = (1.0 - a) * (self.spread + a * clipped * clipped);
                z
            }
        }
    }

    /// Score one reading in [0, 1].
    pub fn score(&mut self, method: AnomalyMethod, tuning: &AnomalyTuning, value: f64) -> f64 {
        let surprise = self.surprise(method, tuning, value).min(1e6);
        self.seen = self.seen.saturating_add(1);
        let surprise = surprise.ln_1p();
        self.recent += tuning.recent_alpha * (surprise - self.recent);
        let deviation = self.recent - self.history_mean;
        let history_std = self.history_var.sqrt();
        let a = tuning.history_alpha.max(1.0 / f64::from(self.seen));
        self.history_mean += a * (surprise - self.history_mean);
        self.history_var =
            (1.0 - a) * (self.history_var + a * (surprise - self.history_mean).powi(2));
        let score = if self.seen <= tuning.warmup {
            0.0
        } else {
            normal_cdf(deviation / (history_std + 1e-6))
        };
        self.score = score;
        score
    }

    /// Score one reading and decide whether it raises or clears.
    pub fn on_reading(
        &mut self,
        rule: &Anomaly,
        tuning: &AnomalyTuning,
        value: f64,
    ) -> Option<Change> {
        let score = self.score(rule.method, tuning, value);
        let level = rule.sensitivity;
        if !self.raised {
            if score >= level {
                self.raised = true;
                self.quiet = 0;
                return Some(Change::Raise { value, score });
            }
            return None;
        }
        if score >= level {
            self.quiet = 0;
            return None;
        }
        self.quiet += 1;
        if self.quiet >= tuning.quiet_readings {
            self.raised = false;
            return Some(Change::Clear { value, score });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use sinter_core::solution::{Aggregate, Severity};

    use super::*;

    fn rule(method: AnomalyMethod) -> Anomaly {
        Anomaly {
            method,
            sensitivity: 0.99,
            aggregate: Aggregate::Mean,
            severity: Severity::Minor,
        }
    }

    #[test]
    fn the_normal_distribution_function_is_right() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.96) - 0.975).abs() < 1e-4);
        assert!((normal_cdf(-1.0) - 0.158_655).abs() < 1e-5);
    }

    #[test]
    fn a_step_in_a_steady_signal_raises_and_noise_does_not() {
        for method in [
            AnomalyMethod::Zscore,
            AnomalyMethod::Ewma,
            AnomalyMethod::RobustZscore,
        ] {
            let rule = rule(method);
            let tuning = AnomalyTuning {
                quiet_readings: 50,
                ..AnomalyTuning::default()
            };
            let mut state = AnomalyState::default();
            let mut raises = Vec::new();
            // A deterministic noise of amplitude 1 around 20, then a jump to 40 at 2000.
            for i in 0..3000u32 {
                let noise = ((i * 7919) % 101) as f64 / 50.0 - 1.0;
                let value = if i < 2000 { 20.0 } else { 40.0 } + noise;
                if let Some(Change::Raise { score, .. }) = state.on_reading(&rule, &tuning, value) {
                    assert!((0.0..=1.0).contains(&score));
                    raises.push(i);
                }
            }
            assert!(!raises.is_empty(), "{method:?} never raised");
            assert!(
                raises[0] >= 2000 && raises[0] < 2010,
                "{method:?} raised at {raises:?}"
            );
        }
    }

    /// The scores of `values` with the state sent through JSON before reading `restart`,
    /// as a checkpoint and a restart do.
    fn changes_restarted_at(values: &[f64], restart: Option<usize>) -> Vec<(usize, bool)> {
        let rule = rule(AnomalyMethod::Ewma);
        let tuning = AnomalyTuning::default();
        let mut state = AnomalyState::default();
        let mut changes = Vec::new();
        for (i, value) in values.iter().enumerate() {
            if restart == Some(i) {
                let text = serde_json::to_string(&state).expect("encode");
                state = serde_json::from_str(&text).expect("decode");
            }
            match state.on_reading(&rule, &tuning, *value) {
                Some(Change::Raise { .. }) => changes.push((i, true)),
                Some(Change::Clear { .. }) => changes.push((i, false)),
                None => {}
            }
        }
        changes
    }

    #[test]
    fn a_restart_from_a_checkpoint_scores_exactly_as_no_restart() {
        let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/data/machine_temperature_sample.csv");
        let values = crate::nab::Table::read(&sample)
            .and_then(|table| table.parsed("value", |cell| cell.parse::<f64>().ok()))
            .expect("the sample log");
        let straight = changes_restarted_at(&values, None);
        assert!(!straight.is_empty(), "the sample has incidents");
        for restart in (0..values.len()).step_by(7) {
            assert_eq!(
                changes_restarted_at(&values, Some(restart)),
                straight,
                "restarted before reading {restart}"
            );
        }
    }
}
