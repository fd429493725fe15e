//! The four services in one process: built on one embedded bus and SQLite files, served on
//! one gRPC port, running as tasks. `sinter dev` and `sinter bench e2e` start it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use sinter_bus::Bus;
use sinter_bus::embedded::{EmbeddedBus, EmbeddedConfig};
use sinter_core::{SharedClock, Solution};
use sinter_grpc::{Auth, GrpcServer};
use sinter_proto::orchestrator::v1::RecommendationChange;
use sinter_runtime::{Service, ServiceContext, Shutdown};
use tokio::sync::broadcast;
use tokio::task::JoinSet;

use super::DEMO_REGISTRY;

/// Bytes kept per partition of the embedded bus.
const STACK_RETENTION_BYTES: usize = 256 * 1024 * 1024;

/// What the stack runs and where.
pub(crate) struct StackConfig {
    pub(crate) solutions: Vec<Solution>,
    /// Where the SQLite files live.
    pub(crate) data_dir: PathBuf,
    pub(crate) grpc_addr: SocketAddr,
    /// The HTTP readings API; `None` turns it off.
    pub(crate) http_addr: Option<SocketAddr>,
    /// Whether the Solutions' MQTT sources are subscribed to.
    pub(crate) mqtt: bool,
    pub(crate) auth: Auth,
    /// Imported when the registry has no asset; the demo registry when `None`.
    pub(crate) registry: Option<PathBuf>,
    pub(crate) clock: SharedClock,
}

/// The running stack.
pub(crate) struct Stack {
    /// Where the gRPC APIs are served (the port is chosen when the config's is 0).
    pub(crate) grpc_addr: SocketAddr,
    /// The gRPC server and the four services; each ends with shutdown or an error.
    pub(crate) tasks: JoinSet<anyhow::Result<()>>,
    /// Every change of a recommendation, as the orchestrator makes it.
    pub(crate) changes: broadcast::Receiver<RecommendationChange>,
}

/// Create the topics, build the services, seed the registry, serve gRPC and start the
/// services' work; everything stops when `shutdown` fires.
pub(crate) async fn start(config: StackConfig, shutdown: Shutdown) -> anyhow::Result<Stack> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    // Limitation: the embedded bus bounds each partition by size and drops the oldest
    // records, read or not, instead of holding senders back; when ingest outruns the
    // slowest consumer by more than this, readings that were acknowledged are lost (the
    // consumer logs how many). 256 MiB a partition holds about two million readings of
    // backlog, and costs that much memory per partition only when it is used.
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::with_config(EmbeddedConfig {
        retention_bytes_per_partition: STACK_RETENTION_BYTES,
        ..EmbeddedConfig::default()
    }));
    for solution in &config.solutions {
        sinter_operator::topics::provision(bus.as_ref(), solution)
            .await
            .with_context(|| format!("cannot create {}'s topics", solution.qualified_name()))?;
    }
    let context = ServiceContext {
        solutions: Arc::new(config.solutions.clone()),
        bus,
        clock: config.clock.clone(),
        shutdown: shutdown.clone(),
    };
    let database = |name: &str| sqlite_url(&config.data_dir.join(format!("{name}.db")));
    let ingest = sinter_ingest::IngestService::build(
        context.clone(),
        sinter_ingest::IngestConfig {
            http_addr: config.http_addr,
            mqtt_enabled: config.mqtt,
            ..sinter_ingest::IngestConfig::default()
        },
    )
    .await
    .context("the ingest service could not start")?;
    // Limitation: the embedded bus lives in this process, so its offsets start at 0 again
    // after a restart; checkpoints that remember later offsets would skip every new
    // reading. Analytics therefore keeps its checkpoints in memory here: windows and
    // detector state start afresh with each run (recommendations, history and the
    // registry are kept).
    let analytics = sinter_analytics::Analytics::build(
        &context,
        sinter_analytics::AnalyticsConfig::new("sqlite::memory:"),
    )
    .await
    .context("the analytics service could not start")?;
    let enrichment = sinter_context::ContextService::build(
        context.clone(),
        &sinter_context::ContextConfig::new(database("context")),
    )
    .await
    .context("the context service could not start")?;
    seed_registry(enrichment.registry(), config.registry.as_deref()).await?;
    let orchestrator = sinter_orchestrator::Orchestrator::build(
        &context,
        sinter_orchestrator::OrchestratorConfig::new(database("orchestrator")),
    )
    .await
    .context("the orchestrator could not start")?;
    let changes = orchestrator.subscribe_changes();

    let services: Vec<Box<dyn Service>> = vec![
        Box::new(ingest),
        Box::new(analytics),
        Box::new(enrichment),
        Box::new(orchestrator),
    ];
    let mut server = GrpcServer::new(config.auth);
    for service in &services {
        server = service.register(server);
    }
    let (grpc_addr, serving) = server
        .bind(config.grpc_addr, shutdown.clone().wait())
        .await
        .with_context(|| format!("cannot serve gRPC on {}", config.grpc_addr))?;
    let mut tasks = JoinSet::new();
    tasks.spawn(async move { serving.await.context("the gRPC server failed") });
    for service in services {
        let stop = shutdown.clone();
        tasks.spawn(async move {
            service
                .run(stop)
                .await
                .map_err(|err| anyhow::anyhow!(err).context("a service failed"))
        });
    }
    Ok(Stack {
        grpc_addr,
        tasks,
        changes,
    })
}

/// Import `file` (or the demo registry) when the registry has no asset.
async fn seed_registry(
    registry: &sinter_context::Registry,
    file: Option<&Path>,
) -> anyhow::Result<()> {
    let assets = registry
        .count_assets()
        .await
        .context("cannot read the registry")?;
    if assets > 0 {
        return Ok(());
    }
    let report = match file {
        Some(path) => sinter_context::import::import_path(registry, path, false)
            .await
            .with_context(|| format!("cannot import {}", path.display()))?,
        None => sinter_context::import::import(
            registry,
            sinter_context::import::ImportFormat::Csv,
            DEMO_REGISTRY.as_bytes(),
            false,
        )
        .await
        .context("cannot import the demo registry")?,
    };
    outln!(
        "Registry seeded: {} rows imported, {} refused.",
        report.imported,
        report.refused
    );
    for row in report.rows.iter().filter(|row| !row.error.is_empty()) {
        outln!("  line {}: {}", row.line, row.error);
    }
    Ok(())
}

/// `sqlite://PATH?mode=rwc`: the file is created when missing.
fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}
