//! One reconcile of one Solution: validate, provision topics, write the configuration and
//! workloads, report in status and events; and the cleanup when a Solution is deleted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{self, finalizer};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sinter_bus::{Bus, BusError};
use sinter_core::solution::DeletionPolicy;
use sinter_core::{Solution as Validated, ValidationErrors};
use tracing::{info, warn};

use crate::crd::{Solution, SolutionStatus};
use crate::metrics::Metrics;
use crate::render::{self, Settings};
use crate::status::{self, CONFIG_READY, Observation, READY, TOPICS_READY, WORKLOADS_READY};
use crate::topics;

/// The finalizer that holds a Solution until its cleanup has run.
pub const FINALIZER: &str = "sinter.dev/cleanup";
/// The field manager of everything the operator applies.
pub const FIELD_MANAGER: &str = "sinter-operator";
/// How often a Solution that is as it should be is looked at again.
const RESYNC: Duration = Duration::from_secs(300);
/// How soon a Solution waiting for its workloads is looked at again.
const WAITING: Duration = Duration::from_secs(15);

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A call to the Kubernetes API failed.
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    /// The bus could not create or check a topic.
    #[error("topic provisioning failed: {0}")]
    Topics(#[from] BusError),
    /// The validated Solution could not be written out.
    #[error("the configuration could not be rendered: {0}")]
    Render(#[from] serde_yaml::Error),
    /// The Solution lacks the namespace, name or uid the API server gives every object.
    #[error("the Solution has no {0}")]
    Incomplete(&'static str),
    /// Adding or removing the finalizer failed, or the work inside it did.
    #[error("{0}")]
    Finalizer(#[source] Box<finalizer::Error<ReconcileError>>),
}

impl ReconcileError {
    /// A short label for metrics and event reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kubernetes_api",
            Self::Topics(_) => "topics",
            Self::Render(_) => "render",
            Self::Incomplete(_) => "incomplete_object",
            Self::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(error) | finalizer::Error::CleanupFailed(error) => {
                    error.reason()
                }
                _ => "finalizer",
            },
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    /// The Kubernetes API.
    pub client: Client,
    /// The bus whose topics the operator provisions.
    pub bus: Arc<dyn Bus>,
    /// How the workloads reach the rest of the cluster.
    pub settings: Settings,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// Reconcile counts and durations.
    pub metrics: Metrics,
    /// Consecutive failures per Solution (`namespace/name`), for the backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context reconciling through `client` and `bus`.
    pub fn new(
        client: Client,
        bus: Arc<dyn Bus>,
        settings: Settings,
        recorder: Recorder,
        metrics: Metrics,
    ) -> Self {
        Context {
            client,
            bus,
            settings,
            recorder,
            metrics,
            failures: Mutex::default(),
        }
    }

    fn failures(&self, key: &str, failed: bool) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failed {
            let count = failures.entry(key.to_owned()).or_default();
            *count += 1;
            *count
        } else {
            failures.remove(key);
            0
        }
    }
}

/// Reconcile `solution`: the Controller's reconciler.
pub async fn reconcile(
    solution: Arc<Solution>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let key = format!(
        "{}/{}",
        solution.namespace().unwrap_or_default(),
        solution.name_any()
    );
    let result = reconcile_inner(solution.clone(), &ctx).await;
    ctx.metrics.record(
        started.elapsed(),
        result.as_ref().err().map(ReconcileError::reason),
    );
    ctx.failures(&key, result.is_err());
    if let Err(error) = &result {
        warn!(solution = %key, reason = error.reason(), error = %error, "Reconcile failed.");
        let event = warning("ReconcileFailed", error.to_string());
        publish(&ctx, &solution, event).await;
        report_failure(&ctx, &solution, error).await;
    }
    result
}

/// Puts a failed reconcile into the status, so that `kubectl get` shows it: `Ready` (and
/// `TopicsReady` when the bus failed) go false with the error. Best effort: when the API
/// server is what fails, the event and the log are all there is.
async fn report_failure(ctx: &Context, solution: &Solution, error: &ReconcileError) {
    let (Some(namespace), name) = (solution.namespace(), solution.name_any()) else {
        return;
    };
    let previous = solution.status.clone().unwrap_or_default();
    let generation = solution.metadata.generation;
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let message = error.to_string();
    let mut observations = vec![Observation::fails(
        READY,
        "ReconcileFailed",
        message.clone(),
    )];
    if error.reason() == "topics" {
        observations.push(Observation::fails(TOPICS_READY, "BusUnavailable", message));
    }
    let updated = status::next(&previous, generation, &observations, &now);
    let phase = match previous.phase.as_deref() {
        None | Some(status::phase::PENDING) => status::phase::PENDING,
        Some(status::phase::INVALID) => status::phase::INVALID,
        Some(_) => status::phase::DEGRADED,
    };
    let status = SolutionStatus {
        phase: Some(phase.to_owned()),
        conditions: status::merge(&previous.conditions, updated),
        ..previous.clone()
    };
    if let Err(error) = write_status(ctx, &namespace, &name, &previous, status).await {
        warn!(solution = %format!("{namespace}/{name}"), error = %error,
            "The failure could not be written into the status.");
    }
}

/// When to retry a failed reconcile: 5 s after the first failure, doubling to at most
/// 5 min, with jitter so that many failing Solutions do not retry in step.
pub fn error_policy(solution: Arc<Solution>, _error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let key = format!(
        "{}/{}",
        solution.namespace().unwrap_or_default(),
        solution.name_any()
    );
    let failures = ctx
        .failures
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
        .copied()
        .unwrap_or(1);
    Action::requeue(backoff(failures))
}

/// The delay before retry number `failures` (1 for the first).
pub fn backoff(failures: u32) -> Duration {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(5))
        .with_max_delay(Duration::from_secs(300))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(usize::try_from(failures.saturating_sub(1)).unwrap_or(usize::MAX))
        .unwrap_or(Duration::from_secs(300))
}

async fn reconcile_inner(solution: Arc<Solution>, ctx: &Context) -> Result<Action, ReconcileError> {
    let namespace = solution
        .namespace()
        .ok_or(ReconcileError::Incomplete("namespace"))?;
    let api: Api<Solution> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, solution, |event| async move {
        match event {
            finalizer::Event::Apply(solution) => apply(&solution, ctx).await,
            finalizer::Event::Cleanup(solution) => cleanup(&solution, ctx).await,
        }
    })
    .await
    .map_err(|error| ReconcileError::Finalizer(Box::new(error)))
}

/// The resource in the form the Solution reader takes: what the user applied.
pub fn validate(solution: &Solution) -> Result<Validated, ValidationErrors> {
    let document = serde_json::json!({
        "apiVersion": "sinter.dev/v1alpha1",
        "kind": "Solution",
        "metadata": {
            "name": solution.metadata.name,
            "namespace": solution.metadata.namespace,
            "generation": solution.metadata.generation,
            "labels": solution.metadata.labels,
        },
        "spec": solution.spec,
    });
    // A JSON value is valid YAML; the reader reports every mistake with its path.
    Validated::from_yaml(&document.to_string())
}

async fn apply(solution: &Solution, ctx: &Context) -> Result<Action, ReconcileError> {
    let name = solution.name_any();
    let namespace = solution
        .namespace()
        .ok_or(ReconcileError::Incomplete("namespace"))?;
    let generation = solution.metadata.generation;
    let previous = solution.status.clone().unwrap_or_default();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let changed_spec = previous.observed_generation != generation;

    let validated = match validate(solution) {
        Ok(validated) => validated,
        Err(errors) => {
            let message = format!("{} problem(s): {errors}", errors.len());
            let invalid = |kind| Observation::fails(kind, "InvalidSpec", message.clone());
            let status = SolutionStatus {
                observed_generation: generation,
                phase: Some(status::phase::INVALID.to_owned()),
                conditions: status::next(
                    &previous,
                    generation,
                    &[invalid(READY), invalid(CONFIG_READY)],
                    &now,
                ),
                topics: previous.topics,
                config_digest: previous.config_digest.clone(),
            };
            if changed_spec || previous.phase.as_deref() != Some(status::phase::INVALID) {
                warn!(solution = %format!("{namespace}/{name}"), errors = %errors,
                    "Solution does not validate; nothing changed.");
                publish(ctx, solution, warning("InvalidSpec", message.clone())).await;
            }
            write_status(ctx, &namespace, &name, &previous, status).await?;
            // Only a new spec can fix it.
            return Ok(Action::await_change());
        }
    };

    let report = topics::reconcile(ctx.bus.as_ref(), &validated).await?;
    if !report.created.is_empty() {
        let note = format!("created {}", report.created.join(", "));
        publish(ctx, solution, normal("TopicsCreated", note)).await;
    }
    let topics_observation = if report.conflicts.is_empty() {
        Observation::holds(
            TOPICS_READY,
            "TopicsReady",
            format!("{} topics as the spec asks", report.ready.len()),
        )
    } else {
        let message = format!(
            "{}; partitions of an existing topic are never changed by the operator",
            report.conflicts.join("; ")
        );
        let known = previous.conditions.iter().any(|c| {
            c.type_ == TOPICS_READY && c.reason == "TopicConflict" && c.message == message
        });
        if !known {
            publish(ctx, solution, warning("TopicConflict", message.clone())).await;
        }
        Observation::fails(TOPICS_READY, "TopicConflict", message)
    };

    let owner = solution
        .controller_owner_ref(&())
        .ok_or(ReconcileError::Incomplete("uid"))?;
    let rendered = render::render(&validated, owner, &ctx.settings)?;
    apply_object::<ConfigMap>(ctx, &namespace, &rendered.config_map).await?;
    for service in &rendered.services {
        apply_object::<Service>(ctx, &namespace, service).await?;
    }
    let mut waiting = Vec::new();
    for deployment in &rendered.deployments {
        let applied = apply_object::<Deployment>(ctx, &namespace, deployment).await?;
        if !rolled_out(&applied) {
            waiting.push(applied.name_any());
        }
    }
    if previous.config_digest.as_deref() != Some(rendered.digest.as_str()) {
        let note = format!(
            "configuration {} written to {}; workloads roll to it",
            rendered.digest,
            render::config_map_name(&name)
        );
        publish(ctx, solution, normal("ConfigUpdated", note)).await;
    }

    let workloads_observation = if waiting.is_empty() {
        Observation::holds(
            WORKLOADS_READY,
            "WorkloadsReady",
            "every Deployment is ready",
        )
    } else {
        Observation::fails(
            WORKLOADS_READY,
            "WorkloadsPending",
            format!("waiting for {}", waiting.join(", ")),
        )
    };
    let topics_ok = topics_observation.holds;
    let ready = topics_ok && waiting.is_empty();
    let (phase, ready_observation) = if ready {
        (
            status::phase::READY,
            Observation::holds(
                READY,
                "Ready",
                "topics, configuration and workloads are ready",
            ),
        )
    } else if !topics_ok {
        (
            status::phase::DEGRADED,
            Observation::fails(READY, "TopicConflict", topics_observation.message.clone()),
        )
    } else {
        (
            status::phase::PENDING,
            Observation::fails(
                READY,
                "WorkloadsPending",
                workloads_observation.message.clone(),
            ),
        )
    };
    let config_observation = Observation::holds(
        CONFIG_READY,
        "ConfigWritten",
        format!(
            "configuration {} in {}",
            rendered.digest,
            render::config_map_name(&name)
        ),
    );
    let status = SolutionStatus {
        observed_generation: generation,
        phase: Some(phase.to_owned()),
        conditions: status::next(
            &previous,
            generation,
            &[
                ready_observation,
                topics_observation,
                config_observation,
                workloads_observation,
            ],
            &now,
        ),
        topics: Some(i32::try_from(report.ready.len()).unwrap_or(i32::MAX)),
        config_digest: Some(rendered.digest.clone()),
    };
    if changed_spec {
        info!(solution = %format!("{namespace}/{name}"), generation, phase,
            digest = %rendered.digest, "Solution reconciled.");
    }
    write_status(ctx, &namespace, &name, &previous, status).await?;
    Ok(Action::requeue(if ready { RESYNC } else { WAITING }))
}

async fn cleanup(solution: &Solution, ctx: &Context) -> Result<Action, ReconcileError> {
    let name = solution.name_any();
    let namespace = solution
        .namespace()
        .ok_or(ReconcileError::Incomplete("namespace"))?;
    // The policy is read from the spec as written, so that even a Solution that never
    // validated is cleaned up as it asks.
    let policy = match solution.spec.deletion_policy {
        Some(crate::crd::DeletionPolicy::Delete) => DeletionPolicy::Delete,
        _ => DeletionPolicy::Retain,
    };
    match policy {
        DeletionPolicy::Delete => {
            let deleted = topics::delete(ctx.bus.as_ref(), &namespace, &name).await?;
            info!(solution = %format!("{namespace}/{name}"), topics = deleted.len(),
                "Solution deleted with its topics.");
            // Limitation: the rows the services keep for the Solution in PostgreSQL
            // (recommendations, audit trail, registry, checkpoints) stay; the operator holds
            // no database credentials. They cost disk until an administrator drops them.
            let note = format!(
                "deletionPolicy Delete: deleted {}; stored rows in PostgreSQL are kept",
                deleted.join(", ")
            );
            publish(ctx, solution, normal("TopicsDeleted", note)).await;
        }
        DeletionPolicy::Retain => {
            info!(solution = %format!("{namespace}/{name}"), "Solution deleted; topics kept.");
            let note = "deletionPolicy Retain: topics and stored data are kept".to_owned();
            publish(ctx, solution, normal("Retained", note)).await;
        }
    }
    Ok(Action::await_change())
}

/// Server-side apply of `object`, owned by the operator's field manager.
async fn apply_object<K>(ctx: &Context, namespace: &str, object: &K) -> Result<K, ReconcileError>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let name = object
        .meta()
        .name
        .clone()
        .ok_or(ReconcileError::Incomplete("name"))?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Ok(api.patch(&name, &params, &Patch::Apply(object)).await?)
}

/// Whether the Deployment's current generation has every replica ready.
fn rolled_out(deployment: &Deployment) -> bool {
    let wanted = deployment.spec.replicas.unwrap_or(1);
    let Some(status) = &deployment.status else {
        return wanted == 0;
    };
    let current = status.observed_generation >= deployment.metadata.generation;
    current
        && status.updated_replicas.unwrap_or(0) >= wanted
        && status.ready_replicas.unwrap_or(0) >= wanted
}

async fn write_status(
    ctx: &Context,
    namespace: &str,
    name: &str,
    previous: &SolutionStatus,
    status: SolutionStatus,
) -> Result<(), ReconcileError> {
    if *previous == status {
        return Ok(());
    }
    let api: Api<Solution> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = serde_json::json!({ "status": status });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

fn normal(reason: &str, note: String) -> Event {
    Event {
        type_: EventType::Normal,
        reason: reason.to_owned(),
        note: Some(note),
        action: "Reconcile".to_owned(),
        secondary: None,
    }
}

fn warning(reason: &str, note: String) -> Event {
    Event {
        type_: EventType::Warning,
        ..normal(reason, note)
    }
}

/// Publish an event about `solution`; a failure is logged, never fails the reconcile.
async fn publish(ctx: &Context, solution: &Solution, mut event: Event) {
    // The API server refuses notes over 1 kB.
    if let Some(note) = &mut event.note
        && note.len() > 1000
    {
        let mut end = 997;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str("...");
    }
    if let Err(error) = ctx
        .recorder
        .publish(&event, &solution.object_ref(&()))
        .await
    {
        warn!(solution = %solution.name_any(), reason = %event.reason, error = %error,
            "Event could not be published.");
    }
}
