//! What a valid Solution becomes in the cluster: its ConfigMap, and a Deployment and a
//! Service per Sinter service, all owned by the Solution so deleting it removes them.
//!
//! Each Solution gets its own four Deployments in its namespace. A Solution's load, its
//! replicas and its resources are then its own, a broken or heavy Solution cannot starve
//! another, and a changed Solution rolls only its own pods.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvFromSource,
    EnvVar, EnvVarSource, GRPCAction, HTTPGetAction, LocalObjectReference, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretEnvSource,
    SecretKeySelector, SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sha2::{Digest, Sha256};
use sinter_core::solution::Workload;

/// The gRPC port every service listens on.
pub const GRPC_PORT: i32 = 50051;
/// The port of `/metrics` and `/health`.
pub const METRICS_PORT: i32 = 9464;
/// The ingestion service's HTTP readings port.
pub const HTTP_PORT: i32 = 8080;
/// The annotation on pod templates that carries the configuration's digest, so that a new
/// configuration rolls the pods and they load it.
pub const DIGEST_ANNOTATION: &str = "sinter.dev/config-digest";
/// The label naming the Solution a resource belongs to.
pub const SOLUTION_LABEL: &str = "sinter.dev/solution";
/// The unprivileged user the services run as; they need no file of their own to write.
const RUN_AS_USER: i64 = 65532;
/// Where the services find the Solution file.
const CONFIG_DIR: &str = "/etc/sinter/solution";
const CONFIG_KEY: &str = "solution.yaml";

/// How the operator's workloads reach the rest of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The image holding the `sinter-*` binaries.
    pub image: String,
    /// `Always`, `IfNotPresent` or `Never`; the cluster's default when none.
    pub image_pull_policy: Option<String>,
    /// Secrets (in each Solution's namespace) for pulling the image.
    pub image_pull_secrets: Vec<String>,
    /// The bus every service uses: `kafka://host:port,...`.
    pub bus: String,
    /// The Secret, in each Solution's namespace, whose keys `analytics`, `context` and
    /// `orchestrator` hold the services' PostgreSQL URLs.
    pub database_secret: String,
    /// The Secret, in each Solution's namespace, whose key `tokens` holds the bearer
    /// tokens the gRPC APIs accept; none means no authentication.
    pub token_secret: Option<String>,
    /// OTLP endpoint for traces and metrics; none means none are exported.
    pub otel_endpoint: Option<String>,
    /// `text` or `json`.
    pub log_format: String,
}

/// A validated Solution, ready to render.
pub struct Rendered {
    /// The ConfigMap holding the rendered Solution.
    pub config_map: ConfigMap,
    /// One Deployment per service, in data-flow order.
    pub deployments: Vec<Deployment>,
    /// One Service per Deployment.
    pub services: Vec<Service>,
    /// The digest of the rendered configuration.
    pub digest: String,
}

/// Everything the cluster needs for `solution`, owned by `owner`.
pub fn render(
    solution: &sinter_core::Solution,
    owner: OwnerReference,
    settings: &Settings,
) -> Result<Rendered, serde_yaml::Error> {
    let config = config_text(solution)?;
    // The services do not read `spec.workloads`: a change of replicas or resources rolls
    // only the Deployment it concerns, not all four.
    let mut services_see = solution.clone();
    services_see.spec.workloads = sinter_core::solution::Workloads::default();
    let digest = digest(&config_text(&services_see)?);
    let name = solution.name();
    let namespace = solution.namespace();
    let config_map = ConfigMap {
        metadata: meta(
            &config_map_name(name),
            namespace,
            labels(name, None),
            &owner,
        ),
        data: Some(BTreeMap::from([(CONFIG_KEY.to_owned(), config)])),
        ..ConfigMap::default()
    };
    let mut deployments = Vec::new();
    let mut services = Vec::new();
    for (service, workload) in solution.spec.workloads.by_service() {
        let workload_name = workload_name(name, service);
        let labels = labels(name, Some(service));
        let metadata = meta(&workload_name, namespace, labels.clone(), &owner);
        deployments.push(deployment(
            metadata.clone(),
            service,
            workload,
            name,
            &digest,
            settings,
        ));
        services.push(service_for(metadata, service));
    }
    Ok(Rendered {
        config_map,
        deployments,
        services,
        digest,
    })
}

/// The Solution's ConfigMap: `<solution>-config`.
pub fn config_map_name(solution: &str) -> String {
    format!("{solution}-config")
}

/// A service's Deployment and Service: `<solution>-<service>`.
pub fn workload_name(solution: &str, service: &str) -> String {
    format!("{solution}-{service}")
}

/// The Solution as the services load it: every default written out, without the parts
/// that change with no effect on them (generation, labels, annotations, status).
fn config_text(solution: &sinter_core::Solution) -> Result<String, serde_yaml::Error> {
    let mut solution = solution.clone();
    solution.metadata.generation = None;
    solution.metadata.labels.clear();
    solution.metadata.annotations.clear();
    solution.status = None;
    solution.to_yaml()
}

fn digest(text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    hash.iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn labels(solution: &str, service: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("app.kubernetes.io/part-of".to_owned(), "sinter".to_owned()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "sinter-operator".to_owned(),
        ),
        ("app.kubernetes.io/instance".to_owned(), solution.to_owned()),
        (SOLUTION_LABEL.to_owned(), solution.to_owned()),
    ]);
    if let Some(service) = service {
        labels.insert(
            "app.kubernetes.io/name".to_owned(),
            format!("sinter-{service}"),
        );
    }
    labels
}

fn meta(
    name: &str,
    namespace: &str,
    labels: BTreeMap<String, String>,
    owner: &OwnerReference,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    }
}

fn selector(metadata: &ObjectMeta) -> BTreeMap<String, String> {
    let labels = metadata.labels.clone().unwrap_or_default();
    labels
        .into_iter()
        .filter(|(key, _)| key == SOLUTION_LABEL || key == "app.kubernetes.io/name")
        .collect()
}

fn deployment(
    metadata: ObjectMeta,
    service: &str,
    workload: &Workload,
    solution: &str,
    digest: &str,
    settings: &Settings,
) -> Deployment {
    let mut volumes = vec![Volume {
        name: "solution".to_owned(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map_name(solution),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }];
    let mut mounts = vec![mount("solution", CONFIG_DIR)];
    if let Some(secret) = &settings.token_secret {
        volumes.push(Volume {
            name: "tokens".to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.clone()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(mount("tokens", "/etc/sinter/tokens"));
    }
    let ports = named_ports(service)
        .into_iter()
        .map(|(name, number)| port(name, number))
        .collect();
    let container = Container {
        name: service.to_owned(),
        image: Some(settings.image.clone()),
        image_pull_policy: settings.image_pull_policy.clone(),
        env_from: (!workload.env_from_secrets.is_empty()).then(|| {
            workload
                .env_from_secrets
                .iter()
                .map(|secret| EnvFromSource {
                    secret_ref: Some(SecretEnvSource {
                        name: secret.clone(),
                        optional: Some(false),
                    }),
                    ..EnvFromSource::default()
                })
                .collect()
        }),
        command: Some(vec![format!("sinter-{service}")]),
        args: Some(vec![
            "--solution".to_owned(),
            format!("{CONFIG_DIR}/{CONFIG_KEY}"),
        ]),
        env: Some(environment(service, settings)),
        ports: Some(ports),
        readiness_probe: Some(Probe {
            grpc: Some(GRPCAction {
                port: GRPC_PORT,
                ..GRPCAction::default()
            }),
            period_seconds: Some(5),
            ..Probe::default()
        }),
        liveness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/health".to_owned()),
                port: IntOrString::String("metrics".to_owned()),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(10),
            ..Probe::default()
        }),
        resources: Some(ResourceRequirements {
            requests: quantities(&workload.resources.requests),
            limits: quantities(&workload.resources.limits),
            ..ResourceRequirements::default()
        }),
        volume_mounts: Some(mounts),
        // What the "restricted" Pod Security Standard asks of a container.
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    let match_labels = selector(&metadata);
    let template_labels = metadata.labels.clone();
    Deployment {
        metadata,
        spec: DeploymentSpec {
            replicas: Some(i32::from(workload.replicas)),
            selector: LabelSelector {
                match_labels: Some(match_labels),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: template_labels,
                    annotations: Some(BTreeMap::from([(
                        DIGEST_ANNOTATION.to_owned(),
                        digest.to_owned(),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUN_AS_USER),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_owned(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    image_pull_secrets: (!settings.image_pull_secrets.is_empty()).then(|| {
                        settings
                            .image_pull_secrets
                            .iter()
                            .map(|name| LocalObjectReference { name: name.clone() })
                            .collect()
                    }),
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
}

fn environment(service: &str, settings: &Settings) -> Vec<EnvVar> {
    let mut env = vec![
        plain("SINTER_BUS", &settings.bus),
        plain("SINTER_GRPC_ADDR", &format!("0.0.0.0:{GRPC_PORT}")),
        plain("SINTER_METRICS_ADDR", &format!("0.0.0.0:{METRICS_PORT}")),
        plain("SINTER_LOG_FORMAT", &settings.log_format),
    ];
    if service == "ingest" {
        env.push(plain("SINTER_HTTP_ADDR", &format!("0.0.0.0:{HTTP_PORT}")));
    } else {
        env.push(EnvVar {
            name: format!("SINTER_{}_DATABASE_URL", service.to_uppercase()),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: settings.database_secret.clone(),
                    key: service.to_owned(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
    }
    if settings.token_secret.is_some() {
        env.push(plain("SINTER_TOKEN_FILE", "/etc/sinter/tokens/tokens"));
    }
    if let Some(endpoint) = &settings.otel_endpoint {
        env.push(plain("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint));
        env.push(plain("OTEL_SERVICE_NAME", &format!("sinter-{service}")));
    }
    env
}

fn service_for(metadata: ObjectMeta, service: &str) -> Service {
    let ports = named_ports(service)
        .into_iter()
        .map(|(name, number)| service_port(name, number))
        .collect();
    let selector = selector(&metadata);
    Service {
        metadata,
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The ports a service listens on, by name: gRPC and metrics, and HTTP readings for ingest.
fn named_ports(service: &str) -> Vec<(&'static str, i32)> {
    let mut ports = vec![("grpc", GRPC_PORT), ("metrics", METRICS_PORT)];
    if service == "ingest" {
        ports.push(("http", HTTP_PORT));
    }
    ports
}

fn plain(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..EnvVar::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}

fn port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: number,
        ..ContainerPort::default()
    }
}

fn service_port(name: &str, number: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port: number,
        target_port: Some(IntOrString::String(name.to_owned())),
        ..ServicePort::default()
    }
}

fn quantities(values: &BTreeMap<String, String>) -> Option<BTreeMap<String, Quantity>> {
    (!values.is_empty()).then(|| {
        values
            .iter()
            .map(|(name, value)| (name.clone(), Quantity(value.clone())))
            .collect()
    })
}
