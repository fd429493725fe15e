//! Group commit for people's requests: concurrent transitions and comments share one
//! transaction, and each caller is answered once the commit that holds its change is done.
//!
//! A committer task takes every request waiting on its queue (up to [`GROUP_LIMIT`]),
//! applies them in arrival order to the rows it read, and writes the
//! result in a handful of statements: the recommendations (one `UPDATE` guarded by the
//! state each was read in), the cancelled timers, the audit entries and the actions. A
//! request that fails its own checks (unknown id, wrong state) gets its own error and
//! changes nothing; the others go on. Two requests on one recommendation behave as if
//! run one after the other: the second sees the first's result. On PostgreSQL a few
//! committers run side by side, each owning the recommendations whose id hashes to it.
//!
//! When the group's transaction fails as a whole (a reopen meets the one-active key,
//! someone else changed a row since it was read, the database refused a statement),
//! nothing of it is kept and each of its requests is applied again alone, so that a
//! failure is reported to the request it belongs to.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::Weak;

use futures::FutureExt;
use sinter_core::Timestamp;
use sinter_proto::events::v1::{Severity, action::Trigger};
use sinter_proto::orchestrator::v1::{HistoryEntry, Outcome, Recommendation, RecommendationChange};
use sqlx::AnyConnection;
use tokio::sync::{mpsc, oneshot};

use crate::error::OrchestratorError;
use crate::escalation;
use crate::orchestrator::{Inner, Orchestrator};
use crate::outbox::{self, Cause, OutboxRow};
use crate::state::{State, Transition};
use crate::store::active::{self, ActiveKey};
use crate::store::{
    HistoryRow, RecommendationRow, StoreError, batch, insert_histories, is_unique_violation,
};
use crate::tasks::{TaskError, TaskRequest, actor};
use crate::variables::severity_word;

/// Requests applied in one transaction at most.
pub const GROUP_LIMIT: usize = 512;

/// Requests that may wait for one committer; a caller beyond waits to be queued.
pub const QUEUE_CAPACITY: usize = 4_096;

/// Committers on PostgreSQL: groups of different recommendations commit side by side, so
/// the database works on more than one at once (a backend runs on one core). More of them
/// make each group smaller, and a group's statements cost the same whatever its size: two
/// is what a small database server uses well. SQLite has one connection, so one committer.
pub const POSTGRES_COMMITTERS: usize = 2;

/// Attempts at a request alone whose recommendation another writer keeps changing.
const ALONE_ATTEMPTS: usize = 3;

/// What a person asks to change.
#[derive(Clone, Debug)]
pub(crate) enum Change {
    Transition {
        transition: Transition,
        assignee: Option<String>,
    },
    Comment,
}

/// One queued request and where its answer goes.
pub(crate) struct Request {
    id: String,
    actor: String,
    comment: String,
    change: Change,
    now: Timestamp,
    reply: oneshot::Sender<Result<Recommendation, TaskError>>,
}

/// The queues into the committers: a recommendation's requests always go to the same
/// one, so they are applied in the order they came, and two committers never write the
/// same recommendation.
#[derive(Debug)]
pub(crate) struct Queues {
    committers: Vec<mpsc::Sender<Request>>,
}

impl Queues {
    fn for_id(&self, id: &str) -> Option<&mpsc::Sender<Request>> {
        let mut hasher = std::hash::DefaultHasher::new();
        id.hash(&mut hasher);
        let count = u64::try_from(self.committers.len()).unwrap_or(1).max(1);
        let index = usize::try_from(hasher.finish() % count).unwrap_or_default();
        self.committers.get(index)
    }
}

/// Start `committers` committers for the orchestrator behind `inner` (at least one);
/// each stops once the [`Queues`] (held by the orchestrator) are gone.
pub(crate) fn start(inner: &Weak<Inner>, committers: usize) -> Queues {
    let committers = (0..committers.max(1))
        .map(|_| {
            let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
            tokio::spawn(run(inner.clone(), receiver));
            queue
        })
        .collect();
    Queues { committers }
}

async fn run(inner: Weak<Inner>, mut receiver: mpsc::Receiver<Request>) {
    let mut group = Vec::with_capacity(GROUP_LIMIT);
    while receiver.recv_many(&mut group, GROUP_LIMIT).await > 0 {
        let Some(inner) = inner.upgrade() else {
            break;
        };
        let orchestrator = Orchestrator { inner };
        let requests = std::mem::take(&mut group);
        let count = requests.len();
        let applied = AssertUnwindSafe(orchestrator.commit_group(requests))
            .catch_unwind()
            .await;
        if applied.is_err() {
            // The callers of this group get "stopped"; later groups still run.
            tracing::error!(requests = count, "Applying a group of requests panicked.");
        }
    }
}

/// What a group did: each request's result, in order, and the audit entries written.
struct Applied {
    results: Vec<Result<Done, TaskError>>,
    entries: Vec<HistoryEntry>,
}

/// A request that passed its checks, with what it wrote.
struct Done {
    transition: Option<Transition>,
    from: State,
    row: RecommendationRow,
    /// Its audit entry's place in the group's entries.
    entry: usize,
    first_acknowledgement: bool,
}

/// The changes of a group, as they will be written.
#[derive(Default)]
struct Writes {
    /// Per recommendation: the state it was read in, and its row after the group.
    rows: HashMap<String, (State, RecommendationRow)>,
    /// Recommendations whose pending timers are cancelled.
    cancel: HashSet<String>,
    history: Vec<OwnedHistory>,
    actions: Vec<OutboxRow>,
}

/// An audit entry owning its texts, until the group is written.
struct OwnedHistory {
    recommendation_id: String,
    at: Timestamp,
    actor: String,
    event: &'static str,
    from: State,
    to: State,
    comment: String,
}

/// Why a group's transaction failed as a whole.
#[derive(Debug)]
enum GroupFailure {
    /// Recommendation `0` changed since it was read.
    Changed(String),
    /// A reopen met the one-active key.
    AlreadyActive,
    Store(StoreError),
}

impl From<StoreError> for GroupFailure {
    fn from(error: StoreError) -> Self {
        GroupFailure::Store(error)
    }
}

impl From<sqlx::Error> for GroupFailure {
    fn from(error: sqlx::Error) -> Self {
        if is_unique_violation(&error) {
            GroupFailure::AlreadyActive
        } else {
            GroupFailure::Store(StoreError::Sql(error))
        }
    }
}

impl Orchestrator {
    /// Queue `request` for the committer and wait for its answer, which comes after the
    /// commit that holds it.
    pub(crate) async fn submit(
        &self,
        request: TaskRequest<'_>,
        change: Change,
    ) -> Result<Recommendation, TaskError> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            id: request.id.to_owned(),
            actor: actor(request.actor).to_owned(),
            comment: request.comment.to_owned(),
            change,
            now: self.inner.clock.now(),
            reply,
        };
        // Limitation: once queued a request is applied even if its caller stops waiting (a
        // cancelled gRPC call); the caller just does not hear about it.
        let stopped = || TaskError::from(OrchestratorError::Stopped);
        let queue = self
            .inner
            .requests
            .for_id(&request.id)
            .ok_or_else(stopped)?;
        queue.send(request).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Apply `group` in one transaction, or, when that fails as a whole, each request
    /// alone; then answer every caller.
    async fn commit_group(&self, group: Vec<Request>) {
        // Limitation: a group that fails as a whole is applied again one request at a time,
        // so a failure that keeps coming back (the database refusing every statement)
        // costs one transaction per request of the group instead of one for all of them.
        if group.len() > 1 {
            match self.apply(&group).await {
                Ok(applied) => {
                    self.answer(group, applied);
                    return;
                }
                Err(failure) => {
                    tracing::warn!(requests = group.len(), reason = ?failure,
                        "A group of requests failed together; applying each alone.");
                }
            }
        }
        for request in group {
            let applied = self.apply_alone(&request).await;
            self.answer(vec![request], applied);
        }
    }

    /// Apply `request` in a transaction of its own. When another writer changed its
    /// recommendation between the read and the write, it is checked again on what that
    /// writer left, as if it had come after it.
    async fn apply_alone(&self, request: &Request) -> Applied {
        let alone = std::slice::from_ref(request);
        let mut attempt = 1;
        loop {
            match self.apply(alone).await {
                Ok(applied) => return applied,
                Err(GroupFailure::Changed(_)) if attempt < ALONE_ATTEMPTS => attempt += 1,
                // A batch of situations may lock recommendations and timers in another order
                // (an occurrence, then a clear; or several clears); PostgreSQL ends one side
                // of such a deadlock, and this side goes again.
                Err(GroupFailure::Store(error))
                    if attempt < ALONE_ATTEMPTS && crate::store::is_transient_conflict(&error) =>
                {
                    tracing::debug!(id = %request.id, error = %error,
                        "Request met a lock conflict; applying it again.");
                    attempt += 1;
                }
                Err(failure) => {
                    return Applied {
                        results: vec![Err(self.explain(request, failure).await)],
                        entries: Vec::new(),
                    };
                }
            }
        }
    }

    /// The error a request applied alone gets for its transaction's failure.
    async fn explain(&self, request: &Request, failure: GroupFailure) -> TaskError {
        let verb = match &request.change {
            Change::Transition { transition, .. } => transition.verb(),
            Change::Comment => "comment",
        };
        match failure {
            GroupFailure::Changed(id) => match self.recommendation(&id).await {
                // Someone else keeps changing it: report the state it has now.
                Ok(current) => match State::from_proto(current.state()) {
                    Some(state) => TaskError::WrongState { id, state, verb },
                    None => TaskError::NotFound(id),
                },
                Err(error) => error,
            },
            GroupFailure::AlreadyActive => {
                let mut conn = match self.inner.store.pool().acquire().await {
                    Ok(conn) => conn,
                    Err(error) => return error.into(),
                };
                match RecommendationRow::load(&mut conn, &request.id).await {
                    Ok(Some(row)) => {
                        drop(conn);
                        self.already_active(&row).await
                    }
                    Ok(None) => TaskError::NotFound(request.id.clone()),
                    Err(error) => error.into(),
                }
            }
            GroupFailure::Store(error) => error.into(),
        }
    }

    /// Apply `group` in one transaction: each request's own result, or why the whole
    /// transaction failed (then nothing of it is kept).
    async fn apply(&self, group: &[Request]) -> Result<Applied, GroupFailure> {
        let mut tx = self.inner.store.begin().await?;
        let mut ids: Vec<&str> = group.iter().map(|request| request.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let read = RecommendationRow::load_many(&mut tx, &ids).await?;
        let mut writes = Writes {
            rows: read
                .into_iter()
                .map(|(id, row)| (id, (row.state, row)))
                .collect(),
            ..Writes::default()
        };
        let mut results = Vec::with_capacity(group.len());
        for request in group {
            results.push(self.check(request, &mut writes));
        }
        let changed: HashSet<&str> = results
            .iter()
            .filter_map(|result| result.as_ref().ok())
            .map(|done| done.row.id.as_str())
            .collect();
        let written: Vec<&(State, RecommendationRow)> = changed
            .into_iter()
            .filter_map(|id| writes.rows.get(id))
            .collect();
        // Timers before recommendations, the order in which firing a timer locks them, so
        // that an acknowledgement and the escalation it races do not deadlock.
        let cancel: Vec<&str> = writes.cancel.iter().map(String::as_str).collect();
        escalation::cancel_all(&mut tx, &cancel).await?;
        write_rows(&mut tx, &written).await?;
        // Ended ones give their rule and asset back before reopened ones take theirs, so
        // that a group may end one recommendation and reopen another for the same asset.
        let ended: Vec<ActiveKey<'_>> = written
            .iter()
            .filter(|(read, row)| read.is_active() && !row.state.is_active())
            .map(|(_, row)| ActiveKey::from(row))
            .collect();
        active::release(&mut tx, &ended).await?;
        let reopened: Vec<ActiveKey<'_>> = written
            .iter()
            .filter(|(read, row)| !read.is_active() && row.state.is_active())
            .map(|(_, row)| ActiveKey::from(row))
            .collect();
        active::claim(&mut tx, &reopened).await?;
        let history: Vec<HistoryRow<'_>> = writes
            .history
            .iter()
            .map(|entry| HistoryRow {
                recommendation_id: &entry.recommendation_id,
                at: entry.at,
                actor: &entry.actor,
                event: entry.event,
                from: Some(entry.from),
                to: Some(entry.to),
                comment: &entry.comment,
            })
            .collect();
        let entries = insert_histories(&mut tx, &history).await?;
        outbox::insert(&mut tx, &writes.actions).await?;
        tx.commit().await?;
        Ok(Applied { results, entries })
    }

    /// Check `request` against the rows as the group's earlier requests left them and, if
    /// it passes, add what it changes to `writes`.
    fn check(&self, request: &Request, writes: &mut Writes) -> Result<Done, TaskError> {
        let (_, row) = writes
            .rows
            .get(&request.id)
            .ok_or_else(|| TaskError::NotFound(request.id.clone()))?;
        let now = request.now;
        let (updated, transition, event, comment) =
            match &request.change {
                Change::Comment => {
                    let updated = RecommendationRow {
                        updated_at: now.as_micros(),
                        ..row.clone()
                    };
                    (updated, None, "commented", request.comment.clone())
                }
                Change::Transition {
                    transition,
                    assignee,
                } => {
                    let updated = transitioned(row, *transition, assignee.as_deref(), now)
                        .ok_or_else(|| TaskError::WrongState {
                            id: request.id.clone(),
                            state: row.state,
                            verb: transition.verb(),
                        })?;
                    let comment = match assignee {
                        Some(assignee) if request.comment.is_empty() => {
                            format!("assigned to {assignee}")
                        }
                        Some(assignee) => format!("assigned to {assignee}: {}", request.comment),
                        None => request.comment.clone(),
                    };
                    (updated, Some(*transition), transition.event(), comment)
                }
            };
        let actions = if transition.is_some() && !updated.state.is_active() {
            let cause = Cause {
                trigger: Trigger::Resolved,
                step: 0,
                target: &updated.assignee,
            };
            self.later_actions(&updated, cause, now)
        } else {
            Vec::new()
        };
        let from = row.state;
        let first_acknowledgement = row.acknowledged_at.is_none()
            && matches!(
                transition,
                Some(Transition::Acknowledge | Transition::Assign)
            );
        // Every check passed: from here on the request is part of the group. Timers are
        // scheduled at opening and cancelled when the recommendation first leaves `open`, so
        // only that transition has any to cancel.
        if from == State::Open && transition.is_some() && updated.state != State::Open {
            writes.cancel.insert(request.id.clone());
        }
        writes.actions.extend(actions);
        writes.history.push(OwnedHistory {
            recommendation_id: request.id.clone(),
            at: now,
            actor: request.actor.clone(),
            event,
            from,
            to: updated.state,
            comment,
        });
        if let Some((_, row)) = writes.rows.get_mut(&request.id) {
            *row = updated.clone();
        }
        Ok(Done {
            transition,
            from,
            row: updated,
            entry: writes.history.len() - 1,
            first_acknowledgement,
        })
    }

    /// After the commit: record metrics, tell watchers and answer each caller, in the
    /// group's order.
    fn answer(&self, group: Vec<Request>, applied: Applied) {
        for (request, result) in group.into_iter().zip(applied.results) {
            let reply = result.and_then(|done| self.report(&request, done, &applied.entries));
            // A caller that stopped waiting is fine: its change is committed all the same.
            let _ = request.reply.send(reply);
        }
    }

    /// Metrics, log line and watchers' change for one committed request; its answer.
    fn report(
        &self,
        request: &Request,
        done: Done,
        entries: &[HistoryEntry],
    ) -> Result<Recommendation, TaskError> {
        let row = &done.row;
        let recommendation = row.to_proto()?;
        if self.watched() {
            self.publish(vec![RecommendationChange {
                recommendation: Some(recommendation.clone()),
                change: entries.get(done.entry).cloned(),
            }]);
        }
        let Some(transition) = done.transition else {
            return Ok(recommendation);
        };
        let severity = Severity::try_from(row.severity)
            .map(severity_word)
            .unwrap_or_default();
        let since_opened = request
            .now
            .duration_since(Timestamp::from_micros(row.opened_at));
        let metrics = &self.inner.metrics;
        if done.first_acknowledgement {
            metrics.acknowledged(&row.rule, severity, since_opened);
        }
        match transition {
            Transition::Resolve(outcome) => {
                let word = if outcome == Outcome::FalseAlarm {
                    "false_alarm"
                } else {
                    "fixed"
                };
                metrics.ended(&row.rule, severity, word, since_opened);
            }
            Transition::Reopen => metrics.reopened(&row.rule),
            _ => {}
        }
        tracing::info!(recommendation = %row.id, actor = %request.actor, from = %done.from,
            to = %row.state, "Recommendation changed.");
        Ok(recommendation)
    }
}

/// Store each row's state, times, outcome and assignee, provided it still has the state
/// it was read in.
async fn write_rows(
    conn: &mut AnyConnection,
    rows: &[&(State, RecommendationRow)],
) -> Result<(), GroupFailure> {
    const COLUMNS: usize = 8;
    for chunk in batch::pieces(rows, COLUMNS) {
        let sql = format!(
            "UPDATE recommendations SET state = v.column3, acknowledged_at = v.column4, \
             outcome = v.column5, resolved_at = v.column6, assignee = v.column7, \
             updated_at = v.column8 FROM (VALUES {}) AS v \
             WHERE recommendations.id = v.column1 AND recommendations.state = v.column2 \
             RETURNING recommendations.id",
            batch::values(chunk.len(), COLUMNS, 1)
        );
        let mut query = sqlx::query_scalar::<_, String>(&sql);
        for (read, row) in chunk.iter().copied() {
            query = query
                .bind(row.id.as_str())
                .bind(read.as_str())
                .bind(row.state.as_str())
                .bind(row.acknowledged_at)
                .bind(i64::from(row.outcome))
                .bind(row.resolved_at)
                .bind(row.assignee.as_str())
                .bind(row.updated_at);
        }
        let updated: HashSet<String> = query.fetch_all(&mut *conn).await?.into_iter().collect();
        if let Some((_, missed)) = chunk.iter().find(|(_, row)| !updated.contains(&row.id)) {
            return Err(GroupFailure::Changed(missed.id.clone()));
        }
    }
    Ok(())
}

/// `row` after `transition` at `now` (`assignee` for an assignment), or `None` when its
/// state does not allow it.
fn transitioned(
    row: &RecommendationRow,
    transition: Transition,
    assignee: Option<&str>,
    now: Timestamp,
) -> Option<RecommendationRow> {
    let to = transition.apply(row.state)?;
    let first_acknowledgement = matches!(transition, Transition::Acknowledge | Transition::Assign)
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
    Some(RecommendationRow {
        state: to,
        acknowledged_at,
        outcome,
        resolved_at,
        assignee: assignee.unwrap_or(&row.assignee).to_owned(),
        updated_at: now.as_micros(),
        ..row.clone()
    })
}
