//! The `sinter-operator` binary.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use kube::runtime::events::{Recorder, Reporter};
use sinter_operator::reconcile::Context;
use sinter_operator::render::Settings;
use sinter_operator::run::LeaseSettings;
use sinter_runtime::BusUrl;

#[derive(Debug, Parser)]
#[command(name = "sinter-operator", version, about = "Sinter's operator")]
struct Cli {
    #[command(flatten)]
    telemetry: sinter_telemetry::TelemetryArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Reconcile every Solution in the cluster (with leader election among replicas).
    Run(RunArgs),
    /// Print the Solution CRD as YAML (`make crd` writes it into the chart).
    Crd,
    /// Create the topics of one or more Solutions on the bus (existing ones are kept).
    Topics {
        /// Solution files.
        #[arg(
            long = "solution",
            env = "SINTER_SOLUTION",
            required = true,
            value_delimiter = ','
        )]
        solutions: Vec<PathBuf>,
        /// The bus: kafka://host:port[,host:port].
        #[arg(long, env = "SINTER_BUS", default_value = "kafka://127.0.0.1:9092")]
        bus: BusUrl,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The bus the Solutions' topics live on, and that their workloads use.
    #[arg(long, env = "SINTER_BUS", default_value = "kafka://127.0.0.1:9092")]
    bus: BusUrl,
    /// The image with the `sinter-*` binaries, for the workloads.
    #[arg(long, env = "SINTER_IMAGE")]
    image: String,
    /// The workloads' image pull policy (Always, IfNotPresent, Never).
    #[arg(long, env = "SINTER_IMAGE_PULL_POLICY",
          value_parser = ["Always", "IfNotPresent", "Never"])]
    image_pull_policy: Option<String>,
    /// Secrets (in each Solution's namespace) to pull the workloads' image with.
    #[arg(long, env = "SINTER_IMAGE_PULL_SECRETS", value_delimiter = ',')]
    image_pull_secrets: Vec<String>,
    /// The Secret (in each Solution's namespace) with the services' PostgreSQL URLs under
    /// the keys `analytics`, `context` and `orchestrator`.
    #[arg(
        long,
        env = "SINTER_DATABASE_SECRET",
        default_value = "sinter-database"
    )]
    database_secret: String,
    /// The Secret (in each Solution's namespace) whose key `tokens` lists the bearer
    /// tokens the APIs accept; unset: no authentication.
    #[arg(long, env = "SINTER_TOKEN_SECRET")]
    token_secret: Option<String>,
    /// OTLP endpoint the workloads export traces and metrics to.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otel_endpoint: Option<String>,
    /// The namespace of the leader-election Lease.
    #[arg(long, env = "SINTER_LEASE_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// This replica's identity in the Lease; the pod name in a cluster.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// How long the lease holds without renewal, in seconds.
    #[arg(long, default_value_t = 15)]
    lease_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Crd = cli.command {
        print!("{}", sinter_operator::crd::crd_yaml());
        return Ok(());
    }
    let telemetry = sinter_telemetry::init("sinter-operator", &cli.telemetry)?;
    let result = match cli.command {
        Command::Run(args) => run(args, &cli.telemetry, &telemetry).await,
        Command::Topics { solutions, bus } => provision_topics(&solutions, &bus).await,
        Command::Crd => Ok(()),
    };
    telemetry.shutdown();
    result
}

async fn run(
    args: RunArgs,
    telemetry_args: &sinter_telemetry::TelemetryArgs,
    telemetry: &sinter_telemetry::Telemetry,
) -> anyhow::Result<()> {
    // /health answers from the start, so a slow broker or API server at start-up is not
    // taken for a dead process; /ready waits until both answer.
    let ready = sinter_telemetry::Readiness::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let metrics_server = match telemetry_args.metrics_socket() {
        Some(addr) => {
            let mut stopped = stopped.clone();
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            let registry = telemetry.registry().clone();
            Some(sinter_telemetry::serve_metrics(addr, registry, ready.clone(), shutdown).await?)
        }
        None => None,
    };
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes API to talk to (in-cluster config or kubeconfig)")?;
    let bus = sinter_runtime::connect_bus(&args.bus, &[], "sinter-operator").await?;
    let log_format = match telemetry_args.log_format {
        sinter_telemetry::LogFormat::Json => "json",
        sinter_telemetry::LogFormat::Text => "text",
    };
    let settings = Settings {
        image: args.image,
        image_pull_policy: args.image_pull_policy,
        image_pull_secrets: args.image_pull_secrets,
        bus: args.bus.to_string(),
        database_secret: args.database_secret,
        token_secret: args.token_secret,
        otel_endpoint: args.otel_endpoint,
        log_format: log_format.to_owned(),
    };
    let identity = args
        .identity
        .unwrap_or_else(|| format!("sinter-operator-{}", std::process::id()));
    let reporter = Reporter {
        controller: "sinter-operator".to_owned(),
        instance: Some(identity.clone()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let metrics = sinter_operator::metrics::Metrics::new(&telemetry.meter());
    let ctx = Arc::new(Context::new(
        client.clone(),
        bus,
        settings,
        recorder,
        metrics,
    ));

    ready.set(true);
    let lease = LeaseSettings {
        namespace: args.lease_namespace,
        identity,
        duration_seconds: args.lease_seconds,
    };
    let shutdown = sinter_runtime::Shutdown::on_signals();
    sinter_operator::run::run(client, ctx, lease, shutdown.wait()).await?;
    let _ = stop.send(true);
    if let Some((_, task)) = metrics_server {
        task.await??;
    }
    Ok(())
}

async fn provision_topics(paths: &[PathBuf], bus: &BusUrl) -> anyhow::Result<()> {
    let loaded = sinter_runtime::load_solutions(paths);
    let bus = sinter_runtime::connect_bus(bus, &[], "sinter-operator").await?;
    let mut failed = loaded.refused.len();
    for solution in &loaded.solutions {
        if let Err(err) = sinter_operator::topics::provision(bus.as_ref(), solution).await {
            tracing::error!(solution = %solution.qualified_name(), error = %err,
                "Topics could not be provisioned.");
            failed += 1;
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} Solution(s) not provisioned", paths.len());
    }
    Ok(())
}
