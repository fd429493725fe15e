//! The Solution resource as a whole: `metadata`, `spec`, topic settings and `status`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::analytics::{self, AnalyticsRule};
use super::context::{self, ContextSpec, Provider};
use super::devices::{self, DeviceType, Metric};
use super::duration;
use super::error::Problems;
use super::ingest::{self, IngestLimits};
use super::keyword::keyword_enum;
use super::names;
use super::node::Node;
use super::path::Path;
use super::raw::{RawMetadata, RawSolution, RawSpec, RawTopics};
use super::recommendations::{self, MatchPolicy, Recommendation};
use super::scalar::Scalar;
use super::sources::{self, Source};
use super::workloads::{self, Workloads};

/// The `apiVersion` of a Solution.
pub const API_VERSION: &str = "sinter.dev/v1alpha1";

/// The `kind` of a Solution.
pub const KIND: &str = "Solution";

/// One Solution: which readings to take in, how they become insights, which context they
/// are joined with, and which business process each situation starts.
///
/// Build it with [`Solution::from_yaml`] or [`Solution::from_path`], which check everything;
/// a value of this type is always valid, with every default filled in.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Solution {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always [`KIND`].
    pub kind: String,
    /// The Solution's identity.
    pub metadata: Metadata,
    /// What the Solution does.
    pub spec: SolutionSpec,
    /// What the operator last reported, kept as it was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

/// A Solution's identity, as Kubernetes object metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// The Solution's name, a DNS-1123 label: `pump-health`.
    pub name: String,
    /// The namespace, a DNS-1123 label; `default` unless told.
    pub namespace: String,
    /// Kubernetes labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Kubernetes annotations: free text for tools and people.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The version of the spec, as the cluster counts it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

/// What a Solution does, from readings to actions.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SolutionSpec {
    /// The device model; at least one device type, names unique.
    pub devices: Vec<DeviceType>,
    /// Subscriptions that bring readings in, besides the gRPC and HTTP APIs.
    pub sources: Vec<Source>,
    /// The limits every reading is held to.
    pub ingest: IngestLimits,
    /// How readings become window aggregates and detections.
    pub analytics: Vec<AnalyticsRule>,
    /// Where enterprise context comes from.
    pub context: ContextSpec,
    /// Which matching recommendations a situation produces; `all` unless told.
    pub match_policy: MatchPolicy,
    /// What to recommend in which situation.
    pub recommendations: Vec<Recommendation>,
    /// How the Solution's topics are created.
    pub topics: TopicSettings,
    /// What happens to the topics and stored data when the Solution is deleted; `Retain`
    /// unless told.
    pub deletion_policy: DeletionPolicy,
    /// Replicas and resources of each service in a cluster.
    pub workloads: Workloads,
}

impl SolutionSpec {
    /// The device type called `name`.
    pub fn device_type(&self, name: &str) -> Option<&DeviceType> {
        self.devices
            .iter()
            .find(|device_type| device_type.name == name)
    }

    /// The device type whose id patterns match `device` (the first in document order when
    /// several do); `None` when none does and the registry has to tell.
    pub fn device_type_for(&self, device: &str) -> Option<&DeviceType> {
        self.devices
            .iter()
            .find(|device_type| device_type.matches(device))
    }

    /// The metric `name` of device type `device_type`.
    pub fn metric(&self, device_type: &str, name: &str) -> Option<&Metric> {
        self.device_type(device_type)?.metric(name)
    }

    /// How many metrics all device types declare together.
    pub fn metric_count(&self) -> usize {
        self.devices
            .iter()
            .map(|device_type| device_type.metrics.len())
            .sum()
    }

    /// The analytics rules that watch `metric` of devices of type `device_type`.
    pub fn rules_for<'a>(
        &'a self,
        device_type: &'a str,
        metric: &'a str,
    ) -> impl Iterator<Item = &'a AnalyticsRule> + 'a {
        self.analytics
            .iter()
            .filter(move |rule| rule.applies_to(device_type, metric))
    }

    /// The context provider called `name`.
    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.context
            .providers
            .iter()
            .find(|provider| provider.name == name)
    }

    /// The recommendation called `name`.
    pub fn recommendation(&self, name: &str) -> Option<&Recommendation> {
        self.recommendations
            .iter()
            .find(|recommendation| recommendation.name == name)
    }

    /// The recommendations in the order they are judged: by `order`, then document order.
    pub fn recommendations_in_order(&self) -> Vec<&Recommendation> {
        let mut ordered: Vec<&Recommendation> = self.recommendations.iter().collect();
        ordered.sort_by_key(|recommendation| recommendation.order);
        ordered
    }
}

/// How the Solution's topics are created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicSettings {
    /// Partitions per topic; readings are keyed by device id. 6 unless told.
    pub partitions: u32,
    /// How long records are kept; 7d unless told.
    #[serde(with = "duration")]
    pub retention: Duration,
    /// Copies of each partition (Kafka only); 1 unless told.
    pub replication_factor: u16,
}

impl Default for TopicSettings {
    fn default() -> Self {
        TopicSettings {
            partitions: 6,
            retention: Duration::from_secs(7 * 86_400),
            replication_factor: 1,
        }
    }
}

keyword_enum! {
    /// What happens to a Solution's topics and stored data when it is deleted.
    pub enum DeletionPolicy ("deletion policy") {
        /// Keep them, for a Solution re-created later or for audit.
        Retain = "Retain",
        /// Delete them with the Solution.
        Delete = "Delete",
    }
}

/// Check the whole document and build the typed Solution, recording every mistake.
pub(crate) fn build(raw: RawSolution, problems: &mut Problems) -> Solution {
    let root = Path::root();
    let api_version = fixed(
        &raw.api_version,
        API_VERSION,
        &root.field("apiVersion"),
        problems,
    );
    let kind = fixed(&raw.kind, KIND, &root.field("kind"), problems);
    let metadata = build_metadata(raw.metadata, &root.field("metadata"), problems);
    let spec = build_spec(raw.spec, &root.field("spec"), problems);
    let status = raw.status.value().and_then(|value| {
        let path = root.field("status");
        match serde_json::to_value(value) {
            Ok(json) if json.is_object() => Some(json),
            Ok(_) => {
                problems.report(&path, "must be a mapping");
                None
            }
            Err(error) => {
                problems.report(&path, format!("cannot be kept as JSON: {error}"));
                None
            }
        }
    });
    Solution {
        api_version,
        kind,
        metadata,
        spec,
        status,
    }
}

fn fixed(raw: &Scalar, expected: &str, path: &Path, problems: &mut Problems) -> String {
    if let Some(found) = raw.required(path, problems).text(path, problems)
        && found != expected
    {
        problems.report(path, format!("must be {expected}, not {found:?}"));
    }
    expected.to_owned()
}

fn build_metadata(raw: Node<RawMetadata>, path: &Path, problems: &mut Problems) -> Metadata {
    let present = raw.is_present();
    let decoded = raw.take(path, problems);
    if !present {
        problems.report(path, "is required (at least a name)");
    }
    // A mapping of the wrong shape was reported; its fields would only repeat the news.
    let check_fields = decoded.is_some();
    let raw = decoded.unwrap_or_default();
    let label = |scalar: &Scalar, path: &Path, problems: &mut Problems| {
        let text = scalar.required(path, problems).text(path, problems)?;
        names::dns_label(&text)
            .map_err(|message| problems.report(path, message))
            .ok()?;
        Some(text)
    };
    let name_path = path.field("name");
    let name = if check_fields {
        label(&raw.name, &name_path, problems).and_then(|name| {
            // The Solution's name begins the names of its Kubernetes Services, which must
            // start with a letter (DNS-1035).
            if name.starts_with(|c: char| c.is_ascii_lowercase()) {
                Some(name)
            } else {
                problems.report(&name_path, format!("{name:?} must start with a letter"));
                None
            }
        })
    } else {
        None
    };
    let namespace = match raw.namespace.is_present() {
        true => label(&raw.namespace, &path.field("namespace"), problems),
        false => None,
    };
    let labels = string_map(raw.labels, &path.field("labels"), problems, true);
    let annotations = string_map(raw.annotations, &path.field("annotations"), problems, false);
    let generation_path = path.field("generation");
    let generation = raw.generation.integer(&generation_path, problems);
    if generation.is_some_and(|generation| generation < 0) {
        problems.report(&generation_path, "must not be negative");
    }
    Metadata {
        name: name.unwrap_or_default(),
        namespace: namespace.unwrap_or_else(|| "default".to_owned()),
        labels,
        annotations,
        generation,
    }
}

fn string_map(
    raw: Node<BTreeMap<String, Scalar>>,
    path: &Path,
    problems: &mut Problems,
    kubernetes_labels: bool,
) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for (key, raw_value) in raw.take(path, problems).unwrap_or_default() {
        let entry_path = path.field(&key);
        let Some(value) = raw_value
            .required(&entry_path, problems)
            .text(&entry_path, problems)
        else {
            continue;
        };
        if kubernetes_labels {
            let checked = names::label_key(&key).and_then(|()| names::label_value(&value));
            if let Err(message) = checked {
                problems.report(&entry_path, message);
                continue;
            }
        }
        map.insert(key, value);
    }
    map
}

fn build_spec(raw: Node<RawSpec>, path: &Path, problems: &mut Problems) -> SolutionSpec {
    let present = raw.is_present();
    let decoded = raw.take(path, problems);
    if !present {
        problems.report(path, "is required");
    }
    let check_fields = decoded.is_some();
    let raw = decoded.unwrap_or_default();
    let devices = if check_fields {
        devices::build(raw.devices, &path.field("devices"), problems)
    } else {
        Vec::new()
    };
    let sources = sources::build(raw.sources, &path.field("sources"), problems);
    let ingest = ingest::build(raw.ingest, &path.field("ingest"), problems);
    let analytics = analytics::build(raw.analytics, &devices, &path.field("analytics"), problems);
    let context = context::build(raw.context, &path.field("context"), problems);
    let match_policy = raw
        .match_policy
        .keyword(&path.field("matchPolicy"), problems)
        .unwrap_or(MatchPolicy::All);
    let provider_names: Vec<String> = context
        .providers
        .iter()
        .map(|provider| provider.name.clone())
        .collect();
    let recommendations = recommendations::build(
        raw.recommendations,
        &provider_names,
        match_policy,
        &path.field("recommendations"),
        problems,
    );
    let topics = build_topics(raw.topics, &path.field("topics"), problems);
    let deletion_policy = raw
        .deletion_policy
        .keyword(&path.field("deletionPolicy"), problems)
        .unwrap_or(DeletionPolicy::Retain);
    let workloads = workloads::build(raw.workloads, &path.field("workloads"), problems);
    SolutionSpec {
        devices,
        sources,
        ingest,
        analytics,
        context,
        match_policy,
        recommendations,
        topics,
        deletion_policy,
        workloads,
    }
}

fn build_topics(raw: Node<RawTopics>, path: &Path, problems: &mut Problems) -> TopicSettings {
    let defaults = TopicSettings::default();
    let Some(raw) = raw.take(path, problems) else {
        return defaults;
    };
    let partitions_path = path.field("partitions");
    let partitions = raw
        .partitions
        .count(1, &partitions_path, problems)
        .and_then(|count| {
            u32::try_from(count)
                .ok()
                .filter(|count| *count <= 10_000)
                .or_else(|| bounded(&partitions_path, "10000", problems))
        });
    let replication_path = path.field("replicationFactor");
    let replication_factor = raw
        .replication_factor
        .count(1, &replication_path, problems)
        .and_then(|count| {
            u16::try_from(count)
                .ok()
                .or_else(|| bounded(&replication_path, "65535", problems))
        });
    TopicSettings {
        partitions: partitions.unwrap_or(defaults.partitions),
        retention: raw
            .retention
            .bounded_duration(
                &path.field("retention"),
                problems,
                Duration::from_secs(60),
                Duration::from_secs(10 * 365 * 86_400),
            )
            .unwrap_or(defaults.retention),
        replication_factor: replication_factor.unwrap_or(defaults.replication_factor),
    }
}

fn bounded<T>(path: &Path, max: &str, problems: &mut Problems) -> Option<T> {
    problems.report(path, format!("must be at most {max}"));
    None
}

#[cfg(test)]
mod tests {
    use super::super::Solution;
    use super::super::tests::{DEVICES, errors, spec_errors};
    use super::*;

    fn with_metadata(metadata: &str) -> String {
        format!(
            "apiVersion: sinter.dev/v1alpha1\nkind: Solution\nmetadata: {metadata}\nspec:\n{DEVICES}"
        )
    }

    #[test]
    fn metadata_defaults_and_checks() {
        let solution = Solution::from_yaml(&with_metadata("{name: pumps}")).unwrap();
        assert_eq!(solution.qualified_name(), "default/pumps");
        let found = errors(&with_metadata(
            "{name: Pumps, namespace: plant_north, generation: -1, labels: {'bad key': x, tier: '-x', ok: fine}, annotations: {note: 'any text: at all'}}",
        ));
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(found[0].starts_with(r#"metadata.name: "Pumps" is not a DNS-1123 label"#));
        assert!(
            found[1].starts_with(r#"metadata.namespace: "plant_north" is not a DNS-1123 label"#)
        );
        assert!(
            found[2].starts_with(
                r#"metadata.labels["bad key"]: label key "bad key" must end in a name"#
            )
        );
        assert!(found[3].starts_with(r#"metadata.labels.tier: label value "-x" must be"#));
        assert_eq!(found[4], "metadata.generation: must not be negative");
        assert_eq!(
            errors(&with_metadata("{namespace: x}")),
            ["metadata.name: is required"]
        );
        assert_eq!(
            errors(&with_metadata("{name: 7-pumps}")),
            [r#"metadata.name: "7-pumps" must start with a letter"#]
        );
    }

    #[test]
    fn cluster_set_metadata_is_accepted() {
        let metadata = "{name: p, uid: 0b7e, resourceVersion: '42', creationTimestamp: '2026-01-01T00:00:00Z', generation: 3}";
        let solution = Solution::from_yaml(&with_metadata(metadata)).unwrap();
        assert_eq!(solution.metadata.generation, Some(3));
    }

    #[test]
    fn topics_and_deletion_policy() {
        let found = spec_errors(
            "    topics: {partitions: 0, retention: forever, replicationFactor: 70000}\n    deletionPolicy: delete\n",
        );
        assert_eq!(
            found,
            [
                "spec.topics.partitions: must be at least 1, not 0",
                "spec.topics.replicationFactor: must be at most 65535",
                r#"spec.topics.retention: "forever" is not a duration (expected e.g. 30s, 5m, 1h30m)"#,
                r#"spec.deletionPolicy: "delete" is not a valid deletion policy (expected one of Retain, Delete)"#,
            ]
        );
        let yaml =
            super::super::tests::document(&format!("{DEVICES}    topics: {{partitions: 12}}\n"));
        let topics = Solution::from_yaml(&yaml).unwrap().spec.topics;
        assert_eq!(topics.partitions, 12);
        assert_eq!(
            topics,
            TopicSettings {
                partitions: 12,
                ..TopicSettings::default()
            }
        );
    }

    #[test]
    fn status_is_kept_as_json_and_must_be_a_mapping() {
        let yaml = format!(
            "{}status: {{observedGeneration: 3}}\n",
            with_metadata("{name: p}")
        );
        let status = Solution::from_yaml(&yaml).unwrap().status.unwrap();
        assert_eq!(status["observedGeneration"], 3);
        let yaml = format!("{}status: ready\n", with_metadata("{name: p}"));
        assert_eq!(errors(&yaml), ["status: must be a mapping"]);
    }
}
