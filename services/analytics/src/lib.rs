//! Sinter's analytics service: event-time windows and detectors that turn telemetry into
//! insights and detections.
#![forbid(unsafe_code)]

pub mod api;
pub mod convert;
pub mod detect;
pub mod engine;
pub mod nab;
pub mod service;
pub mod stats;
pub mod store;
pub mod window;

pub use service::{Analytics, AnalyticsConfig, AnalyticsError};

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
    /// Where detector and window state is checkpointed with the consumer offsets
    /// (`postgres://...`, `sqlite:FILE?mode=rwc`). The default keeps it in memory only, so a
    /// restart starts from nothing.
    #[arg(
        long,
        env = "SINTER_ANALYTICS_DATABASE_URL",
        default_value = "sqlite::memory:"
    )]
    pub database_url: String,
    /// The consumer group on the telemetry topics; by default one named after the
    /// Solutions run, `sinter-analytics.<namespace>.<name>`.
    #[arg(long, env = "SINTER_ANALYTICS_GROUP")]
    pub group: Option<String>,
}

/// Run the service until SIGINT or SIGTERM.
pub async fn run(args: Args) -> Result<(), sinter_runtime::RuntimeError> {
    let mut config = AnalyticsConfig::new(args.database_url);
    sinter_runtime::run(SPEC, args.service, |context| async move {
        config.group = args
            .group
            .unwrap_or_else(|| sinter_runtime::consumer_group(SPEC.name, &context.solutions));
        let service = Analytics::build(&context, config).await?;
        Ok(Box::new(service) as Box<dyn sinter_runtime::Service>)
    })
    .await
}
