//! Detectors: what an analytics rule looks for in each window of a metric.

use std::time::Duration;

use serde::Serialize;

use super::duration;
use super::error::Problems;
use super::keyword::{Severity, keyword_enum};
use super::names;
use super::path::Path;
use super::raw::{RawAnomaly, RawDetector, RawRateOfChange, RawSilence, RawThreshold};
use super::scalar::Scalar;

/// One thing to look for in a rule's windows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Detector {
    /// The name given in the document, if any; see [`Detector::name`].
    #[serde(rename = "name", skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// What is looked for.
    #[serde(flatten)]
    pub kind: DetectorKind,
}

impl Detector {
    /// The detector's name, part of every detection's identity: the given name, else the
    /// kind (`threshold`, `rate-of-change`, `anomaly`, `silence`).
    pub fn name(&self) -> &str {
        self.given_name.as_deref().unwrap_or(self.kind.as_str())
    }

    /// How urgent the detections this detector raises are.
    pub fn severity(&self) -> Severity {
        match &self.kind {
            DetectorKind::Threshold(threshold) => threshold.severity,
            DetectorKind::RateOfChange(rate) => rate.severity,
            DetectorKind::Anomaly(anomaly) => anomaly.severity,
            DetectorKind::Silence(silence) => silence.severity,
        }
    }
}

/// The kinds of detector, one per YAML key.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DetectorKind {
    /// The aggregate crosses a fixed level.
    Threshold(Threshold),
    /// The aggregate moves faster than allowed.
    RateOfChange(RateOfChange),
    /// The aggregate is unusual compared with the device's own history.
    Anomaly(Anomaly),
    /// The device stops reporting the metric.
    Silence(Silence),
}

impl DetectorKind {
    /// The kind's name, also the default detector name.
    pub fn as_str(&self) -> &'static str {
        match self {
            DetectorKind::Threshold(_) => "threshold",
            DetectorKind::RateOfChange(_) => "rate-of-change",
            DetectorKind::Anomaly(_) => "anomaly",
            DetectorKind::Silence(_) => "silence",
        }
    }

    /// Whether this kind only makes sense for a number metric.
    pub fn needs_number(&self) -> bool {
        !matches!(self, DetectorKind::Silence(_))
    }
}

keyword_enum! {
    /// Which summary of a window a detector looks at.
    pub enum Aggregate ("aggregate") {
        /// The mean of the window's values.
        Mean = "mean",
        /// The lowest value in the window.
        Min = "min",
        /// The highest value in the window.
        Max = "max",
        /// The value with the latest timestamp in the window.
        Last = "last",
    }
}

/// Raise when the aggregate goes above `above` (or below `below`); clear once it is back past
/// the clearing level, so a value hovering at the level does not flap.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Threshold {
    /// Raise when the aggregate is above this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    /// Clear an `above` detection when the aggregate is below this; at most `above`, and
    /// `above` unless told. Set exactly when `above` is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clear_below: Option<f64>,
    /// Raise when the aggregate is below this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
    /// Clear a `below` detection when the aggregate is above this; at least `below`, and
    /// `below` unless told. Set exactly when `below` is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clear_above: Option<f64>,
    /// How long the level must stay crossed before raising (`for` in YAML); 0s unless told.
    #[serde(rename = "for", with = "duration")]
    pub hold_for: Duration,
    /// The summary of each window compared; `mean` unless told.
    pub aggregate: Aggregate,
    /// How urgent a detection is; `major` unless told.
    pub severity: Severity,
}

/// Raise when the aggregate rises or falls by more than allowed per `per`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateOfChange {
    /// The largest allowed rise per `per`, a positive number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_increase: Option<f64>,
    /// The largest allowed fall per `per`, a positive number (a fall of 5 is written 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_decrease: Option<f64>,
    /// The time the allowed change is measured over; 1m unless told.
    #[serde(with = "duration")]
    pub per: Duration,
    /// The summary of each window compared with the previous window's; `mean` unless told.
    pub aggregate: Aggregate,
    /// How urgent a detection is; `minor` unless told.
    pub severity: Severity,
}

keyword_enum! {
    /// How "unusual" is judged.
    pub enum AnomalyMethod ("anomaly method") {
        /// Distance from the median in median absolute deviations: robust to past outliers.
        RobustZscore = "robust-zscore",
        /// Distance from the mean in standard deviations.
        Zscore = "zscore",
        /// Distance from an exponentially weighted moving average: follows slow drift.
        Ewma = "ewma",
        /// The change from the previous reading, and the distance from what the hour of the
        /// day (weekdays and weekends apart) usually brings: follows daily and weekly cycles.
        Seasonal = "seasonal",
    }
}

/// Raise when a window's aggregate is unusual for this device.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Anomaly {
    /// How unusual is judged; `robust-zscore` unless told.
    pub method: AnomalyMethod,
    /// Between 0 and 1 (both excluded): the share of normal windows that do not raise;
    /// higher raises less often. 0.99 unless told.
    pub sensitivity: f64,
    /// The summary of each window judged; `mean` unless told.
    pub aggregate: Aggregate,
    /// How urgent a detection is; `minor` unless told.
    pub severity: Severity,
}

/// Raise when no reading of the metric has come from a device for `after`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    /// How long without a reading raises; longer than 0s.
    #[serde(with = "duration")]
    pub after: Duration,
    /// How urgent a detection is; `major` unless told.
    pub severity: Severity,
}

/// Read and check one entry of a rule's `detect` list.
pub(crate) fn build(raw: RawDetector, path: &Path, problems: &mut Problems) -> Option<Detector> {
    let name_path = path.field("name");
    let given_name = raw.name.non_empty_text(&name_path, problems);
    if let Some(name) = &given_name
        && let Err(message) = names::dns_label(name)
    {
        problems.report(&name_path, message);
    }
    let mut kinds = Vec::new();
    let threshold_path = path.field("threshold");
    if let Some(raw) = raw.threshold.take(&threshold_path, problems) {
        let threshold = build_threshold(raw, &threshold_path, problems);
        kinds.push(DetectorKind::Threshold(threshold));
    }
    let rate_path = path.field("rateOfChange");
    if let Some(raw) = raw.rate_of_change.take(&rate_path, problems) {
        kinds.push(DetectorKind::RateOfChange(build_rate(
            raw, &rate_path, problems,
        )));
    }
    let anomaly_path = path.field("anomaly");
    if let Some(raw) = raw.anomaly.take(&anomaly_path, problems) {
        kinds.push(DetectorKind::Anomaly(build_anomaly(
            raw,
            &anomaly_path,
            problems,
        )));
    }
    let silence_path = path.field("silence");
    if let Some(raw) = raw.silence.take(&silence_path, problems) {
        kinds.push(DetectorKind::Silence(build_silence(
            raw,
            &silence_path,
            problems,
        )));
    }
    if kinds.len() > 1 {
        let found: Vec<&str> = kinds.iter().map(DetectorKind::as_str).collect();
        problems.report(
            path,
            format!(
                "a detector has exactly one kind, found {}; split it in two",
                found.join(" and ")
            ),
        );
        return None;
    }
    match kinds.pop() {
        Some(kind) => Some(Detector { given_name, kind }),
        None => {
            if !problems.any_at_or_below(path) {
                problems.report(
                    path,
                    "a detector needs one of: threshold, rateOfChange, anomaly, silence",
                );
            }
            None
        }
    }
}

fn build_threshold(raw: RawThreshold, path: &Path, problems: &mut Problems) -> Threshold {
    let above = raw.above.number(&path.field("above"), problems);
    let below = raw.below.number(&path.field("below"), problems);
    let clear_below = raw.clear_below.number(&path.field("clearBelow"), problems);
    let clear_above = raw.clear_above.number(&path.field("clearAbove"), problems);
    if !raw.above.is_present() && !raw.below.is_present() {
        problems.report(path, "a threshold needs above, below or both");
    }
    if raw.clear_below.is_present() && !raw.above.is_present() {
        problems.report(
            &path.field("clearBelow"),
            "clearBelow only applies with above",
        );
    }
    if raw.clear_above.is_present() && !raw.below.is_present() {
        problems.report(
            &path.field("clearAbove"),
            "clearAbove only applies with below",
        );
    }
    if let (Some(above), Some(clear)) = (above, clear_below)
        && clear > above
    {
        problems.report(
            &path.field("clearBelow"),
            format!("clearBelow ({clear}) must not be above the raising level above ({above})"),
        );
    }
    if let (Some(below), Some(clear)) = (below, clear_above)
        && clear < below
    {
        problems.report(
            &path.field("clearAbove"),
            format!("clearAbove ({clear}) must not be below the raising level below ({below})"),
        );
    }
    if let (Some(above), Some(below)) = (above, below)
        && below >= above
    {
        problems.report(
            &path.field("below"),
            format!("below ({below}) must be less than above ({above}), or every value raises"),
        );
    }
    Threshold {
        above,
        clear_below: above.map(|above| clear_below.unwrap_or(above)),
        below,
        clear_above: below.map(|below| clear_above.unwrap_or(below)),
        hold_for: raw
            .r#for
            .duration(&path.field("for"), problems)
            .unwrap_or(Duration::ZERO),
        aggregate: aggregate(&raw.aggregate, path, problems),
        severity: raw
            .severity
            .keyword(&path.field("severity"), problems)
            .unwrap_or(Severity::Major),
    }
}

fn aggregate(raw: &Scalar, path: &Path, problems: &mut Problems) -> Aggregate {
    raw.keyword(&path.field("aggregate"), problems)
        .unwrap_or(Aggregate::Mean)
}

fn build_rate(raw: RawRateOfChange, path: &Path, problems: &mut Problems) -> RateOfChange {
    let limit = |scalar: &Scalar, field: &str, problems: &mut Problems| {
        let field_path = path.field(field);
        let value = scalar.number(&field_path, problems)?;
        if value <= 0.0 {
            problems.report(
                &field_path,
                format!("{field} is a size of change and must be positive, not {value}"),
            );
            return None;
        }
        Some(value)
    };
    let max_increase = limit(&raw.max_increase, "maxIncrease", problems);
    let max_decrease = limit(&raw.max_decrease, "maxDecrease", problems);
    if !raw.max_increase.is_present() && !raw.max_decrease.is_present() {
        problems.report(
            path,
            "a rateOfChange needs maxIncrease, maxDecrease or both",
        );
    }
    RateOfChange {
        max_increase,
        max_decrease,
        per: raw
            .per
            .positive_duration(&path.field("per"), problems)
            .unwrap_or(Duration::from_secs(60)),
        aggregate: aggregate(&raw.aggregate, path, problems),
        severity: raw
            .severity
            .keyword(&path.field("severity"), problems)
            .unwrap_or(Severity::Minor),
    }
}

fn build_anomaly(raw: RawAnomaly, path: &Path, problems: &mut Problems) -> Anomaly {
    let sensitivity_path = path.field("sensitivity");
    let sensitivity = raw.sensitivity.number(&sensitivity_path, problems);
    if let Some(sensitivity) = sensitivity
        && !(sensitivity > 0.0 && sensitivity < 1.0)
    {
        problems.report(
            &sensitivity_path,
            format!("sensitivity must be between 0 and 1 (both excluded), not {sensitivity}"),
        );
    }
    Anomaly {
        method: raw
            .method
            .keyword(&path.field("method"), problems)
            .unwrap_or(AnomalyMethod::RobustZscore),
        sensitivity: sensitivity.unwrap_or(0.99),
        aggregate: aggregate(&raw.aggregate, path, problems),
        severity: raw
            .severity
            .keyword(&path.field("severity"), problems)
            .unwrap_or(Severity::Minor),
    }
}

fn build_silence(raw: RawSilence, path: &Path, problems: &mut Problems) -> Silence {
    let after_path = path.field("after");
    Silence {
        after: raw
            .after
            .required(&after_path, problems)
            .positive_duration(&after_path, problems)
            .unwrap_or(Duration::from_secs(600)),
        severity: raw
            .severity
            .keyword(&path.field("severity"), problems)
            .unwrap_or(Severity::Major),
    }
}

impl DetectorKind {
    /// The kind's key in YAML: `threshold`, `rateOfChange`, `anomaly`, `silence`.
    pub(crate) fn yaml_key(&self) -> &'static str {
        match self {
            DetectorKind::Threshold(_) => "threshold",
            DetectorKind::RateOfChange(_) => "rateOfChange",
            DetectorKind::Anomaly(_) => "anomaly",
            DetectorKind::Silence(_) => "silence",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{DEVICES, document, spec_errors};
    use super::*;

    /// The errors of one rule on metric `temp` with the given detectors (inline YAML).
    fn detect_errors(detect: &str) -> Vec<String> {
        spec_errors(&format!(
            "    analytics:\n      - {{metric: temp, window: {{size: 1m}}, detect: {detect}}}\n"
        ))
    }

    #[test]
    fn threshold_hysteresis_is_consistent() {
        let check = |threshold: &str| detect_errors(&format!("[{{threshold: {threshold}}}]"));
        assert!(check("{above: 85, clearBelow: 80}").is_empty());
        assert!(check("{below: 5, clearAbove: 8, above: 90}").is_empty());
        let detector = "spec.analytics[0].detect[0].threshold";
        assert_eq!(
            check("{above: 85, clearBelow: 90}"),
            [format!(
                "{detector}.clearBelow: clearBelow (90) must not be above the raising level above (85)"
            )]
        );
        assert_eq!(
            check("{below: 5, clearAbove: 2}"),
            [format!(
                "{detector}.clearAbove: clearAbove (2) must not be below the raising level below (5)"
            )]
        );
        assert_eq!(
            check("{for: 1m}"),
            [format!(
                "{detector}: a threshold needs above, below or both"
            )]
        );
        assert_eq!(
            check("{above: 50, clearAbove: 40}"),
            [format!(
                "{detector}.clearAbove: clearAbove only applies with below"
            )]
        );
        assert_eq!(
            check("{above: 50, below: 60}"),
            [format!(
                "{detector}.below: below (60) must be less than above (50), or every value raises"
            )]
        );
    }

    #[test]
    fn threshold_defaults_clear_at_the_raising_level() {
        let yaml = document(&format!(
            "{DEVICES}    analytics: [{{metric: temp, window: {{size: 1m}}, detect: [{{threshold: {{above: 85}}}}]}}]\n"
        ));
        let solution = super::super::Solution::from_yaml(&yaml).unwrap();
        let DetectorKind::Threshold(threshold) = &solution.spec.analytics[0].detectors[0].kind
        else {
            panic!("a threshold");
        };
        assert_eq!(threshold.clear_below, Some(85.0));
        assert_eq!(threshold.clear_above, None);
        assert_eq!(threshold.severity, Severity::Major);
        assert_eq!(threshold.aggregate, Aggregate::Mean);
    }

    #[test]
    fn rate_of_change_and_anomaly_settings_are_checked() {
        let found = detect_errors(
            "[{rateOfChange: {per: 1m}}, {name: drop, rateOfChange: {maxDecrease: -5}}, \
             {anomaly: {sensitivity: 1}}, {name: odd, anomaly: {method: iforest}}]",
        );
        assert_eq!(
            found,
            [
                "spec.analytics[0].detect[0].rateOfChange: a rateOfChange needs maxIncrease, maxDecrease or both",
                "spec.analytics[0].detect[1].rateOfChange.maxDecrease: maxDecrease is a size of change and must be positive, not -5",
                "spec.analytics[0].detect[2].anomaly.sensitivity: sensitivity must be between 0 and 1 (both excluded), not 1",
                r#"spec.analytics[0].detect[3].anomaly.method: "iforest" is not a valid anomaly method (expected one of robust-zscore, zscore, ewma, seasonal)"#,
            ]
        );
    }

    #[test]
    fn a_detector_has_exactly_one_kind() {
        let found = detect_errors("[{name: x}, {threshold: {above: 1}, silence: {after: 1m}}]");
        assert_eq!(
            found,
            [
                "spec.analytics[0].detect[0]: a detector needs one of: threshold, rateOfChange, anomaly, silence",
                "spec.analytics[0].detect[1]: a detector has exactly one kind, found threshold and silence; split it in two",
            ]
        );
    }

    #[test]
    fn detector_names_are_labels() {
        let found = detect_errors("[{name: Hot_Bearing, silence: {after: 1m}}]");
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with(
            r#"spec.analytics[0].detect[0].name: "Hot_Bearing" is not a DNS-1123 label"#
        ));
    }
}
