//! The Solution CRD: the committed file is what the code generates, it is a structural
//! schema the API server accepts, its CEL rules compile and hold or fail as they should,
//! and the example Solution is one the operator can read and validate.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::{Value, json};
use sinter_operator::crd::{Solution, crd_yaml};

const COMMITTED: &str = include_str!("../../../charts/sinter/crds/solutions.sinter.dev.yaml");
const EXAMPLE: &str = include_str!("../../../examples/pump-health.yaml");

fn crd() -> CustomResourceDefinition {
    serde_yaml::from_str(COMMITTED).expect("the committed CRD parses as a CustomResourceDefinition")
}

fn schema() -> JSONSchemaProps {
    let crd = crd();
    let version = &crd.spec.versions[0];
    version
        .schema
        .as_ref()
        .and_then(|validation| validation.open_api_v3_schema.clone())
        .expect("an OpenAPI v3 schema")
}

#[test]
fn the_committed_crd_is_what_the_code_generates() {
    assert!(
        COMMITTED == crd_yaml(),
        "charts/sinter/crds/solutions.sinter.dev.yaml is stale: run `make crd`"
    );
}

#[test]
fn the_crd_names_group_version_status_and_columns() {
    let crd = crd();
    assert_eq!(crd.metadata.name.as_deref(), Some("solutions.sinter.dev"));
    assert_eq!(crd.spec.group, "sinter.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "Solution");
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["sol".to_owned()][..])
    );
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.served && version.storage);
    let subresources = version.subresources.as_ref().expect("subresources");
    assert!(subresources.status.is_some(), "a status subresource");
    let columns: Vec<&str> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|column| column.name.as_str())
        .collect();
    assert_eq!(columns, ["Phase", "Ready", "Topics", "Age"]);
}

/// Every problem that makes a schema non-structural, with its path.
fn structural_problems(schema: &JSONSchemaProps, path: &str, problems: &mut Vec<String>) {
    let open = schema.x_kubernetes_preserve_unknown_fields == Some(true);
    let int_or_string = schema.x_kubernetes_int_or_string == Some(true);
    if schema.type_.is_none() && !open && !int_or_string {
        problems.push(format!("{path}: no type"));
    }
    if schema.ref_path.is_some() {
        problems.push(format!("{path}: $ref"));
    }
    if schema.definitions.is_some() {
        problems.push(format!("{path}: definitions"));
    }
    for combined in [&schema.any_of, &schema.one_of, &schema.all_of]
        .into_iter()
        .flatten()
    {
        for branch in combined {
            if branch.type_.is_some() || branch.description.is_some() || branch.default.is_some() {
                problems.push(format!(
                    "{path}: a type, description or default in anyOf/oneOf"
                ));
            }
        }
    }
    if schema.type_.as_deref() == Some("array") && schema.items.is_none() {
        problems.push(format!("{path}: an array without items"));
    }
    if schema.properties.is_some()
        && matches!(
            schema.additional_properties,
            Some(JSONSchemaPropsOrBool::Schema(_))
        )
    {
        problems.push(format!("{path}: both properties and additionalProperties"));
    }
    if let Some(keys) = &schema.x_kubernetes_list_map_keys {
        let item = match &schema.items {
            Some(JSONSchemaPropsOrArray::Schema(item)) => item,
            _ => {
                problems.push(format!("{path}: list-map without an item schema"));
                return;
            }
        };
        let required = item.required.clone().unwrap_or_default();
        for key in keys {
            if !required.contains(key) {
                problems.push(format!("{path}: list-map key {key} is not required"));
            }
        }
    }
    for (name, property) in schema.properties.iter().flatten() {
        structural_problems(property, &format!("{path}.{name}"), problems);
    }
    match &schema.items {
        Some(JSONSchemaPropsOrArray::Schema(item)) => {
            structural_problems(item, &format!("{path}[]"), problems);
        }
        Some(JSONSchemaPropsOrArray::Schemas(_)) => problems.push(format!("{path}: tuple items")),
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(value)) = &schema.additional_properties {
        structural_problems(value, &format!("{path}{{}}"), problems);
    }
}

#[test]
fn the_schema_is_structural() {
    let schema = schema();
    let mut problems = Vec::new();
    structural_problems(&schema, "", &mut problems);
    assert!(problems.is_empty(), "not structural: {problems:#?}");
    let spec = &schema.properties.as_ref().expect("properties")["spec"];
    let required = spec.required.clone().unwrap_or_default();
    assert!(required.contains(&"devices".to_owned()), "{required:?}");
    // The check must be able to fail: a schema with an untyped field is caught.
    let broken = JSONSchemaProps {
        type_: Some("object".to_owned()),
        properties: Some([("loose".to_owned(), JSONSchemaProps::default())].into()),
        ..JSONSchemaProps::default()
    };
    let mut problems = Vec::new();
    structural_problems(&broken, "", &mut problems);
    assert_eq!(problems, [".loose: no type"]);
}

/// Every CEL rule in the schema, by the path of the node that carries it.
fn rules(schema: &JSONSchemaProps, path: &str, found: &mut Vec<(String, String)>) {
    for rule in schema.x_kubernetes_validations.iter().flatten() {
        found.push((path.to_owned(), rule.rule.clone()));
    }
    for (name, property) in schema.properties.iter().flatten() {
        rules(property, &format!("{path}.{name}"), found);
    }
    if let Some(JSONSchemaPropsOrArray::Schema(item)) = &schema.items {
        rules(item, &format!("{path}[]"), found);
    }
}

fn rules_at(path: &str) -> Vec<String> {
    let mut found = Vec::new();
    rules(&schema(), "", &mut found);
    let at: Vec<String> = found
        .into_iter()
        .filter(|(at, _)| at == path)
        .map(|(_, rule)| rule)
        .collect();
    assert!(!at.is_empty(), "no rule at {path}");
    at
}

fn rule_at(path: &str) -> String {
    rules_at(path).remove(0)
}

/// For every CEL rule, how many copies of it one object can hold: the product of the
/// `maxItems` of the lists above it, `None` when a list is unbounded.
fn rule_copies(schema: &JSONSchemaProps, copies: Option<u64>, found: &mut Vec<Option<u64>>) {
    for _ in schema.x_kubernetes_validations.iter().flatten() {
        found.push(copies);
    }
    for property in schema.properties.iter().flatten().map(|(_, p)| p) {
        rule_copies(property, copies, found);
    }
    if let Some(JSONSchemaPropsOrArray::Schema(item)) = &schema.items {
        let bound = schema.max_items.and_then(|max| u64::try_from(max).ok());
        let copies = copies.and_then(|copies| bound.map(|bound| copies * bound));
        rule_copies(item, copies, found);
    }
}

#[test]
fn every_cel_rule_has_a_bounded_cost() {
    // The API server refuses a rule whose estimated cost, times how often it can occur,
    // exceeds its budget; an unbounded list above a rule makes that estimate huge.
    let mut found = Vec::new();
    rule_copies(&schema(), Some(1), &mut found);
    assert!(found.len() >= 8, "{found:?}");
    for copies in found {
        let copies = copies.expect("every list above a CEL rule has maxItems");
        assert!(copies <= 20_000, "a rule can occur {copies} times");
    }
}

/// Evaluates a rule as the API server would, with `self` (and `oldSelf` for transition
/// rules) bound.
fn holds(rule: &str, this: Value, old: Option<Value>) -> bool {
    let program = cel::Program::compile(rule).unwrap_or_else(|error| panic!("{rule}: {error}"));
    let mut context = cel::Context::default();
    context.add_variable_from_value("self", cel::to_value(&this).expect("value"));
    if let Some(old) = old {
        context.add_variable_from_value("oldSelf", cel::to_value(&old).expect("value"));
    }
    match program.execute(&context) {
        Ok(cel::Value::Bool(result)) => result,
        other => panic!("{rule} on {this}: {other:?}"),
    }
}

#[test]
fn cel_rules_hold_and_fail_as_they_should() {
    let detector = rule_at(".spec.analytics[].detect[]");
    assert!(holds(&detector, json!({"threshold": {"above": 1}}), None));
    assert!(!holds(&detector, json!({"name": "x"}), None));
    assert!(!holds(
        &detector,
        json!({"threshold": {}, "anomaly": {}}),
        None
    ));

    let metric = rule_at(".spec.devices[].metrics[]");
    assert!(holds(
        &metric,
        json!({"name": "t", "min": 1.0, "max": 2.0}),
        None
    ));
    assert!(holds(&metric, json!({"name": "t", "min": 1.0}), None));
    assert!(!holds(
        &metric,
        json!({"name": "t", "min": 3.0, "max": 2.0}),
        None
    ));

    let source = rule_at(".spec.sources[]");
    assert!(holds(
        &source,
        json!({"mqtt": {"url": "mqtt://b", "topic": "t"}}),
        None
    ));
    assert!(!holds(&source, json!({}), None));

    let partitions = rule_at(".spec.topics.partitions");
    assert!(holds(&partitions, json!(6), Some(json!(6))));
    assert!(
        !holds(&partitions, json!(3), Some(json!(6))),
        "partitions never shrink"
    );
    assert!(
        !holds(&partitions, json!(12), Some(json!(6))),
        "nor grow under the operator"
    );

    let replication = rule_at(".spec.topics.replicationFactor");
    assert!(!holds(&replication, json!(3), Some(json!(1))));

    let kept = rules_at(".spec");
    assert_eq!(kept.len(), 2);
    let set = json!({"topics": {"partitions": 6, "replicationFactor": 3}});
    assert!(holds(&kept[0], set.clone(), Some(set.clone())));
    assert!(
        !holds(&kept[0], json!({}), Some(set.clone())),
        "partitions cannot be dropped"
    );
    assert!(!holds(
        &kept[1],
        json!({"topics": {"partitions": 6}}),
        Some(set.clone())
    ));
    assert!(
        holds(&kept[0], set.clone(), Some(json!({}))),
        "set later: fine"
    );

    let root = rules_at("");
    let named = |name: String| json!({"metadata": {"name": name}});
    assert!(holds(&root[0], named("pump-health".into()), None));
    assert!(!holds(&root[0], named("p".repeat(51)), None));
    assert!(holds(&root[1], named("pump-health".into()), None));
    assert!(!holds(&root[1], named("7-pumps".into()), None));
}

#[test]
fn the_example_is_a_solution_resource_the_operator_validates() {
    let mut value: Value = serde_yaml::from_str(EXAMPLE).expect("the example parses");
    value.as_object_mut().expect("a mapping").remove("status");
    let solution: Solution = serde_json::from_value(value).expect("the example fits the CRD");
    let validated = sinter_operator::reconcile::validate(&solution)
        .unwrap_or_else(|errors| panic!("the example validates: {errors}"));
    assert_eq!(validated.qualified_name(), "plant-north/pump-health");
    assert_eq!(
        validated.spec.workloads.analytics.replicas,
        solution
            .spec
            .workloads
            .as_ref()
            .and_then(|w| w.analytics.as_ref())
            .and_then(|w| w.replicas)
            .unwrap_or(1)
    );
}
