//! The orchestrator's errors.

use crate::rules::CompileError;
use crate::store::StoreError;

/// Why the orchestrator could not start or do its work.
#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Rules(#[from] CompileError),
    #[error("cannot build the HTTP client for webhooks")]
    Http(#[source] reqwest::Error),
    #[error("the bus failed")]
    Bus(#[from] sinter_bus::BusError),
    #[error("no Solution {0} runs here")]
    UnknownSolution(String),
    #[error("the orchestrator stopped before it answered the request")]
    Stopped,
}

impl From<sqlx::Error> for OrchestratorError {
    fn from(error: sqlx::Error) -> Self {
        OrchestratorError::Store(StoreError::Sql(error))
    }
}
