//! Sinter's ingestion service: where device readings enter, are validated and put on telemetry.
#![forbid(unsafe_code)]

use sinter_core::topic::Stream;
use sinter_runtime::{ServiceArgs, ServiceSpec};

/// How `sinter-ingest` starts: what it reads and writes for each Solution.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "sinter-ingest",
    consumes: &[],
    produces: &[Stream::Telemetry, Stream::Deadletter],
};

/// Command-line arguments of `sinter-ingest`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "sinter-ingest",
    version,
    about = "Sinter's ingestion service: readings in from gRPC, MQTT and HTTP, onto telemetry."
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
