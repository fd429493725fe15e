//! The Solution resource: its typed model, read from YAML with every mistake reported.
//!
//! ```
//! use sinter_core::Solution;
//!
//! let yaml = r#"
//! apiVersion: sinter.dev/v1alpha1
//! kind: Solution
//! metadata: {name: pump-health, namespace: plant-north}
//! spec:
//!   devices:
//!     - type: centrifugal-pump
//!       match: ["p-*"]
//!       metrics: [{name: bearing_temperature, unit: degC, min: -40, max: 200}]
//!   analytics:
//!     - metric: bearing_temperature
//!       window: {size: 5m, every: 1m}
//!       detect: [{threshold: {above: 85, clearBelow: 80}}]
//! "#;
//! let solution = Solution::from_yaml(yaml).unwrap();
//! assert_eq!(solution.spec.device_type_for("p-17").unwrap().name, "centrifugal-pump");
//!
//! let errors = Solution::from_yaml(&yaml.replace("5m", "5x")).unwrap_err();
//! assert_eq!(
//!     errors.to_string(),
//!     r#"spec.analytics[0].window.size: "5x" is not a duration (expected e.g. 30s, 5m, 1h30m)"#
//! );
//! ```
//!
//! How it reads: the text becomes a plain YAML value; every mapping and list is then decoded
//! on its own (`node`), with `serde_ignored` collecting unknown fields and leaf values kept
//! as they were written (`scalar`); a build pass per part of the spec turns that into the
//! typed model, checking each value and the references between parts.

mod analytics;
mod context;
mod detectors;
mod devices;
pub mod duration;
mod error;
mod expr;
mod glob;
mod ingest;
mod keyword;
mod model;
mod mqtt;
mod names;
mod node;
mod path;
mod raw;
mod recommendations;
mod scalar;
mod sources;
mod sql;
mod url;
mod workloads;

#[cfg(test)]
mod tests;

use crate::topic::{self, Stream};

pub use analytics::{AnalyticsRule, Window};
pub use context::{ContextSpec, DatabaseUrl, Provider, QUERY_PARAMETERS};
pub use detectors::{
    Aggregate, Anomaly, AnomalyMethod, Detector, DetectorKind, RateOfChange, Silence, Threshold,
};
pub use devices::{DeviceType, Metric, MetricType};
pub use error::{ValidationError, ValidationErrors};
pub use expr::{CelExpression, Template};
pub use glob::DevicePattern;
pub use ingest::{IngestLimits, NumericStrings};
pub use keyword::{Keyword, Severity};
pub use model::Solution;
pub use model::{API_VERSION, DeletionPolicy, KIND, Metadata, SolutionSpec, TopicSettings};
pub use mqtt::TopicTemplate;
pub use recommendations::{
    Action, EscalationStep, MatchPolicy, RECOMMENDATION_VARIABLE, Recommendation, ResolveWhen,
    SITUATION_VARIABLES, SecretRef, TopicAction, WebhookAction,
};
pub use sources::{MqttSource, Qos, Source};
pub use sql::NamedQuery;
pub use workloads::{Resources, Workload, Workloads};

impl Solution {
    /// Read and check a Solution written in YAML (or JSON).
    ///
    /// Every mistake is reported, not just the first: unknown fields, values of the wrong
    /// kind, and broken rules between parts (an analytics rule on an undeclared metric, a
    /// `when` that does not compile, ...). Defaults are filled in.
    pub fn from_yaml(text: &str) -> Result<Solution, ValidationErrors> {
        let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|error| {
            ValidationErrors::single(ValidationError::new("", format!("not valid YAML: {error}")))
        })?;
        if value.is_null() {
            return Err(ValidationErrors::single(ValidationError::new(
                "",
                "the document is empty",
            )));
        }
        let mut problems = error::Problems::default();
        let Some(raw) =
            node::Node::<raw::RawSolution>::decode(value).take(&path::Path::root(), &mut problems)
        else {
            return Err(problems.into_result(()).err().unwrap_or_else(|| {
                ValidationErrors::single(ValidationError::new("", "the document is empty"))
            }));
        };
        let solution = model::build(raw, &mut problems);
        problems.into_result(solution)
    }

    /// Read and check the Solution in the file at `path`; see [`Solution::from_yaml`].
    ///
    /// A file that cannot be read is reported as a single error naming the file.
    pub fn from_path(path: impl AsRef<std::path::Path>) -> Result<Solution, ValidationErrors> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| {
            let message = format!("cannot read {}: {error}", path.display());
            ValidationErrors::single(ValidationError::new("", message))
        })?;
        Solution::from_yaml(&text)
    }

    /// The Solution as JSON, with every default written out.
    pub fn to_json(&self) -> serde_json::Value {
        // Every part serialises to JSON: string keys, finite numbers, no custom errors.
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The Solution as YAML, with every default written out; [`Solution::from_yaml`] reads
    /// it back to an equal Solution.
    ///
    /// Goes through JSON so that "one of" parts come out as `{mqtt: ...}`, the way the
    /// format writes them (serde_yaml on its own would write YAML tags, `!mqtt`).
    pub fn to_yaml(&self) -> Result<String, serde_yaml::Error> {
        serde_yaml::to_string(&self.to_json())
    }

    /// The Solution's name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// The Solution's namespace.
    pub fn namespace(&self) -> &str {
        &self.metadata.namespace
    }

    /// `namespace/name`, the way people and logs refer to a Solution: `plant-north/pump-health`.
    pub fn qualified_name(&self) -> String {
        format!("{}/{}", self.metadata.namespace, self.metadata.name)
    }

    /// The topic of one of the Solution's streams: `sinter.plant-north.pump-health.telemetry`.
    pub fn topic_name(&self, stream: Stream) -> String {
        topic::name(&self.metadata.namespace, &self.metadata.name, stream)
    }

    /// Every topic the Solution uses, in the order data flows through them.
    pub fn topic_names(&self) -> Vec<(Stream, String)> {
        Stream::ALL
            .iter()
            .map(|stream| (*stream, self.topic_name(*stream)))
            .collect()
    }
}
