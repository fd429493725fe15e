//! The Helm chart's own consistency, without a cluster or the helm binary: its files
//! parse, every value a template reads is declared in `values.yaml`, the values follow
//! `values.schema.json`, the operator's RBAC is exactly what it needs, and every metric
//! a Grafana dashboard queries is one the code exports under that Prometheus name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn chart() -> PathBuf {
    sinter_tests::repo_root().join("charts/sinter")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn values() -> serde_yaml::Value {
    serde_yaml::from_str(&read(&chart().join("values.yaml"))).expect("values.yaml parses")
}

fn template(name: &str) -> String {
    read(&chart().join("templates").join(name))
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
    let chart: serde_yaml::Value =
        serde_yaml::from_str(&read(&chart().join("Chart.yaml"))).expect("Chart.yaml parses");
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
        for found in reference.captures_iter(&read(&path)) {
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
fn the_chart_leaves_the_workloads_to_the_operator() {
    let templates: BTreeSet<String> = std::fs::read_dir(chart().join("templates"))
        .expect("templates")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "_helpers.tpl",
        "operator.yaml",
        "rbac.yaml",
        "servicemonitor.yaml",
        "dashboards.yaml",
    ] {
        assert!(
            templates.contains(expected),
            "templates/{expected} is missing"
        );
    }
    for gone in ["services.yaml", "solutions.yaml"] {
        assert!(
            !templates.contains(gone),
            "templates/{gone} renders what the operator creates"
        );
    }
}

#[test]
fn the_operator_gets_its_command_environment_and_probes() {
    let text = template("operator.yaml");
    for kind in ["ServiceAccount", "Deployment", "Service"] {
        assert!(
            text.contains(&format!("kind: {kind}\n")),
            "operator.yaml has no {kind}"
        );
    }
    assert!(text.contains(r#"command: ["sinter-operator"]"#), "{text}");
    assert!(text.contains(r#"args: ["run"]"#), "{text}");
    for variable in [
        "SINTER_IMAGE",
        "SINTER_IMAGE_PULL_POLICY",
        "SINTER_IMAGE_PULL_SECRETS",
        "SINTER_BUS",
        "SINTER_DATABASE_SECRET",
        "SINTER_TOKEN_SECRET",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "SINTER_LOG_FORMAT",
        "SINTER_METRICS_ADDR",
        "SINTER_LEASE_NAMESPACE",
        "POD_NAME",
    ] {
        assert!(
            text.contains(&format!("- name: {variable}\n")),
            "operator.yaml does not set {variable}"
        );
    }
    // Both downward-API variables; liveness on /health, readiness (the API server and the
    // broker answered) on /ready, both on the metrics port.
    assert_eq!(text.matches("fieldPath: metadata.namespace").count(), 1);
    assert_eq!(text.matches("fieldPath: metadata.name\n").count(), 1);
    for path in ["/health", "/ready"] {
        let probe = format!("path: {path}\n              port: metrics");
        assert_eq!(text.matches(&probe).count(), 1, "{text}");
    }
    let values = values();
    assert_eq!(values["operator"]["replicas"], 2);
    assert_eq!(values["operator"]["metricsPort"], 9464);
    assert!(values["operator"]["resources"]["requests"].is_mapping());
}

// The values schema.

fn schema() -> serde_json::Value {
    serde_json::from_str(&read(&chart().join("values.schema.json"))).expect("schema parses")
}

fn values_json() -> serde_json::Value {
    serde_yaml::from_str(&read(&chart().join("values.yaml"))).expect("values.yaml as JSON")
}

/// `validator`'s complaints about `instance`, as `path: message` lines.
fn complaints(validator: &jsonschema::Validator, instance: &serde_json::Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// The values schema's complaints about `instance`.
fn schema_errors(instance: &serde_json::Value) -> Vec<String> {
    let validator = jsonschema::draft7::new(&schema()).expect("the schema compiles");
    complaints(&validator, instance)
}

#[test]
fn the_schema_is_draft_07_and_values_yaml_follows_it() {
    let schema = schema();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    if let Err(err) = jsonschema::meta::validate(&schema) {
        panic!("values.schema.json is not a valid schema: {err}");
    }
    let errors = schema_errors(&values_json());
    assert!(
        errors.is_empty(),
        "values.yaml breaks its schema: {errors:#?}"
    );
}

#[test]
fn the_schema_refuses_broken_values() {
    // Where the schema must object, and how the values are broken there.
    type Breakage = (&'static str, fn(&mut serde_json::Value));
    let broken: [Breakage; 7] = [
        ("/logFormat", |v| v["logFormat"] = "xml".into()),
        ("/image/pullPolicy", |v| {
            v["image"]["pullPolicy"] = "Sometimes".into()
        }),
        ("", |v| v["services"] = serde_json::json!({"ingest": {}})),
        ("/operator/replicas", |v| {
            v["operator"]["replicas"] = "two".into()
        }),
        ("/operator", |v| v["operator"]["replica"] = 2.into()),
        ("/kafka/brokers", |v| v["kafka"]["brokers"] = "".into()),
        ("/dashboards/enabled", |v| {
            v["dashboards"]["enabled"] = "yes".into()
        }),
    ];
    for (path, breaks) in broken {
        let mut values = values_json();
        breaks(&mut values);
        let errors = schema_errors(&values);
        assert!(
            errors.iter().any(|e| e.starts_with(&format!("{path}: "))),
            "a broken {path:?} was not refused where it is broken: {errors:#?}"
        );
    }
    let broken_document = serde_json::json!({"image": "ghcr.io/sinter/sinter:0.1.0"});
    assert!(!schema_errors(&broken_document).is_empty());
}

// RBAC.

/// A template as plain YAML documents: lines that are only a directive go, and a
/// directive inside a line becomes a placeholder.
fn loosely_rendered(text: &str) -> Vec<serde_yaml::Value> {
    let comment = regex::Regex::new(r"(?s)\{\{-?\s*/\*.*?\*/\s*-?\}\}").expect("regex");
    let directive = regex::Regex::new(r"\{\{-?.*?-?\}\}").expect("regex");
    let text = comment.replace_all(text, "");
    let lines: Vec<String> = text
        .lines()
        .filter(|line| {
            let trimmed = line.trim();
            !(trimmed.starts_with("{{") && trimmed.ends_with("}}"))
        })
        .map(|line| directive.replace_all(line, "TEMPLATED").into_owned())
        .collect();
    lines
        .join("\n")
        .split("\n---")
        .map(|doc| serde_yaml::from_str(doc).unwrap_or_else(|err| panic!("{err}:\n{doc}")))
        .filter(|doc: &serde_yaml::Value| !doc.is_null())
        .collect()
}

type Rules = BTreeMap<(String, String), BTreeSet<String>>;

/// A Role's or ClusterRole's rules, as verbs per (API group, resource).
fn rules_of(role: &serde_yaml::Value) -> Rules {
    let strings = |node: &serde_yaml::Value| -> Vec<String> {
        node.as_sequence()
            .map(|s| {
                s.iter()
                    .map(|v| v.as_str().expect("a string").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut rules = Rules::new();
    for rule in role["rules"].as_sequence().expect("rules") {
        assert!(
            rule.get("resourceNames").is_none() && rule.get("nonResourceURLs").is_none(),
            "{rule:?}"
        );
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                rules
                    .entry((group.clone(), resource))
                    .or_default()
                    .extend(strings(&rule["verbs"]));
            }
        }
    }
    rules
}

fn expected(rules: &[(&str, &[&str], &[&str])]) -> Rules {
    let mut expected = Rules::new();
    for (group, resources, verbs) in rules {
        for resource in *resources {
            expected.insert(
                ((*group).to_owned(), (*resource).to_owned()),
                verbs.iter().map(|v| (*v).to_owned()).collect(),
            );
        }
    }
    expected
}

#[test]
fn rbac_grants_exactly_what_the_operator_needs() {
    let docs = loosely_rendered(&template("rbac.yaml"));
    let of_kind = |kind: &str| -> Vec<&serde_yaml::Value> {
        docs.iter().filter(|d| d["kind"] == kind).collect()
    };
    let kinds: Vec<_> = docs.iter().map(|d| d["kind"].clone()).collect();
    assert_eq!(docs.len(), 4, "{kinds:?}");

    let cluster_roles = of_kind("ClusterRole");
    assert_eq!(cluster_roles.len(), 1);
    let writes: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];
    assert_eq!(
        rules_of(cluster_roles[0]),
        expected(&[
            (
                "sinter.dev",
                &["solutions"],
                &["get", "list", "watch", "patch", "update"]
            ),
            ("sinter.dev", &["solutions/status"], &["get", "patch"]),
            ("sinter.dev", &["solutions/finalizers"], &["update"]),
            ("", &["configmaps", "services"], writes),
            ("apps", &["deployments"], writes),
            ("events.k8s.io", &["events"], &["create", "patch"]),
        ])
    );

    let roles = of_kind("Role");
    assert_eq!(roles.len(), 1);
    assert!(
        roles[0]["metadata"]["namespace"].is_string(),
        "the lease Role is namespaced"
    );
    assert_eq!(
        rules_of(roles[0]),
        expected(&[(
            "coordination.k8s.io",
            &["leases"],
            &["get", "create", "update", "patch"]
        )])
    );

    // Each binding gives its role to the operator's ServiceAccount.
    for (binding, role) in [
        ("ClusterRoleBinding", "ClusterRole"),
        ("RoleBinding", "Role"),
    ] {
        let bindings = of_kind(binding);
        assert_eq!(bindings.len(), 1, "{binding}");
        assert_eq!(bindings[0]["roleRef"]["kind"], role);
        let subjects = bindings[0]["subjects"].as_sequence().expect("subjects");
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0]["kind"], "ServiceAccount");
        assert!(subjects[0]["namespace"].is_string());
    }
    // The role names in the raw text: each binding names the role defined beside it.
    let text = template("rbac.yaml");
    assert_eq!(
        text.matches(r#"name: {{ include "sinter.operator.name" . }}-leader"#)
            .count(),
        3,
        "Role, RoleBinding and its roleRef share one name"
    );
}

// Exported metric names.

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// Where the item that starts at `text[0]` ends: after its first `;`, or after the `}`
/// that closes its first `{`. String literals, raw ones included, are skipped.
fn item_end(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'r' if matches!(bytes.get(i + 1), Some(b'"' | b'#')) => {
                let hashes = bytes[i + 1..].iter().take_while(|b| **b == b'#').count();
                if bytes.get(i + 1 + hashes) == Some(&b'"') {
                    let close = format!("\"{}", "#".repeat(hashes));
                    let body = i + 2 + hashes;
                    i = text[body..]
                        .find(&close)
                        .map_or(bytes.len(), |at| body + at + close.len());
                    continue;
                }
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b';' if depth == 0 => return i + 1,
            b'{' => depth += 1,
            b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

/// `text` without the items marked `#[cfg(test)]`: metrics that tests register are not
/// exported by the services.
fn without_test_items(text: &str) -> String {
    let mut kept = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        kept.push_str(&rest[..at]);
        let item = &rest[at + "#[cfg(test)]".len()..];
        rest = &item[item_end(item)..];
    }
    kept.push_str(rest);
    kept
}

/// The Prometheus suffix opentelemetry-prometheus (0.33) gives a unit: the known UCUM
/// units spelt out, `a/b` as `a_per_b`, annotations like `{record}` none.
fn unit_suffix(unit: &str) -> Option<String> {
    fn unit_word(unit: &str) -> Option<&'static str> {
        Some(match unit {
            "d" => "days",
            "h" => "hours",
            "min" => "minutes",
            "s" => "seconds",
            "ms" => "milliseconds",
            "us" => "microseconds",
            "ns" => "nanoseconds",
            "By" | "B" => "bytes",
            "KiBy" => "kibibytes",
            "MiBy" => "mebibytes",
            "GiBy" => "gibibytes",
            "TiBy" => "tibibytes",
            "KBy" | "KB" => "kilobytes",
            "MBy" | "MB" => "megabytes",
            "GBy" | "GB" => "gigabytes",
            "TBy" | "TB" => "terabytes",
            "m" => "meters",
            "V" => "volts",
            "A" => "amperes",
            "J" => "joules",
            "W" => "watts",
            "g" => "grams",
            "Cel" => "celsius",
            "Hz" => "hertz",
            "1" => "ratio",
            "%" => "percent",
            _ => return None,
        })
    }
    fn per_word(unit: &str) -> Option<&'static str> {
        Some(match unit {
            "s" => "second",
            "m" => "minute",
            "h" => "hour",
            "d" => "day",
            "w" => "week",
            "mo" => "month",
            "y" => "year",
            _ => return None,
        })
    }
    if unit.is_empty() {
        return None;
    }
    if let Some(word) = unit_word(unit) {
        return Some(word.to_owned());
    }
    let (first, second) = unit.split_once('/')?;
    let per = per_word(second)?;
    let plain = ["1", "d", "h", "min", "s", "ms", "us", "ns"].contains(&first);
    match unit_word(first) {
        Some(word) if !plain => Some(format!("{word}_per_{per}")),
        _ => Some(format!("per_{per}")),
    }
}

/// How an instrument is exported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Counter,
    Gauge,
    Histogram,
}

/// The sample names Prometheus sees for an OpenTelemetry instrument: the name with
/// invalid characters replaced, the unit's suffix, `_total` on monotonic sums, and the
/// three series of a histogram. The exporter appends both suffixes even when the name
/// already ends in them.
fn otel_prometheus_names(name: &str, unit: &str, shape: Shape) -> Vec<String> {
    let mut base: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if base.starts_with(|c: char| c.is_ascii_digit()) {
        base.insert(0, '_');
    }
    if let Some(suffix) = unit_suffix(unit) {
        base = format!("{base}_{suffix}");
    }
    match shape {
        Shape::Counter => vec![format!("{base}_total")],
        Shape::Gauge => vec![base],
        Shape::Histogram => histogram_series(&base),
    }
}

fn histogram_series(base: &str) -> Vec<String> {
    ["bucket", "sum", "count"]
        .iter()
        .map(|s| format!("{base}_{s}"))
        .collect()
}

/// A string literal, or a constant defined somewhere in the scanned code.
fn resolve(argument: &str, constants: &BTreeMap<String, String>) -> Option<String> {
    let argument = argument.trim();
    if let Some(literal) = argument.strip_prefix('"').and_then(|a| a.strip_suffix('"')) {
        return Some(literal.to_owned());
    }
    let ident = argument.rsplit("::").next()?;
    constants.get(ident).cloned()
}

/// Every metric sample name the services export, found in `services/*/src`:
/// OpenTelemetry instruments (named by the exporter's rules) and instruments registered
/// with the prometheus crate directly (named as written).
fn exported_metric_names() -> BTreeSet<String> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(sinter_tests::repo_root().join("services")).expect("services") {
        rust_files(&entry.expect("entry").path().join("src"), &mut files);
    }
    let sources: Vec<String> = files.iter().map(|f| without_test_items(&read(f))).collect();

    let constant =
        regex::Regex::new(r#"const\s+([A-Z0-9_]+)\s*:\s*&(?:'static\s+)?str\s*=\s*"([^"]+)""#)
            .expect("regex");
    let constants: BTreeMap<String, String> = sources
        .iter()
        .flat_map(|s| constant.captures_iter(s))
        .map(|c| (c[1].to_owned(), c[2].to_owned()))
        .collect();

    let instrument = regex::Regex::new(
        r"\.(?:u64|i64|f64)_(counter|up_down_counter|histogram|gauge|observable_counter|observable_up_down_counter|observable_gauge)\(\s*([^()]+?)\s*\)",
    )
    .expect("regex");
    let unit = regex::Regex::new(r"\.with_unit\(\s*([^()]+?)\s*\)").expect("regex");
    let direct = regex::Regex::new(
        r#"\b(Opts|HistogramOpts|IntCounter|IntCounterVec|IntGauge|IntGaugeVec|Counter|CounterVec|Gauge|GaugeVec|Histogram|HistogramVec)::new\(\s*"([^"]+)""#,
    )
    .expect("regex");
    let macro_call = regex::Regex::new(
        r#"\bregister_(int_counter|int_gauge|counter|gauge|histogram)(?:_vec)?(?:_with_registry)?!\(\s*(?:opts!\(|histogram_opts!\()?\s*"([^"]+)""#,
    )
    .expect("regex");

    let mut names = BTreeSet::new();
    for source in &sources {
        for found in instrument.captures_iter(source) {
            let Some(name) = resolve(&found[2], &constants) else {
                continue;
            };
            let whole = found.get(0).expect("match");
            let rest = &source[whole.end()..];
            let builder = &rest[..rest.find(".build()").unwrap_or(rest.len())];
            let unit = unit
                .captures(builder)
                .and_then(|u| resolve(&u[1], &constants))
                .unwrap_or_default();
            let shape = match &found[1] {
                "counter" | "observable_counter" => Shape::Counter,
                "histogram" => Shape::Histogram,
                _ => Shape::Gauge,
            };
            names.extend(otel_prometheus_names(&name, &unit, shape));
        }
        for found in direct.captures_iter(source) {
            let name = found[2].to_owned();
            if found[1].starts_with("Histogram") {
                names.extend(histogram_series(&name));
            } else {
                names.insert(name);
            }
        }
        for found in macro_call.captures_iter(source) {
            let name = found[2].to_owned();
            if &found[1] == "histogram" {
                names.extend(histogram_series(&name));
            } else {
                names.insert(name);
            }
        }
    }
    names
}

#[test]
fn the_scan_finds_the_services_metrics() {
    let names = exported_metric_names();
    for name in [
        "sinter_ingest_readings_accepted_total",
        "sinter_ingest_batch_publish_duration_seconds_bucket",
        "sinter_context_cache_hit_ratio_ratio",
        "sinter_orchestrator_open_recommendations",
        "sinter_orchestrator_time_to_resolve_seconds_count",
    ] {
        assert!(names.contains(name), "{name} not in {names:#?}");
    }
    assert!(
        !names.iter().any(|n| n.starts_with("sinter_test_")),
        "test-only instruments are not exported: {names:#?}"
    );
}

#[test]
fn unit_suffixes_follow_the_exporter() {
    assert_eq!(unit_suffix("s").as_deref(), Some("seconds"));
    assert_eq!(unit_suffix("1").as_deref(), Some("ratio"));
    assert_eq!(unit_suffix("By").as_deref(), Some("bytes"));
    assert_eq!(unit_suffix("m/s").as_deref(), Some("meters_per_second"));
    assert_eq!(unit_suffix("1/s").as_deref(), Some("per_second"));
    assert_eq!(unit_suffix("{record}"), None);
    assert_eq!(unit_suffix("records"), None);
    assert_eq!(unit_suffix(""), None);
    assert_eq!(
        otel_prometheus_names("sinter.x-y", "", Shape::Counter),
        ["sinter_x_y_total"]
    );
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
}

/// The naming rules above, checked against the real thing: instruments of each shape
/// and unit, recorded through the telemetry setup every service uses, and the names on
/// its scrape endpoint.
#[tokio::test]
async fn the_naming_rules_match_what_the_scrape_endpoint_serves() {
    let telemetry = sinter_telemetry::init(
        "sinter-chart-test",
        &sinter_telemetry::TelemetryArgs::default(),
    )
    .expect("telemetry");
    let meter = telemetry.meter();
    let counter = meter.u64_counter("chart_probe_events").build();
    counter.add(1, &[opentelemetry::KeyValue::new("reason", "x")]);
    let suffixed = meter.u64_counter("chart_probe_events_total").build();
    suffixed.add(1, &[]);
    let bytes = meter
        .f64_counter("chart_probe_sent")
        .with_unit("By")
        .build();
    bytes.add(1.0, &[]);
    let duration = meter
        .f64_histogram("chart_probe_duration")
        .with_unit("s")
        .build();
    duration.record(0.2, &[]);
    let level = meter.i64_up_down_counter("chart_probe_level").build();
    level.add(3, &[]);
    let _share = meter
        .f64_observable_gauge("chart_probe_share")
        .with_unit("1")
        .with_callback(|gauge| gauge.observe(0.5, &[]))
        .build();
    let _open = meter
        .i64_observable_gauge("chart_probe_open")
        .with_callback(|gauge| gauge.observe(4, &[]))
        .build();
    let _lag = meter
        .u64_observable_gauge("chart_probe_lag")
        .with_unit("{record}")
        .with_callback(|gauge| gauge.observe(7, &[]))
        .build();

    let (addr, _task) = sinter_telemetry::serve_metrics(
        "127.0.0.1:0".parse().expect("addr"),
        telemetry.registry().clone(),
        sinter_telemetry::Readiness::default(),
        std::future::pending(),
    )
    .await
    .expect("serve");
    let body = http_get(addr, "/metrics").await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    let served: BTreeSet<String> = body
        .lines()
        .filter(|l| l.starts_with("chart_probe_"))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect();

    let mut predicted = BTreeSet::new();
    for (name, unit, shape) in [
        ("chart_probe_events", "", Shape::Counter),
        ("chart_probe_events_total", "", Shape::Counter),
        ("chart_probe_sent", "By", Shape::Counter),
        ("chart_probe_duration", "s", Shape::Histogram),
        ("chart_probe_level", "", Shape::Gauge),
        ("chart_probe_share", "1", Shape::Gauge),
        ("chart_probe_open", "", Shape::Gauge),
        ("chart_probe_lag", "{record}", Shape::Gauge),
    ] {
        predicted.extend(otel_prometheus_names(name, unit, shape));
    }
    assert_eq!(served, predicted, "{body}");
    telemetry.shutdown();
}

// Dashboards.

fn dashboards() -> Vec<(String, serde_json::Value)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(chart().join("dashboards")).expect("dashboards") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            let board = serde_json::from_str(&read(&path))
                .unwrap_or_else(|err| panic!("{name} does not parse: {err}"));
            found.push((name, board));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// The metric names a PromQL expression reads: identifiers that are not functions,
/// keywords, label names or parts of strings, ranges and label matchers.
fn promql_metrics(expr: &str) -> BTreeSet<String> {
    let strings = regex::Regex::new(r#""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'"#).expect("regex");
    let matchers = regex::Regex::new(r"\{[^{}]*\}|\[[^\[\]]*\]").expect("regex");
    let grouping =
        regex::Regex::new(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
            .expect("regex");
    let identifier = regex::Regex::new(r"[A-Za-z_:][A-Za-z0-9_:]*").expect("regex");
    let plain = strings.replace_all(expr, " ");
    let plain = matchers.replace_all(&plain, " ");
    let plain = grouping.replace_all(&plain, " ");
    let keywords = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "and",
        "or",
        "unless",
        "inf",
        "nan",
    ];
    identifier
        .find_iter(&plain)
        // Not the tail of a number (`1h`, `1e3`) or of a `$variable`.
        .filter(|m| {
            !plain[..m.start()]
                .ends_with(|c: char| c.is_ascii_alphanumeric() || c == '.' || c == '$')
        })
        // Not a function.
        .filter(|m| !plain[m.end()..].trim_start().starts_with('('))
        .map(|m| m.as_str().to_owned())
        .filter(|name| !keywords.contains(&name.to_ascii_lowercase().as_str()))
        .collect()
}

#[test]
fn promql_names_are_told_from_functions_labels_and_strings() {
    let expr = r#"histogram_quantile(0.99, sum by (le, rule) (rate(a_b_bucket{x="y", rule=~"$rule"}[$__rate_interval]))) / on (rule) group_left sum(c_total offset 1h) or vector(0) > bool 1e3"#;
    let names: Vec<_> = promql_metrics(expr).into_iter().collect();
    assert_eq!(names, ["a_b_bucket", "c_total"]);
    let replaced = r#"sum by (service) (label_replace(lag{g=~"$g"}, "service", "$1", "group", "([^.]+)[.].*"))"#;
    assert_eq!(
        promql_metrics(replaced).into_iter().collect::<Vec<_>>(),
        ["lag"]
    );
}

/// Every panel, including those inside collapsed rows.
fn panels(board: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut all = Vec::new();
    for panel in board["panels"].as_array().into_iter().flatten() {
        all.push(panel);
        for inner in panel["panels"].as_array().into_iter().flatten() {
            all.push(inner);
        }
    }
    all
}

/// The PromQL of a dashboard: every target's `expr` and every query variable's query.
fn queries(board: &serde_json::Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for panel in panels(board) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                let title = panel["title"].as_str().unwrap_or_default();
                found.push((title.to_owned(), expr.to_owned()));
            }
        }
    }
    for variable in board["templating"]["list"].as_array().into_iter().flatten() {
        if variable["type"] == "query" {
            let query = variable["query"]["query"]
                .as_str()
                .or_else(|| variable["query"].as_str())
                .expect("a query variable has a query");
            let name = variable["name"].as_str().unwrap_or_default();
            found.push((format!("${name}"), variable_promql(query)));
        }
    }
    found
}

/// The PromQL inside a Grafana variable query: the series of `label_values(series,
/// label)` or `query_result(expr)`; nothing for `label_values(label)` and `label_names()`.
fn variable_promql(query: &str) -> String {
    let query = query.trim();
    if let Some(inner) = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
    {
        return inner
            .rsplit_once(',')
            .map(|(series, _label)| series.to_owned())
            .unwrap_or_default();
    }
    if let Some(inner) = query
        .strip_prefix("query_result(")
        .and_then(|q| q.strip_suffix(')'))
    {
        return inner.to_owned();
    }
    if query.starts_with("label_names(") || query.starts_with("metrics(") {
        return String::new();
    }
    query.to_owned()
}

#[test]
fn every_dashboard_parses_and_has_panels_with_queries() {
    let boards = dashboards();
    let names: Vec<_> = boards.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "actions.json",
            "consumer-lag.json",
            "detections.json",
            "ingest.json",
            "operator.json",
            "recommendations.json",
        ]
    );
    let mut uids = BTreeSet::new();
    for (name, board) in &boards {
        assert!(
            board["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
            "{name}: schemaVersion"
        );
        assert!(
            board["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{name}"
        );
        let uid = board["uid"].as_str().expect("uid");
        assert!(
            uid.len() <= 40,
            "{name}: Grafana caps a uid at 40 characters"
        );
        assert!(uids.insert(uid.to_owned()), "{name}: uid {uid} twice");

        let variables = board["templating"]["list"].as_array().expect("templating");
        assert!(
            variables.iter().any(|v| v["name"] == "datasource"
                && v["type"] == "datasource"
                && v["query"] == "prometheus"),
            "{name}: no Prometheus data source variable"
        );

        let panels = panels(board);
        let queried: Vec<_> = panels.iter().filter(|p| p["type"] != "row").collect();
        assert!(queried.len() >= 4, "{name}: too few panels");
        let mut ids = BTreeSet::new();
        for panel in panels {
            let title = &panel["title"];
            assert!(
                ids.insert(panel["id"].to_string()),
                "{name}: panel id twice"
            );
            let pos = &panel["gridPos"];
            let (x, w) = (pos["x"].as_u64(), pos["w"].as_u64());
            assert!(
                x.zip(w).is_some_and(|(x, w)| w > 0 && x + w <= 24),
                "{name}: {title} is outside the grid"
            );
            if panel["type"] == "row" {
                continue;
            }
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{name}: {title} does not use the data source variable"
            );
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{name}: {title} has no query");
            for target in targets {
                let expr = target["expr"].as_str().unwrap_or_default();
                assert!(
                    !expr.trim().is_empty(),
                    "{name}: {title} has an empty query"
                );
                assert!(
                    !promql_metrics(expr).is_empty(),
                    "{name}: {title} reads no metric: {expr}"
                );
                assert_eq!(
                    expr.matches('(').count(),
                    expr.matches(')').count(),
                    "{name}: {title}: {expr}"
                );
            }
        }
    }
}

#[test]
fn every_metric_a_dashboard_queries_is_exported() {
    let exported = exported_metric_names();
    let mut unknown = Vec::new();
    for (name, board) in dashboards() {
        for (panel, expr) in queries(&board) {
            for metric in promql_metrics(&expr) {
                if !exported.contains(&metric) {
                    unknown.push(format!("{name}: {panel}: {metric}"));
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "dashboards query metrics the code does not export:\n{}\nexported: {exported:#?}",
        unknown.join("\n")
    );
}

#[test]
fn the_dashboards_show_what_operators_watch() {
    let used: BTreeSet<String> = dashboards()
        .iter()
        .flat_map(|(_, board)| queries(board))
        .flat_map(|(_, expr)| promql_metrics(&expr))
        .collect();
    for metric in [
        "sinter_ingest_readings_accepted_total",
        "sinter_ingest_readings_refused_total",
        "sinter_bus_consumer_lag",
        "sinter_analytics_detections_total",
        "sinter_orchestrator_open_recommendations",
        "sinter_orchestrator_time_to_acknowledge_seconds_bucket",
        "sinter_orchestrator_time_to_resolve_seconds_bucket",
        "sinter_orchestrator_false_alarm_ratio",
        "sinter_orchestrator_actions_parked_total",
        "sinter_orchestrator_actions_delivered_total",
        "sinter_operator_reconciles_total",
        "sinter_operator_reconcile_duration_seconds_bucket",
        "sinter_operator_reconcile_errors_total",
    ] {
        assert!(used.contains(metric), "no dashboard shows {metric}");
    }
}

#[test]
fn the_dashboards_template_ships_every_json_file_with_its_label() {
    let text = template("dashboards.yaml");
    assert!(
        text.contains(r#".Files.Glob "dashboards/*.json""#),
        "{text}"
    );
    assert!(text.contains(".Files.Get $path"), "{text}");
    assert!(
        text.contains(
            r#"{{ $.Values.dashboards.label }}: {{ $.Values.dashboards.labelValue | quote }}"#
        ),
        "{text}"
    );
    let values = values();
    assert_eq!(values["dashboards"]["enabled"], true);
    assert_eq!(values["dashboards"]["label"], "grafana_dashboard");
    assert_eq!(values["dashboards"]["labelValue"], "1");
}

#[test]
fn the_service_monitor_selects_the_operator_and_the_workloads_everywhere() {
    let docs = loosely_rendered(&template("servicemonitor.yaml"));
    assert_eq!(docs.len(), 1);
    let monitor = &docs[0];
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["kind"], "ServiceMonitor");
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/part-of"],
        "sinter"
    );
    assert_eq!(monitor["spec"]["namespaceSelector"]["any"], true);
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(values()["serviceMonitor"]["enabled"], false);
    // The operator's metrics Service carries the label the monitor selects.
    let helpers = template("_helpers.tpl");
    assert!(helpers.contains("app.kubernetes.io/part-of: sinter"));
    assert!(template("operator.yaml").contains("- name: metrics\n      port:"));
}

/// The committed CRD's OpenAPI schema as JSON Schema: the Kubernetes extensions are
/// annotations a JSON Schema validator ignores, and `nullable` fields are absent here.
fn crd_schema() -> serde_json::Value {
    let text = read(&chart().join("crds/solutions.sinter.dev.yaml"));
    let crd: serde_json::Value = serde_yaml::from_str(&text).expect("the CRD parses");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn example_solution() -> serde_json::Value {
    let text = read(&sinter_tests::repo_root().join("examples/pump-health.yaml"));
    serde_yaml::from_str(&text).expect("the example parses")
}

fn crd_errors(instance: &serde_json::Value) -> Vec<String> {
    let validator = jsonschema::draft4::new(&crd_schema()).expect("the CRD schema compiles");
    complaints(&validator, instance)
}

#[test]
fn the_example_solution_fits_the_crd_schema() {
    let example = example_solution();
    let errors = crd_errors(&example);
    assert!(
        errors.is_empty(),
        "kubectl apply would refuse the example: {errors:#?}"
    );

    let mut broken = example;
    broken["spec"]["deletionPolicy"] = serde_json::json!("delete");
    broken["spec"]["topics"]["partitions"] = serde_json::json!(0);
    broken["spec"]["devices"][0]
        .as_object_mut()
        .expect("a device type")
        .remove("metrics");
    let errors = crd_errors(&broken);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    for field in [
        "/spec/deletionPolicy",
        "/spec/topics/partitions",
        "/spec/devices/0",
    ] {
        assert!(
            errors.iter().any(|e| e.starts_with(field)),
            "{field} in {errors:#?}"
        );
    }
}
