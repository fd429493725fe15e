//! People's requests committed together, against real PostgreSQL and SQLite: a request
//! that fails its own checks fails alone, two requests on one recommendation in a group
//! behave as if serial, a reopen that meets the one-active key does not fail the
//! others, and an answered request is already durable.
//!
//! Requests are started together with `join!` on a current-thread runtime and one
//! committer, so every one of them is queued before the committer runs: they reach it as
//! one group. On PostgreSQL the tests check that by the transaction id (`xmin`) of the
//! rows. The last test runs many callers on the default committers, threaded.
// A test that cannot unwrap has failed: panicking is how it says so.
#![allow(clippy::unwrap_used)]

mod common;

use common::webhook::Receiver;
use common::{Backend, Harness, SOLUTION, START, TestDatabase, raised, test_config};
use sinter_core::ManualClock;
use sinter_orchestrator::{Orchestrator, State, TaskError, TaskRequest};
use sinter_proto::orchestrator::v1::{Outcome, RecommendationState};
use sqlx::Connection;

/// An orchestrator with one committer, so that requests started together form one group.
async fn one_committer(database: &TestDatabase, webhook: &str) -> Harness {
    let mut config = test_config(&database.url);
    config.committers = Some(1);
    Harness::start_configured(database, webhook, ManualClock::new(START), None, config).await
}

fn request<'a>(id: &'a str, actor: &'a str, comment: &'a str) -> TaskRequest<'a> {
    TaskRequest { id, actor, comment }
}

/// Open one recommendation per asset; returns their ids in order.
async fn open(orchestrator: &Orchestrator, assets: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for asset in assets {
        let applied = orchestrator
            .apply_situation(
                SOLUTION,
                &raised(&format!("st-{asset}"), &format!("inc-{asset}"), asset),
                None,
            )
            .await
            .unwrap();
        assert_eq!(applied.opened.len(), 1, "{applied:?}");
        ids.push(applied.opened[0].clone());
    }
    ids
}

/// A connection of its own, as another process would open it.
async fn fresh_connection(database: &TestDatabase) -> sqlx::AnyConnection {
    sqlx::AnyConnection::connect(&database.url).await.unwrap()
}

/// On PostgreSQL, the transaction that last wrote each of `ids`.
async fn writers(database: &TestDatabase, backend: Backend, ids: &[&str]) -> Vec<String> {
    if backend != Backend::Postgres {
        return Vec::new();
    }
    let mut conn = fresh_connection(database).await;
    let mut writers = Vec::new();
    for id in ids {
        let xmin: String =
            sqlx::query_scalar("SELECT xmin::text FROM recommendations WHERE id = $1")
                .bind(*id)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        writers.push(xmin);
    }
    writers
}

fn assert_one_writer(writers: &[String]) {
    assert!(
        writers.windows(2).all(|pair| pair[0] == pair[1]),
        "the requests were committed in one transaction: {writers:?}"
    );
}

async fn history_events(database: &TestDatabase, id: &str) -> Vec<String> {
    let mut conn = fresh_connection(database).await;
    sqlx::query_scalar(
        "SELECT event FROM recommendation_history WHERE recommendation_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

async fn an_invalid_request_fails_alone(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let receiver = Receiver::start().await;
    let harness = one_committer(&database, &receiver.url).await;
    let orchestrator = &harness.orchestrator;
    let ids = open(orchestrator, &["a-1", "a-2", "a-3"]).await;

    let (acknowledged, unknown, resolved, again, commented) = tokio::join!(
        orchestrator.acknowledge(request(&ids[0], "ana", "")),
        orchestrator.acknowledge(request("rc-nothing", "ana", "")),
        orchestrator.resolve(request(&ids[1], "ben", "fixed it"), Outcome::Fixed),
        orchestrator.acknowledge(request(&ids[0], "carl", "")),
        orchestrator.comment(request(&ids[2], "dora", "looking")),
    );
    assert_eq!(
        acknowledged.unwrap().state(),
        RecommendationState::Acknowledged
    );
    assert!(
        matches!(&unknown, Err(TaskError::NotFound(id)) if id == "rc-nothing"),
        "{unknown:?}"
    );
    assert_eq!(resolved.unwrap().state(), RecommendationState::Resolved);
    match again {
        Err(TaskError::WrongState { state, verb, .. }) => {
            assert_eq!(state, State::Acknowledged);
            assert_eq!(verb, "acknowledge");
        }
        other => panic!("the second acknowledge sees the first one's result: {other:?}"),
    }
    assert_eq!(commented.unwrap().state(), RecommendationState::Open);

    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_one_writer(&writers(&database, backend, &ids).await);
    assert_eq!(
        history_events(&database, ids[0]).await,
        ["opened", "acknowledged"]
    );
    assert_eq!(
        history_events(&database, ids[1]).await,
        ["opened", "resolved"]
    );
    assert_eq!(
        history_events(&database, ids[2]).await,
        ["opened", "commented"]
    );
    let mut conn = fresh_connection(&database).await;
    let pending: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM escalation_timers WHERE recommendation_id IN ($1, $2, $3)",
    )
    .bind(ids[0])
    .bind(ids[1])
    .bind(ids[2])
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(pending, 2, "only the commented one keeps its ladder");
}

async fn one_recommendation_twice_in_a_group_is_serial(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let receiver = Receiver::start().await;
    let harness = one_committer(&database, &receiver.url).await;
    let orchestrator = &harness.orchestrator;
    let ids = open(orchestrator, &["a-1", "a-2"]).await;
    let (id, other) = (ids[0].as_str(), ids[1].as_str());

    let (acknowledged, assigned, resolved, reopened, other_acknowledged) = tokio::join!(
        orchestrator.acknowledge(request(id, "ana", "")),
        orchestrator.assign(request(id, "ana", ""), "carl"),
        orchestrator.resolve(request(id, "carl", "bearing replaced"), Outcome::Fixed),
        orchestrator.reopen(request(id, "ana", "came back")),
        orchestrator.acknowledge(request(other, "ben", "")),
    );
    let acknowledged = acknowledged.unwrap();
    assert_eq!(acknowledged.state(), RecommendationState::Acknowledged);
    let assigned = assigned.unwrap();
    assert_eq!(assigned.state(), RecommendationState::InProgress);
    assert_eq!(assigned.assignee, "carl");
    assert_eq!(
        assigned.acknowledged_at, acknowledged.acknowledged_at,
        "the assignment sees the acknowledgement before it"
    );
    let resolved = resolved.unwrap();
    assert_eq!(resolved.state(), RecommendationState::Resolved);
    assert_eq!(resolved.outcome(), Outcome::Fixed);
    let reopened = reopened.unwrap();
    assert_eq!(reopened.state(), RecommendationState::Open);
    assert_eq!(reopened.outcome(), Outcome::Unspecified);
    assert_eq!(reopened.acknowledged_at, None);
    assert_eq!(reopened.assignee, "carl");
    assert_eq!(
        other_acknowledged.unwrap().state(),
        RecommendationState::Acknowledged
    );
    assert_one_writer(&writers(&database, backend, &[id, other]).await);

    assert_eq!(
        history_events(&database, id).await,
        ["opened", "acknowledged", "assigned", "resolved", "reopened"]
    );
    let stored = orchestrator.recommendation(id).await.unwrap();
    assert_eq!(stored.state(), RecommendationState::Open);
    assert_eq!(stored.assignee, "carl");
    let mut conn = fresh_connection(&database).await;
    let resolved_actions: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM action_outbox WHERE recommendation_id = $1 AND kind = 'topic'",
    )
    .bind(id)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        resolved_actions, 2,
        "the opening's topic record and the resolve's"
    );
    let pending: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM escalation_timers WHERE recommendation_id = $1")
            .bind(id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        pending, 0,
        "acknowledging cancelled the ladder; reopening does not re-arm it"
    );
}

async fn a_refused_reopen_does_not_fail_the_group(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let receiver = Receiver::start().await;
    let harness = one_committer(&database, &receiver.url).await;
    let orchestrator = &harness.orchestrator;
    let first = open(orchestrator, &["a-1"]).await.remove(0);
    orchestrator
        .resolve(request(&first, "ana", ""), Outcome::Fixed)
        .await
        .unwrap();
    // A new breach on the same asset opens a second recommendation.
    let applied = orchestrator
        .apply_situation(SOLUTION, &raised("st-again", "inc-again", "a-1"), None)
        .await
        .unwrap();
    let second = applied.opened[0].clone();
    let others = open(orchestrator, &["a-2", "a-3"]).await;

    let (before, reopened, after) = tokio::join!(
        orchestrator.acknowledge(request(&others[0], "ben", "")),
        orchestrator.reopen(request(&first, "ana", "")),
        orchestrator.resolve(request(&others[1], "ben", ""), Outcome::FalseAlarm),
    );
    assert_eq!(before.unwrap().state(), RecommendationState::Acknowledged);
    match reopened {
        Err(TaskError::AlreadyActive { id, active, .. }) => {
            assert_eq!(id, first);
            assert_eq!(active, second);
        }
        other => panic!("the reopen is refused: {other:?}"),
    }
    assert_eq!(after.unwrap().state(), RecommendationState::FalseAlarm);
    assert_eq!(
        orchestrator.recommendation(&first).await.unwrap().state(),
        RecommendationState::Resolved
    );
    assert_eq!(
        history_events(&database, &first).await,
        ["opened", "resolved"]
    );
}

async fn an_answered_request_is_durable(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let receiver = Receiver::start().await;
    let harness = one_committer(&database, &receiver.url).await;
    let orchestrator = &harness.orchestrator;
    let assets: Vec<String> = (0..40).map(|n| format!("a-{n}")).collect();
    let assets: Vec<&str> = assets.iter().map(String::as_str).collect();
    let ids = open(orchestrator, &assets).await;

    // Every recommendation twice at once: one acknowledge of each wins.
    let calls = ids
        .iter()
        .chain(&ids)
        .map(|id| orchestrator.acknowledge(request(id, "ana", "")));
    let results = futures::future::join_all(calls).await;
    let wins = results.iter().filter(|result| result.is_ok()).count();
    assert_eq!(wins, ids.len(), "{results:?}");
    for result in &results {
        if let Err(error) = result {
            assert!(
                matches!(
                    error,
                    TaskError::WrongState {
                        state: State::Acknowledged,
                        ..
                    }
                ),
                "{error}"
            );
        }
    }
    // The answers came after the commit: another connection sees every change now.
    let mut conn = fresh_connection(&database).await;
    let acknowledged: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM recommendations WHERE state = 'acknowledged'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(usize::try_from(acknowledged).unwrap(), ids.len());
    let entries: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM recommendation_history WHERE event = 'acknowledged'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(usize::try_from(entries).unwrap(), ids.len());
    drop(conn);

    // One call alone is answered after its commit too.
    orchestrator
        .resolve(request(&ids[0], "ana", ""), Outcome::Fixed)
        .await
        .unwrap();
    let mut conn = fresh_connection(&database).await;
    let state: String = sqlx::query_scalar("SELECT state FROM recommendations WHERE id = $1")
        .bind(&ids[0])
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(state, "resolved");
}

/// Many callers at once on a multi-threaded runtime: whatever the grouping, each
/// recommendation is acknowledged once and resolved once.
async fn concurrent_callers_each_get_their_answer(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let receiver = Receiver::start().await;
    let harness = Harness::start(&database, &receiver.url).await;
    let orchestrator = harness.orchestrator.clone();
    let assets: Vec<String> = (0..60).map(|n| format!("a-{n}")).collect();
    let assets: Vec<&str> = assets.iter().map(String::as_str).collect();
    let ids = open(&orchestrator, &assets).await;

    let mut tasks = Vec::new();
    for round in 0..3 {
        for id in &ids {
            let orchestrator = orchestrator.clone();
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                let request = request(&id, "ana", "");
                if round == 2 {
                    orchestrator.resolve(request, Outcome::Fixed).await
                } else {
                    orchestrator.acknowledge(request).await
                }
            }));
        }
    }
    let mut acknowledged = 0;
    let mut resolved = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(recommendation) if recommendation.state() == RecommendationState::Resolved => {
                resolved += 1;
            }
            Ok(_) => acknowledged += 1,
            Err(TaskError::WrongState { .. }) => {}
            Err(error) => panic!("{error}"),
        }
    }
    assert_eq!(
        resolved,
        ids.len(),
        "a resolve is valid in any active state"
    );
    assert!(acknowledged <= ids.len(), "{acknowledged}");
    for id in &ids {
        let events = history_events(&database, id).await;
        assert_eq!(events.first().map(String::as_str), Some("opened"));
        assert_eq!(events.last().map(String::as_str), Some("resolved"));
        assert!(events.len() <= 3, "{events:?}");
    }
}

/// Tests whose requests must reach the committer as one group: a current-thread runtime.
macro_rules! grouped_on_both_databases {
    ($($name:ident),+ $(,)?) => {
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await;
                }
            )+
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await;
                }
            )+
        }
    };
}

grouped_on_both_databases!(
    an_invalid_request_fails_alone,
    one_recommendation_twice_in_a_group_is_serial,
    a_refused_reopen_does_not_fail_the_group,
    an_answered_request_is_durable,
);

mod threaded {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_on_postgres() {
        concurrent_callers_each_get_their_answer(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_on_sqlite() {
        concurrent_callers_each_get_their_answer(Backend::Sqlite).await;
    }
}
