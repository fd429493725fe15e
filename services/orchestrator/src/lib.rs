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
    // The service's own logic is not built yet: the binary serves health, reflection
    // and metrics, and waits for its topics.
    sinter_runtime::run(SPEC, args.service, |_context| async {
        Ok(Box::new(sinter_runtime::Idle) as Box<dyn sinter_runtime::Service>)
    })
    .await
}
