//! The escalation ladder: durable timers in SQL, fired by the Clock.
//!
//! - A recommendation's timers are written when it opens, in the same transaction, one
//!   per step, with ids derived from the recommendation and the step. Nothing else writes
//!   timers, so re-applying a Solution (changed or not) neither adds nor re-arms any: a
//!   recommendation keeps the ladder it was opened with.
//! - A timer fires exactly once: the transaction that fires it moves it from `pending`
//!   to `fired` (or `cancelled`) only if it is still `pending`, together with the
//!   recommendation's escalation and its actions. A second process, or the same one after
//!   a crash, finds it no longer pending.
//! - A timer fires only while its recommendation is still `open`; acknowledging,
//!   assigning or ending it cancels the pending ones.
//! - Timers that came due while the service was down fire as soon as it is back, each
//!   once, oldest first; the audit trail gives both the due time and the time it fired,
//!   so a late escalation is visible as late.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Map;
use sinter_core::Timestamp;
use sinter_core::solution::Recommendation as Rule;
use sinter_proto::events::v1::{Severity, action::Trigger};
use sinter_proto::orchestrator::v1::RecommendationChange;
use sqlx::{AnyConnection, Row};

use crate::error::OrchestratorError;
use crate::orchestrator::Orchestrator;
use crate::outbox::{self, Cause};
use crate::situations::SYSTEM_ACTOR;
use crate::state::State;
use crate::store::{HistoryRow, RecommendationRow, StoreError, insert_history};
use crate::variables::{severity_word, situation_variables};

/// Write the timers of `rule`'s ladder for recommendation `id`, opened at `opened_at`.
pub async fn schedule(
    conn: &mut AnyConnection,
    id: &str,
    rule: &Rule,
    opened_at: Timestamp,
) -> Result<(), StoreError> {
    if rule.escalate.is_empty() {
        return Ok(());
    }
    // One statement for the whole ladder.
    let rows: Vec<String> = (0..rule.escalate.len())
        .map(|step| {
            let n = step * 5;
            format!(
                "(${}, ${}, ${}, ${}, ${}, 'pending')",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO escalation_timers (id, recommendation_id, step, target, due_at, state) \
         VALUES {} ON CONFLICT DO NOTHING",
        rows.join(", ")
    );
    let mut statement = sqlx::query(&sql);
    for (step, rung) in rule.escalate.iter().enumerate() {
        let timer_id = sinter_core::id::derive(
            "et",
            &[
                id.as_bytes(),
                step.to_string().as_bytes(),
                rung.to.as_bytes(),
                rung.after.as_micros().to_string().as_bytes(),
            ],
        );
        statement = statement
            .bind(timer_id)
            .bind(id.to_owned())
            .bind(i64::try_from(step).unwrap_or(i64::MAX))
            .bind(rung.to.clone())
            .bind(opened_at.saturating_add(rung.after).as_micros());
    }
    statement.execute(conn).await?;
    Ok(())
}

/// Cancel the pending timers of recommendation `id`.
pub async fn cancel(conn: &mut AnyConnection, id: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE escalation_timers SET state = 'cancelled' \
         WHERE recommendation_id = $1 AND state = 'pending'",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// How many transactions fire timers at once.
const PARALLEL_FIRES: usize = 8;

/// How many recommendations' timers one transaction fires.
const TIMER_BATCH: usize = 32;

fn chunk<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut chunks = Vec::new();
    let mut current = Vec::with_capacity(size);
    for item in items {
        current.push(item);
        if current.len() == size {
            chunks.push(std::mem::replace(&mut current, Vec::with_capacity(size)));
        }
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// An escalation that fired, to report once its transaction committed.
struct Fired {
    change: RecommendationChange,
    rule: String,
    severity: i32,
    target: String,
    step: i64,
}

/// A timer that came due.
struct DueTimer {
    id: String,
    recommendation_id: String,
    step: i64,
    target: String,
    due_at: i64,
}

impl Orchestrator {
    /// Fire every timer due by the Clock's now, at most `limit`; returns how many
    /// escalated a recommendation.
    pub async fn fire_due_timers(&self, limit: usize) -> Result<usize, OrchestratorError> {
        let now = self.inner.clock.now();
        let rows = sqlx::query(
            "SELECT id, recommendation_id, step, target, due_at FROM escalation_timers \
             WHERE state = 'pending' AND due_at <= $1 ORDER BY due_at, id LIMIT $2",
        )
        .bind(now.as_micros())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.inner.store.pool())
        .await?;
        let mut timers = Vec::with_capacity(rows.len());
        for row in rows {
            timers.push(DueTimer {
                id: row.try_get("id")?,
                recommendation_id: row.try_get("recommendation_id")?,
                step: row.try_get("step")?,
                target: row.try_get("target")?,
                due_at: row.try_get("due_at")?,
            });
        }
        // Timers of different recommendations are independent; one recommendation's steps
        // fire in due order.
        let mut by_recommendation: Vec<Vec<DueTimer>> = Vec::new();
        let mut groups: HashMap<String, usize> = HashMap::new();
        for timer in timers {
            match groups.get(&timer.recommendation_id) {
                Some(&index) => by_recommendation[index].push(timer),
                None => {
                    groups.insert(timer.recommendation_id.clone(), by_recommendation.len());
                    by_recommendation.push(vec![timer]);
                }
            }
        }
        let batches: Vec<Vec<Vec<DueTimer>>> = chunk(by_recommendation, TIMER_BATCH);
        let results: Vec<Result<usize, OrchestratorError>> = futures::stream::iter(batches)
            .map(|batch| self.fire_batch(batch, now))
            .buffer_unordered(PARALLEL_FIRES)
            .collect()
            .await;
        let mut fired = 0;
        for result in results {
            fired += result?;
        }
        Ok(fired)
    }

    /// Fire the timers of a few recommendations in one transaction, each recommendation's
    /// in due order; returns how many escalated.
    async fn fire_batch(
        &self,
        batch: Vec<Vec<DueTimer>>,
        now: Timestamp,
    ) -> Result<usize, OrchestratorError> {
        let mut tx = self.inner.store.begin().await?;
        let mut fired = Vec::new();
        for group in &batch {
            for timer in group {
                if let Some(done) = self.fire(&mut tx, timer, now).await? {
                    fired.push(done);
                }
            }
        }
        tx.commit().await?;
        let count = fired.len();
        let mut changes = Vec::with_capacity(count);
        for done in fired {
            let severity = Severity::try_from(done.severity)
                .map(severity_word)
                .unwrap_or_default();
            self.inner.metrics.escalated(&done.rule, severity);
            tracing::info!(rule = %done.rule, target = %done.target, step = done.step + 1,
                "Recommendation escalated.");
            changes.push(done.change);
        }
        self.publish(changes);
        Ok(count)
    }

    /// Fire one timer inside the caller's transaction; `None` when it was no longer
    /// pending or its recommendation no longer open.
    async fn fire(
        &self,
        tx: &mut AnyConnection,
        timer: &DueTimer,
        now: Timestamp,
    ) -> Result<Option<Fired>, OrchestratorError> {
        let Some(row) = RecommendationRow::load(tx, &timer.recommendation_id).await? else {
            return Ok(None);
        };
        let escalate = row.state == State::Open;
        let claimed = sqlx::query(
            "UPDATE escalation_timers SET state = $1, fired_at = $2 \
             WHERE id = $3 AND state = 'pending'",
        )
        .bind(if escalate { "fired" } else { "cancelled" })
        .bind(now.as_micros())
        .bind(&timer.id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !claimed || !escalate {
            return Ok(None);
        }
        let level = row.escalation_level.max(timer.step + 1);
        sqlx::query(
            "UPDATE recommendations SET escalation_level = $1, escalated_to = $2, \
             updated_at = $3 WHERE id = $4",
        )
        .bind(level)
        .bind(&timer.target)
        .bind(now.as_micros())
        .bind(&row.id)
        .execute(&mut *tx)
        .await?;
        let row_state = row.state;
        let due = Timestamp::from_micros(timer.due_at);
        let late = now.duration_since(due);
        let comment = if late > Duration::ZERO {
            format!(
                "step {} to {}; due at {due}, {}s late",
                timer.step + 1,
                timer.target,
                late.as_secs()
            )
        } else {
            format!("step {} to {}", timer.step + 1, timer.target)
        };
        let entry = insert_history(
            tx,
            &HistoryRow {
                recommendation_id: &row.id,
                at: now,
                actor: SYSTEM_ACTOR,
                event: "escalated",
                from: Some(row_state),
                to: Some(row_state),
                comment: &comment,
            },
        )
        .await?;
        let updated = RecommendationRow {
            escalation_level: level,
            escalated_to: timer.target.clone(),
            updated_at: now.as_micros(),
            ..row
        };
        if let Some(runtime) = self.solution(&updated.solution).cloned()
            && let Some(rule) = runtime.rules.rule(&updated.rule)
        {
            let variables = match updated.to_proto()?.situation {
                Some(situation) => situation_variables(&situation, runtime.rules.providers()),
                None => Map::new(),
            };
            let cause = Cause {
                trigger: Trigger::Escalated,
                step: usize::try_from(timer.step).unwrap_or_default() + 1,
                target: &timer.target,
            };
            outbox::enqueue(
                tx,
                &runtime.solution,
                rule,
                &updated,
                cause,
                &variables,
                now,
            )
            .await?;
        }
        Ok(Some(Fired {
            change: RecommendationChange {
                recommendation: Some(updated.to_proto()?),
                change: Some(entry),
            },
            rule: updated.rule.clone(),
            severity: updated.severity,
            target: timer.target.clone(),
            step: timer.step,
        }))
    }
}
