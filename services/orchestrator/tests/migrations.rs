//! Schema upgrades against real PostgreSQL and SQLite: a database made by the first
//! migration, with recommendations and timers in it, comes up to date with its one-active
//! rule and its pending timers kept, now keyed by recommendation and step.
// A test that cannot unwrap has failed: panicking is how it says so.
#![allow(clippy::unwrap_used)]

mod common;

use std::borrow::Cow;

use common::{Backend, TestDatabase};
use sinter_orchestrator::Store;
use sqlx::Connection;

fn first_migration(backend: Backend) -> sqlx::migrate::Migrator {
    let all = match backend {
        Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
    };
    let first: Vec<_> = all.migrations.iter().take(1).cloned().collect();
    assert_eq!(first[0].version, 1);
    sqlx::migrate::Migrator {
        migrations: Cow::Owned(first),
        ..all
    }
}

async fn active_recommendations_survive_the_upgrade(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let mut conn = sqlx::AnyConnection::connect(&database.url).await.unwrap();
    first_migration(backend).run(&mut conn).await.unwrap();
    for (id, asset, state) in [
        ("rc-1", "a-1", "acknowledged"),
        ("rc-2", "a-1", "resolved"),
        ("rc-3", "a-2", "closed"),
    ] {
        sqlx::query(
            "INSERT INTO recommendations (id, solution, rule, asset_key, asset_id, device_id, \
             state, severity, title, description, situation, incident_id, occurrences, \
             opened_at, updated_at) \
             VALUES ($1, 'plant/demo', 'overheat', $2, $2, 'p-1', $3, 3, 't', '', $4, 'inc', \
             1, 0, 0)",
        )
        .bind(id)
        .bind(asset)
        .bind(state)
        .bind(Vec::<u8>::new())
        .execute(&mut conn)
        .await
        .unwrap();
    }
    // Only an opening writes timers, one a step; a second pending one for the step (by hand)
    // gives way to the one with the lower id.
    for (id, state, target) in [
        ("et-9", "pending", "by-hand"),
        ("et-1", "pending", "lead"),
        ("et-2", "fired", "lead"),
        ("et-3", "cancelled", "lead"),
    ] {
        sqlx::query(
            "INSERT INTO escalation_timers (id, recommendation_id, step, target, due_at, state) \
             VALUES ($1, 'rc-1', 0, $3, 0, $2)",
        )
        .bind(id)
        .bind(state)
        .bind(target)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    conn.close().await.unwrap();

    let store = Store::connect(&database.url).await.unwrap();
    let active: Vec<(String, String)> = sqlx::query_as(
        "SELECT asset_key, recommendation_id FROM active_recommendations ORDER BY asset_key",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(active, [("a-1".to_owned(), "rc-1".to_owned())]);
    // The key is held: a second active recommendation for the asset is refused.
    let second = sqlx::query(
        "INSERT INTO active_recommendations (solution, rule, asset_key, recommendation_id) \
         VALUES ('plant/demo', 'overheat', 'a-1', 'rc-4')",
    )
    .execute(store.pool())
    .await;
    assert!(
        matches!(&second, Err(error) if sinter_orchestrator::store::is_unique_violation(error)),
        "{second:?}"
    );
    // Only pending timers have a row now, keyed by recommendation and step.
    let timers: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT recommendation_id, step, target FROM escalation_timers")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(timers, [("rc-1".to_owned(), 0, "lead".to_owned())]);
    let again = sqlx::query(
        "INSERT INTO escalation_timers (recommendation_id, step, target, due_at) \
         VALUES ('rc-1', 0, 'manager', 0)",
    )
    .execute(store.pool())
    .await;
    assert!(
        matches!(&again, Err(error) if sinter_orchestrator::store::is_unique_violation(error)),
        "{again:?}"
    );
    store.close().await;
}

#[tokio::test]
async fn upgrade_on_postgres() {
    active_recommendations_survive_the_upgrade(Backend::Postgres).await;
}

#[tokio::test]
async fn upgrade_on_sqlite() {
    active_recommendations_survive_the_upgrade(Backend::Sqlite).await;
}
