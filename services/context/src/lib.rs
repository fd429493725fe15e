//! Sinter's context service: the asset registry, and situations made of detections plus enterprise context.
#![forbid(unsafe_code)]

use sinter_core::topic::Stream;
use sinter_runtime::{ServiceArgs, ServiceSpec};

/// How `sinter-context` starts: what it reads and writes for each Solution.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "sinter-context",
    consumes: &[Stream::Detections],
    produces: &[Stream::Situations, Stream::Deadletter],
};

/// Command-line arguments of `sinter-context`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "sinter-context",
    version,
    about = "Sinter's context service: the asset registry, joined onto detections as situations."
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
