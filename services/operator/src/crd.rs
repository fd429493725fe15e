//! The `Solution` custom resource as the Kubernetes API server sees it: its schema, printer
//! columns, CEL rules and status.
//!
//! The schema checks shape and the rules that belong in the API server (names, enums,
//! ranges, partitions fixed once set). The full check, with references between parts,
//! is [`sinter_core::Solution::from_yaml`], which the operator runs on every reconcile and
//! whose errors it writes into the status; the schema keeps the detailed parts of analytics,
//! context and recommendations open for it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// What a Solution does, from readings to actions; see the Solution reference in the
/// project's documentation for every field.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sinter.dev",
    version = "v1alpha1",
    kind = "Solution",
    namespaced,
    status = "SolutionStatus",
    shortname = "sol",
    category = "sinter",
    doc = "A Sinter Solution: readings in, analytics, context, business process, actions out.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Topics", type_ = "integer", json_path = ".status.topics"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 50")
        .message("metadata.name must be at most 50 characters: workload names add a suffix"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]')")
        .message("metadata.name must start with a letter: it names the workloads' Services"),
)]
#[x_kube(validation = Rule::new(
    "!has(oldSelf.topics) || !has(oldSelf.topics.partitions) \
     || (has(self.topics) && has(self.topics.partitions))"
).message("topics.partitions cannot be removed once set"))]
#[x_kube(validation = Rule::new(
    "!has(oldSelf.topics) || !has(oldSelf.topics.replicationFactor) \
     || (has(self.topics) && has(self.topics.replicationFactor))"
).message("topics.replicationFactor cannot be removed once set"))]
#[serde(rename_all = "camelCase")]
pub struct SolutionSpec {
    /// The device model: what a valid reading is. Device type names are unique.
    #[schemars(length(min = 1, max = 100))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub devices: Vec<DeviceType>,
    /// Subscriptions that bring readings in besides the gRPC and HTTP APIs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub sources: Vec<Source>,
    /// Limits every reading is held to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub ingest: Option<serde_json::Value>,
    /// How readings become window aggregates and detections.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200))]
    pub analytics: Vec<AnalyticsRule>,
    /// Where enterprise context comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub context: Option<serde_json::Value>,
    /// Which matching recommendations a situation produces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_policy: Option<MatchPolicy>,
    /// What to recommend in which situation. Names are unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub recommendations: Vec<Recommendation>,
    /// How the Solution's topics are created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<Topics>,
    /// Whether topics and stored data go with the Solution when it is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
    /// Replicas and resources of each service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workloads: Option<Workloads>,
}

/// One device type.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeviceType {
    /// The type's name, unique in the Solution.
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Device id patterns (`p-*`) that make a device this type.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub patterns: Vec<String>,
    /// The metrics a device of this type reports.
    #[schemars(length(min = 1, max = 200))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub metrics: Vec<Metric>,
}

/// One metric of a device type.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.min) || !has(self.max) || self.min <= self.max")
    .message("min must not be above max"))]
pub struct Metric {
    /// The metric's name, unique in the device type.
    #[schemars(length(min = 1, max = 100))]
    pub name: String,
    /// What its values are.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<MetricType>,
    /// The unit, free text (`degC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The lowest valid value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The highest valid value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The kind of a metric's values.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    /// Floating-point numbers.
    Number,
    /// Text.
    String,
    /// true or false.
    Boolean,
}

/// A subscription that brings readings in.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.mqtt)").message("a source names its kind: mqtt"))]
pub struct Source {
    /// An MQTT broker subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<MqttSource>,
}

/// An MQTT subscription.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MqttSource {
    /// `mqtt://host:port`.
    #[schemars(regex(pattern = r"^mqtts?://"))]
    pub url: String,
    /// The topic filter, with `{device}` and `{metric}` placeholders where they sit.
    #[schemars(length(min = 1))]
    pub topic: String,
    /// Quality of service, 0 or 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub qos: Option<u8>,
    /// The client id; by default one derived from the Solution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// One analytics rule.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsRule {
    /// The metric the rule watches.
    #[schemars(length(min = 1))]
    pub metric: String,
    /// Only devices of this type; all types with the metric by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
    /// The window readings are aggregated over.
    #[schemars(schema_with = "open_object")]
    pub window: serde_json::Value,
    /// The detectors, each naming exactly one kind.
    #[schemars(length(min = 1, max = 20))]
    pub detect: Vec<DetectorSpec>,
}

/// One detector: exactly one of its kinds.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "[has(self.threshold), has(self.rateOfChange), has(self.anomaly), has(self.silence)]\
     .filter(k, k).size() == 1"
).message("a detector is exactly one of threshold, rateOfChange, anomaly, silence"))]
pub struct DetectorSpec {
    /// The detector's name in detections; derived from its kind by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A threshold with hysteresis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub threshold: Option<serde_json::Value>,
    /// A limit on how fast the value moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub rate_of_change: Option<serde_json::Value>,
    /// A statistical anomaly detector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub anomaly: Option<serde_json::Value>,
    /// No readings for a while.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub silence: Option<serde_json::Value>,
}

/// Which matching recommendations a situation produces.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MatchPolicy {
    /// Every rule whose `when` holds.
    All,
    /// The first, by `order`.
    First,
}

/// A recommendation rule; `name` and `when` are required, the rest is checked by the
/// operator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Recommendation {
    /// The rule's name, unique in the Solution.
    pub name: String,
    /// The rest of the rule: when, title, severity, escalate, resolveWhen, actions, ...
    #[serde(flatten)]
    pub rule: serde_json::Map<String, serde_json::Value>,
}

impl JsonSchema for Recommendation {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Recommendation".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "description": "A recommendation rule: when a situation calls for it, what to \
                recommend, how to escalate, when it resolves and what actions to take.",
            "required": ["name", "when"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 63},
                "when": {"type": "string", "minLength": 1},
                "severity": {"type": "string", "enum": ["info", "minor", "major", "critical"]},
            },
            "x-kubernetes-preserve-unknown-fields": true,
        })
    }
}

/// Topic settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Topics {
    /// Partitions per topic; fixed once the topics exist. Kafka cannot remove a partition,
    /// and adding one would move devices' readings to another partition, out of order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    #[x_kube(validation = Rule::new("self == oldSelf")
        .message("partitions are fixed once the topics exist: Kafka cannot remove one, and \
            adding one reorders devices' readings"))]
    pub partitions: Option<u32>,
    /// How long records are kept (`7d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<String>,
    /// Copies of each partition; fixed once the topics exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    #[x_kube(validation = Rule::new("self == oldSelf")
        .message("replicationFactor is fixed once the topics exist"))]
    pub replication_factor: Option<u16>,
}

/// What happens to topics and stored data when the Solution is deleted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeletionPolicy {
    /// Keep them.
    #[default]
    Retain,
    /// Delete them with the Solution.
    Delete,
}

/// Replicas and resources per service.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Workloads {
    /// The ingestion service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest: Option<Workload>,
    /// The analytics service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analytics: Option<Workload>,
    /// The context enrichment service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Workload>,
    /// The process orchestration service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestrator: Option<Workload>,
}

/// One service's Deployment settings.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    /// Pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: Option<u16>,
    /// Resource requests and limits, as in a container spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Secrets whose keys become the pods' environment (`urlEnv`, `secretRef.env`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub env_from_secrets: Vec<String>,
}

/// Container resource requests and limits.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Resources {
    /// What the scheduler reserves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "quantities")]
    pub requests: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// The most the container may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "quantities")]
    pub limits: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

/// What the operator observed and did, as `kubectl get` and `describe` show it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SolutionStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Pending`, `Ready`, `Degraded`, `Invalid` or `Deleting`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// `Ready`, `TopicsReady`, `ConfigReady`, `WorkloadsReady`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions")]
    pub conditions: Vec<Condition>,
    /// How many of the Solution's topics exist as the spec asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<i32>,
    /// Digest of the rendered configuration the workloads run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<String>,
}

/// The CRD as YAML, the way `charts/sinter/crds/` holds it.
pub fn crd_yaml() -> String {
    let crd = Solution::crd();
    let body = serde_yaml::to_string(&crd).unwrap_or_default();
    format!("# Generated by `sinter-operator crd` (make crd); do not edit.\n{body}")
}

fn open_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Quantities by resource name; a value may be a number (`1.5`) or a string (`250m`),
/// which the Solution reader checks, naming the field.
fn quantities(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": {"x-kubernetes-preserve-unknown-fields": true},
    })
}

fn conditions(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "required": ["type", "status", "lastTransitionTime", "reason", "message"],
            "properties": {
                "type": {"type": "string"},
                "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                "observedGeneration": {"type": "integer", "format": "int64"},
                "lastTransitionTime": {"type": "string", "format": "date-time"},
                "reason": {"type": "string"},
                "message": {"type": "string"},
            },
        },
    })
}
