//! The `sinter-orchestrator` binary.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = sinter_orchestrator::Args::parse();
    sinter_orchestrator::run(args).await?;
    Ok(())
}
