//! A clear meeting other writers, against real PostgreSQL: another writer holds the
//! recommendation's rows while the clear is applied, and the clear still does what the
//! rule says once that writer commits, without a deadlock.
// A test that cannot unwrap has failed: panicking is how it says so.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Backend, Harness, SOLUTION, TestDatabase, cleared, open_one, raised};
use sinter_orchestrator::Applied;
use sinter_proto::orchestrator::v1::{Outcome, Recommendation, RecommendationState};
use sqlx::Connection;

/// A connection with a transaction open, as another replica's writer in mid-change.
async fn writer(url: &str) -> sqlx::AnyConnection {
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut conn).await.unwrap();
    conn
}

/// Run `sql` for recommendation `id` (its `$1`) in the other writer's transaction.
async fn write(conn: &mut sqlx::AnyConnection, sql: &str, id: &str) {
    sqlx::query(sql)
        .bind(id)
        .execute(conn)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
}

/// Wait until some session of the database waits for a lock another one holds.
async fn until_a_session_waits(url: &str) {
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    for _ in 0..100 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the clear never waited for the other writer's locks");
}

/// A database, an orchestrator on it, and the recommendation a raise opened.
async fn one_open() -> (TestDatabase, Harness, String) {
    let database = TestDatabase::create(Backend::Postgres).await;
    let harness = Harness::start(&database, "http://127.0.0.1:9/none").await;
    let id = open_one(&harness.orchestrator, &raised("st-1", "inc-1", "a-17")).await;
    (database, harness, id)
}

async fn apply_clear(harness: &Harness) -> tokio::task::JoinHandle<Applied> {
    let orchestrator = harness.orchestrator.clone();
    tokio::spawn(async move {
        orchestrator
            .apply_situation(SOLUTION, &cleared("st-2", "inc-1", "a-17"), None)
            .await
            .unwrap()
    })
}

/// Wait for the clear; it closed recommendation `id`, which is returned as it is now.
async fn closed_by(
    clear: tokio::task::JoinHandle<Applied>,
    harness: &Harness,
    id: &str,
) -> Recommendation {
    let applied = tokio::time::timeout(Duration::from_secs(10), clear)
        .await
        .expect("the clear did not finish")
        .unwrap();
    assert_eq!(applied.closed, vec![id.to_owned()], "{applied:?}");
    let closed = harness.orchestrator.recommendation(id).await.unwrap();
    assert_eq!(closed.state(), RecommendationState::Closed);
    assert_eq!(closed.outcome(), Outcome::Cleared);
    closed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clear_that_meets_an_acknowledgement_still_closes_the_recommendation() {
    let (database, harness, id) = one_open().await;

    // An acknowledgement in mid-commit, written as a person's request writes one: the
    // pending timers first, then the recommendation.
    let mut acknowledging = writer(&database.url).await;
    write(
        &mut acknowledging,
        "DELETE FROM escalation_timers WHERE recommendation_id = $1",
        &id,
    )
    .await;
    write(
        &mut acknowledging,
        "UPDATE recommendations SET state = 'acknowledged', acknowledged_at = opened_at \
         WHERE id = $1",
        &id,
    )
    .await;

    let clear = apply_clear(&harness).await;
    until_a_session_waits(&database.url).await;
    sqlx::raw_sql("COMMIT")
        .execute(&mut acknowledging)
        .await
        .unwrap();

    let closed = closed_by(clear, &harness, &id).await;
    let last = closed.history.last().unwrap();
    assert_eq!(last.event, "cleared");
    assert_eq!(last.from_state(), RecommendationState::Acknowledged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clear_and_an_escalation_in_flight_do_not_deadlock() {
    let (database, harness, id) = one_open().await;

    // A timer firing in another replica, written as firing writes it: it has claimed the
    // first step and is about to record the escalation on the recommendation.
    let mut firing = writer(&database.url).await;
    write(
        &mut firing,
        "DELETE FROM escalation_timers WHERE recommendation_id = $1 AND step = 0",
        &id,
    )
    .await;

    let clear = apply_clear(&harness).await;
    until_a_session_waits(&database.url).await;
    // The clear waits for the claimed timer and holds nothing the escalation needs: were it
    // holding the recommendation, PostgreSQL would end one of the two as a deadlock.
    write(
        &mut firing,
        "UPDATE recommendations SET escalation_level = 1, escalated_to = 'maintenance-lead' \
         WHERE id = $1",
        &id,
    )
    .await;
    sqlx::raw_sql("COMMIT").execute(&mut firing).await.unwrap();

    let closed = closed_by(clear, &harness, &id).await;
    assert_eq!(closed.escalation_level, 1);
    let pending: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM escalation_timers WHERE recommendation_id = $1")
            .bind(&id)
            .fetch_one(harness.orchestrator.store().pool())
            .await
            .unwrap();
    assert_eq!(pending, 0, "the closed recommendation kept a pending timer");
}
