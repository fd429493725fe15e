//! Starting a service: Solutions, gRPC, metrics, bus, topics; in that order, so that
//! health probes answer (NOT_SERVING) while the bus or the topics are still missing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use sinter_bus::{Bus, BusError};
use sinter_core::Solution;
use sinter_core::topic::{self, Stream};
use sinter_grpc::{Auth, GrpcServer, HealthReporter, ServingStatus};
use sinter_telemetry::Telemetry;

use crate::args::ServiceArgs;
use crate::bus::connect_bus;
use crate::shutdown::Shutdown;
use crate::solutions::{LoadedSolutions, load_solutions};

/// How long open gRPC calls may run on after shutdown was requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

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

/// Why a service could not start.
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
    GrpcSettings(#[source] Box<dyn std::error::Error + Send + Sync>),
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
    #[error("shut down before the service was ready")]
    ShutDownWhileStarting,
}

/// A started service: what its own logic needs to do its work.
pub struct Started {
    pub spec: ServiceSpec,
    pub solutions: LoadedSolutions,
    pub bus: Arc<dyn Bus>,
    pub health: HealthReporter,
    pub grpc_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub shutdown: Shutdown,
    pub grpc_task: tokio::task::JoinHandle<Result<(), sinter_grpc::GrpcError>>,
}

/// Start `spec`: load its Solutions, serve gRPC (with the API services that
/// `add_api` adds) and metrics, connect to the bus and wait for every topic. Health
/// says NOT_SERVING until the bus and the topics are there.
pub async fn start(
    spec: ServiceSpec,
    args: &ServiceArgs,
    telemetry: &Telemetry,
    shutdown: Shutdown,
    add_api: impl FnOnce(GrpcServer) -> GrpcServer,
) -> Result<Started, RuntimeError> {
    let solutions = load_solutions(&args.solutions);
    if solutions.solutions.is_empty() {
        return Err(RuntimeError::NoValidSolution {
            refused: solutions.refused.len(),
        });
    }

    let tokens = args
        .grpc
        .load_tokens()
        .map_err(|err| RuntimeError::GrpcSettings(Box::new(err)))?;
    let tls = args
        .grpc
        .load_tls()
        .map_err(|err| RuntimeError::GrpcSettings(Box::new(err)))?;
    let server = add_api(
        GrpcServer::new(Auth::new(tokens))
            .with_tls(tls)
            .not_ready_at_start(),
    );
    let health = server.health();
    let api_services = server.services().to_vec();
    let grpc_stop = shutdown.clone();
    let (grpc_addr, serving) = server
        .bind(args.grpc.addr, grpc_stop.wait())
        .await
        .map_err(RuntimeError::Grpc)?;
    let grpc_task = tokio::spawn(serving);

    let metrics_addr = match args.telemetry.metrics_socket() {
        None => None,
        Some(addr) => {
            let (bound, _task) = sinter_telemetry::serve_metrics(
                addr,
                telemetry.registry().clone(),
                shutdown.clone().wait(),
            )
            .await
            .map_err(|source| RuntimeError::Metrics { addr, source })?;
            Some(bound)
        }
    };

    let bus = tokio::select! {
        bus = connect_until_up(spec, args) => bus?,
        () = shutdown.clone().wait() => return Err(RuntimeError::ShutDownWhileStarting),
    };
    let topics: Vec<String> = solutions
        .solutions
        .iter()
        .flat_map(|s| spec.topics(s))
        .collect();
    tokio::select! {
        () = wait_for_topics(bus.as_ref(), &topics) => {}
        () = shutdown.clone().wait() => return Err(RuntimeError::ShutDownWhileStarting),
    }

    health.set_service_status("", ServingStatus::Serving).await;
    for name in &api_services {
        health
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    tracing::info!(service = spec.name, grpc = %grpc_addr, topics = topics.len(),
        solutions = solutions.solutions.len(), "Service ready.");
    Ok(Started {
        spec,
        solutions,
        bus,
        health,
        grpc_addr,
        metrics_addr,
        shutdown,
        grpc_task,
    })
}

/// Retry connecting to the bus until it answers; each attempt already retries inside.
async fn connect_until_up(
    spec: ServiceSpec,
    args: &ServiceArgs,
) -> Result<Arc<dyn Bus>, RuntimeError> {
    let attempt = || connect_bus(&args.bus, spec.name);
    attempt
        .retry(forever_backoff())
        .when(|err| matches!(err, RuntimeError::Bus(_)))
        .notify(|err, pause| {
            tracing::warn!(bus = %args.bus, error = %err, retry_in_ms = pause.as_millis(),
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

/// Run `spec` as a whole process: telemetry, [`start`], then wait for SIGINT/SIGTERM.
pub async fn run(
    spec: ServiceSpec,
    args: ServiceArgs,
    add_api: impl FnOnce(GrpcServer) -> GrpcServer,
) -> Result<(), RuntimeError> {
    let telemetry =
        sinter_telemetry::init(spec.name, &args.telemetry).map_err(RuntimeError::Telemetry)?;
    let shutdown = Shutdown::on_signals();
    let result = match start(spec, &args, &telemetry, shutdown.clone(), add_api).await {
        Ok(started) => {
            shutdown.clone().wait().await;
            let mut grpc_task = started.grpc_task;
            // Clients get a grace period to finish their calls; one that keeps its
            // connection open does not hold the process hostage.
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut grpc_task).await {
                Ok(Ok(Ok(()))) => Ok(()),
                Ok(Ok(Err(err))) => Err(RuntimeError::Grpc(err)),
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
            }
        }
        Err(RuntimeError::ShutDownWhileStarting) => Ok(()),
        Err(err) => Err(err),
    };
    tracing::info!(service = spec.name, "Service stopped.");
    telemetry.shutdown();
    result
}
