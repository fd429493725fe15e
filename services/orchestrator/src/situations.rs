//! Applying one situation: open a recommendation or add an occurrence for each rule that
//! matches, end the ones its clear ends, and record the consumer's position, all in one
//! transaction.
//!
//! A situation is applied at most once: its id goes into `applied_situations` in the same
//! transaction, so a redelivered record (after a crash between commit and the bus
//! acknowledgement) finds it there and changes nothing.

use prost::Message;
use serde_json::{Map, Value};
use sinter_core::Timestamp;
use sinter_core::solution::{Recommendation as Rule, ResolveWhen};
use sinter_proto::events::v1::action::Trigger;
use sinter_proto::events::v1::{Severity, Situation, detection::Transition as Detected};
use sinter_proto::orchestrator::v1::{Outcome, RecommendationChange};
use sqlx::AnyConnection;

use crate::error::OrchestratorError;
use crate::escalation;
use crate::orchestrator::{Orchestrator, SolutionRuntime};
use crate::outbox::{self, Cause};
use crate::rules::RuleFailure;
use crate::state::{ACTIVE_STATES_SQL, State, Transition};
use crate::store::{HistoryRow, RecommendationRow, StoreError, insert_history};
use crate::variables::{severity_from_word, severity_word, situation_variables};

/// The actor Sinter writes in the audit trail for what it did by itself.
pub const SYSTEM_ACTOR: &str = "sinter";

/// Where a situation was read from, stored with what it changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Situations of one Solution with where each was read, applied together.
pub type SituationBatch = Vec<(Situation, Option<Position>)>;

/// What applying a situation did.
#[derive(Debug, Default)]
pub struct Applied {
    /// The situation had been applied before: nothing changed.
    pub duplicate: bool,
    /// Recommendations opened.
    pub opened: Vec<String>,
    /// Recommendations that got one more occurrence.
    pub repeated: Vec<String>,
    /// Recommendations the clear ended.
    pub closed: Vec<String>,
    /// Rules that could not be judged on this situation (or whose title did not render).
    pub failures: Vec<RuleFailure>,
}

/// A metric to record once the transaction committed.
enum Effect {
    Opened {
        rule: String,
        severity: String,
    },
    Ended {
        rule: String,
        severity: String,
        after: std::time::Duration,
    },
}

impl Orchestrator {
    /// Apply `situation` for Solution `solution` (`namespace/name`); `position` is where
    /// it was read, stored in the same transaction.
    pub async fn apply_situation(
        &self,
        solution: &str,
        situation: &Situation,
        position: Option<&Position>,
    ) -> Result<Applied, OrchestratorError> {
        let batch = [(situation.clone(), position.cloned())];
        let mut applied = self.apply_situations(solution, &batch).await?;
        Ok(applied.pop().unwrap_or_default())
    }

    /// Apply a batch of situations of one Solution, in order, in one transaction: either
    /// all of them and their positions are stored, or none.
    pub async fn apply_situations(
        &self,
        solution: &str,
        batch: &[(Situation, Option<Position>)],
    ) -> Result<Vec<Applied>, OrchestratorError> {
        let runtime = self
            .solution(solution)
            .ok_or_else(|| OrchestratorError::UnknownSolution(solution.to_owned()))?
            .clone();
        let now = self.inner.clock.now();
        let mut tx = self.inner.store.begin().await?;
        let mut changes = Vec::new();
        let mut effects = Vec::new();
        let mut results = Vec::with_capacity(batch.len());
        for (situation, position) in batch {
            let applied = apply_one(
                &mut tx,
                &runtime,
                situation,
                position.as_ref(),
                now,
                &mut changes,
                &mut effects,
            )
            .await?;
            results.push(applied);
        }
        tx.commit().await?;

        let metrics = &self.inner.metrics;
        for (applied, (situation, _)) in results.iter().zip(batch) {
            if applied.duplicate {
                metrics.situation("duplicate");
                continue;
            }
            metrics.situation("applied");
            for failure in &applied.failures {
                metrics.rule_failed(&failure.rule);
                tracing::warn!(solution = %runtime.qualified, situation = %situation.id,
                    rule = %failure.rule, reason = %failure.reason,
                    "Rule could not be judged on a situation.");
            }
        }
        for effect in effects {
            match effect {
                Effect::Opened { rule, severity } => metrics.opened(&rule, &severity),
                Effect::Ended {
                    rule,
                    severity,
                    after,
                } => metrics.ended(&rule, &severity, "cleared", after),
            }
        }
        self.publish(changes);
        Ok(results)
    }
}

/// Apply one situation inside the caller's transaction.
async fn apply_one(
    conn: &mut AnyConnection,
    runtime: &SolutionRuntime,
    situation: &Situation,
    position: Option<&Position>,
    now: Timestamp,
    changes: &mut Vec<RecommendationChange>,
    effects: &mut Vec<Effect>,
) -> Result<Applied, OrchestratorError> {
    let mut applied = Applied::default();
    let fresh = sqlx::query(
        "INSERT INTO applied_situations (solution, situation_id, applied_at) \
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(&runtime.qualified)
    .bind(&situation.id)
    .bind(now.as_micros())
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if let Some(position) = position {
        store_position(conn, position, now).await?;
    }
    if !fresh {
        applied.duplicate = true;
        return Ok(applied);
    }
    let variables = situation_variables(situation, runtime.rules.providers());
    let transition = situation
        .detection
        .as_ref()
        .map_or(Detected::Raised, |detection| detection.transition());
    if transition == Detected::Cleared {
        close_cleared(
            conn,
            runtime,
            situation,
            &variables,
            now,
            &mut applied,
            changes,
            effects,
        )
        .await?;
    } else {
        let judgement = runtime.rules.judge(&variables);
        applied.failures = judgement.failures;
        for matched in judgement.matches {
            let Some(rule) = runtime.rules.rule(&matched.rule) else {
                continue;
            };
            let texts = match render_texts(rule, &variables) {
                Ok(texts) => texts,
                Err(reason) => {
                    applied.failures.push(RuleFailure {
                        rule: rule.name.clone(),
                        reason,
                    });
                    continue;
                }
            };
            open_or_repeat(
                conn,
                runtime,
                rule,
                situation,
                &variables,
                texts,
                now,
                &mut applied,
                changes,
                effects,
            )
            .await?;
        }
    }
    for failure in &applied.failures {
        sqlx::query(
            "INSERT INTO rule_failures (solution, situation_id, rule, reason, at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&runtime.qualified)
        .bind(&situation.id)
        .bind(&failure.rule)
        .bind(&failure.reason)
        .bind(now.as_micros())
        .execute(&mut *conn)
        .await?;
    }
    Ok(applied)
}

// Limitation: positions are stored with the state but not used to resume, because the
// bus cannot seek; `applied_situations` keeps redeliveries harmless instead, and is never
// pruned.
async fn store_position(
    conn: &mut AnyConnection,
    position: &Position,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO consumer_positions \
         (consumer_group, topic, partition_id, next_offset, updated_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (consumer_group, topic, partition_id) DO UPDATE \
         SET next_offset = excluded.next_offset, updated_at = excluded.updated_at \
         WHERE consumer_positions.next_offset < excluded.next_offset",
    )
    .bind(&position.group)
    .bind(&position.topic)
    .bind(i64::from(position.partition))
    .bind(position.offset + 1)
    .bind(now.as_micros())
    .execute(conn)
    .await?;
    Ok(())
}

/// Title and description of a rule, rendered over the situation.
struct Texts {
    title: String,
    description: String,
}

fn render_texts(rule: &Rule, variables: &Map<String, Value>) -> Result<Texts, String> {
    let title = rule
        .title
        .render(variables)
        .map_err(|error| format!("the title does not render: {error}"))?;
    let description = match &rule.description {
        Some(template) => template
            .render(variables)
            .map_err(|error| format!("the description does not render: {error}"))?,
        None => String::new(),
    };
    Ok(Texts { title, description })
}

/// The asset a recommendation is about: the registry's asset, or the device itself
/// when the registry does not know it.
fn asset_key(situation: &Situation) -> (String, String, String) {
    let device = situation
        .detection
        .as_ref()
        .map(|detection| detection.device_id.clone())
        .unwrap_or_default();
    let asset = situation
        .asset
        .as_ref()
        .map(|asset| asset.asset_id.clone())
        .unwrap_or_default();
    let key = if asset.is_empty() {
        format!("device:{device}")
    } else {
        asset.clone()
    };
    (key, asset, device)
}

#[allow(clippy::too_many_arguments)]
async fn open_or_repeat(
    conn: &mut AnyConnection,
    runtime: &SolutionRuntime,
    rule: &Rule,
    situation: &Situation,
    variables: &Map<String, Value>,
    texts: Texts,
    now: Timestamp,
    applied: &mut Applied,
    changes: &mut Vec<RecommendationChange>,
    effects: &mut Vec<Effect>,
) -> Result<(), StoreError> {
    let (key, asset_id, device_id) = asset_key(situation);
    let detection_severity = situation
        .detection
        .as_ref()
        .map_or(Severity::Unspecified, |detection| detection.severity());
    let severity = rule
        .severity
        .map(|severity| severity_from_word(&severity.to_string()))
        .unwrap_or(detection_severity);
    let incident = situation
        .detection
        .as_ref()
        .map(|detection| detection.incident_id.clone())
        .unwrap_or_default();
    let id = sinter_core::id::derive(
        "rc",
        &[
            runtime.qualified.as_bytes(),
            rule.name.as_bytes(),
            key.as_bytes(),
            situation.id.as_bytes(),
        ],
    );
    let encoded = situation.encode_to_vec();
    let inserted = sqlx::query(
        "INSERT INTO recommendations (id, solution, rule, asset_key, asset_id, device_id, \
         state, severity, title, description, situation, incident_id, occurrences, \
         opened_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, $9, $10, $11, 1, $12, $12) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&id)
    .bind(&runtime.qualified)
    .bind(&rule.name)
    .bind(&key)
    .bind(&asset_id)
    .bind(&device_id)
    .bind(severity as i32 as i64)
    .bind(&texts.title)
    .bind(&texts.description)
    .bind(encoded.as_slice())
    .bind(&incident)
    .bind(now.as_micros())
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        let row = RecommendationRow {
            id: id.clone(),
            solution: runtime.qualified.clone(),
            rule: rule.name.clone(),
            asset_key: key,
            asset_id,
            device_id,
            state: State::Open,
            severity: severity as i32,
            title: texts.title,
            description: texts.description,
            situation: encoded,
            incident_id: incident,
            occurrences: 1,
            assignee: String::new(),
            escalation_level: 0,
            escalated_to: String::new(),
            outcome: 0,
            opened_at: now.as_micros(),
            acknowledged_at: None,
            resolved_at: None,
            updated_at: now.as_micros(),
        };
        let entry = insert_history(
            conn,
            &HistoryRow {
                recommendation_id: &id,
                at: now,
                actor: SYSTEM_ACTOR,
                event: "opened",
                from: None,
                to: Some(State::Open),
                comment: &format!("situation {}", situation.id),
            },
        )
        .await?;
        escalation::schedule(conn, &id, rule, now).await?;
        let cause = Cause {
            trigger: Trigger::Opened,
            step: 0,
            target: "",
        };
        outbox::enqueue(conn, &runtime.solution, rule, &row, cause, variables, now).await?;
        changes.push(RecommendationChange {
            recommendation: Some(row.to_proto()?),
            change: Some(entry),
        });
        effects.push(Effect::Opened {
            rule: rule.name.clone(),
            severity: severity_word(severity).to_owned(),
        });
        applied.opened.push(id);
        return Ok(());
    }
    // Limitation: only the latest raising incident is kept, so when two incidents feed one
    // recommendation the clear of the latest ends it.
    let update = format!(
        "UPDATE recommendations SET occurrences = occurrences + 1, incident_id = $1, \
         updated_at = $2 WHERE solution = $3 AND rule = $4 AND asset_key = $5 \
         AND state IN {ACTIVE_STATES_SQL} RETURNING id"
    );
    let repeated: Option<String> = sqlx::query_scalar(&update)
        .bind(&incident)
        .bind(now.as_micros())
        .bind(&runtime.qualified)
        .bind(&rule.name)
        .bind(&key)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(repeated) = repeated else {
        // The conflict was with this very id: the same situation opened it before, under
        // another position. Nothing to add.
        return Ok(());
    };
    let row = RecommendationRow::load(conn, &repeated)
        .await?
        .ok_or_else(|| StoreError::Sql(sqlx::Error::RowNotFound))?;
    let entry = insert_history(
        conn,
        &HistoryRow {
            recommendation_id: &repeated,
            at: now,
            actor: SYSTEM_ACTOR,
            event: "occurrence",
            from: Some(row.state),
            to: Some(row.state),
            comment: &format!("situation {}", situation.id),
        },
    )
    .await?;
    changes.push(RecommendationChange {
        recommendation: Some(row.to_proto()?),
        change: Some(entry),
    });
    applied.repeated.push(repeated);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn close_cleared(
    conn: &mut AnyConnection,
    runtime: &SolutionRuntime,
    situation: &Situation,
    variables: &Map<String, Value>,
    now: Timestamp,
    applied: &mut Applied,
    changes: &mut Vec<RecommendationChange>,
    effects: &mut Vec<Effect>,
) -> Result<(), StoreError> {
    let Some(incident) = situation
        .detection
        .as_ref()
        .map(|detection| detection.incident_id.as_str())
        .filter(|incident| !incident.is_empty())
    else {
        return Ok(());
    };
    let select = format!(
        "SELECT id FROM recommendations WHERE solution = $1 AND incident_id = $2 \
         AND state IN {ACTIVE_STATES_SQL} ORDER BY id"
    );
    let ids: Vec<String> = sqlx::query_scalar(&select)
        .bind(&runtime.qualified)
        .bind(incident)
        .fetch_all(&mut *conn)
        .await?;
    for id in ids {
        let Some(row) = RecommendationRow::load(conn, &id).await? else {
            continue;
        };
        let resolve_when = runtime
            .rules
            .rule(&row.rule)
            .map_or(ResolveWhen::Manual, |rule| rule.resolve_when);
        if resolve_when == ResolveWhen::Manual {
            let entry = insert_history(
                conn,
                &HistoryRow {
                    recommendation_id: &id,
                    at: now,
                    actor: SYSTEM_ACTOR,
                    event: "detection_cleared",
                    from: Some(row.state),
                    to: Some(row.state),
                    comment: &format!("situation {}; resolveWhen is manual", situation.id),
                },
            )
            .await?;
            changes.push(RecommendationChange {
                recommendation: Some(row.to_proto()?),
                change: Some(entry),
            });
            continue;
        }
        let Some(ended) = Transition::Clear.apply(row.state) else {
            continue;
        };
        let outcome = Outcome::Cleared as i32 as i64;
        let result = sqlx::query(
            "UPDATE recommendations SET state = $1, outcome = $2, resolved_at = $3, \
             updated_at = $3 WHERE id = $4 AND state = $5",
        )
        .bind(ended.as_str())
        .bind(outcome)
        .bind(now.as_micros())
        .bind(&id)
        .bind(row.state.as_str())
        .execute(&mut *conn)
        .await?;
        if result.rows_affected() != 1 {
            continue;
        }
        escalation::cancel(conn, &id).await?;
        let entry = insert_history(
            conn,
            &HistoryRow {
                recommendation_id: &id,
                at: now,
                actor: SYSTEM_ACTOR,
                event: Transition::Clear.event(),
                from: Some(row.state),
                to: Some(ended),
                comment: &format!("situation {}", situation.id),
            },
        )
        .await?;
        let Some(updated) = RecommendationRow::load(conn, &id).await? else {
            continue;
        };
        if let Some(rule) = runtime.rules.rule(&row.rule) {
            let cause = Cause {
                trigger: Trigger::Resolved,
                step: 0,
                target: &updated.assignee,
            };
            outbox::enqueue(
                conn,
                &runtime.solution,
                rule,
                &updated,
                cause,
                variables,
                now,
            )
            .await?;
        }
        let severity = Severity::try_from(updated.severity)
            .map(severity_word)
            .unwrap_or_default();
        effects.push(Effect::Ended {
            rule: updated.rule.clone(),
            severity: severity.to_owned(),
            after: now.duration_since(Timestamp::from_micros(updated.opened_at)),
        });
        changes.push(RecommendationChange {
            recommendation: Some(updated.to_proto()?),
            change: Some(entry),
        });
        applied.closed.push(id);
    }
    Ok(())
}
