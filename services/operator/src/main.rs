//! The `sinter-operator` binary.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let telemetry = sinter_telemetry::init("sinter-operator", &cli.telemetry)?;
    let result = match cli.command {
        Command::Topics { solutions, bus } => provision_topics(&solutions, &bus).await,
    };
    telemetry.shutdown();
    result
}

async fn provision_topics(paths: &[PathBuf], bus: &BusUrl) -> anyhow::Result<()> {
    let loaded = sinter_runtime::load_solutions(paths);
    let bus = sinter_runtime::connect_bus(bus, "sinter-operator").await?;
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
