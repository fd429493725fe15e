//! Sinter's context service: the asset registry, and situations made of detections plus
//! enterprise context.
//!
//! - [`registry`]: sites, assets, devices and work orders in SQL (PostgreSQL or SQLite).
//! - [`api`]: the gRPC API `sinter.context.v1.ContextService`.
//! - [`import`]: bulk import from CSV or JSON lines, one result per row.
//! - [`enrich`] and [`pipeline`]: detections in, situations out.
//! - [`providers`]: the Solution's read-only SQL lookups against external databases.
//! - [`cache`] and [`invalidation`]: the read-through cache and what keeps it true.
//! - [`service`]: all of it built from a `ServiceContext`, as binary or in `sinter dev`.
//! - [`client`]: helpers for the CLI.
#![forbid(unsafe_code)]

pub mod api;
pub mod cache;
pub mod client;
pub mod enrich;
mod error;
pub mod import;
pub mod invalidation;
pub mod mask;
pub mod metrics;
pub mod pipeline;
pub mod providers;
pub mod registry;
pub mod service;

use std::time::Duration;

use sinter_core::topic::Stream;
use sinter_runtime::{ServiceArgs, ServiceSpec};

pub use enrich::{Enricher, situation_id};
pub use error::RegistryError;
pub use import::{ImportFormat, ImportReport, import, import_path};
pub use registry::{Backend, DeviceLookup, Registry};
pub use service::{ContextConfig, ContextError, ContextService};

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
    /// The asset registry: postgres://user@host/db (cluster) or sqlite:path (embedded).
    #[arg(
        long,
        env = "SINTER_CONTEXT_DATABASE_URL",
        default_value = "sqlite:sinter-context.db"
    )]
    pub database_url: String,
    /// How long a cached asset context is used at most, should a change notification be
    /// lost.
    #[arg(long, env = "SINTER_CONTEXT_CACHE_TTL", default_value = "5m",
        value_parser = humantime::parse_duration)]
    pub cache_ttl: Duration,
}

/// Run the service until SIGINT or SIGTERM.
pub async fn run(args: Args) -> Result<(), sinter_runtime::RuntimeError> {
    let mut config = ContextConfig::new(args.database_url);
    config.cache_ttl = args.cache_ttl;
    sinter_runtime::run(SPEC, args.service, |context| async move {
        let service = ContextService::build(context, &config).await?;
        Ok(Box::new(service) as Box<dyn sinter_runtime::Service>)
    })
    .await
}
