//! The `sinter-context` binary.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = sinter_context::Args::parse();
    sinter_context::run(args).await?;
    Ok(())
}
