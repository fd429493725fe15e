//! Sinter's ingestion service: where device readings enter, are validated and put on telemetry.
//!
//! Readings arrive over gRPC ([`grpc`]), HTTP JSON ([`http`]) and MQTT ([`mqtt`]); each
//! transport turns what it received into [`pipeline::Candidate`]s and hands a
//! [`pipeline::Batch`] to the one [`pipeline::Ingestor`], which checks every reading against
//! the Solution ([`validate`]), drops redeliveries ([`dedup`]), publishes the valid ones to
//! `<solution>.telemetry` keyed by device id, dead-letters the rest ([`deadletter`]) and
//! answers per reading once all of it is durable.
#![forbid(unsafe_code)]

pub mod bench;
pub mod client;
pub mod deadletter;
pub mod dedup;
pub mod device_id;
pub mod grpc;
pub mod http;
pub mod json;
pub mod metrics;
pub mod mqtt;
pub mod number;
pub mod pipeline;
pub mod refusal;
mod service;
pub mod timestamp;
pub mod validate;

use std::net::SocketAddr;
use std::time::Duration;

use sinter_core::topic::Stream;
use sinter_runtime::{ServiceArgs, ServiceSpec};

pub use pipeline::{Admission, Batch, BatchError, Candidate, Ingestor, Original, PipelineConfig};
pub use refusal::Refusal;
pub use service::{IngestConfig, IngestError, IngestService};

/// How `sinter-ingest` starts: what it reads and writes for each Solution.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "sinter-ingest",
    consumes: &[],
    produces: &[Stream::Telemetry, Stream::Deadletter],
};

/// Where the HTTP API listens: an address, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpAddr(pub Option<SocketAddr>);

impl std::str::FromStr for HttpAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "off" {
            return Ok(HttpAddr(None));
        }
        text.parse()
            .map(|addr| HttpAddr(Some(addr)))
            .map_err(|_| format!("{text:?} is not host:port or off"))
    }
}

/// The flags of `sinter-ingest` beside those every service has.
#[derive(Debug, Clone, clap::Args)]
pub struct IngestArgs {
    /// Address of the HTTP JSON API (`POST /v1/solutions/{solution}/readings`), or `off`.
    #[arg(
        long = "http-addr",
        env = "SINTER_HTTP_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub http_addr: HttpAddr,
    /// The most readings being published at once over every transport; beyond it gRPC and
    /// MQTT wait and HTTP answers 503.
    #[arg(long, env = "SINTER_INGEST_MAX_IN_FLIGHT", default_value_t = 20_000)]
    pub max_in_flight: usize,
    /// Do not subscribe to the Solutions' MQTT sources.
    #[arg(long, env = "SINTER_INGEST_NO_MQTT")]
    pub no_mqtt: bool,
    /// MQTT messages handled at once per source.
    #[arg(long, env = "SINTER_INGEST_MQTT_IN_FLIGHT", default_value_t = 64)]
    pub mqtt_in_flight: usize,
    /// Seconds an HTTP request waits for room before it is answered 503.
    #[arg(long, env = "SINTER_INGEST_HTTP_BUSY_WAIT", default_value_t = 1)]
    pub http_busy_wait_secs: u64,
}

impl IngestArgs {
    /// The service configuration these flags describe.
    pub fn config(&self) -> IngestConfig {
        let mut config = IngestConfig {
            http_addr: self.http_addr.0,
            http_busy_wait: Duration::from_secs(self.http_busy_wait_secs.max(1)),
            mqtt_enabled: !self.no_mqtt,
            ..IngestConfig::default()
        };
        config.pipeline.max_in_flight = self.max_in_flight;
        config.mqtt.in_flight = self.mqtt_in_flight;
        config
    }
}

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
    #[command(flatten)]
    pub ingest: IngestArgs,
}

/// Run the service until SIGINT or SIGTERM.
pub async fn run(args: Args) -> Result<(), sinter_runtime::RuntimeError> {
    let config = args.ingest.config();
    sinter_runtime::run(SPEC, args.service, |context| async move {
        let service = IngestService::build(context, config).await?;
        Ok(Box::new(service) as Box<dyn sinter_runtime::Service>)
    })
    .await
}
