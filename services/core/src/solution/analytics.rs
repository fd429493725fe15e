//! Analytics rules: how a metric is windowed and which detectors watch its windows.

use std::time::Duration;

use serde::Serialize;

use super::detectors::{self, Detector, DetectorKind};
use super::devices::DeviceType;
use super::duration;
use super::error::Problems;
use super::node::{Node, take_list};
use super::path::Path;
use super::raw::{List, RawRule, RawWindow};

/// One metric, windowed one way, watched by one or more detectors.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsRule {
    /// The metric analysed; declared by the device type, or by at least one when none is named.
    pub metric: String,
    /// Only devices of this type; every type that declares the metric when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
    /// How readings are grouped in time.
    pub window: Window,
    /// What is looked for in each window (`detect` in YAML). It must be written; an
    /// empty list asks for window aggregates (insights) only.
    #[serde(rename = "detect")]
    pub detectors: Vec<Detector>,
}

impl AnalyticsRule {
    /// Whether the rule analyses `metric` of devices of type `device_type`.
    pub fn applies_to(&self, device_type: &str, metric: &str) -> bool {
        self.metric == metric
            && self
                .device_type
                .as_deref()
                .is_none_or(|only| only == device_type)
    }
}

/// A window over event time. Windows start at multiples of `every` after `offset`; with
/// `every == size` they tumble (each reading in one window), with `every < size` they hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    /// How long one window is.
    #[serde(with = "duration")]
    pub size: Duration,
    /// How often a window starts; at most `size`, and `size` unless told.
    #[serde(with = "duration")]
    pub every: Duration,
    /// How late a reading may arrive after its window ended and still count; 0s unless told.
    #[serde(with = "duration")]
    pub allowed_lateness: Duration,
    /// Shift of the window starts from the epoch, below `every`; 0s unless told.
    #[serde(with = "duration")]
    pub offset: Duration,
    /// The IANA time zone whose wall clock the windows follow (a `1d` window then runs
    /// from local midnight to local midnight, 23 or 25 hours across a daylight-saving
    /// change); UTC unless told.
    #[serde(serialize_with = "zone_name", skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<chrono_tz::Tz>,
}

fn zone_name<S: serde::Serializer>(
    zone: &Option<chrono_tz::Tz>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match zone {
        Some(zone) => serializer.serialize_str(zone.name()),
        None => serializer.serialize_none(),
    }
}

impl Window {
    /// Whether each reading falls in exactly one window.
    pub fn is_tumbling(&self) -> bool {
        self.every == self.size
    }
}

/// Read and check `spec.analytics` against the device model.
pub(crate) fn build(
    raw: List<RawRule>,
    devices: &[DeviceType],
    path: &Path,
    problems: &mut Problems,
) -> Vec<AnalyticsRule> {
    let mut rules: Vec<(Path, AnalyticsRule)> = Vec::new();
    for (rule_path, raw_rule) in take_list(raw, path, problems) {
        let rule = build_rule(raw_rule, devices, &rule_path, problems);
        check_detector_names(&rule, &rule_path, &rules, problems);
        rules.push((rule_path, rule));
    }
    rules.into_iter().map(|(_, rule)| rule).collect()
}

fn build_rule(
    raw: RawRule,
    devices: &[DeviceType],
    path: &Path,
    problems: &mut Problems,
) -> AnalyticsRule {
    let metric_path = path.field("metric");
    let metric = raw
        .metric
        .required(&metric_path, problems)
        .text(&metric_path, problems);
    let type_path = path.field("deviceType");
    let device_type = raw.device_type.text(&type_path, problems);
    let window = build_window(raw.window, &path.field("window"), problems);
    let detect_path = path.field("detect");
    let detect_present = raw.detect.is_present();
    let mut detectors = Vec::new();
    for (detector_path, raw_detector) in take_list(raw.detect, &detect_path, problems) {
        if let Some(detector) = detectors::build(raw_detector, &detector_path, problems) {
            detectors.push((detector_path, detector));
        }
    }
    if !detect_present {
        problems.report(&detect_path, "at least one detector is required");
    }
    let mut rule = AnalyticsRule {
        metric: metric.unwrap_or_default(),
        device_type,
        window,
        detectors: Vec::new(),
    };
    check_against_devices(&rule, &detectors, devices, path, problems);
    rule.detectors = detectors
        .into_iter()
        .map(|(_, detector)| detector)
        .collect();
    rule
}

fn build_window(raw: Node<RawWindow>, path: &Path, problems: &mut Problems) -> Window {
    let present = raw.is_present();
    let raw = match raw.take(path, problems) {
        Some(raw) => raw,
        None => {
            if !present {
                problems.report(path, "is required (e.g. {size: 5m, every: 1m})");
            }
            let minute = Duration::from_secs(60);
            return Window {
                size: minute,
                every: minute,
                allowed_lateness: Duration::ZERO,
                offset: Duration::ZERO,
                time_zone: None,
            };
        }
    };
    let size_path = path.field("size");
    let size = raw
        .size
        .required(&size_path, problems)
        .bounded_duration(&size_path, problems, MIN_WINDOW, MAX_WINDOW);
    let every_path = path.field("every");
    let every = raw
        .every
        .bounded_duration(&every_path, problems, MIN_WINDOW, MAX_WINDOW);
    if let (Some(size), Some(every)) = (size, every)
        && every > size
    {
        problems.report(
            &every_path,
            format!(
                "every ({}) must not exceed size ({}); readings between windows would be lost",
                duration::format(every),
                duration::format(size)
            ),
        );
    }
    let allowed_lateness = raw
        .allowed_lateness
        .duration(&path.field("allowedLateness"), problems);
    let offset_path = path.field("offset");
    let offset = raw.offset.duration(&offset_path, problems);
    let every = every.or(size).unwrap_or(Duration::from_secs(60));
    if let Some(offset) = offset
        && offset >= every
    {
        problems.report(
            &offset_path,
            format!(
                "offset ({}) must be shorter than every ({})",
                duration::format(offset),
                duration::format(every)
            ),
        );
    }
    let zone_path = path.field("timeZone");
    let time_zone =
        raw.time_zone
            .text(&zone_path, problems)
            .and_then(|name| match crate::zone::parse(&name) {
                Ok(zone) => Some(zone),
                Err(reason) => {
                    problems.report(&zone_path, reason);
                    None
                }
            });
    Window {
        size: size.unwrap_or(every),
        every,
        allowed_lateness: allowed_lateness.unwrap_or(Duration::ZERO),
        offset: offset.unwrap_or(Duration::ZERO),
        time_zone,
    }
}

/// The shortest window or hop: below a second, windows outnumber readings.
const MIN_WINDOW: Duration = Duration::from_secs(1);
/// The longest window: a month of state per device and metric.
const MAX_WINDOW: Duration = Duration::from_secs(31 * 86_400);

/// Check that the rule's metric and device type exist, and that each detector suits the
/// metric: a number where it needs one, levels within the metric's plausible range.
fn check_against_devices(
    rule: &AnalyticsRule,
    detectors: &[(Path, Detector)],
    devices: &[DeviceType],
    path: &Path,
    problems: &mut Problems,
) {
    if rule.metric.is_empty() {
        return;
    }
    let covered: Vec<&DeviceType> = match &rule.device_type {
        Some(only) => {
            let Some(device_type) = devices.iter().find(|device_type| &device_type.name == only)
            else {
                let declared: Vec<&str> = devices.iter().map(|d| d.name.as_str()).collect();
                problems.report(
                    &path.field("deviceType"),
                    format!(
                        "unknown device type {only:?} (declared: {})",
                        declared.join(", ")
                    ),
                );
                return;
            };
            if device_type.metric(&rule.metric).is_none() {
                let declared: Vec<&str> = device_type
                    .metrics
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect();
                problems.report(
                    &path.field("metric"),
                    format!(
                        "device type {only:?} has no metric {:?} (it has: {})",
                        rule.metric,
                        declared.join(", ")
                    ),
                );
                return;
            }
            vec![device_type]
        }
        None => devices
            .iter()
            .filter(|d| d.metric(&rule.metric).is_some())
            .collect(),
    };
    if covered.is_empty() {
        if !devices.is_empty() {
            let mut declared: Vec<&str> = devices
                .iter()
                .flat_map(|device_type| device_type.metrics.iter().map(|m| m.name.as_str()))
                .collect();
            declared.sort_unstable();
            declared.dedup();
            problems.report(
                &path.field("metric"),
                format!(
                    "no device type declares a metric {:?} (declared: {})",
                    rule.metric,
                    declared.join(", ")
                ),
            );
        }
        return;
    }
    for (detector_path, detector) in detectors {
        let kind_path = detector_path.field(detector.kind.yaml_key());
        for device_type in &covered {
            let Some(metric) = device_type.metric(&rule.metric) else {
                continue;
            };
            if detector.kind.needs_number() && !metric.is_numeric() {
                problems.report(
                    &kind_path,
                    format!(
                        "{} needs a number metric, but {:?} of device type {:?} is a {}",
                        detector.kind.yaml_key(),
                        metric.name,
                        device_type.name,
                        metric.kind
                    ),
                );
                break;
            }
            if let DetectorKind::Threshold(threshold) = &detector.kind {
                for (field, level) in [("above", threshold.above), ("below", threshold.below)] {
                    if let Some(level) = level
                        && unreachable(field, level, metric.min, metric.max)
                    {
                        problems.report(
                            &kind_path.field(field),
                            format!(
                                "{field} {level} can never be reached: {:?} of device type {:?} \
                                 ranges over {}..{}",
                                metric.name,
                                device_type.name,
                                bound(metric.min),
                                bound(metric.max)
                            ),
                        );
                    }
                }
            }
        }
    }
}

fn unreachable(field: &str, level: f64, min: Option<f64>, max: Option<f64>) -> bool {
    match field {
        "above" => max.is_some_and(|max| level >= max),
        _ => min.is_some_and(|min| level <= min),
    }
}

fn bound(value: Option<f64>) -> String {
    value.map(|value| value.to_string()).unwrap_or_default()
}

/// Detections are identified by device, metric and detector name, so two detectors that can
/// watch the same device's metric need different names.
fn check_detector_names(
    rule: &AnalyticsRule,
    path: &Path,
    earlier: &[(Path, AnalyticsRule)],
    problems: &mut Problems,
) {
    if rule.metric.is_empty() {
        return;
    }
    let overlaps = |other: &AnalyticsRule| {
        other.metric == rule.metric
            && match (&other.device_type, &rule.device_type) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    };
    for (index, detector) in rule.detectors.iter().enumerate() {
        let detector_path = path.field("detect").index(index);
        let name_path = match detector.given_name {
            Some(_) => detector_path.field("name"),
            None => detector_path.clone(),
        };
        let same_rule = rule.detectors[..index]
            .iter()
            .position(|other| other.name() == detector.name())
            .map(|position| path.field("detect").index(position));
        let other_rule = || {
            earlier
                .iter()
                .filter(|(_, other)| overlaps(other))
                .find_map(|(other_path, other)| {
                    other
                        .detectors
                        .iter()
                        .position(|d| d.name() == detector.name())
                        .map(|position| other_path.field("detect").index(position))
                })
        };
        if let Some(first) = same_rule.or_else(other_rule) {
            problems.report(
                &name_path,
                format!(
                    "duplicate detector {:?} for metric {:?} (first at {first}); \
                     give each detector a distinct name",
                    detector.name(),
                    rule.metric
                ),
            );
        }
    }
}
#[cfg(test)]
mod tests {
    use super::super::tests::{DEVICES, document, spec_errors};
    use super::*;

    /// The errors of one rule on `metric` with `window` and `detect` (inline YAML).
    fn rule_errors(metric: &str, window: &str, detect: &str) -> Vec<String> {
        spec_errors(&format!(
            "    analytics:\n      - {{metric: {metric}, window: {window}, detect: {detect}}}\n"
        ))
    }

    #[test]
    fn windows_tumble_unless_told_and_are_checked() {
        let yaml = document(&format!(
            "{DEVICES}    analytics: [{{metric: temp, window: {{size: 5m}}, detect: [{{silence: {{after: 1h}}}}]}}]\n"
        ));
        let window = super::super::Solution::from_yaml(&yaml)
            .unwrap()
            .spec
            .analytics[0]
            .window;
        assert_eq!(window.every, Duration::from_secs(300));
        assert!(window.is_tumbling());
        assert_eq!(window.time_zone, None);
        let zoned = super::super::Solution::from_yaml(&document(&format!(
            "{DEVICES}    analytics: [{{metric: temp, window: {{size: 1d, timeZone: Europe/Berlin}}, detect: [{{silence: {{after: 1h}}}}]}}]\n"
        )))
        .unwrap()
        .spec
        .analytics[0]
        .window;
        assert_eq!(zoned.time_zone, Some(chrono_tz::Europe::Berlin));
        let found = rule_errors("temp", "{size: 1m, every: 5m}", "[{silence: {after: 1h}}]");
        assert_eq!(
            found,
            [
                "spec.analytics[0].window.every: every (5m) must not exceed size (1m); readings between windows would be lost"
            ]
        );
        let found = rule_errors(
            "temp",
            "{size: 5m, every: 1m, offset: 1m}",
            "[{silence: {after: 1h}}]",
        );
        assert_eq!(
            found,
            ["spec.analytics[0].window.offset: offset (1m) must be shorter than every (1m)"]
        );
        let found = rule_errors(
            "temp",
            "{size: 1d, timeZone: Europe/Atlantis}",
            "[{silence: {after: 1h}}]",
        );
        assert_eq!(
            found,
            [
                "spec.analytics[0].window.timeZone: \"Europe/Atlantis\" is not an IANA time zone name (like Europe/Berlin or UTC)"
            ]
        );
        let found = rule_errors("temp", "{size: 1ns}", "[{silence: {after: 1h}}]");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("window.size: 1ns is outside 1s..31d"),
            "{found:?}"
        );
        let found = rule_errors("temp", "{every: 1m}", "[{silence: {after: 1h}}]");
        assert_eq!(found, ["spec.analytics[0].window.size: is required"]);
    }

    #[test]
    fn a_rule_needs_detectors() {
        assert!(rule_errors("temp", "{size: 1m}", "[]").is_empty());
        let found = spec_errors("    analytics: [{metric: temp, window: {size: 1m}}]\n");
        assert_eq!(
            found,
            ["spec.analytics[0].detect: at least one detector is required"]
        );
    }

    #[test]
    fn the_metric_must_be_declared() {
        let found = rule_errors("pressure", "{size: 1m}", "[{silence: {after: 1h}}]");
        assert_eq!(
            found,
            [
                r#"spec.analytics[0].metric: no device type declares a metric "pressure" (declared: speed, state, temp)"#
            ]
        );
        let found = spec_errors(
            "    analytics:
      - {metric: temp, deviceType: valve, window: {size: 1m}, detect: [{silence: {after: 1h}}]}
      - {metric: speed, deviceType: pump, window: {size: 1m}, detect: [{silence: {after: 1h}}]}
",
        );
        assert_eq!(
            found,
            [
                r#"spec.analytics[0].deviceType: unknown device type "valve" (declared: pump, fan)"#,
                r#"spec.analytics[1].metric: device type "pump" has no metric "speed" (it has: temp, state)"#,
            ]
        );
    }

    #[test]
    fn number_detectors_need_a_number_metric() {
        let found = rule_errors(
            "state",
            "{size: 1m}",
            "[{threshold: {above: 1}}, {silence: {after: 1h}}]",
        );
        assert_eq!(
            found,
            [
                r#"spec.analytics[0].detect[0].threshold: threshold needs a number metric, but "state" of device type "pump" is a string"#
            ]
        );
    }

    #[test]
    fn a_level_beyond_the_metric_range_can_never_be_reached() {
        let found = rule_errors("temp", "{size: 1m}", "[{threshold: {above: 150}}]");
        assert_eq!(
            found,
            [
                r#"spec.analytics[0].detect[0].threshold.above: above 150 can never be reached: "temp" of device type "fan" ranges over 0..120"#
            ]
        );
    }

    #[test]
    fn detectors_that_watch_the_same_metric_have_distinct_names() {
        let found = spec_errors(
            "    analytics:
      - metric: temp
        window: {size: 1m}
        detect: [{threshold: {above: 50}}, {threshold: {below: 10}}]
      - metric: temp
        deviceType: pump
        window: {size: 5m}
        detect: [{name: hot, threshold: {above: 60}}, {silence: {after: 1h}}]
      - metric: temp
        deviceType: fan
        window: {size: 5m}
        detect: [{name: hot, threshold: {above: 60}}]
      - metric: temp
        deviceType: pump
        window: {size: 5m}
        detect: [{name: hot, threshold: {above: 70}}]
",
        );
        assert_eq!(
            found,
            [
                r#"spec.analytics[0].detect[1]: duplicate detector "threshold" for metric "temp" (first at spec.analytics[0].detect[0]); give each detector a distinct name"#,
                r#"spec.analytics[3].detect[0].name: duplicate detector "hot" for metric "temp" (first at spec.analytics[1].detect[0]); give each detector a distinct name"#,
            ]
        );
    }
}
