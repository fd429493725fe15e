//! The Solution document exactly as written, before any check.
//!
//! Every mapping and list is a [`Node`] and every leaf a [`Scalar`], so reading it never
//! stops at the first mistake.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::node::Node;
use super::scalar::Scalar;

/// A list whose items are decoded one by one.
pub(crate) type List<T> = Node<Vec<Node<T>>>;

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawSolution {
    pub api_version: Scalar,
    pub kind: Scalar,
    pub metadata: Node<RawMetadata>,
    pub spec: Node<RawSpec>,
    pub status: Scalar,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawMetadata {
    pub name: Scalar,
    pub namespace: Scalar,
    pub labels: Node<BTreeMap<String, Scalar>>,
    pub annotations: Node<BTreeMap<String, Scalar>>,
    pub generation: Scalar,
    // Set by a Kubernetes API server; accepted so `kubectl get -o yaml` output reads, and
    // otherwise ignored.
    pub uid: Scalar,
    pub resource_version: Scalar,
    pub creation_timestamp: Scalar,
    pub deletion_timestamp: Scalar,
    pub finalizers: Scalar,
    pub managed_fields: Scalar,
    pub owner_references: Scalar,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawSpec {
    pub devices: List<RawDeviceType>,
    pub sources: List<RawSource>,
    pub ingest: Node<RawIngest>,
    pub analytics: List<RawRule>,
    pub context: Node<RawContext>,
    pub match_policy: Scalar,
    pub recommendations: List<RawRecommendation>,
    pub topics: Node<RawTopics>,
    pub deletion_policy: Scalar,
    pub workloads: Node<RawWorkloads>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawWorkloads {
    pub ingest: Node<RawWorkload>,
    pub analytics: Node<RawWorkload>,
    pub context: Node<RawWorkload>,
    pub orchestrator: Node<RawWorkload>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawWorkload {
    pub replicas: Scalar,
    pub resources: Node<RawResources>,
    pub env_from_secrets: Node<Vec<Scalar>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawResources {
    pub requests: Node<BTreeMap<String, Scalar>>,
    pub limits: Node<BTreeMap<String, Scalar>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawDeviceType {
    pub r#type: Scalar,
    pub description: Scalar,
    pub r#match: Node<Vec<Scalar>>,
    pub metrics: List<RawMetric>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawMetric {
    pub name: Scalar,
    pub r#type: Scalar,
    pub unit: Scalar,
    pub min: Scalar,
    pub max: Scalar,
    pub description: Scalar,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawSource {
    pub mqtt: Node<RawMqtt>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawMqtt {
    pub url: Scalar,
    pub topic: Scalar,
    pub qos: Scalar,
    pub client_id: Scalar,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawIngest {
    pub max_reading_bytes: Scalar,
    pub max_batch_readings: Scalar,
    pub clock_skew: Scalar,
    pub max_age: Scalar,
    pub dedup_window: Scalar,
    pub dedup_capacity: Scalar,
    pub numeric_strings: Scalar,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawRule {
    pub metric: Scalar,
    pub device_type: Scalar,
    pub window: Node<RawWindow>,
    pub detect: List<RawDetector>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawWindow {
    pub size: Scalar,
    pub every: Scalar,
    pub allowed_lateness: Scalar,
    pub offset: Scalar,
    pub time_zone: Scalar,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawDetector {
    pub name: Scalar,
    pub threshold: Node<RawThreshold>,
    pub rate_of_change: Node<RawRateOfChange>,
    pub anomaly: Node<RawAnomaly>,
    pub silence: Node<RawSilence>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawThreshold {
    pub above: Scalar,
    pub clear_below: Scalar,
    pub below: Scalar,
    pub clear_above: Scalar,
    pub r#for: Scalar,
    pub aggregate: Scalar,
    pub severity: Scalar,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawRateOfChange {
    pub max_increase: Scalar,
    pub max_decrease: Scalar,
    pub per: Scalar,
    pub aggregate: Scalar,
    pub severity: Scalar,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawAnomaly {
    pub method: Scalar,
    pub sensitivity: Scalar,
    pub aggregate: Scalar,
    pub severity: Scalar,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawSilence {
    pub after: Scalar,
    pub severity: Scalar,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawContext {
    pub providers: List<RawProvider>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawProvider {
    pub name: Scalar,
    pub url_env: Scalar,
    pub url_file: Scalar,
    pub query: Scalar,
    pub timeout: Scalar,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawRecommendation {
    pub name: Scalar,
    pub when: Scalar,
    pub order: Scalar,
    pub title: Scalar,
    pub description: Scalar,
    pub severity: Scalar,
    pub escalate: List<RawEscalation>,
    pub resolve_when: Scalar,
    pub actions: List<RawAction>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawEscalation {
    pub after: Scalar,
    pub to: Scalar,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawAction {
    pub webhook: Node<RawWebhook>,
    pub topic: Node<RawTopicAction>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawWebhook {
    pub url: Scalar,
    pub secret_ref: Node<RawSecretRef>,
    pub header: Scalar,
    pub body: Scalar,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawSecretRef {
    pub env: Scalar,
    pub file: Scalar,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawTopicAction {}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RawTopics {
    pub partitions: Scalar,
    pub retention: Scalar,
    pub replication_factor: Scalar,
}
