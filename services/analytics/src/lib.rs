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
    sinter_runtime::run(SPEC, args.service, |server| server).await
}
