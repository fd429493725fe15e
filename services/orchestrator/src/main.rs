//! The `sinter-orchestrator` binary.

use clap::Parser;

// Small allocations per record; mimalloc spends far less time on them than the system's
// malloc does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = sinter_orchestrator::Args::parse();
    sinter_orchestrator::run(args).await?;
    Ok(())
}
