//! The escalation ladder: durable timers in SQL, fired by the Clock.
//!
//! - A recommendation's timers are written when it opens, in the same transaction, one
//!   per step, keyed by the recommendation and the step. Nothing else writes
//!   timers, so re-applying a Solution (changed or not) neither adds nor re-arms any: a
//!   recommendation keeps the ladder it was opened with.
//! - A timer fires exactly once: its row exists while it is pending, and the transaction
//!   that fires it deletes the row, together with the recommendation's escalation and
//!   its actions (the audit trail keeps what fired, when it was due and when it fired).
//!   A second process, or the same one after a crash, finds the row gone.
//! - A timer fires only while its recommendation is still `open`; acknowledging,
//!   assigning or ending it deletes the pending ones, and a timer found due for a
//!   recommendation no longer open is deleted without firing.
//! - Timers that came due while the service was down fire as soon as it is back, each
//!   once, oldest first; the audit trail gives both the due time and the time it fired,
//!   so a late escalation is visible as late.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use sinter_core::Timestamp;
use sinter_core::solution::Recommendation as Rule;
use sinter_proto::events::v1::{Severity, action::Trigger};
use sqlx::{AnyConnection, Row};

use crate::error::OrchestratorError;
use crate::orchestrator::Orchestrator;
use crate::outbox::{self, Cause};
use crate::situations::SYSTEM_ACTOR;
use crate::state::State;
use crate::store::{HistoryRow, RecommendationRow, StoreError, batch, insert_histories};
use crate::variables::severity_word;

/// One escalation timer, ready to be written.
#[derive(Clone, Debug)]
pub struct TimerRow {
    recommendation_id: String,
    step: i64,
    target: String,
    due_at: i64,
}

/// The timers of `rule`'s ladder for recommendation `id`, opened at `opened_at`.
pub fn ladder(id: &str, rule: &Rule, opened_at: Timestamp) -> Vec<TimerRow> {
    rule.escalate
        .iter()
        .enumerate()
        .map(|(step, rung)| TimerRow {
            recommendation_id: id.to_owned(),
            step: i64::try_from(step).unwrap_or(i64::MAX),
            target: rung.to.clone(),
            due_at: opened_at.saturating_add(rung.after).as_micros(),
        })
        .collect()
}

/// Write `timers`, pending, in pieces (see [`batch::pieces`]); a pending timer already
/// there is left as it is. A fired or cancelled timer has no row any more, so only the
/// opening of a recommendation may write its ladder.
pub async fn insert_timers(
    conn: &mut AnyConnection,
    timers: &[TimerRow],
) -> Result<(), StoreError> {
    const COLUMNS: usize = 4;
    for chunk in batch::pieces(timers, COLUMNS) {
        let sql = format!(
            "INSERT INTO escalation_timers (recommendation_id, step, target, due_at) \
             VALUES {} ON CONFLICT DO NOTHING",
            batch::values(chunk.len(), COLUMNS, 1)
        );
        let mut query = sqlx::query(&sql);
        for timer in chunk {
            query = query
                .bind(timer.recommendation_id.as_str())
                .bind(timer.step)
                .bind(timer.target.as_str())
                .bind(timer.due_at);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Cancel the pending timers of recommendation `id`.
pub async fn cancel(conn: &mut AnyConnection, id: &str) -> Result<(), StoreError> {
    cancel_all(conn, &[id]).await
}

/// Cancel the pending timers of every recommendation in `ids`.
pub async fn cancel_all(conn: &mut AnyConnection, ids: &[&str]) -> Result<(), StoreError> {
    for chunk in batch::pieces(ids, 1) {
        let sql = format!(
            "DELETE FROM escalation_timers WHERE recommendation_id IN ({})",
            batch::list(chunk.len(), 1)
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// How many transactions fire timers at once.
const PARALLEL_FIRES: usize = 4;

/// How many recommendations' timers one transaction fires.
const TIMER_BATCH: usize = 256;

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

/// A step that fired, for metrics, the log and watchers.
struct Fired {
    /// Its audit entry's place among the batch's.
    entry: usize,
    /// Its recommendation's place among the batch's escalated rows.
    row: usize,
    /// The escalation level and target the step left.
    level: i64,
    target: String,
    step: i64,
}

/// A timer that came due.
struct DueTimer {
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
        // Ties in due time come in no particular order; each recommendation's steps are
        // put in order below.
        let rows = sqlx::query(
            "SELECT recommendation_id, step, target, due_at FROM escalation_timers \
             WHERE due_at <= $1 ORDER BY due_at LIMIT $2",
        )
        .bind(now.as_micros())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.inner.store.pool())
        .await?;
        let mut timers = Vec::with_capacity(rows.len());
        for row in rows {
            timers.push(DueTimer {
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
        for group in &mut by_recommendation {
            group.sort_by_key(|timer| (timer.due_at, timer.step));
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
    ///
    /// A handful of statements for the whole batch: load the recommendations, claim the
    /// timers (fired for an open recommendation, cancelled otherwise), then write the
    /// escalations, their audit entries and their actions.
    async fn fire_batch(
        &self,
        batch: Vec<Vec<DueTimer>>,
        now: Timestamp,
    ) -> Result<usize, OrchestratorError> {
        let mut tx = self.inner.store.begin().await?;
        let ids: Vec<&str> = batch
            .iter()
            .filter_map(|group| group.first())
            .map(|timer| timer.recommendation_id.as_str())
            .collect();
        let mut rows = RecommendationRow::load_many(&mut tx, &ids).await?;
        // A timer of a recommendation no longer open is claimed too, and so cancelled; so is
        // one whose recommendation is missing (nothing but a hand in the database makes
        // one), which would otherwise come first in every round and never fire.
        let due: Vec<(&str, i64)> = batch
            .iter()
            .flatten()
            .map(|timer| (timer.recommendation_id.as_str(), timer.step))
            .collect();
        let claimed = claim(&mut tx, &due).await?;

        let mut fired = Vec::new();
        let mut comments = Vec::new();
        let mut actions = Vec::new();
        let mut escalated = Vec::new();
        for group in &batch {
            let Some(first) = group.first() else {
                continue;
            };
            let Some(mut row) = rows.remove(&first.recommendation_id) else {
                continue;
            };
            let mut changed = false;
            if row.state != State::Open {
                continue;
            }
            let is_claimed = |timer: &&DueTimer| {
                claimed.contains(&(timer.recommendation_id.clone(), timer.step))
            };
            for timer in group.iter().filter(is_claimed) {
                row.escalation_level = row.escalation_level.max(timer.step + 1);
                row.escalated_to = timer.target.clone();
                row.updated_at = now.as_micros();
                changed = true;
                comments.push((row.id.clone(), row.state, escalation_comment(timer, now)));
                let cause = Cause {
                    trigger: Trigger::Escalated,
                    step: usize::try_from(timer.step).unwrap_or_default() + 1,
                    target: &timer.target,
                };
                actions.extend(self.later_actions(&row, cause, now));
                fired.push(Fired {
                    entry: comments.len() - 1,
                    row: escalated.len(),
                    level: row.escalation_level,
                    target: timer.target.clone(),
                    step: timer.step,
                });
            }
            if changed {
                escalated.push(row);
            }
        }
        write_escalations(&mut tx, &escalated).await?;
        let history: Vec<HistoryRow<'_>> = comments
            .iter()
            .map(|(id, state, comment)| HistoryRow {
                recommendation_id: id,
                at: now,
                actor: SYSTEM_ACTOR,
                event: "escalated",
                from: Some(*state),
                to: Some(*state),
                comment,
            })
            .collect();
        let entries = insert_histories(&mut tx, &history).await?;
        outbox::insert(&mut tx, &actions).await?;
        tx.commit().await?;

        let count = fired.len();
        let watched = self.watched();
        let mut changes = Vec::new();
        for fired in fired {
            let Some(row) = escalated.get(fired.row) else {
                continue;
            };
            let severity = Severity::try_from(row.severity)
                .map(severity_word)
                .unwrap_or_default();
            self.inner.metrics.escalated(&row.rule, severity);
            tracing::info!(recommendation = %row.id, rule = %row.rule,
                target = %fired.target, step = fired.step + 1, "Recommendation escalated.");
            if let (true, Some(entry)) = (watched, entries.get(fired.entry)) {
                // The recommendation as this step left it.
                let mut after = row.clone();
                after.escalation_level = fired.level;
                after.escalated_to = fired.target;
                changes.push((after, entry.clone()));
            }
        }
        self.publish_rows(changes);
        Ok(count)
    }
}

/// Delete the pending timers among `timers` (recommendation and step); returns those this
/// transaction deleted, so a timer another process fired or cancelled first is left alone.
async fn claim(
    conn: &mut AnyConnection,
    timers: &[(&str, i64)],
) -> Result<HashSet<(String, i64)>, StoreError> {
    const COLUMNS: usize = 2;
    let mut claimed = HashSet::with_capacity(timers.len());
    for chunk in batch::pieces(timers, COLUMNS) {
        let sql = format!(
            "DELETE FROM escalation_timers WHERE (recommendation_id, step) IN (VALUES {}) \
             RETURNING recommendation_id, step",
            batch::values(chunk.len(), COLUMNS, 1)
        );
        let mut query = sqlx::query_as::<_, (String, i64)>(&sql);
        for (id, step) in chunk {
            query = query.bind(*id).bind(*step);
        }
        claimed.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(claimed)
}

/// Store the escalation level, target and change time of every row in `rows`.
async fn write_escalations(
    conn: &mut AnyConnection,
    rows: &[RecommendationRow],
) -> Result<(), StoreError> {
    const COLUMNS: usize = 4;
    for chunk in batch::pieces(rows, COLUMNS) {
        let sql = format!(
            "UPDATE recommendations SET escalation_level = v.column2, \
             escalated_to = v.column3, updated_at = v.column4 \
             FROM (VALUES {}) AS v WHERE recommendations.id = v.column1",
            batch::values(chunk.len(), COLUMNS, 1)
        );
        let mut query = sqlx::query(&sql);
        for row in chunk {
            query = query
                .bind(row.id.as_str())
                .bind(row.escalation_level)
                .bind(row.escalated_to.as_str())
                .bind(row.updated_at);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The audit comment of `timer` firing at `now`: the step, its target, and how late.
fn escalation_comment(timer: &DueTimer, now: Timestamp) -> String {
    let due = Timestamp::from_micros(timer.due_at);
    let late = now.duration_since(due);
    if late > Duration::ZERO {
        format!(
            "step {} to {}; due at {due}, {}s late",
            timer.step + 1,
            timer.target,
            late.as_secs()
        )
    } else {
        format!("step {} to {}", timer.step + 1, timer.target)
    }
}
