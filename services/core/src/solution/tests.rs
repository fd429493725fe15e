//! Tests of whole documents (the shipped examples, round trips) and shared test helpers.

use super::*;

const EXAMPLE: &str = include_str!("../../../../examples/pump-health.yaml");
const THREE_MISTAKES: &str = include_str!("../../../../examples/invalid/three-mistakes.yaml");
const BROKEN_REFERENCES: &str = include_str!("../../../../examples/invalid/broken-references.yaml");

/// A valid Solution around `spec`, which is YAML indented by four spaces.
pub(crate) fn document(spec: &str) -> String {
    format!("apiVersion: sinter.dev/v1alpha1\nkind: Solution\nmetadata: {{name: t}}\nspec:\n{spec}")
}

/// A device model for tests: two types, number and string metrics.
pub(crate) const DEVICES: &str = "    devices:
      - type: pump
        match: [\"p-*\"]
        metrics:
          - {name: temp, min: -40, max: 200}
          - {name: state, type: string}
      - type: fan
        match: [\"f-*\"]
        metrics:
          - {name: temp, min: 0, max: 120}
          - {name: speed}
";

/// The errors of a document, one `path: message` string each; empty when it is valid.
pub(crate) fn errors(yaml: &str) -> Vec<String> {
    match Solution::from_yaml(yaml) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.into_iter().map(|error| error.to_string()).collect(),
    }
}

/// The errors of a document made of [`DEVICES`] and `more` spec YAML.
pub(crate) fn spec_errors(more: &str) -> Vec<String> {
    errors(&document(&format!("{DEVICES}{more}")))
}

#[test]
fn the_example_is_valid() {
    let solution = Solution::from_yaml(EXAMPLE).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(solution.qualified_name(), "plant-north/pump-health");
    assert_eq!(solution.spec.devices.len(), 2);
    assert_eq!(solution.spec.metric_count(), 5);
    assert_eq!(solution.spec.analytics.len(), 4);
    assert_eq!(
        solution.spec.analytics[3].window.time_zone,
        Some(chrono_tz::Europe::Berlin)
    );
    assert_eq!(solution.spec.recommendations.len(), 2);
    let pump = solution.spec.device_type_for("p-17").unwrap();
    assert_eq!(pump.name, "centrifugal-pump");
    assert_eq!(
        solution.spec.device_type_for("sp-3").unwrap().name,
        "submersible-pump"
    );
    assert!(solution.spec.device_type_for("x-1").is_none());
    let metric = solution
        .spec
        .metric("centrifugal-pump", "bearing_temperature")
        .unwrap();
    assert_eq!(metric.unit.as_deref(), Some("degC"));
    assert_eq!(
        solution
            .spec
            .rules_for("centrifugal-pump", "discharge_pressure")
            .count(),
        1
    );
    assert!(
        solution.status.is_none(),
        "an applied Solution carries no status"
    );
    assert_eq!(solution.spec.workloads.analytics.replicas, 2);
}

#[test]
fn the_example_has_its_defaults_filled_in() {
    let solution = Solution::from_yaml(EXAMPLE).unwrap();
    let rule = &solution.spec.analytics[1];
    assert_eq!(rule.window.every, rule.window.size);
    assert!(rule.window.is_tumbling());
    assert_eq!(rule.window.allowed_lateness, std::time::Duration::ZERO);
    let anomaly = &solution.spec.analytics[0].detectors[1];
    assert_eq!(anomaly.name(), "anomaly");
    assert_eq!(anomaly.severity(), Severity::Minor);
    assert_eq!(solution.spec.ingest.dedup_capacity, 100_000);
    assert_eq!(solution.spec.recommendations[0].order, 0);
    assert_eq!(solution.spec.recommendations[1].order, 10);
    let spare_parts = solution.spec.provider("spareParts").unwrap();
    assert_eq!(spare_parts.timeout, std::time::Duration::from_secs(2));
    assert_eq!(spare_parts.query.params(), ["deviceType"]);
}

#[test]
fn the_example_templates_render_a_situation() {
    let solution = Solution::from_yaml(EXAMPLE).unwrap();
    let situation = serde_json::json!({
        "detection": {"metric": "bearing_temperature", "value": 91.23, "state": "raised"},
        "asset": {"name": "P-17", "criticality": "high"},
        "site": {"name": "North"},
        "spareParts": [{"part_no": "6309-2Z"}],
    });
    let overheat = solution.spec.recommendation("bearing-overheat").unwrap();
    let title = overheat.title.render(&situation).unwrap();
    assert_eq!(title, "Inspect P-17: bearing at 91.2 degC");
    let description = overheat
        .description
        .as_ref()
        .unwrap()
        .render(&situation)
        .unwrap();
    assert!(
        description.ends_with("Bearings in stock: 1."),
        "{description}"
    );
}

#[test]
fn the_three_mistakes_file_reports_exactly_its_three_mistakes() {
    let found = errors(THREE_MISTAKES);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert_eq!(found[0], "spec.devices[0].metrics[1].unitt: unknown field");
    assert_eq!(
        found[1],
        r#"spec.analytics[0].window.every: "1x" is not a duration (expected e.g. 30s, 5m, 1h30m)"#
    );
    assert_eq!(
        found[2],
        "spec.recommendations[0].when: CEL syntax error at 1:45: unexpected end of expression"
    );
}

#[test]
fn the_broken_references_file_reports_each_commented_mistake() {
    let paths: Vec<String> = match Solution::from_yaml(BROKEN_REFERENCES) {
        Ok(_) => panic!("the file is invalid"),
        Err(errors) => errors.into_iter().map(|error| error.path).collect(),
    };
    assert_eq!(
        paths,
        [
            "spec.sources[0].mqtt.topic",
            "spec.analytics[0].metric",
            "spec.analytics[1].window.every",
            "spec.analytics[1].detect[0].threshold.clearBelow",
            "spec.analytics[2].detect[0].anomaly",
            "spec.context.providers[0].query",
            "spec.recommendations[0].when",
            "spec.recommendations[0].escalate[1].after",
            "spec.recommendations[0].actions[0].webhook.url",
        ]
    );
}

#[test]
fn reads_from_a_path_and_names_a_file_it_cannot_read() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/pump-health.yaml"
    );
    assert_eq!(
        Solution::from_path(example).unwrap(),
        Solution::from_yaml(EXAMPLE).unwrap()
    );
    let errors = Solution::from_path("/nonexistent/solution.yaml").unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors
            .to_string()
            .starts_with("cannot read /nonexistent/solution.yaml: ")
    );
}

#[test]
fn a_written_out_solution_reads_back_the_same() {
    let solution = Solution::from_yaml(EXAMPLE).unwrap();
    let written = solution.to_yaml().unwrap();
    let read_back = Solution::from_yaml(&written).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(read_back, solution);
}

#[test]
fn topic_names_follow_the_convention() {
    let solution = Solution::from_yaml(EXAMPLE).unwrap();
    assert_eq!(
        solution.topic_name(crate::topic::Stream::Detections),
        "sinter.plant-north.pump-health.detections"
    );
    let names = solution.topic_names();
    assert_eq!(names.len(), 6);
    assert_eq!(names[0].1, "sinter.plant-north.pump-health.telemetry");
}

#[test]
fn all_unknown_fields_are_reported_together() {
    let found = errors(&document(&format!(
        "{DEVICES}    colour: red
    analytics:
      - metric: temp
        deviceType: pump
        windw: {{size: 5m}}
        window: {{size: 5m, evry: 1m}}
        detect: [{{silence: {{after: 10m, severity: major, extra: 1}}}}]
"
    )));
    assert_eq!(
        found,
        [
            "spec.colour: unknown field",
            "spec.analytics[0].windw: unknown field",
            "spec.analytics[0].window.evry: unknown field",
            "spec.analytics[0].detect[0].silence.extra: unknown field",
        ]
    );
}

#[test]
fn a_misspelt_detector_kind_is_one_mistake() {
    let found = spec_errors(
        "    analytics:
      - metric: temp
        window: {size: 5m}
        detect: [{treshold: {above: 85}}]
",
    );
    assert_eq!(
        found,
        ["spec.analytics[0].detect[0].treshold: unknown field"]
    );
}

#[test]
fn a_wrong_shape_is_reported_and_the_rest_still_checked() {
    let found = spec_errors(
        "    analytics:
      - metric: temp
        window: [5m]
        detect: [{silence: {after: 10x}}]
",
    );
    assert_eq!(
        found,
        [
            "spec.analytics[0].window: invalid type: a list, expected a mapping",
            r#"spec.analytics[0].detect[0].silence.after: "10x" is not a duration (expected e.g. 30s, 5m, 1h30m)"#,
        ]
    );
}

#[test]
fn a_list_where_a_list_belongs() {
    let found = errors(&document(
        "    devices:\n      - {type: pump, match: \"p-*\", metrics: [{name: temp}]}\n",
    ));
    assert_eq!(
        found,
        [r#"spec.devices[0].match: invalid type: string "p-*", expected a list"#]
    );
}

#[test]
fn the_resource_header_is_checked() {
    let found = errors("apiVersion: sinter.dev/v1\nkind: Soluton\nspec: {}\n");
    assert_eq!(
        found,
        [
            r#"apiVersion: must be sinter.dev/v1alpha1, not "sinter.dev/v1""#,
            r#"kind: must be Solution, not "Soluton""#,
            "metadata: is required (at least a name)",
            "spec.devices: at least one device type is required",
        ]
    );
}

#[test]
fn yaml_syntax_errors_and_empty_documents_are_reported() {
    let found = errors("spec: [unclosed\n");
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("not valid YAML: "), "{}", found[0]);
    assert_eq!(errors(""), ["the document is empty"]);
    assert_eq!(
        errors("- a\n- b\n"),
        ["invalid type: a list, expected a mapping"]
    );
}
