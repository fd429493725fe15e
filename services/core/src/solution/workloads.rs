//! `spec.workloads`: how many replicas of each service a Solution runs in a cluster, and
//! the resources each asks for. The embedded mode ignores it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::error::Problems;
use super::names;
use super::node::Node;
use super::path::Path;
use super::raw::{RawResources, RawWorkload, RawWorkloads};
use super::scalar::Scalar;

/// The resources a container may name.
const RESOURCE_NAMES: [&str; 3] = ["cpu", "memory", "ephemeral-storage"];

/// Replicas and resources per service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Workloads {
    /// The ingestion service.
    pub ingest: Workload,
    /// The analytics service.
    pub analytics: Workload,
    /// The context enrichment service.
    pub context: Workload,
    /// The process orchestration service.
    pub orchestrator: Workload,
}

impl Default for Workloads {
    fn default() -> Self {
        let small = |cpu: &str, memory: &str, limit: &str| Workload {
            replicas: 1,
            resources: Resources {
                requests: BTreeMap::from([
                    ("cpu".to_owned(), cpu.to_owned()),
                    ("memory".to_owned(), memory.to_owned()),
                ]),
                limits: BTreeMap::from([("memory".to_owned(), limit.to_owned())]),
            },
            env_from_secrets: Vec::new(),
        };
        Workloads {
            ingest: small("100m", "128Mi", "512Mi"),
            analytics: small("200m", "256Mi", "1Gi"),
            context: small("100m", "128Mi", "512Mi"),
            orchestrator: small("100m", "128Mi", "512Mi"),
        }
    }
}

impl Workloads {
    /// Each service's name (`ingest`, ...) with its workload, in the order data flows.
    pub fn by_service(&self) -> [(&'static str, &Workload); 4] {
        [
            ("ingest", &self.ingest),
            ("analytics", &self.analytics),
            ("context", &self.context),
            ("orchestrator", &self.orchestrator),
        ]
    }
}

/// One service's Deployment settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    /// Pods; 1 unless told. Analytics and orchestrator share their partitions among them.
    pub replicas: u16,
    /// Kubernetes resource requests and limits.
    pub resources: Resources,
    /// Secrets (in the Solution's namespace) whose keys become the pods' environment:
    /// where `urlEnv` of a context provider and `secretRef.env` of a webhook are found.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_from_secrets: Vec<String>,
}

/// Kubernetes resource quantities by resource name (`cpu: 250m`, `memory: 256Mi`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Resources {
    /// What the scheduler reserves.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
    /// The most the container may use.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, String>,
}

pub(crate) fn build(raw: Node<RawWorkloads>, path: &Path, problems: &mut Problems) -> Workloads {
    let defaults = Workloads::default();
    let Some(raw) = raw.take(path, problems) else {
        return defaults;
    };
    Workloads {
        ingest: workload(raw.ingest, defaults.ingest, &path.field("ingest"), problems),
        analytics: workload(
            raw.analytics,
            defaults.analytics,
            &path.field("analytics"),
            problems,
        ),
        context: workload(
            raw.context,
            defaults.context,
            &path.field("context"),
            problems,
        ),
        orchestrator: workload(
            raw.orchestrator,
            defaults.orchestrator,
            &path.field("orchestrator"),
            problems,
        ),
    }
}

fn workload(
    raw: Node<RawWorkload>,
    defaults: Workload,
    path: &Path,
    problems: &mut Problems,
) -> Workload {
    let Some(raw) = raw.take(path, problems) else {
        return defaults;
    };
    let replicas_path = path.field("replicas");
    let replicas = raw
        .replicas
        .count(0, &replicas_path, problems)
        .and_then(|count| match u16::try_from(count) {
            Ok(count) if count <= 100 => Some(count),
            _ => {
                problems.report(&replicas_path, "must be at most 100");
                None
            }
        })
        .unwrap_or(defaults.replicas);
    let resources = match raw.resources.take(&path.field("resources"), problems) {
        Some(resources) => build_resources(resources, &path.field("resources"), problems),
        None => defaults.resources,
    };
    let secrets_path = path.field("envFromSecrets");
    let mut env_from_secrets = Vec::new();
    let listed = raw
        .env_from_secrets
        .take(&secrets_path, problems)
        .unwrap_or_default();
    for (index, name) in listed.iter().enumerate() {
        let at = secrets_path.index(index);
        let Some(name) = name.non_empty_text(&at, problems) else {
            continue;
        };
        if names::is_dns_subdomain(&name) {
            env_from_secrets.push(name);
        } else {
            problems.report(
                &at,
                format!("{name:?} is not a Secret name (a DNS-1123 subdomain)"),
            );
        }
    }
    Workload {
        replicas,
        resources,
        env_from_secrets,
    }
}

fn build_resources(raw: RawResources, path: &Path, problems: &mut Problems) -> Resources {
    Resources {
        requests: quantities(raw.requests, &path.field("requests"), problems),
        limits: quantities(raw.limits, &path.field("limits"), problems),
    }
}

fn quantities(
    raw: Node<BTreeMap<String, Scalar>>,
    path: &Path,
    problems: &mut Problems,
) -> BTreeMap<String, String> {
    let mut checked = BTreeMap::new();
    for (name, value) in raw.take(path, problems).unwrap_or_default() {
        let field = path.field(&name);
        if !RESOURCE_NAMES.contains(&name.as_str()) {
            problems.report(
                &field,
                format!(
                    "unknown resource (expected one of {})",
                    RESOURCE_NAMES.join(", ")
                ),
            );
            continue;
        }
        let text = match value.value() {
            Some(serde_yaml::Value::Number(number)) => Some(number.to_string()),
            _ => value.text(&field, problems),
        };
        let Some(text) = text else { continue };
        if is_quantity(&text) {
            checked.insert(name, text);
        } else {
            problems.report(
                &field,
                format!("{text:?} is not a Kubernetes quantity (expected e.g. 250m, 1.5, 512Mi)"),
            );
        }
    }
    checked
}

/// A Kubernetes resource quantity: a non-negative decimal number with an optional suffix.
fn is_quantity(text: &str) -> bool {
    const SUFFIXES: [&str; 14] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P",
    ];
    let number = SUFFIXES
        .iter()
        .find_map(|suffix| text.strip_suffix(suffix))
        .unwrap_or(text);
    let mut parts = number.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let fraction = parts.next();
    let digits = |part: &str| part.chars().all(|c| c.is_ascii_digit());
    !number.is_empty()
        && digits(whole)
        && fraction.is_none_or(|fraction| !fraction.is_empty() && digits(fraction))
        && !(whole.is_empty() && fraction.is_none())
}

#[cfg(test)]
mod tests {
    use super::super::Solution;
    use super::super::tests::{DEVICES, document, spec_errors};
    use super::*;

    #[test]
    fn quantities_are_checked() {
        for good in ["250m", "1", "1.5", "512Mi", "2Gi", ".5", "100k"] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["", "m", "1.", "-1", "1 Gi", "1GB", "abc"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn defaults_and_overrides() {
        let yaml = document(&format!(
            "{DEVICES}    workloads:\n      analytics: {{replicas: 3, resources: {{requests: \
             {{cpu: 1, memory: 1Gi}}}}}}\n      context: {{envFromSecrets: [erp-db]}}\n"
        ));
        let workloads = Solution::from_yaml(&yaml).expect("valid").spec.workloads;
        assert_eq!(workloads.ingest, Workloads::default().ingest);
        assert_eq!(workloads.analytics.replicas, 3);
        assert_eq!(workloads.analytics.resources.requests["cpu"], "1");
        assert_eq!(workloads.analytics.resources.requests["memory"], "1Gi");
        assert!(workloads.analytics.resources.limits.is_empty());
        assert_eq!(workloads.context.env_from_secrets, ["erp-db"]);
    }

    #[test]
    fn mistakes_name_the_field() {
        let found = spec_errors(
            "    workloads:\n      ingest: {replicas: 500, resources: {requests: {cpu: lots, \
             gpu: 1}}, envFromSecrets: [Bad_Name]}\n      planner: {}\n",
        );
        assert_eq!(
            found,
            [
                "spec.workloads.planner: unknown field",
                "spec.workloads.ingest.replicas: must be at most 100",
                "spec.workloads.ingest.resources.requests.cpu: \"lots\" is not a Kubernetes \
                 quantity (expected e.g. 250m, 1.5, 512Mi)",
                "spec.workloads.ingest.resources.requests.gpu: unknown resource (expected one \
                 of cpu, memory, ephemeral-storage)",
                "spec.workloads.ingest.envFromSecrets[0]: \"Bad_Name\" is not a Secret name (a \
                 DNS-1123 subdomain)",
            ]
        );
    }
}
