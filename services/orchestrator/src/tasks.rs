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

/// The longest comment a request may carry, in characters.
pub const COMMENT_MAX: usize = 4_096;

/// The longest actor or assignee name, in characters.
pub const NAME_MAX: usize = 128;

/// Refuse text that is too long, or that holds control characters (which would reach
/// other people's terminals and break the audit trail's lines); a comment may hold line
/// breaks and tabs.
fn check_text(
    field: &'static str,
    value: &str,
    max: usize,
    multiline: bool,
) -> Result<(), TaskError> {
    let length = value.chars().count();
    if length > max {
        return Err(TaskError::InvalidArgument {
            field,
            reason: format!("is {length} characters long; at most {max} are allowed"),
        });
    }
    let allowed = |c: char| multiline && matches!(c, '\n' | '\t');
    if let Some(c) = value.chars().find(|c| c.is_control() && !allowed(*c)) {
        return Err(TaskError::InvalidArgument {
            field,
            reason: format!("holds the control character U+{:04X}", u32::from(c)),
        });
    }
    Ok(())
}

/// Check what every request carries: its actor and its comment.
fn check_request(request: &TaskRequest<'_>) -> Result<(), TaskError> {
    check_text("actor", request.actor, NAME_MAX, false)?;
    check_text("comment", request.comment, COMMENT_MAX, true)
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
        let assignee = assignee.trim();
        if assignee.is_empty() {
            return Err(TaskError::InvalidArgument {
                field: "assignee",
                reason: "must name who works on it".to_owned(),
            });
        }
        check_text("assignee", assignee, NAME_MAX, false)?;
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
        check_request(&request)?;
        self.submit(request, Change::Comment).await
    }

    async fn transition(
        &self,
        request: TaskRequest<'_>,
        transition: Transition,
        assignee: Option<&str>,
    ) -> Result<Recommendation, TaskError> {
        check_request(&request)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_refused_when_too_long_or_holding_control_characters() {
        assert!(check_text("comment", "bearing replaced\n\tnext week", 10_000, true).is_ok());
        let long = "a".repeat(COMMENT_MAX + 1);
        let too_long = check_text("comment", &long, COMMENT_MAX, true).unwrap_err();
        assert_eq!(
            too_long.to_string(),
            "comment: is 4097 characters long; at most 4096 are allowed"
        );
        // Characters, not bytes: 4,096 of them fit whatever their encoding.
        assert!(check_text("comment", &"é".repeat(COMMENT_MAX), COMMENT_MAX, true).is_ok());
        let escape = check_text("comment", "\u{1b}[31mred", COMMENT_MAX, true).unwrap_err();
        assert_eq!(
            escape.to_string(),
            "comment: holds the control character U+001B"
        );
        let newline = check_text("assignee", "ben\nnewline", NAME_MAX, false).unwrap_err();
        assert_eq!(
            newline.to_string(),
            "assignee: holds the control character U+000A"
        );
    }
}
