//! Sinter's orchestration service: situations become recommendations with escalations and actions.
#![forbid(unsafe_code)]

use sinter_core::topic::Stream;
use sinter_runtime::{ServiceArgs, ServiceSpec};

/// How `sinter-orchestrator` starts: what it reads and writes for each Solution.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "sinter-orchestrator",
    consumes: &[Stream::Situations],
    produces: &[Stream::Actions, Stream::Deadletter],
};

/// Command-line arguments of `sinter-orchestrator`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "sinter-orchestrator",
    version,
    about = "Sinter's orchestration service: recommendations, escalations and actions."
)]
pub struct Args {
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// Run the service until SIGINT or SIGTERM.
pub async fn run(args: Args) -> Result<(), sinter_runtime::RuntimeError> {
    sinter_runtime::run(SPEC, args.service, |server| server).await
}
