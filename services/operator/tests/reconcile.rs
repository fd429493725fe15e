//! Reconciles against a mocked Kubernetes API: each case is a scenario of the requests the
//! operator must make, in order, with checks on their bodies. A missing call, an unexpected
//! one or a body that differs fails the case. Topics go to the embedded bus, which passes
//! the same contract suite as Kafka.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};
use sinter_bus::embedded::EmbeddedBus;
use sinter_bus::{Bus, TopicSpec};
use sinter_operator::crd::Solution;
use sinter_operator::reconcile::{self, Context, FINALIZER};
use sinter_operator::render::Settings;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const EXAMPLE: &str = include_str!("../../../examples/pump-health.yaml");
const BASE: &str = "/apis/sinter.dev/v1alpha1/namespaces/plant-north/solutions/pump-health";
const CORE: &str = "/api/v1/namespaces/plant-north";
const APPS: &str = "/apis/apps/v1/namespaces/plant-north";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/plant-north/events";
const SERVICES: [&str; 4] = ["ingest", "analytics", "context", "orchestrator"];

/// One expected request and the answer to it.
struct Step {
    method: &'static str,
    path: String,
    check: Box<dyn Fn(&Value) + Send>,
    reply: Reply,
}

enum Reply {
    /// Answer with this JSON.
    Json(Value),
    /// Answer with the request's body, as the API server echoes an applied object.
    Echo,
    /// Echo a Deployment with every replica ready.
    EchoReady,
    /// Answer a status patch with the Solution carrying the patched status.
    Status,
    /// Fail with this status code.
    Fail(StatusCode),
}

fn step(method: &'static str, path: impl Into<String>, reply: Reply) -> Step {
    Step {
        method,
        path: path.into(),
        check: Box::new(|_| {}),
        reply,
    }
}

impl Step {
    fn checking(mut self, check: impl Fn(&Value) + Send + 'static) -> Self {
        self.check = Box::new(check);
        self
    }
}

fn event(reason: &'static str) -> Step {
    step("POST", EVENTS, Reply::Echo).checking(move |body| {
        assert_eq!(body["reason"], reason, "event: {body}");
        assert_eq!(body["regarding"]["name"], "pump-health", "event: {body}");
    })
}

fn applies(ready: bool) -> Vec<Step> {
    let mut steps = vec![
        step(
            "PATCH",
            format!("{CORE}/configmaps/pump-health-config"),
            Reply::Echo,
        )
        .checking(|body| {
            let config = body["data"]["solution.yaml"]
                .as_str()
                .expect("solution.yaml");
            assert!(config.contains("name: pump-health"), "{config}");
            assert_eq!(body["metadata"]["ownerReferences"][0]["kind"], "Solution");
            assert_eq!(body["metadata"]["ownerReferences"][0]["controller"], true);
        }),
    ];
    for service in SERVICES {
        steps.push(
            step(
                "PATCH",
                format!("{CORE}/services/pump-health-{service}"),
                Reply::Echo,
            )
            .checking(move |body| {
                let selector = &body["spec"]["selector"];
                assert_eq!(selector["sinter.dev/solution"], "pump-health");
                assert_eq!(
                    selector["app.kubernetes.io/name"],
                    format!("sinter-{service}")
                );
                let ports = body["spec"]["ports"].as_array().expect("ports").len();
                assert_eq!(ports, if service == "ingest" { 3 } else { 2 }, "{body}");
            }),
        );
    }
    for service in SERVICES {
        let reply = if ready { Reply::EchoReady } else { Reply::Echo };
        steps.push(
            step(
                "PATCH",
                format!("{APPS}/deployments/pump-health-{service}"),
                reply,
            )
            .checking(move |body| {
                let container = &body["spec"]["template"]["spec"]["containers"][0];
                assert_eq!(container["command"][0], format!("sinter-{service}"));
                assert_eq!(container["readinessProbe"]["grpc"]["port"], 50051);
                let annotations = &body["spec"]["template"]["metadata"]["annotations"];
                assert!(annotations["sinter.dev/config-digest"].is_string());
                let pod = &body["spec"]["template"]["spec"];
                assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
                assert_eq!(
                    pod["securityContext"]["seccompProfile"]["type"],
                    "RuntimeDefault"
                );
                assert_eq!(
                    container["securityContext"]["allowPrivilegeEscalation"],
                    false
                );
                assert_eq!(
                    container["securityContext"]["capabilities"]["drop"][0],
                    "ALL"
                );
                assert_eq!(pod["imagePullSecrets"][0]["name"], "registry");
                assert_eq!(container["imagePullPolicy"], "IfNotPresent");
                if service == "context" {
                    assert_eq!(container["envFrom"][0]["secretRef"]["name"], "erp-db");
                } else {
                    assert!(container["envFrom"].is_null(), "{container}");
                }
                if service == "analytics" {
                    assert_eq!(body["spec"]["replicas"], 2, "from spec.workloads");
                    assert_eq!(container["resources"]["requests"]["cpu"], "500m");
                }
            }),
        );
    }
    steps
}

async fn play(mut handle: Handle, steps: Vec<Step>) -> Vec<Value> {
    let mut bodies = Vec::new();
    for (index, step) in steps.into_iter().enumerate() {
        let next = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
        let Ok(Some((request, respond))) = next else {
            panic!("missing call {index}: {} {}", step.method, step.path);
        };
        let method = request.method().to_string();
        let uri = request.uri().to_string();
        let path = request.uri().path().to_owned();
        assert_eq!(
            (method.as_str(), path.as_str()),
            (step.method, step.path.as_str()),
            "call {index} was {method} {uri}"
        );
        if step.method == "PATCH" && !step.path.ends_with("/status") && !path.starts_with(BASE) {
            assert!(
                uri.contains("fieldManager=sinter-operator"),
                "server-side apply: {uri}"
            );
        }
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .expect("request body");
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON body")
        };
        (step.check)(&body);
        let (status, reply) = match step.reply {
            Reply::Json(value) => (StatusCode::OK, value),
            Reply::Echo => (StatusCode::OK, with_generation(body.clone())),
            Reply::EchoReady => (StatusCode::OK, ready(with_generation(body.clone()))),
            Reply::Status => {
                let mut solution = serde_json::to_value(stored(|_| {})).expect("json");
                solution["status"] = body["status"].clone();
                (StatusCode::OK, solution)
            }
            Reply::Fail(code) => (code, failure(code)),
        };
        bodies.push(body);
        let response = Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&reply).expect("reply")))
            .expect("response");
        respond.send_response(response);
    }
    if let Ok(Some((request, _))) =
        tokio::time::timeout(Duration::from_millis(300), handle.next_request()).await
    {
        let what = format!("{} {}", request.method(), request.uri());
        let body = request
            .into_body()
            .collect_bytes()
            .await
            .unwrap_or_default();
        panic!("unexpected call: {what} {}", String::from_utf8_lossy(&body));
    }
    bodies
}

fn with_generation(mut object: Value) -> Value {
    if object.get("metadata").is_some() {
        object["metadata"]["generation"] = json!(1);
    }
    object
}

fn ready(mut deployment: Value) -> Value {
    let replicas = deployment["spec"]["replicas"].clone();
    deployment["status"] = json!({
        "observedGeneration": 1,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
    });
    deployment
}

fn failure(code: StatusCode) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "the API server is having a bad day", "reason": "InternalError",
        "code": code.as_u16(),
    })
}

/// The example Solution as the API server stores it.
fn stored(edit: impl FnOnce(&mut Value)) -> Solution {
    let mut value: Value = serde_yaml::from_str(EXAMPLE).expect("example parses");
    // The API server keeps the status subresource apart: an applied status is dropped.
    value.as_object_mut().expect("a mapping").remove("status");
    value["metadata"]["uid"] = json!("5f0c1a52-8d5e-4c3b-9a61-2b7f3c1d9e00");
    value["metadata"]["generation"] = json!(1);
    value["metadata"]["resourceVersion"] = json!("100");
    value["metadata"]["finalizers"] = json!([FINALIZER]);
    value["spec"]["workloads"] = json!({
        "analytics": {"replicas": 2, "resources": {"requests": {"cpu": "500m"}}},
        "context": {"envFromSecrets": ["erp-db"]},
    });
    edit(&mut value);
    serde_json::from_value(value).expect("the example is a Solution resource")
}

fn context(client: Client, bus: Arc<dyn Bus>) -> Arc<Context> {
    let settings = Settings {
        image: "ghcr.io/sinter/sinter:test".to_owned(),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        image_pull_secrets: vec!["registry".to_owned()],
        bus: "kafka://kafka:9092".to_owned(),
        database_secret: "sinter-database".to_owned(),
        token_secret: None,
        otel_endpoint: None,
        log_format: "json".to_owned(),
    };
    let reporter = Reporter {
        controller: "sinter-operator".to_owned(),
        instance: Some("test".to_owned()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let metrics = sinter_operator::metrics::Metrics::new(&opentelemetry::global::meter("test"));
    Arc::new(Context::new(client, bus, settings, recorder, metrics))
}

/// Runs one reconcile of `solution` against `steps`; returns its result and the bodies.
async fn reconcile_with(
    bus: Arc<dyn Bus>,
    solution: Solution,
    steps: Vec<Step>,
) -> (Result<Action, reconcile::ReconcileError>, Vec<Value>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let scenario = tokio::spawn(play(handle, steps));
    let ctx = context(client, bus);
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        reconcile::reconcile(Arc::new(solution), ctx),
    )
    .await
    .expect("reconcile finishes");
    let bodies = match scenario.await {
        Ok(bodies) => bodies,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    };
    (result, bodies)
}

fn condition<'a>(status: &'a Value, kind: &str) -> &'a Value {
    status["status"]["conditions"]
        .as_array()
        .and_then(|conditions| conditions.iter().find(|c| c["type"] == kind))
        .unwrap_or_else(|| panic!("no {kind} condition in {status}"))
}

async fn topic_count(bus: &dyn Bus) -> usize {
    let mut count = 0;
    for stream in sinter_core::topic::Stream::ALL {
        let topic = sinter_core::topic::name("plant-north", "pump-health", stream);
        if bus.topic_partitions(&topic).await.expect("bus").is_some() {
            count += 1;
        }
    }
    count
}

#[tokio::test]
async fn a_new_solution_gets_its_finalizer_first() {
    let solution = stored(|value| value["metadata"]["finalizers"] = json!([]));
    let mut with_finalizer = serde_json::to_value(stored(|_| {})).expect("json");
    with_finalizer["metadata"]["resourceVersion"] = json!("101");
    let steps = vec![
        step("PATCH", BASE, Reply::Json(with_finalizer)).checking(|patch| {
            assert!(patch.to_string().contains(FINALIZER), "{patch}");
        }),
    ];
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::new());
    let (result, _) = reconcile_with(bus.clone(), solution, steps).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
    assert_eq!(
        topic_count(bus.as_ref()).await,
        0,
        "nothing before the finalizer"
    );
}

#[tokio::test]
async fn creating_provisions_topics_config_and_workloads_and_reports_pending() {
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::new());
    let mut steps = vec![event("TopicsCreated")];
    steps.extend(applies(false));
    steps.push(event("ConfigUpdated"));
    steps.push(step("PATCH", format!("{BASE}/status"), Reply::Status));
    let (result, bodies) = reconcile_with(bus.clone(), stored(|_| {}), steps).await;
    let action = result.expect("reconciled");
    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(15)),
        "waits for workloads"
    );
    assert_eq!(topic_count(bus.as_ref()).await, 6);
    let status = bodies.last().expect("status");
    assert_eq!(status["status"]["phase"], "Pending");
    assert_eq!(status["status"]["observedGeneration"], 1);
    assert_eq!(status["status"]["topics"], 6);
    assert_eq!(condition(status, "TopicsReady")["status"], "True");
    assert_eq!(condition(status, "ConfigReady")["status"], "True");
    assert_eq!(condition(status, "WorkloadsReady")["status"], "False");
    assert_eq!(condition(status, "Ready")["reason"], "WorkloadsPending");
}

/// Reconciles once with ready workloads and returns the Solution with the written status.
async fn reconciled_once(bus: Arc<dyn Bus>) -> Solution {
    let mut steps = vec![event("TopicsCreated")];
    steps.extend(applies(true));
    steps.push(event("ConfigUpdated"));
    steps.push(step("PATCH", format!("{BASE}/status"), Reply::Status));
    let (result, bodies) = reconcile_with(bus, stored(|_| {}), steps).await;
    assert_eq!(
        result.expect("reconciled"),
        Action::requeue(Duration::from_secs(300))
    );
    let status = bodies.last().expect("status")["status"].clone();
    assert_eq!(status["phase"], "Ready", "{status}");
    stored(|value| value["status"] = status)
}

#[tokio::test]
async fn reapplying_an_unchanged_solution_changes_nothing() {
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::new());
    let solution = reconciled_once(bus.clone()).await;
    // The same objects are applied again (server-side apply makes that a no-op), with no
    // event and no status write.
    let (result, _) = reconcile_with(bus.clone(), solution, applies(true)).await;
    assert_eq!(
        result.expect("reconciled"),
        Action::requeue(Duration::from_secs(300))
    );
    assert_eq!(topic_count(bus.as_ref()).await, 6);
}

#[tokio::test]
async fn an_updated_spec_rolls_the_config_and_moves_the_generation() {
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::new());
    let before = reconciled_once(bus.clone()).await;
    let mut value = serde_json::to_value(before).expect("json");
    value["metadata"]["generation"] = json!(2);
    value["spec"]["ingest"]["clockSkew"] = json!("5m");
    let updated: Solution = serde_json::from_value(value).expect("solution");
    let mut steps = applies(true);
    steps.push(event("ConfigUpdated"));
    steps.push(
        step("PATCH", format!("{BASE}/status"), Reply::Status).checking(|patch| {
            assert_eq!(patch["status"]["observedGeneration"], 2);
            assert_eq!(patch["status"]["phase"], "Ready");
        }),
    );
    let (result, bodies) = reconcile_with(bus.clone(), updated.clone(), steps).await;
    result.expect("reconciled");
    let config = bodies[0]["data"]["solution.yaml"].as_str().expect("config");
    assert!(config.contains("clockSkew: 5m"), "{config}");
    let digest = |deployment: &Value| {
        deployment["spec"]["template"]["metadata"]["annotations"]["sinter.dev/config-digest"]
            .clone()
    };
    let before: Vec<Value> = bodies[5..9].iter().map(digest).collect();

    // More analytics replicas: the pods keep their configuration digest, nothing rolls.
    let mut value = serde_json::to_value(updated).expect("json");
    value["metadata"]["generation"] = json!(3);
    value["spec"]["workloads"]["analytics"]["replicas"] = json!(4);
    value["status"] = bodies.last().expect("status")["status"].clone();
    let scaled: Solution = serde_json::from_value(value).expect("solution");
    let mut steps = applies(true);
    steps.retain(|step| !step.path.ends_with("deployments/pump-health-analytics"));
    let analytics = step(
        "PATCH",
        format!("{APPS}/deployments/pump-health-analytics"),
        Reply::EchoReady,
    )
    .checking(|body| assert_eq!(body["spec"]["replicas"], 4));
    steps.insert(6, analytics);
    steps.push(step("PATCH", format!("{BASE}/status"), Reply::Status));
    let (result, bodies) = reconcile_with(bus, scaled, steps).await;
    result.expect("reconciled");
    let after: Vec<Value> = bodies[5..9].iter().map(digest).collect();
    assert_eq!(before, after, "a replica change rolls nothing");
}

#[tokio::test]
async fn an_invalid_spec_is_reported_and_changes_nothing() {
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::new());
    let solution = stored(|value| value["spec"]["analytics"][0]["metric"] = json!("bearing_temp"));
    let steps = vec![
        event("InvalidSpec").checking(|body| {
            let note = body["note"].as_str().expect("note");
            assert!(note.contains("spec.analytics[0].metric"), "{note}");
        }),
        step("PATCH", format!("{BASE}/status"), Reply::Status),
    ];
    let (result, bodies) = reconcile_with(bus.clone(), solution, steps).await;
    assert_eq!(
        result.expect("an invalid spec is no error"),
        Action::await_change()
    );
    let status = &bodies[1];
    assert_eq!(status["status"]["phase"], "Invalid");
    let ready = condition(status, "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "InvalidSpec");
    let message = ready["message"].as_str().expect("message");
    assert!(message.contains("spec.analytics[0].metric"), "{message}");
    assert_eq!(
        topic_count(bus.as_ref()).await,
        0,
        "no topics for an invalid spec"
    );

    // Another Solution on the same bus and operator is not held up by it.
    let solution = reconciled_once(bus.clone()).await;
    assert_eq!(
        solution.status.expect("status").phase.as_deref(),
        Some("Ready")
    );
}

#[tokio::test]
async fn a_topic_with_other_partitions_is_reported_not_changed() {
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::new());
    let telemetry = sinter_core::topic::name(
        "plant-north",
        "pump-health",
        sinter_core::topic::Stream::Telemetry,
    );
    bus.ensure_topic(&TopicSpec::new(telemetry.clone(), 2))
        .await
        .expect("topic");
    let mut steps = vec![event("TopicsCreated"), event("TopicConflict")];
    steps.extend(applies(true));
    steps.push(event("ConfigUpdated"));
    steps.push(step("PATCH", format!("{BASE}/status"), Reply::Status));
    let (result, bodies) = reconcile_with(bus.clone(), stored(|_| {}), steps).await;
    result.expect("reconciled");
    let status = bodies.last().expect("status");
    assert_eq!(status["status"]["phase"], "Degraded");
    let topics = condition(status, "TopicsReady");
    assert_eq!(topics["reason"], "TopicConflict");
    let message = topics["message"].as_str().expect("message");
    assert!(
        message.contains(&format!("{telemetry} has 2 partitions")),
        "{message}"
    );
    assert_eq!(
        bus.topic_partitions(&telemetry).await.expect("bus"),
        Some(2)
    );
}

fn deleting(policy: &str) -> Solution {
    let policy = policy.to_owned();
    stored(move |value| {
        value["metadata"]["deletionTimestamp"] = json!("2026-12-03T12:00:00Z");
        value["spec"]["deletionPolicy"] = json!(policy);
    })
}

fn finalizer_removed() -> Step {
    let mut released = serde_json::to_value(deleting("Retain")).expect("json");
    released["metadata"]["finalizers"] = json!([]);
    step("PATCH", BASE, Reply::Json(released)).checking(|patch| {
        assert!(patch.to_string().contains("remove"), "{patch}");
    })
}

#[tokio::test]
async fn deleting_with_retain_keeps_the_topics() {
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::new());
    reconciled_once(bus.clone()).await;
    let steps = vec![event("Retained"), finalizer_removed()];
    let (result, _) = reconcile_with(bus.clone(), deleting("Retain"), steps).await;
    assert_eq!(result.expect("cleaned up"), Action::await_change());
    assert_eq!(topic_count(bus.as_ref()).await, 6);
}

#[tokio::test]
async fn deleting_with_delete_removes_the_topics() {
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::new());
    reconciled_once(bus.clone()).await;
    let steps = vec![event("TopicsDeleted"), finalizer_removed()];
    let (result, _) = reconcile_with(bus.clone(), deleting("Delete"), steps).await;
    assert_eq!(result.expect("cleaned up"), Action::await_change());
    assert_eq!(topic_count(bus.as_ref()).await, 0);
}

#[tokio::test]
async fn a_failing_api_call_is_an_error_with_an_event_and_a_backoff() {
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::new());
    let steps = vec![
        event("TopicsCreated"),
        step(
            "PATCH",
            format!("{CORE}/configmaps/pump-health-config"),
            Reply::Fail(StatusCode::INTERNAL_SERVER_ERROR),
        ),
        event("ReconcileFailed").checking(|body| {
            let note = body["note"].as_str().expect("note");
            assert!(note.contains("bad day"), "{note}");
        }),
        step("PATCH", format!("{BASE}/status"), Reply::Status).checking(|patch| {
            assert_eq!(patch["status"]["phase"], "Pending");
            let ready = &patch["status"]["conditions"][0];
            assert_eq!(ready["type"], "Ready");
            assert_eq!(ready["status"], "False");
            assert_eq!(ready["reason"], "ReconcileFailed");
            assert!(
                ready["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("bad day"))
            );
        }),
    ];
    let (result, _) = reconcile_with(bus, stored(|_| {}), steps).await;
    let error = result.expect_err("the API failed");
    assert_eq!(error.reason(), "kubernetes_api");
    let first = reconcile::backoff(1);
    assert!(
        first >= Duration::from_secs(5) && first <= Duration::from_secs(10),
        "{first:?}"
    );
    assert!(reconcile::backoff(4) >= Duration::from_secs(40));
    assert!(reconcile::backoff(40) <= Duration::from_secs(600));
}
