//! Sinter's orchestration service: situations become recommendations with escalations and actions.
//!
//! Each situation is judged by the Solution's recommendation rules ([`rules`]); a match
//! opens a recommendation or adds an occurrence to the open one ([`situations`]), in SQL
//! ([`store`], PostgreSQL or SQLite). People work on it over gRPC ([`api`], [`tasks`]);
//! nobody acting escalates it on durable timers ([`escalation`]); its actions leave
//! through a transactional outbox ([`outbox`], [`dispatch`]).
//!
//! `sinter dev` and tests build the service from a [`sinter_runtime::ServiceContext`]:
//!
//! ```no_run
//! # async fn example(context: sinter_runtime::ServiceContext)
//! #     -> Result<(), sinter_orchestrator::OrchestratorError> {
//! use sinter_orchestrator::{Orchestrator, OrchestratorConfig};
//! let config = OrchestratorConfig::new("sqlite://orchestrator.db?mode=rwc");
//! let orchestrator = Orchestrator::build(&context, config).await?;
//! # drop(orchestrator);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod api;
pub mod client;
pub mod dispatch;
mod error;
pub mod escalation;
mod group;
pub mod listing;
pub mod metrics;
mod orchestrator;
pub mod outbox;
pub mod rules;
mod service;
pub mod situations;
pub mod state;
pub mod store;
pub mod tasks;
pub mod variables;

use std::time::Duration;

use sinter_core::topic::Stream;
use sinter_runtime::{ServiceArgs, ServiceSpec};

pub use api::OrchestratorApi;
pub use error::OrchestratorError;
pub use orchestrator::{DeliveryPolicy, Orchestrator, OrchestratorConfig, SolutionRuntime};
pub use situations::{Applied, Position};
pub use state::State;
pub use store::{Backend, Store, StoreError};
pub use tasks::{TaskError, TaskRequest};

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
    /// Where recommendations, timers and the action outbox are kept:
    /// postgres://user@host/db or sqlite://file.db?mode=rwc.
    #[arg(
        long,
        env = "SINTER_ORCHESTRATOR_DATABASE_URL",
        default_value = "sqlite://sinter-orchestrator.db?mode=rwc"
    )]
    pub database_url: String,
    /// The consumer group on the situations topics; by default one named after the
    /// Solutions run, `sinter-orchestrator.<namespace>.<name>`.
    #[arg(long, env = "SINTER_ORCHESTRATOR_GROUP")]
    pub group: Option<String>,
    /// Attempts per action delivery before it is parked.
    #[arg(
        long,
        env = "SINTER_ORCHESTRATOR_DELIVERY_ATTEMPTS",
        default_value_t = 6
    )]
    pub delivery_attempts: usize,
}

impl Args {
    /// The orchestrator's configuration from these flags.
    pub fn config(&self) -> OrchestratorConfig {
        let mut config = OrchestratorConfig::new(self.database_url.clone());
        if let Some(group) = &self.group {
            config.consumer_group = group.clone();
        }
        config.delivery.attempts = self.delivery_attempts.max(1);
        config.tick = Duration::from_secs(1);
        config
    }
}

/// Run the service until SIGINT or SIGTERM.
pub async fn run(args: Args) -> Result<(), sinter_runtime::RuntimeError> {
    let mut config = args.config();
    sinter_runtime::run(SPEC, args.service, |context| async move {
        if args.group.is_none() {
            config.consumer_group = sinter_runtime::consumer_group(SPEC.name, &context.solutions);
        }
        let orchestrator = Orchestrator::build(&context, config).await?;
        Ok(Box::new(orchestrator) as Box<dyn sinter_runtime::Service>)
    })
    .await
}
