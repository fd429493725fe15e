//! The `sinter-analytics` binary.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = sinter_analytics::Args::parse();
    sinter_analytics::run(args).await?;
    Ok(())
}
