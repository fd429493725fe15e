//! Applying one situation: open a recommendation or add an occurrence for each rule that
//! matches, end the ones its clear ends, and record the consumer's position, all in one
//! transaction.
//!
//! A situation is applied at most once: its id goes into `applied_situations` in the same
//! transaction, so a redelivered record (after a crash between commit and the bus
//! acknowledgement) finds it there and changes nothing.
//!
//! A batch is written with multi-row statements: its situation ids and positions at once,
//! and its openings together (the recommendations, then their audit entries, timers and
//! actions, one statement each). Openings wait to be written until a clear, or a second
//! opening for the same rule and asset, needs to see them: the result is the one applying
//! the situations one by one gives.

use std::collections::HashSet;
use std::sync::Arc;

use prost::Message;
use serde_json::{Map, Value};
use sinter_core::Timestamp;
use sinter_core::solution::{Recommendation as Rule, ResolveWhen};
use sinter_proto::events::v1::action::Trigger;
use sinter_proto::events::v1::{Severity, Situation, detection::Transition as Detected};
use sinter_proto::orchestrator::v1::{HistoryEntry, Outcome};
use sqlx::AnyConnection;

use crate::error::OrchestratorError;
use crate::escalation;
use crate::orchestrator::{Orchestrator, SolutionRuntime};
use crate::outbox::{self, Cause};
use crate::rules::RuleFailure;
use crate::state::{ACTIVE_STATES_SQL, State, Transition};
use crate::store::active::{self, ActiveKey};
use crate::store::{
    HistoryRow, RecommendationRow, StoreError, batch, insert_histories, insert_history,
};
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
        let fresh = mark_applied(&mut tx, &runtime.qualified, batch, now).await?;
        store_positions(&mut tx, batch.iter().filter_map(|(_, at)| at.as_ref()), now).await?;
        let mut changes = Vec::new();
        let mut effects = Vec::new();
        let mut results: Vec<Applied> = batch.iter().map(|_| Applied::default()).collect();
        let mut openings = Openings::default();
        for (index, (situation, _)) in batch.iter().enumerate() {
            if !fresh[index] {
                results[index].duplicate = true;
                continue;
            }
            let variables = situation_variables(situation, runtime.rules.providers());
            let transition = situation
                .detection
                .as_ref()
                .map_or(Detected::Raised, |detection| detection.transition());
            if transition == Detected::Cleared {
                // A clear may end what the waiting openings open: write them first.
                let mut out = Outcomes {
                    results: &mut results,
                    changes: &mut changes,
                    effects: &mut effects,
                };
                openings.flush(&mut tx, &runtime, now, &mut out).await?;
                close_cleared(
                    &mut tx,
                    &runtime,
                    situation,
                    &variables,
                    now,
                    &mut results[index],
                    &mut changes,
                    &mut effects,
                )
                .await?;
                continue;
            }
            let judgement = runtime.rules.judge(&variables);
            results[index].failures = judgement.failures;
            let variables = Arc::new(variables);
            for matched in judgement.matches {
                let Some(rule) = runtime.rules.rule(&matched.rule) else {
                    continue;
                };
                let texts = match render_texts(rule, &variables) {
                    Ok(texts) => texts,
                    Err(reason) => {
                        results[index].failures.push(RuleFailure {
                            rule: rule.name.clone(),
                            reason,
                        });
                        continue;
                    }
                };
                let opening =
                    Opening::new(&runtime, rule, situation, texts, now, index, &variables);
                if openings.holds(&opening) {
                    // A second opening for one rule and asset sees the first one's row.
                    let mut out = Outcomes {
                        results: &mut results,
                        changes: &mut changes,
                        effects: &mut effects,
                    };
                    openings.flush(&mut tx, &runtime, now, &mut out).await?;
                }
                openings.push(opening);
            }
        }
        let mut out = Outcomes {
            results: &mut results,
            changes: &mut changes,
            effects: &mut effects,
        };
        openings.flush(&mut tx, &runtime, now, &mut out).await?;
        record_failures(&mut tx, &runtime.qualified, batch, &results, now).await?;
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
        self.publish_rows(changes);
        Ok(results)
    }
}

/// Record the situations of `batch` as applied, in one statement; returns, for each,
/// whether it is new (neither applied before nor earlier in the batch).
async fn mark_applied(
    conn: &mut AnyConnection,
    solution: &str,
    batch: &[(Situation, Option<Position>)],
    now: Timestamp,
) -> Result<Vec<bool>, StoreError> {
    const COLUMNS: usize = 3;
    let mut seen = HashSet::with_capacity(batch.len());
    let first: Vec<bool> = batch
        .iter()
        .map(|(situation, _)| seen.insert(situation.id.as_str()))
        .collect();
    let ids: Vec<&str> = batch
        .iter()
        .zip(&first)
        .filter(|(_, first)| **first)
        .map(|((situation, _), _)| situation.id.as_str())
        .collect();
    let mut inserted = HashSet::with_capacity(ids.len());
    for chunk in batch::pieces(&ids, COLUMNS) {
        let sql = format!(
            "INSERT INTO applied_situations (solution, situation_id, applied_at) VALUES {} \
             ON CONFLICT DO NOTHING RETURNING situation_id",
            batch::values(chunk.len(), COLUMNS, 1)
        );
        let mut query = sqlx::query_scalar::<_, String>(&sql);
        for id in chunk {
            query = query.bind(solution).bind(*id).bind(now.as_micros());
        }
        inserted.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(batch
        .iter()
        .zip(first)
        .map(|((situation, _), first)| first && inserted.contains(&situation.id))
        .collect())
}

/// Store where the batch was read up to: the furthest position per partition, which is
/// what storing each position in turn leaves.
async fn store_positions<'a>(
    conn: &mut AnyConnection,
    positions: impl Iterator<Item = &'a Position>,
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut furthest: Vec<&Position> = Vec::new();
    for position in positions {
        let same = furthest.iter_mut().find(|known| {
            known.group == position.group
                && known.topic == position.topic
                && known.partition == position.partition
        });
        match same {
            Some(known) if known.offset < position.offset => *known = position,
            Some(_) => {}
            None => furthest.push(position),
        }
    }
    for position in furthest {
        store_position(conn, position, now).await?;
    }
    Ok(())
}

/// Write the rules that could not be judged on the batch's situations, for operators.
async fn record_failures(
    conn: &mut AnyConnection,
    solution: &str,
    batch: &[(Situation, Option<Position>)],
    results: &[Applied],
    now: Timestamp,
) -> Result<(), StoreError> {
    for ((situation, _), applied) in batch.iter().zip(results) {
        for failure in &applied.failures {
            sqlx::query(
                "INSERT INTO rule_failures (solution, situation_id, rule, reason, at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(solution)
            .bind(&situation.id)
            .bind(&failure.rule)
            .bind(&failure.reason)
            .bind(now.as_micros())
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
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

/// A recommendation as a situation left it, with the audit entry of the change.
type Change = (RecommendationRow, HistoryEntry);

/// Where the outcomes of a batch's situations go.
struct Outcomes<'a> {
    results: &'a mut [Applied],
    /// What changed, for watchers once committed.
    changes: &'a mut Vec<Change>,
    effects: &'a mut Vec<Effect>,
}

/// A recommendation a matching rule opens, unless one is active for its rule and asset.
struct Opening<'a> {
    /// The situation's place in the batch.
    index: usize,
    rule: &'a Rule,
    situation: &'a Situation,
    variables: Arc<Map<String, Value>>,
    row: RecommendationRow,
}

impl<'a> Opening<'a> {
    fn new(
        runtime: &SolutionRuntime,
        rule: &'a Rule,
        situation: &'a Situation,
        texts: Texts,
        now: Timestamp,
        index: usize,
        variables: &Arc<Map<String, Value>>,
    ) -> Opening<'a> {
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
        // Ordered by opening time: the indexes keyed by recommendation (its own, its audit
        // trail's, its timers' and its actions') then grow where the newest are.
        let id = sinter_core::id::derive_ordered(
            "rc",
            now.as_micros(),
            &[
                runtime.qualified.as_bytes(),
                rule.name.as_bytes(),
                key.as_bytes(),
                situation.id.as_bytes(),
            ],
        );
        let row = RecommendationRow {
            id,
            solution: runtime.qualified.clone(),
            rule: rule.name.clone(),
            asset_key: key,
            asset_id,
            device_id,
            state: State::Open,
            severity: severity as i32,
            title: texts.title,
            description: texts.description,
            situation: situation.encode_to_vec(),
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
        Opening {
            index,
            rule,
            situation,
            variables: variables.clone(),
            row,
        }
    }

    fn key(&self) -> (String, String) {
        (self.row.rule.clone(), self.row.asset_key.clone())
    }
}

/// Openings waiting to be written together, at most one per rule and asset, so that
/// none of them can depend on another.
#[derive(Default)]
struct Openings<'a> {
    waiting: Vec<Opening<'a>>,
    keys: HashSet<(String, String)>,
}

impl<'a> Openings<'a> {
    /// Whether an opening for the same rule and asset waits already.
    fn holds(&self, opening: &Opening<'_>) -> bool {
        self.keys.contains(&opening.key())
    }

    fn push(&mut self, opening: Opening<'a>) {
        self.keys.insert(opening.key());
        self.waiting.push(opening);
    }

    /// Write the waiting openings: the recommendations in one statement, then, for those
    /// written, their audit entries, timers and actions in one statement each. An opening
    /// whose rule and asset has an active recommendation adds an occurrence to it instead.
    async fn flush(
        &mut self,
        conn: &mut AnyConnection,
        runtime: &SolutionRuntime,
        now: Timestamp,
        out: &mut Outcomes<'_>,
    ) -> Result<(), StoreError> {
        if self.waiting.is_empty() {
            return Ok(());
        }
        self.keys.clear();
        let mut waiting = std::mem::take(&mut self.waiting);
        // An opening finds the rule and asset held, then the holder ends and commits before
        // the opening can add its occurrence: the key is free again, so it tries again.
        for _ in 0..OPEN_ATTEMPTS {
            waiting = write_openings(conn, runtime, now, out, waiting).await?;
            if waiting.is_empty() {
                break;
            }
        }
        Ok(())
    }
}

/// Tries at writing an opening whose rule and asset keep changing hands under it.
const OPEN_ATTEMPTS: usize = 3;

/// Write `waiting`: the recommendations in one statement, then, for those written, their
/// audit entries, timers and actions in one statement each. An opening whose rule and asset
/// has an active recommendation adds an occurrence to it instead. Returns the openings that
/// could do neither: the active one ended between the two.
async fn write_openings<'a>(
    conn: &mut AnyConnection,
    runtime: &SolutionRuntime,
    now: Timestamp,
    out: &mut Outcomes<'_>,
    waiting: Vec<Opening<'a>>,
) -> Result<Vec<Opening<'a>>, StoreError> {
    let inserted = insert_recommendations(conn, &waiting).await?;
    let (opened, repeats): (Vec<_>, Vec<_>) = waiting
        .into_iter()
        .partition(|opening| inserted.contains(&opening.row.id));
    let comments: Vec<String> = opened
        .iter()
        .map(|opening| format!("situation {}", opening.situation.id))
        .collect();
    let history: Vec<HistoryRow<'_>> = opened
        .iter()
        .zip(&comments)
        .map(|(opening, comment)| HistoryRow {
            recommendation_id: &opening.row.id,
            at: now,
            actor: SYSTEM_ACTOR,
            event: "opened",
            from: None,
            to: Some(State::Open),
            comment,
        })
        .collect();
    let entries = insert_histories(conn, &history).await?;
    let mut timers = Vec::new();
    let mut actions = Vec::new();
    let cause = Cause {
        trigger: Trigger::Opened,
        step: 0,
        target: "",
    };
    for opening in &opened {
        timers.extend(escalation::ladder(&opening.row.id, opening.rule, now));
        actions.extend(outbox::entries(
            &runtime.solution,
            opening.rule,
            &opening.row,
            cause,
            &opening.variables,
            now,
        ));
    }
    escalation::insert_timers(conn, &timers).await?;
    outbox::insert(conn, &actions).await?;
    for (opening, entry) in opened.into_iter().zip(entries) {
        let severity = Severity::try_from(opening.row.severity).unwrap_or_default();
        out.effects.push(Effect::Opened {
            rule: opening.row.rule.clone(),
            severity: severity_word(severity).to_owned(),
        });
        out.results[opening.index]
            .opened
            .push(opening.row.id.clone());
        out.changes.push((opening.row, entry));
    }
    let mut lost = Vec::new();
    for opening in repeats {
        if !repeat(conn, runtime, &opening, now, out).await? {
            lost.push(opening);
        }
    }
    Ok(lost)
}

/// Insert the openings' recommendations, one statement per [`batch::MAX_PARAMETERS`];
/// returns the ids inserted (not those an active one for the rule and asset, or the very
/// same id, stood in the way of).
async fn insert_recommendations(
    conn: &mut AnyConnection,
    openings: &[Opening<'_>],
) -> Result<HashSet<String>, StoreError> {
    const COLUMNS: usize = 15;
    let keys: Vec<ActiveKey<'_>> = openings
        .iter()
        .map(|opening| ActiveKey::from(&opening.row))
        .collect();
    let claimed = active::claim_free(conn, &keys).await?;
    let free: Vec<&Opening<'_>> = openings
        .iter()
        .filter(|opening| claimed.contains(&opening.row.id))
        .collect();
    let mut inserted = HashSet::with_capacity(free.len());
    for chunk in batch::pieces(&free, COLUMNS) {
        let sql = format!(
            "INSERT INTO recommendations (id, solution, rule, asset_key, asset_id, device_id, \
             state, severity, title, description, situation, incident_id, occurrences, \
             opened_at, updated_at) VALUES {} ON CONFLICT DO NOTHING RETURNING id",
            batch::values(chunk.len(), COLUMNS, 1)
        );
        let mut query = sqlx::query_scalar::<_, String>(&sql);
        for opening in chunk {
            let row = &opening.row;
            query = query
                .bind(row.id.as_str())
                .bind(row.solution.as_str())
                .bind(row.rule.as_str())
                .bind(row.asset_key.as_str())
                .bind(row.asset_id.as_str())
                .bind(row.device_id.as_str())
                .bind(row.state.as_str())
                .bind(i64::from(row.severity))
                .bind(row.title.as_str())
                .bind(row.description.as_str())
                .bind(row.situation.as_slice())
                .bind(row.incident_id.as_str())
                .bind(row.occurrences)
                .bind(row.opened_at)
                .bind(row.updated_at);
        }
        inserted.extend(query.fetch_all(&mut *conn).await?);
    }
    // A key claimed for an id that exists already (this very situation opened it before,
    // and it has ended since) goes back.
    let stale: Vec<ActiveKey<'_>> = free
        .iter()
        .filter(|opening| !inserted.contains(&opening.row.id))
        .map(|opening| ActiveKey::from(&opening.row))
        .collect();
    active::release(conn, &stale).await?;
    Ok(inserted)
}

/// One more occurrence of the active recommendation for the opening's rule and asset;
/// `false` when there is none any more, and the opening has to be tried again.
async fn repeat(
    conn: &mut AnyConnection,
    runtime: &SolutionRuntime,
    opening: &Opening<'_>,
    now: Timestamp,
    out: &mut Outcomes<'_>,
) -> Result<bool, StoreError> {
    // Limitation: only the latest raising incident is kept, so when two incidents feed one
    // recommendation the clear of the latest ends it.
    let update = format!(
        "UPDATE recommendations SET occurrences = occurrences + 1, incident_id = $1, \
         updated_at = $2 WHERE id = (SELECT recommendation_id FROM active_recommendations \
         WHERE solution = $3 AND rule = $4 AND asset_key = $5) \
         AND state IN {ACTIVE_STATES_SQL} RETURNING id"
    );
    let repeated: Option<String> = sqlx::query_scalar(&update)
        .bind(&opening.row.incident_id)
        .bind(now.as_micros())
        .bind(&runtime.qualified)
        .bind(&opening.row.rule)
        .bind(&opening.row.asset_key)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(repeated) = repeated else {
        // Either the conflict was with this very id (the same situation opened it before,
        // under another position: nothing to add), or the active one ended after the claim.
        let opened_before = RecommendationRow::load(conn, &opening.row.id)
            .await?
            .is_some();
        return Ok(opened_before);
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
            comment: &format!("situation {}", opening.situation.id),
        },
    )
    .await?;
    out.changes.push((row, entry));
    out.results[opening.index].repeated.push(repeated);
    Ok(true)
}

/// Tries at ending a cleared recommendation that other writers keep changing under it.
const CLEAR_ATTEMPTS: usize = 3;

/// End recommendation `id` for a clear when its rule resolves on clears: its row as read
/// and the state it ended in, or `None` when it is not ended (the rule leaves it to a
/// person, which the audit trail notes in `changes`, or it is no longer active).
///
/// The row is read without a lock, so a person's request may commit in between: the
/// guarded update then changes nothing, and the row is read again and judged on what that
/// request left.
async fn end_cleared(
    conn: &mut AnyConnection,
    runtime: &SolutionRuntime,
    situation: &Situation,
    id: &str,
    now: Timestamp,
    changes: &mut Vec<Change>,
) -> Result<Option<(RecommendationRow, State)>, StoreError> {
    for _ in 0..CLEAR_ATTEMPTS {
        let Some(row) = RecommendationRow::load(conn, id).await? else {
            return Ok(None);
        };
        let resolve_when = runtime
            .rules
            .rule(&row.rule)
            .map_or(ResolveWhen::Manual, |rule| rule.resolve_when);
        if resolve_when == ResolveWhen::Manual {
            let entry = insert_history(
                conn,
                &HistoryRow {
                    recommendation_id: id,
                    at: now,
                    actor: SYSTEM_ACTOR,
                    event: "detection_cleared",
                    from: Some(row.state),
                    to: Some(row.state),
                    comment: &format!("situation {}; resolveWhen is manual", situation.id),
                },
            )
            .await?;
            changes.push((row, entry));
            return Ok(None);
        }
        let Some(ended) = Transition::Clear.apply(row.state) else {
            return Ok(None);
        };
        if row.state == State::Open {
            // Timers are pending only until a recommendation first leaves `open`. They go
            // first, the order in which firing a timer and a person's request lock them,
            // so that a clear and the escalation it races do not deadlock.
            escalation::cancel(conn, id).await?;
        }
        let outcome = Outcome::Cleared as i32 as i64;
        let result = sqlx::query(
            "UPDATE recommendations SET state = $1, outcome = $2, resolved_at = $3, \
             updated_at = $3 WHERE id = $4 AND state = $5",
        )
        .bind(ended.as_str())
        .bind(outcome)
        .bind(now.as_micros())
        .bind(id)
        .bind(row.state.as_str())
        .execute(&mut *conn)
        .await?;
        if result.rows_affected() == 1 {
            active::release(conn, &[ActiveKey::from(&row)]).await?;
            return Ok(Some((row, ended)));
        }
    }
    tracing::warn!(recommendation = %id, situation = %situation.id,
        "A clear found the recommendation changing under it at every try; it is left as is.");
    Ok(None)
}

#[allow(clippy::too_many_arguments)]
async fn close_cleared(
    conn: &mut AnyConnection,
    runtime: &SolutionRuntime,
    situation: &Situation,
    variables: &Map<String, Value>,
    now: Timestamp,
    applied: &mut Applied,
    changes: &mut Vec<Change>,
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
        let Some((row, ended)) = end_cleared(conn, runtime, situation, &id, now, changes).await?
        else {
            continue;
        };
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
        changes.push((updated, entry));
        applied.closed.push(id);
    }
    Ok(())
}
