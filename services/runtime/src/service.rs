//! Starting a service binary: Solutions, bus, the service itself, gRPC, metrics,
//! topics; health says NOT_SERVING until the topics are there.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use sinter_bus::{Bus, BusError};
use sinter_core::topic::{self, Stream};
use sinter_core::{SharedClock, Solution, SystemClock};
use sinter_grpc::{Auth, GrpcServer, ServingStatus};
use sinter_telemetry::Telemetry;

use crate::args::ServiceArgs;
use crate::bus::connect_bus;
use crate::shutdown::Shutdown;
use crate::solutions::load_solutions;

/// How long open gRPC calls may run on after shutdown was requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A boxed error from a service's own code.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a service is, as far as starting it goes.
#[derive(Clone, Copy, Debug)]
pub struct ServiceSpec {
    /// The binary's name and `service.name`, e.g. `sinter-ingest`.
    pub name: &'static str,
    /// The streams it reads, per Solution.
    pub consumes: &'static [Stream],
    /// The streams it writes, per Solution.
    pub produces: &'static [Stream],
}

impl ServiceSpec {
    /// The topics this service needs for `solution`, reads first.
    pub fn topics(&self, solution: &Solution) -> Vec<String> {
        let mut topics = Vec::new();
        for stream in self.consumes.iter().chain(self.produces) {
            let name = topic::name(solution.namespace(), solution.name(), *stream);
            if !topics.contains(&name) {
                topics.push(name);
            }
        }
        topics
    }
}

/// What a service gets to build itself from: the same in a service binary and in the
/// all-in-one process.
#[derive(Clone)]
pub struct ServiceContext {
    /// The Solutions that validated.
    pub solutions: Arc<Vec<Solution>>,
    pub bus: Arc<dyn Bus>,
    pub clock: SharedClock,
    pub shutdown: Shutdown,
}

/// One service's logic: the gRPC API it adds, and the work it does until shutdown.
#[async_trait::async_trait]
pub trait Service: Send + 'static {
    /// Add this service's gRPC API to `server`.
    fn register(&self, server: GrpcServer) -> GrpcServer;

    /// Do the service's work (consume, process, produce) until `shutdown` fires.
    async fn run(self: Box<Self>, shutdown: Shutdown) -> Result<(), BoxError>;
}

/// Why a service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("no Solution could be loaded ({refused} refused); see the errors above")]
    NoValidSolution { refused: usize },
    #[error("the bus failed")]
    Bus(#[source] BusError),
    #[error(
        "the embedded bus lives inside one process: run `sinter dev`, or give --bus \
         kafka://host:port"
    )]
    EmbeddedBusOutOfProcess,
    #[error("cannot load the gRPC settings")]
    GrpcSettings(#[source] BoxError),
    #[error("the gRPC server failed")]
    Grpc(#[source] sinter_grpc::GrpcError),
    #[error("cannot serve metrics on {addr}")]
    Metrics {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("telemetry could not start")]
    Telemetry(#[source] sinter_telemetry::TelemetryError),
    #[error("the service could not be built")]
    Build(#[source] BoxError),
    #[error("the service failed")]
    Service(#[source] BoxError),
}

/// Run `spec` as a whole process until SIGINT or SIGTERM.
///
/// In order: telemetry; the Solutions (a bad one is refused, the rest run); the bus
/// (retried until it answers); the service, from `build`; gRPC with health
/// NOT_SERVING and metrics; the topics (waited for, by name); health SERVING; the
/// service's work until shutdown.
pub async fn run<B, F>(spec: ServiceSpec, args: ServiceArgs, build: B) -> Result<(), RuntimeError>
where
    B: FnOnce(ServiceContext) -> F,
    F: std::future::Future<Output = Result<Box<dyn Service>, BoxError>>,
{
    let telemetry =
        sinter_telemetry::init(spec.name, &args.telemetry).map_err(RuntimeError::Telemetry)?;
    let shutdown = Shutdown::on_signals();
    let result = tokio::select! {
        result = run_service(spec, &args, &telemetry, shutdown.clone(), build) => result,
        // A shutdown while still starting (waiting for the bus) is a clean stop.
        () = wait_then_grace(shutdown.clone()) => Ok(()),
    };
    tracing::info!(service = spec.name, "Service stopped.");
    telemetry.shutdown();
    result
}

async fn wait_then_grace(shutdown: Shutdown) {
    shutdown.wait().await;
    // Give a running service its grace period to stop by itself first.
    tokio::time::sleep(SHUTDOWN_GRACE * 2).await;
    tracing::warn!("Service did not stop within its grace period; exiting.");
}

async fn run_service<B, F>(
    spec: ServiceSpec,
    args: &ServiceArgs,
    telemetry: &Telemetry,
    shutdown: Shutdown,
    build: B,
) -> Result<(), RuntimeError>
where
    B: FnOnce(ServiceContext) -> F,
    F: std::future::Future<Output = Result<Box<dyn Service>, BoxError>>,
{
    let loaded = load_solutions(&args.solutions);
    if loaded.solutions.is_empty() {
        return Err(RuntimeError::NoValidSolution {
            refused: loaded.refused.len(),
        });
    }
    let solutions = Arc::new(loaded.solutions);
    // Settings errors are reported at once, not after the bus answers.
    let tokens = args
        .grpc
        .load_tokens()
        .map_err(|err| RuntimeError::GrpcSettings(err.into()))?;
    let tls = args
        .grpc
        .load_tls()
        .map_err(|err| RuntimeError::GrpcSettings(err.into()))?;
    let Some(bus) = until_shutdown(&shutdown, connect_until_up(spec, args)).await else {
        return Ok(());
    };
    let bus = bus?;
    let context = ServiceContext {
        solutions: solutions.clone(),
        bus: bus.clone(),
        clock: Arc::new(SystemClock),
        shutdown: shutdown.clone(),
    };
    let service = build(context).await.map_err(RuntimeError::Build)?;

    let server = service.register(GrpcServer::new(Auth::new(tokens)).with_tls(tls));
    let server = server.not_ready_at_start();
    let health = server.health();
    let api_services = server.services().to_vec();
    let (grpc_addr, serving) = server
        .bind(args.grpc.addr, shutdown.clone().wait())
        .await
        .map_err(RuntimeError::Grpc)?;
    let mut grpc_task = tokio::spawn(serving);

    let ready = sinter_telemetry::Readiness::default();
    if let Some(addr) = args.telemetry.metrics_socket() {
        sinter_telemetry::serve_metrics(
            addr,
            telemetry.registry().clone(),
            ready.clone(),
            shutdown.clone().wait(),
        )
        .await
        .map_err(|source| RuntimeError::Metrics { addr, source })?;
    }

    let topics: Vec<String> = solutions.iter().flat_map(|s| spec.topics(s)).collect();
    if until_shutdown(&shutdown, wait_for_topics(bus.as_ref(), &topics))
        .await
        .is_none()
    {
        return Ok(());
    }
    ready.set(true);
    health.set_service_status("", ServingStatus::Serving).await;
    for name in &api_services {
        health
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    tracing::info!(service = spec.name, grpc = %grpc_addr, topics = topics.len(),
        solutions = solutions.len(), "Service ready.");

    let work = service
        .run(shutdown.clone())
        .await
        .map_err(RuntimeError::Service);
    shutdown.trigger();
    // Clients get a grace period to finish their calls; one that keeps its connection
    // open does not hold the process hostage.
    let served = match tokio::time::timeout(SHUTDOWN_GRACE, &mut grpc_task).await {
        Ok(Ok(result)) => result.map_err(RuntimeError::Grpc),
        Ok(Err(join)) => {
            tracing::error!(error = %join, "gRPC server task failed.");
            Ok(())
        }
        Err(_) => {
            tracing::warn!(
                grace_ms = SHUTDOWN_GRACE.as_millis(),
                "gRPC clients still connected after the grace period; closing."
            );
            grpc_task.abort();
            Ok(())
        }
    };
    work.and(served)
}

/// Run `work` unless shutdown comes first; `None` when it did.
async fn until_shutdown<T>(
    shutdown: &Shutdown,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        result = work => Some(result),
        () = shutdown.clone().wait() => None,
    }
}

/// Retry connecting to the bus until it answers; each attempt already retries inside.
async fn connect_until_up(
    spec: ServiceSpec,
    args: &ServiceArgs,
) -> Result<Arc<dyn Bus>, RuntimeError> {
    let properties = args.kafka_properties();
    let attempt = || connect_bus(&args.bus, &properties, spec.name);
    attempt
        .retry(forever_backoff())
        // A configuration the bus refuses stays refused: only reaching it is retried.
        .when(|err| matches!(err, RuntimeError::Bus(bus) if !matches!(bus, BusError::Config(_))))
        .notify(|err, pause| {
            let cause = match err {
                RuntimeError::Bus(bus) => bus.to_string(),
                other => other.to_string(),
            };
            tracing::warn!(bus = %args.bus, error = %cause, retry_in_ms = pause.as_millis(),
                "Bus not reachable; retrying.");
        })
        .await
}

/// Wait until every topic exists, logging the missing ones with backoff.
async fn wait_for_topics(bus: &dyn Bus, topics: &[String]) {
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let probe = || bus.probe_topics(&names);
    let result = probe
        .retry(forever_backoff())
        .notify(|err, pause| {
            tracing::warn!(error = %err, retry_in_ms = pause.as_millis(),
                "Waiting for topics; create them with `sinter-operator topics` or the operator.");
        })
        .await;
    if let Err(err) = result {
        // The backoff never gives up, so only a future change to it could land here.
        tracing::error!(error = %err, "Gave up waiting for topics.");
    }
}

fn forever_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(10))
        .with_jitter()
        .without_max_times()
}
