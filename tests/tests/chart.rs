//! The Helm chart's own consistency: its files parse, and every value a template reads
//! is declared in `values.yaml`, so a typo in a template cannot silently render empty.

use std::collections::BTreeSet;
use std::path::PathBuf;

fn chart() -> PathBuf {
    sinter_tests::repo_root().join("charts/sinter")
}

fn values() -> serde_yaml::Value {
    let text = std::fs::read_to_string(chart().join("values.yaml")).expect("values.yaml");
    serde_yaml::from_str(&text).expect("values.yaml parses")
}

/// `a.b.c` exists in `values`, or a parent of it is a map that users fill in freely.
fn declared(values: &serde_yaml::Value, path: &str) -> bool {
    let mut node = values;
    for part in path.split('.') {
        match node.get(part) {
            Some(next) => node = next,
            None => return false,
        }
    }
    true
}

#[test]
fn chart_metadata_names_the_chart_and_versions() {
    let text = std::fs::read_to_string(chart().join("Chart.yaml")).expect("Chart.yaml");
    let chart: serde_yaml::Value = serde_yaml::from_str(&text).expect("Chart.yaml parses");
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "sinter");
    assert!(chart["version"].as_str().is_some_and(|v| !v.is_empty()));
}

#[test]
fn every_value_a_template_reads_is_declared() {
    let values = values();
    let reference = regex::Regex::new(r"\$?\.Values\.([A-Za-z0-9_.]+)").expect("regex");
    let mut referenced = BTreeSet::new();
    for entry in std::fs::read_dir(chart().join("templates")).expect("templates") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("template");
        for found in reference.captures_iter(&text) {
            referenced.insert((path.file_name().map(|n| n.to_owned()), found[1].to_owned()));
        }
    }
    assert!(
        referenced.len() > 5,
        "the templates read values: {referenced:?}"
    );
    let missing: Vec<_> = referenced
        .iter()
        .filter(|(_, p)| !declared(&values, p))
        .collect();
    assert!(
        missing.is_empty(),
        "templates read undeclared values: {missing:?}"
    );
}

#[test]
fn every_service_has_its_settings() {
    let values = values();
    for service in ["ingest", "analytics", "context", "orchestrator"] {
        let settings = &values["services"][service];
        for key in [
            "enabled",
            "replicas",
            "grpcPort",
            "metricsPort",
            "resources",
        ] {
            assert!(
                settings.get(key).is_some(),
                "services.{service}.{key} is missing"
            );
        }
    }
}
