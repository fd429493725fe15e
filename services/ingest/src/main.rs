//! The `sinter-ingest` binary.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = sinter_ingest::Args::parse();
    sinter_ingest::run(args).await?;
    Ok(())
}
