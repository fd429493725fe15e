//! Human tasks: what people do to a recommendation (acknowledge, assign, comment,
//! resolve, reopen), each a checked transition written with its audit entry; concurrent
//! requests share a transaction (see `group`).

use sinter_proto::orchestrator::v1::{Outcome, Recommendation};

use crate::error::OrchestratorError;
use crate::group::Change;
use crate::orchestrator::Orchestrator;
use crate::state::{State, Transition};
use crate::store::{RecommendationRow, StoreError, history_entry};

/// Why a person's request was refused.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("no recommendation {0}")]
    NotFound(String),
    /// The current state does not allow the transition; the message names it.
    #[error("recommendation {id} is {state}; cannot {verb} it")]
    WrongState {
        id: String,
        state: State,
        verb: &'static str,
    },
    #[error(
        "cannot reopen recommendation {id}: recommendation {active} is already active for \
         rule {rule} and this asset"
    )]
    AlreadyActive {
        id: String,
        active: String,
        rule: String,
    },
    #[error("{field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error(transparent)]
    Orchestrator(Box<OrchestratorError>),
}

impl From<OrchestratorError> for TaskError {
    fn from(error: OrchestratorError) -> Self {
        TaskError::Orchestrator(Box::new(error))
    }
}

impl From<StoreError> for TaskError {
    fn from(error: StoreError) -> Self {
        TaskError::from(OrchestratorError::Store(error))
    }
}

impl From<sqlx::Error> for TaskError {
    fn from(error: sqlx::Error) -> Self {
        TaskError::from(OrchestratorError::from(error))
    }
}

/// One request from a person.
#[derive(Clone, Debug)]
pub struct TaskRequest<'a> {
    pub id: &'a str,
    pub actor: &'a str,
    pub comment: &'a str,
}

impl Orchestrator {
    /// Recommendation `id` with its history.
    pub async fn recommendation(&self, id: &str) -> Result<Recommendation, TaskError> {
        let mut conn = self.inner.store.pool().acquire().await?;
        let row = RecommendationRow::load(&mut conn, id)
            .await?
            .ok_or_else(|| TaskError::NotFound(id.to_owned()))?;
        let mut recommendation = row.to_proto()?;
        recommendation.history = history_entry(&mut conn, id).await?;
        Ok(recommendation)
    }

    /// Someone has seen it: stops the escalation ladder.
    pub async fn acknowledge(&self, request: TaskRequest<'_>) -> Result<Recommendation, TaskError> {
        self.transition(request, Transition::Acknowledge, None)
            .await
    }

    /// `assignee` works on it; an open one is acknowledged by this too.
    pub async fn assign(
        &self,
        request: TaskRequest<'_>,
        assignee: &str,
    ) -> Result<Recommendation, TaskError> {
        if assignee.trim().is_empty() {
            return Err(TaskError::InvalidArgument {
                field: "assignee",
                reason: "must name who works on it".to_owned(),
            });
        }
        self.transition(request, Transition::Assign, Some(assignee))
            .await
    }

    /// A person ends it: `outcome` is FIXED or FALSE_ALARM.
    pub async fn resolve(
        &self,
        request: TaskRequest<'_>,
        outcome: Outcome,
    ) -> Result<Recommendation, TaskError> {
        if !matches!(outcome, Outcome::Fixed | Outcome::FalseAlarm) {
            return Err(TaskError::InvalidArgument {
                field: "outcome",
                reason: format!(
                    "{} is not an outcome a person gives: use OUTCOME_FIXED or \
                     OUTCOME_FALSE_ALARM",
                    outcome.as_str_name()
                ),
            });
        }
        self.transition(request, Transition::Resolve(outcome), None)
            .await
    }

    /// An ended recommendation is active again (unless another is active for its rule
    /// and asset).
    pub async fn reopen(&self, request: TaskRequest<'_>) -> Result<Recommendation, TaskError> {
        self.transition(request, Transition::Reopen, None).await
    }

    /// Add a comment to the audit trail, whatever the state.
    pub async fn comment(&self, request: TaskRequest<'_>) -> Result<Recommendation, TaskError> {
        if request.comment.trim().is_empty() {
            return Err(TaskError::InvalidArgument {
                field: "comment",
                reason: "is empty".to_owned(),
            });
        }
        self.submit(request, Change::Comment).await
    }

    async fn transition(
        &self,
        request: TaskRequest<'_>,
        transition: Transition,
        assignee: Option<&str>,
    ) -> Result<Recommendation, TaskError> {
        let change = Change::Transition {
            transition,
            assignee: assignee.map(str::to_owned),
        };
        self.submit(request, change).await
    }

    /// The error for reopening `row` while another is active for its rule and asset.
    pub(crate) async fn already_active(&self, row: &RecommendationRow) -> TaskError {
        let active = match self.inner.store.pool().acquire().await {
            Ok(mut conn) => {
                crate::store::active::holder(&mut conn, &row.solution, &row.rule, &row.asset_key)
                    .await
            }
            Err(error) => Err(error),
        };
        match active {
            Ok(active) => TaskError::AlreadyActive {
                id: row.id.clone(),
                active: active.unwrap_or_default(),
                rule: row.rule.clone(),
            },
            Err(error) => error.into(),
        }
    }
}

/// The actor written in the audit trail; a request without one is `anonymous`.
pub(crate) fn actor(actor: &str) -> &str {
    let actor = actor.trim();
    if actor.is_empty() { "anonymous" } else { actor }
}
