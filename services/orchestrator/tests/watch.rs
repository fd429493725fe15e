//! The change stream against real PostgreSQL: a watcher that subscribes while a change is
//! being written, before its commit, is told of it once it commits.
// A test that cannot unwrap has failed: panicking is how it says so.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Backend, Harness, TestDatabase, open_one, raised};
use sinter_orchestrator::Orchestrator;
use sinter_proto::orchestrator::v1::RecommendationChange;
use sqlx::Connection;
use tokio::sync::broadcast;

const MINUTE: Duration = Duration::from_secs(60);

/// A connection holding `table` locked, so that a writer stops inside its transaction.
async fn hold(url: &str, table: &str) -> sqlx::AnyConnection {
    let mut holder = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::raw_sql(&format!(
        "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
    ))
    .execute(&mut holder)
    .await
    .unwrap();
    holder
}

/// Subscribe while the writer waits on the lock, then let it commit.
async fn subscribe_then_release(
    orchestrator: &Orchestrator,
    mut holder: sqlx::AnyConnection,
    writer: &tokio::task::JoinHandle<impl Send + 'static>,
) -> broadcast::Receiver<RecommendationChange> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !writer.is_finished(),
        "the writer did not wait for the lock"
    );
    let watcher = orchestrator.subscribe_changes();
    sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
    watcher
}

async fn next_change(
    watcher: &mut broadcast::Receiver<RecommendationChange>,
) -> RecommendationChange {
    tokio::time::timeout(Duration::from_secs(5), watcher.recv())
        .await
        .expect("no change reached the watcher")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_subscribed_during_an_opening_is_told_of_it() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let harness = Harness::start(&database, "http://127.0.0.1:9/none").await;
    let holder = hold(&database.url, "recommendations").await;
    let orchestrator = harness.orchestrator.clone();
    let opening =
        tokio::spawn(
            async move { open_one(&orchestrator, &raised("st-1", "inc-1", "a-17")).await },
        );
    let mut watcher = subscribe_then_release(&harness.orchestrator, holder, &opening).await;
    let id = opening.await.unwrap();
    let change = next_change(&mut watcher).await;
    assert_eq!(change.recommendation.unwrap().id, id);
    assert_eq!(change.change.unwrap().event, "opened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_subscribed_during_an_escalation_is_told_of_it() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let harness = Harness::start(&database, "http://127.0.0.1:9/none").await;
    let id = open_one(&harness.orchestrator, &raised("st-1", "inc-1", "a-17")).await;
    harness.clock.advance(15 * MINUTE);
    let holder = hold(&database.url, "recommendation_history").await;
    let orchestrator = harness.orchestrator.clone();
    let firing = tokio::spawn(async move { orchestrator.fire_due_timers(100).await.unwrap() });
    let mut watcher = subscribe_then_release(&harness.orchestrator, holder, &firing).await;
    assert_eq!(firing.await.unwrap(), 1);
    let change = next_change(&mut watcher).await;
    let recommendation = change.recommendation.unwrap();
    assert_eq!(recommendation.id, id);
    assert_eq!(recommendation.escalation_level, 1);
    assert_eq!(recommendation.escalated_to, "maintenance-lead");
    assert_eq!(change.change.unwrap().event, "escalated");
}
