//! The device model: device types, how a device id binds to one, and their metrics.
//!
//! It decides what a valid reading is.

use serde::Serialize;

use super::error::Problems;
use super::glob::DevicePattern;
use super::keyword::keyword_enum;
use super::names::{self, Unique};
use super::node::take_list;
use super::path::Path;
use super::raw::{List, RawDeviceType, RawMetric};

/// One kind of device and the metrics it reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceType {
    /// The type's name, a DNS-1123 label such as `centrifugal-pump` (`type` in YAML).
    #[serde(rename = "type")]
    pub name: String,
    /// What this type of device is, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The ids of devices of this type, as patterns such as `p-*` (`match` in YAML). Empty
    /// when devices of this type are bound to it in the device registry instead.
    #[serde(rename = "match")]
    pub patterns: Vec<DevicePattern>,
    /// The metrics a device of this type reports; names are unique within the type.
    pub metrics: Vec<Metric>,
}

impl DeviceType {
    /// Whether `device` (a device id) matches one of this type's patterns.
    pub fn matches(&self, device: &str) -> bool {
        self.patterns.iter().any(|pattern| pattern.matches(device))
    }

    /// The metric of this type called `name`.
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|metric| metric.name == name)
    }
}

keyword_enum! {
    /// What kind of value a metric's readings carry.
    pub enum MetricType ("metric type") {
        /// A number (JSON number; a numeric string too, when ingest allows it).
        Number = "number",
        /// A string, such as a state name (`running`, `tripped`).
        String = "string",
    }
}

/// One quantity a device reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metric {
    /// The metric's name, as readings carry it: `bearing_temperature`.
    pub name: String,
    /// What kind of value readings carry (`type` in YAML); `number` unless told.
    #[serde(rename = "type")]
    pub kind: MetricType,
    /// The unit of the values, for people and dashboards: `degC`, `mm/s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The lowest plausible value; a reading below it is refused. Numbers only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The highest plausible value; a reading above it is refused. Numbers only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// What the metric measures, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Metric {
    /// Whether readings of this metric are numbers.
    pub fn is_numeric(&self) -> bool {
        self.kind == MetricType::Number
    }

    /// Whether `value` lies within the metric's plausible range (bounds included).
    pub fn in_range(&self, value: f64) -> bool {
        self.min.is_none_or(|min| value >= min) && self.max.is_none_or(|max| value <= max)
    }
}

/// Read and check `spec.devices`.
pub(crate) fn build(
    raw: List<RawDeviceType>,
    path: &Path,
    problems: &mut Problems,
) -> Vec<DeviceType> {
    let present = raw.is_present();
    let items = take_list(raw, path, problems);
    if !present {
        problems.report(path, "at least one device type is required");
    }
    let mut type_names = Unique::new("device type");
    let mut patterns = Unique::new("device id pattern");
    let mut device_types = Vec::with_capacity(items.len());
    for (item_path, raw_type) in items {
        let device_type = build_type(raw_type, &item_path, problems);
        if !device_type.name.is_empty() {
            type_names.claim(&device_type.name, &item_path.field("type"), problems);
        }
        for (index, pattern) in device_type.patterns.iter().enumerate() {
            patterns.claim(
                pattern.as_str(),
                &item_path.field("match").index(index),
                problems,
            );
        }
        device_types.push(device_type);
    }
    device_types
}

fn build_type(raw: RawDeviceType, path: &Path, problems: &mut Problems) -> DeviceType {
    let name_path = path.field("type");
    let name = raw
        .r#type
        .required(&name_path, problems)
        .text(&name_path, problems);
    if let Some(name) = &name
        && let Err(message) = names::dns_label(name)
    {
        problems.report(&name_path, message);
    }
    let match_path = path.field("match");
    let mut patterns = Vec::new();
    for (index, raw_pattern) in raw
        .r#match
        .take(&match_path, problems)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let pattern_path = match_path.index(index);
        let Some(text) = raw_pattern
            .required(&pattern_path, problems)
            .text(&pattern_path, problems)
        else {
            continue;
        };
        match DevicePattern::parse(&text) {
            Ok(pattern) => patterns.push(pattern),
            Err(message) => problems.report(&pattern_path, message),
        }
    }
    let metrics_path = path.field("metrics");
    let metrics_present = raw.metrics.is_present();
    let mut metric_names = Unique::new("metric");
    let mut metrics = Vec::new();
    for (item_path, raw_metric) in take_list(raw.metrics, &metrics_path, problems) {
        let metric = build_metric(raw_metric, &item_path, problems);
        if !metric.name.is_empty() {
            metric_names.claim(&metric.name, &item_path.field("name"), problems);
        }
        metrics.push(metric);
    }
    if !metrics_present {
        problems.report(&metrics_path, "at least one metric is required");
    }
    DeviceType {
        name: name.unwrap_or_default(),
        description: raw.description.text(&path.field("description"), problems),
        patterns,
        metrics,
    }
}

fn build_metric(raw: RawMetric, path: &Path, problems: &mut Problems) -> Metric {
    let name_path = path.field("name");
    let name = raw
        .name
        .required(&name_path, problems)
        .text(&name_path, problems);
    if let Some(name) = &name
        && let Err(message) = names::identifier(name)
    {
        problems.report(&name_path, message);
    }
    let kind = raw
        .r#type
        .keyword(&path.field("type"), problems)
        .unwrap_or(MetricType::Number);
    let min = raw.min.number(&path.field("min"), problems);
    let max = raw.max.number(&path.field("max"), problems);
    if kind == MetricType::String {
        for (bound, present) in [("min", raw.min.is_present()), ("max", raw.max.is_present())] {
            if present {
                problems.report(&path.field(bound), "only a number metric can have bounds");
            }
        }
    }
    if let (Some(min), Some(max)) = (min, max)
        && min >= max
    {
        problems.report(
            &path.field("max"),
            format!("max ({max}) must be greater than min ({min})"),
        );
    }
    Metric {
        name: name.unwrap_or_default(),
        kind,
        unit: raw.unit.text(&path.field("unit"), problems),
        min,
        max,
        description: raw.description.text(&path.field("description"), problems),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{document, errors};

    fn devices_errors(devices: &str) -> Vec<String> {
        errors(&document(&format!("    devices:\n{devices}")))
    }

    #[test]
    fn a_device_model_is_required() {
        assert_eq!(
            errors(&document("    sources: []\n")),
            ["spec.devices: at least one device type is required"]
        );
        assert_eq!(
            devices_errors("      - {type: pump}\n"),
            ["spec.devices[0].metrics: at least one metric is required"]
        );
    }

    #[test]
    fn names_are_well_formed_and_unique() {
        let found = devices_errors(
            "      - {type: Pump, metrics: [{name: temp}]}
      - type: fan
        metrics: [{name: temp}, {name: vibration-rms}, {name: temp}]
      - {type: fan, metrics: [{name: x}]}
",
        );
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(found[0].starts_with(r#"spec.devices[0].type: "Pump" is not a DNS-1123 label"#));
        assert!(found[1].starts_with(r#"spec.devices[1].metrics[1].name: "vibration-rms" is not"#));
        assert_eq!(
            found[2],
            r#"spec.devices[1].metrics[2].name: duplicate metric "temp" (first at spec.devices[1].metrics[0].name)"#
        );
        assert_eq!(
            found[3],
            r#"spec.devices[2].type: duplicate device type "fan" (first at spec.devices[1].type)"#
        );
    }

    #[test]
    fn bounds_are_ordered_and_only_for_numbers() {
        let found = devices_errors(
            "      - type: pump
        metrics:
          - {name: temp, min: 200, max: -40}
          - {name: state, type: string, max: 3}
          - {name: level, type: integer}
          - {name: flow, min: low}
",
        );
        assert_eq!(
            found,
            [
                "spec.devices[0].metrics[0].max: max (-40) must be greater than min (200)",
                "spec.devices[0].metrics[1].max: only a number metric can have bounds",
                r#"spec.devices[0].metrics[2].type: "integer" is not a valid metric type (expected one of number, string)"#,
                r#"spec.devices[0].metrics[3].min: expected a number, found "low""#,
            ]
        );
    }

    #[test]
    fn device_id_patterns_are_checked_and_not_shared() {
        let found = devices_errors(
            "      - {type: pump, match: [\"p-*\", \"p/*\"], metrics: [{name: temp}]}
      - {type: fan, match: [\"p-*\"], metrics: [{name: temp}]}
",
        );
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found[0]
                .starts_with(r#"spec.devices[0].match[1]: device id pattern "p/*" contains '/'"#)
        );
        assert_eq!(
            found[1],
            r#"spec.devices[1].match[0]: duplicate device id pattern "p-*" (first at spec.devices[0].match[0])"#
        );
    }

    #[test]
    fn binds_device_ids_and_finds_metrics() {
        let yaml = document(
            "    devices:
      - {type: pump, match: [\"p-*\"], metrics: [{name: temp, min: 0, max: 10}]}
      - {type: fan, match: [\"f-?\"], metrics: [{name: state, type: string}]}
",
        );
        let solution = super::super::Solution::from_yaml(&yaml).unwrap();
        assert_eq!(solution.spec.device_type_for("f-1").unwrap().name, "fan");
        assert!(solution.spec.device_type_for("f-12").is_none());
        let temp = solution.spec.metric("pump", "temp").unwrap();
        assert!(temp.is_numeric() && temp.in_range(10.0) && !temp.in_range(10.5));
        assert!(!solution.spec.metric("fan", "state").unwrap().is_numeric());
        assert!(solution.spec.metric("fan", "temp").is_none());
    }
}
