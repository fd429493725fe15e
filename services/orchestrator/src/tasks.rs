//! Human tasks: what people do to a recommendation (acknowledge, assign, comment,
//! resolve, reopen), each a checked transition written with its audit entry.

use serde_json::Map;
use sinter_core::Timestamp;
use sinter_proto::events::v1::{Severity, action::Trigger};
use sinter_proto::orchestrator::v1::{Outcome, Recommendation, RecommendationChange};

use crate::error::OrchestratorError;
use crate::escalation;
use crate::orchestrator::Orchestrator;
use crate::outbox::{self, Cause};
use crate::state::{State, Transition};
use crate::store::{
    HistoryRow, RecommendationRow, StoreError, history_entry, insert_history, is_unique_violation,
};
use crate::variables::{severity_word, situation_variables};

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
        let now = self.inner.clock.now();
        let mut tx = self.inner.store.begin().await?;
        let row = RecommendationRow::load(&mut tx, request.id)
            .await?
            .ok_or_else(|| TaskError::NotFound(request.id.to_owned()))?;
        sqlx::query("UPDATE recommendations SET updated_at = $1 WHERE id = $2")
            .bind(now.as_micros())
            .bind(request.id)
            .execute(&mut *tx)
            .await?;
        let entry = insert_history(
            &mut tx,
            &HistoryRow {
                recommendation_id: request.id,
                at: now,
                actor: actor(request.actor),
                event: "commented",
                from: Some(row.state),
                to: Some(row.state),
                comment: request.comment,
            },
        )
        .await?;
        tx.commit().await?;
        let updated = RecommendationRow {
            updated_at: now.as_micros(),
            ..row
        };
        self.finish(&updated, entry)
    }

    async fn transition(
        &self,
        request: TaskRequest<'_>,
        transition: Transition,
        assignee: Option<&str>,
    ) -> Result<Recommendation, TaskError> {
        let now = self.inner.clock.now();
        let mut tx = self.inner.store.begin().await?;
        let row = RecommendationRow::load(&mut tx, request.id)
            .await?
            .ok_or_else(|| TaskError::NotFound(request.id.to_owned()))?;
        let wrong_state = |state: State| TaskError::WrongState {
            id: request.id.to_owned(),
            state,
            verb: transition.verb(),
        };
        let to = transition.apply(row.state).ok_or(wrong_state(row.state))?;
        let first_acknowledgement =
            matches!(transition, Transition::Acknowledge | Transition::Assign)
                && row.acknowledged_at.is_none();
        let acknowledged_at = if first_acknowledgement {
            Some(now.as_micros())
        } else if transition == Transition::Reopen {
            None
        } else {
            row.acknowledged_at
        };
        let (outcome, resolved_at) = match transition {
            Transition::Resolve(outcome) => (outcome as i32, Some(now.as_micros())),
            Transition::Reopen => (Outcome::Unspecified as i32, None),
            _ => (row.outcome, row.resolved_at),
        };
        let new_assignee = assignee.unwrap_or(&row.assignee);
        let updated = sqlx::query(
            "UPDATE recommendations SET state = $1, acknowledged_at = $2, outcome = $3, \
             resolved_at = $4, assignee = $5, updated_at = $6 WHERE id = $7 AND state = $8",
        )
        .bind(to.as_str())
        .bind(acknowledged_at)
        .bind(i64::from(outcome))
        .bind(resolved_at)
        .bind(new_assignee)
        .bind(now.as_micros())
        .bind(request.id)
        .bind(row.state.as_str())
        .execute(&mut *tx)
        .await;
        let updated = match updated {
            Ok(result) => result.rows_affected(),
            Err(error) if is_unique_violation(&error) => {
                drop(tx);
                return Err(self.already_active(&row).await);
            }
            Err(error) => return Err(error.into()),
        };
        if updated != 1 {
            // Someone else changed it in between: report the state it has now.
            drop(tx);
            let current = self.recommendation(request.id).await?;
            let state = State::from_proto(current.state()).unwrap_or(row.state);
            return Err(wrong_state(state));
        }
        if transition != Transition::Reopen {
            escalation::cancel(&mut tx, request.id).await?;
        }
        let comment = match assignee {
            Some(assignee) if request.comment.is_empty() => format!("assigned to {assignee}"),
            Some(assignee) => format!("assigned to {assignee}: {}", request.comment),
            None => request.comment.to_owned(),
        };
        let entry = insert_history(
            &mut tx,
            &HistoryRow {
                recommendation_id: request.id,
                at: now,
                actor: actor(request.actor),
                event: transition.event(),
                from: Some(row.state),
                to: Some(to),
                comment: &comment,
            },
        )
        .await?;
        let updated_row = RecommendationRow {
            state: to,
            acknowledged_at,
            outcome,
            resolved_at,
            assignee: new_assignee.to_owned(),
            updated_at: now.as_micros(),
            ..row.clone()
        };
        if !to.is_active() {
            self.enqueue_resolved(&mut tx, &updated_row, now).await?;
        }
        tx.commit().await?;

        let severity = Severity::try_from(row.severity)
            .map(severity_word)
            .unwrap_or_default();
        let opened_at = Timestamp::from_micros(row.opened_at);
        let metrics = &self.inner.metrics;
        if first_acknowledgement {
            metrics.acknowledged(&row.rule, severity, now.duration_since(opened_at));
        }
        match transition {
            Transition::Resolve(outcome) => {
                let word = if outcome == Outcome::FalseAlarm {
                    "false_alarm"
                } else {
                    "fixed"
                };
                metrics.ended(&row.rule, severity, word, now.duration_since(opened_at));
            }
            Transition::Reopen => metrics.reopened(&row.rule),
            _ => {}
        }
        tracing::info!(recommendation = %request.id, actor = %actor(request.actor),
            from = %row.state, to = %to, "Recommendation changed.");
        self.finish(&updated_row, entry)
    }

    async fn enqueue_resolved(
        &self,
        conn: &mut sqlx::AnyConnection,
        row: &RecommendationRow,
        now: Timestamp,
    ) -> Result<(), TaskError> {
        let Some(runtime) = self.solution(&row.solution).cloned() else {
            return Ok(());
        };
        let Some(rule) = runtime.rules.rule(&row.rule) else {
            return Ok(());
        };
        let variables = match row.to_proto()?.situation {
            Some(situation) => situation_variables(&situation, runtime.rules.providers()),
            None => Map::new(),
        };
        let cause = Cause {
            trigger: Trigger::Resolved,
            step: 0,
            target: &row.assignee,
        };
        outbox::enqueue(conn, &runtime.solution, rule, row, cause, &variables, now).await?;
        Ok(())
    }

    async fn already_active(&self, row: &RecommendationRow) -> TaskError {
        let sql = format!(
            "SELECT id FROM recommendations WHERE solution = $1 AND rule = $2 \
             AND asset_key = $3 AND state IN {}",
            crate::state::ACTIVE_STATES_SQL
        );
        let active: Result<Option<String>, sqlx::Error> = sqlx::query_scalar(&sql)
            .bind(&row.solution)
            .bind(&row.rule)
            .bind(&row.asset_key)
            .fetch_optional(self.inner.store.pool())
            .await;
        match active {
            Ok(active) => TaskError::AlreadyActive {
                id: row.id.clone(),
                active: active.unwrap_or_default(),
                rule: row.rule.clone(),
            },
            Err(error) => error.into(),
        }
    }

    /// Tell watchers and answer with the changed recommendation (without its history, as
    /// lists show it; `GetRecommendation` gives the history).
    fn finish(
        &self,
        row: &RecommendationRow,
        entry: sinter_proto::orchestrator::v1::HistoryEntry,
    ) -> Result<Recommendation, TaskError> {
        let recommendation = row.to_proto()?;
        self.publish(vec![RecommendationChange {
            recommendation: Some(recommendation.clone()),
            change: Some(entry),
        }]);
        Ok(recommendation)
    }
}

/// The actor written in the audit trail; a request without one is `anonymous`.
fn actor(actor: &str) -> &str {
    let actor = actor.trim();
    if actor.is_empty() { "anonymous" } else { actor }
}
