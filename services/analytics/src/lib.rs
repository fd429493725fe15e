//! Sinter's analytics service: event-time windows and detectors that turn telemetry into insights and detections.
#![forbid(unsafe_code)]

use sinter_core::topic::Stream;
use sinter_runtime::{ServiceArgs, ServiceSpec};

/// How `sinter-analytics` starts: what it reads and writes for each Solution.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "sinter-analytics",
    consumes: &[Stream::Telemetry],
    produces: &[Stream::Insights, Stream::Detections, Stream::Deadletter],
};

/// Command-line arguments of `sinter-analytics`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "sinter-analytics",
    version,
    about = "Sinter's analytics service: windows and detectors over telemetry."
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
