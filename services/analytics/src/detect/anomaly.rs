//! Streaming anomaly score in [0, 1] per reading, and raising above a level.
//!
//! Two layers. The first measures how far a reading is from what the series usually does
//! (a z-score against an exponentially weighted mean, an EWMA forecast, or a streaming median
//! and absolute deviation). The second turns that surprise into a likelihood: how unusual
//! the recent surprise is against the long-run distribution of surprises, through the normal
//! distribution's tail. A noisy series that is always surprising scores low; a quiet series
//! that suddenly moves scores high.
//!
//! Method `seasonal` has two surprises, each with its own likelihood, and scores the larger:
//! the change from the previous reading, and the distance from a profile of what each hour
//! of the day usually brings (24 hours for weekdays and 24 for weekends, in UTC). It also
//! waits a while after a raise before it raises again.

use serde::{Deserialize, Serialize};
use sinter_core::Timestamp;
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
    /// The settings of method `seasonal`, which uses none of the above.
    pub seasonal: SeasonalTuning,
}

/// The settings of method `seasonal`. The defaults were chosen by scoring on the NAB files
/// in the repository's shared data (one setting for all files, no labels at detection time);
/// `sinter nab` reports the result. Other series may want other settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeasonalTuning {
    /// Weight of a new residual in the spread of each surprise's residuals.
    pub spread_alpha: f64,
    /// Weight of a new reading in the forecast of the next one (1: the previous reading).
    pub forecast_alpha: f64,
    /// Weight of a new change surprise in its recent mean.
    pub change_recent_alpha: f64,
    /// Weight of a new change surprise in its long-run distribution.
    pub change_history_alpha: f64,
    /// Standard deviations of the change likelihood that count as one in the score.
    pub change_scale: f64,
    /// Weight of a new reading in its hour's profile value.
    pub profile_alpha: f64,
    /// Weight of a new profile residual in the smoothed residual that is judged.
    pub residual_alpha: f64,
    /// Weight of a new profile surprise in its recent mean.
    pub profile_recent_alpha: f64,
    /// Weight of a new profile surprise in its long-run distribution.
    pub profile_history_alpha: f64,
    /// Standard deviations of the profile likelihood that count as one in the score.
    pub profile_scale: f64,
    /// Readings before any score above zero is given.
    pub warmup: u32,
    /// Readings in a row below the level that clear an open incident.
    pub quiet_readings: u32,
    /// Readings after a raise before the next raise may come.
    pub rearm_readings: u32,
}

impl Default for SeasonalTuning {
    fn default() -> Self {
        SeasonalTuning {
            spread_alpha: 0.00025,
            forecast_alpha: 1.0,
            change_recent_alpha: 0.179,
            change_history_alpha: 0.0647,
            change_scale: 0.459,
            profile_alpha: 0.0374,
            residual_alpha: 0.2,
            profile_recent_alpha: 0.0249,
            profile_history_alpha: 0.00053,
            profile_scale: 0.584,
            warmup: 200,
            quiet_readings: 150,
            rearm_readings: 300,
        }
    }
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
            seasonal: SeasonalTuning::default(),
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
    /// Method `seasonal`: the hour profile and both surprises' likelihoods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    profile: Option<Box<HourProfile>>,
    /// Method `seasonal`: readings since the latest raise, if there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since_raise: Option<u32>,
}

/// Hours in a profile: 24 for weekdays, then 24 for Saturdays and Sundays.
const PROFILE_HOURS: usize = 48;

/// What each hour of the day usually brings, and how unusual the distance from it and the
/// change from the previous reading have been (method `seasonal`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct HourProfile {
    /// The value per hour (`PROFILE_HOURS` of them, or none before the first reading).
    values: Vec<f32>,
    /// Bit `h` is set once hour `h` has had a reading.
    filled: u64,
    /// The smoothed distance of readings from their hour's value.
    residual: f64,
    /// The mean square of `residual`.
    spread: f64,
    /// The likelihood of the change from the previous reading.
    change: Likelihood,
    /// The likelihood of the distance from the hour's value.
    distance: Likelihood,
}

/// A surprise's recent mean against its long-run mean and variance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Likelihood {
    recent: f64,
    mean: f64,
    var: f64,
}

impl Likelihood {
    /// Add `surprise` (already compressed by `ln_1p`) and return how many long-run standard
    /// deviations the recent mean is above the long-run mean before this surprise.
    fn add(&mut self, surprise: f64, recent_alpha: f64, history_alpha: f64, seen: u32) -> f64 {
        self.recent += recent_alpha * (surprise - self.recent);
        let deviation = self.recent - self.mean;
        let std = self.var.sqrt();
        let a = history_alpha.max(1.0 / f64::from(seen));
        self.mean += a * (surprise - self.mean);
        self.var = (1.0 - a) * (self.var + a * (surprise - self.mean).powi(2));
        deviation / (std + 1e-6)
    }
}

/// The profile hour of a time: the UTC hour of the day, plus 24 on Saturdays and Sundays.
fn profile_hour(at: Timestamp) -> usize {
    let secs = at.as_micros().div_euclid(1_000_000);
    let hour = secs.rem_euclid(86_400) / 3600;
    // 1970-01-01 was a Thursday: day 0 is weekday 4 counting from Sunday as 0.
    let weekday = (secs.div_euclid(86_400) + 4).rem_euclid(7);
    let weekend = if weekday == 0 || weekday == 6 { 24 } else { 0 };
    (hour + weekend) as usize
}

impl HourProfile {
    /// Whether every learned number is finite.
    fn is_finite(&self) -> bool {
        let likelihoods = [&self.change, &self.distance]
            .iter()
            .all(|l| l.recent.is_finite() && l.mean.is_finite() && l.var.is_finite());
        likelihoods
            && self.residual.is_finite()
            && self.spread.is_finite()
            && self.values.iter().all(|v| v.is_finite())
    }

    /// The surprise of `value` against its hour's value, then the profile updated with it.
    fn surprise(&mut self, tuning: &SeasonalTuning, seen: u32, hour: usize, value: f64) -> f64 {
        if self.values.len() != PROFILE_HOURS {
            self.values = vec![0.0; PROFILE_HOURS];
            self.filled = 0;
        }
        let bit = 1u64 << hour;
        if self.filled & bit == 0 {
            self.values[hour] = value as f32;
            self.filled |= bit;
            return 0.0;
        }
        let expected = f64::from(self.values[hour]);
        let residual = value - expected;
        self.residual += tuning.residual_alpha * (residual - self.residual);
        let z = if self.spread > 0.0 {
            self.residual.abs() / (self.spread.sqrt() + TINY)
        } else {
            0.0
        };
        let a = tuning.spread_alpha.max(1.0 / f64::from(seen));
        self.spread = (1.0 - a) * self.spread + a * self.residual * self.residual;
        self.values[hour] = (expected + tuning.profile_alpha * residual) as f32;
        z
    }
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
    /// Bytes the state holds outside itself (the hour profile of method `seasonal`).
    pub fn heap_bytes(&self) -> usize {
        self.profile.as_ref().map_or(0, |profile| {
            std::mem::size_of::<HourProfile>()
                + profile.values.capacity() * std::mem::size_of::<f32>()
        })
    }

    /// Method `seasonal`: the larger of the change and the profile likelihoods, each in
    /// its own standard deviations, through the normal distribution function.
    fn seasonal_score(&mut self, tuning: &SeasonalTuning, value: f64, at: Timestamp) -> f64 {
        let seen = self.seen;
        let change = if seen == 0 {
            self.forecast = value;
            0.0
        } else {
            let a = tuning.spread_alpha.max(1.0 / f64::from(seen + 1));
            let residual = value - self.forecast;
            let z = residual.abs() / (self.spread.sqrt() + TINY);
            self.forecast += tuning.forecast_alpha * residual;
            self.spread = (1.0 - a) * self.spread + a * residual * residual;
            z
        };
        let profile = self.profile.get_or_insert_with(Box::default);
        let distance = profile.surprise(tuning, seen, profile_hour(at), value);
        self.seen = seen.saturating_add(1);
        let change = profile.change.add(
            change.min(1e6).ln_1p(),
            tuning.change_recent_alpha,
            tuning.change_history_alpha,
            self.seen,
        );
        let distance = profile.distance.add(
            distance.min(1e6).ln_1p(),
            tuning.profile_recent_alpha,
            tuning.profile_history_alpha,
            self.seen,
        );
        if self.seen <= tuning.warmup {
            return 0.0;
        }
        normal_cdf((change / tuning.change_scale).max(distance / tuning.profile_scale))
    }

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
            // Method `seasonal` scores through `seasonal_score` and never comes here.
            AnomalyMethod::Ewma | AnomalyMethod::Seasonal => {
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

    /// Score one reading, taken at `at`, in [0, 1]. A reading so far out that the learned
    /// baseline overflows (a glitch of 1e300 on an unbounded metric) starts the learning
    /// again: a state that is not finite could neither score nor be checkpointed (JSON has
    /// no NaN). An open incident stays open, for quiet readings to clear.
    // Limitation: a huge but finite glitch still inflates the spread, and the detector is
    // deaf to smaller changes until the spread has decayed, which takes thousands of
    // readings; a metric's `min` and `max` keep such glitches out.
    pub fn score(
        &mut self,
        method: AnomalyMethod,
        tuning: &AnomalyTuning,
        value: f64,
        at: Timestamp,
    ) -> f64 {
        let score = self.score_unchecked(method, tuning, value, at);
        if score.is_finite() && self.is_finite() {
            return score;
        }
        *self = AnomalyState {
            raised: self.raised,
            quiet: self.quiet,
            since_raise: self.since_raise,
            ..AnomalyState::default()
        };
        0.0
    }

    /// Whether every learned number is finite.
    fn is_finite(&self) -> bool {
        let own = [
            self.centre,
            self.spread,
            self.forecast,
            self.recent,
            self.history_mean,
            self.history_var,
            self.score,
        ];
        own.iter().all(|x| x.is_finite())
            && self
                .profile
                .as_ref()
                .is_none_or(|profile| profile.is_finite())
    }

    fn score_unchecked(
        &mut self,
        method: AnomalyMethod,
        tuning: &AnomalyTuning,
        value: f64,
        at: Timestamp,
    ) -> f64 {
        if method == AnomalyMethod::Seasonal {
            let score = self.seasonal_score(&tuning.seasonal, value, at);
            self.score = score;
            return score;
        }
        let surprise = self.surprise(method, tuning, value).min(1e6);
        self.seen = self.seen.saturating_add(1);
        // The same likelihood as each of `seasonal`'s, kept in the state's own fields.
        let mut likelihood = Likelihood {
            recent: self.recent,
            mean: self.history_mean,
            var: self.history_var,
        };
        let sigmas = likelihood.add(
            surprise.ln_1p(),
            tuning.recent_alpha,
            tuning.history_alpha,
            self.seen,
        );
        (self.recent, self.history_mean, self.history_var) =
            (likelihood.recent, likelihood.mean, likelihood.var);
        let score = if self.seen <= tuning.warmup {
            0.0
        } else {
            normal_cdf(sigmas)
        };
        self.score = score;
        score
    }

    /// Score one reading, taken at `at`, and decide whether it raises or clears.
    pub fn on_reading(
        &mut self,
        rule: &Anomaly,
        tuning: &AnomalyTuning,
        value: f64,
        at: Timestamp,
    ) -> Option<Change> {
        let score = self.score(rule.method, tuning, value, at);
        let level = rule.sensitivity;
        let (quiet_readings, rearm_readings) = if rule.method == AnomalyMethod::Seasonal {
            let seasonal = &tuning.seasonal;
            (seasonal.quiet_readings, seasonal.rearm_readings)
        } else {
            (tuning.quiet_readings, 0)
        };
        if let Some(since) = &mut self.since_raise {
            *since = since.saturating_add(1);
        }
        if !self.raised {
            let armed = self.since_raise.is_none_or(|since| since >= rearm_readings);
            if score >= level && armed {
                self.raised = true;
                self.quiet = 0;
                if rearm_readings > 0 {
                    self.since_raise = Some(0);
                }
                return Some(Change::Raise { value, score });
            }
            return None;
        }
        if score >= level {
            self.quiet = 0;
            return None;
        }
        self.quiet += 1;
        if self.quiet >= quiet_readings {
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

    const ALL_METHODS: [AnomalyMethod; 4] = [
        AnomalyMethod::Zscore,
        AnomalyMethod::Ewma,
        AnomalyMethod::RobustZscore,
        AnomalyMethod::Seasonal,
    ];

    /// A deterministic noise of amplitude 1, and the time of reading `i` (every 5 minutes).
    fn noise_and_time(i: u32) -> (f64, Timestamp) {
        let noise = ((i * 7919) % 101) as f64 / 50.0 - 1.0;
        (
            noise,
            Timestamp::from_secs(1_700_000_000 + i64::from(i) * 300),
        )
    }

    #[test]
    fn a_step_in_a_steady_signal_raises_and_noise_does_not() {
        for method in ALL_METHODS {
            let rule = rule(method);
            let tuning = AnomalyTuning {
                quiet_readings: 50,
                ..AnomalyTuning::default()
            };
            let mut state = AnomalyState::default();
            let mut raises = Vec::new();
            // Noise around 20, then a jump to 40 at 2000.
            for i in 0..3000u32 {
                let (noise, at) = noise_and_time(i);
                let value = if i < 2000 { 20.0 } else { 40.0 } + noise;
                if let Some(Change::Raise { score, .. }) =
                    state.on_reading(&rule, &tuning, value, at)
                {
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

    #[test]
    fn a_glitch_that_overflows_the_baseline_starts_the_learning_again() {
        for method in ALL_METHODS {
            let rule = rule(method);
            let tuning = AnomalyTuning::default();
            let mut state = AnomalyState::default();
            let mut raises = Vec::new();
            for i in 0..6000u32 {
                let (noise, at) = noise_and_time(i);
                let value = match i {
                    1000 => 1e300,
                    i if i >= 5000 => 40.0 + noise,
                    _ => 20.0 + noise,
                };
                let change = state.on_reading(&rule, &tuning, value, at);
                assert!(
                    state.is_finite(),
                    "{method:?}: not finite after reading {i}"
                );
                serde_json::from_str::<AnomalyState>(
                    &serde_json::to_string(&state).expect("encode"),
                )
                .expect("a checkpoint of the state loads again");
                if let Some(Change::Raise { .. }) = change {
                    raises.push(i);
                }
            }
            assert!(
                raises.iter().any(|&i| (5000..5010).contains(&i)),
                "{method:?} raised at {raises:?}, not on the step at 5000"
            );
        }
    }

    /// The changes over `log` with the state sent through JSON before reading `restart`,
    /// as a checkpoint and a restart do.
    fn changes_restarted_at(
        method: AnomalyMethod,
        log: &[(i64, f64)],
        restart: Option<usize>,
    ) -> Vec<(usize, bool)> {
        let rule = rule(method);
        let tuning = AnomalyTuning::default();
        let mut state = AnomalyState::default();
        let mut changes = Vec::new();
        for (i, (time, value)) in log.iter().enumerate() {
            if restart == Some(i) {
                let text = serde_json::to_string(&state).expect("encode");
                state = serde_json::from_str(&text).expect("decode");
            }
            match state.on_reading(&rule, &tuning, *value, Timestamp::from_secs(*time)) {
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
        let table = crate::nab::Table::read(&sample).expect("the sample log");
        let times = table
            .parsed("timestamp", crate::nab::parse_time)
            .expect("times");
        let values = table
            .parsed("value", |cell| cell.parse::<f64>().ok())
            .expect("values");
        let log: Vec<(i64, f64)> = times.into_iter().zip(values).collect();
        for method in [AnomalyMethod::Ewma, AnomalyMethod::Seasonal] {
            let straight = changes_restarted_at(method, &log, None);
            assert!(!straight.is_empty(), "{method:?}: the sample has incidents");
            for restart in (0..log.len()).step_by(7) {
                assert_eq!(
                    changes_restarted_at(method, &log, Some(restart)),
                    straight,
                    "{method:?}: restarted before reading {restart}"
                );
            }
        }
    }
}
