//! The escalation ladder with a manual clock, against real PostgreSQL and SQLite: steps
//! fire when due and once, acknowledging stops them, and a timer that came due while the
//! service was down fires once after the restart, not again when the Solution is
//! re-applied.
// A test that cannot unwrap has failed: panicking is how it says so.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::webhook::Receiver;
use common::{Backend, Harness, TestDatabase, open_one, raised};
use prost::Message;
use sinter_bus::Bus;
use sinter_orchestrator::TaskRequest;
use sinter_proto::events::v1::{Action, action::Trigger};

const MINUTE: Duration = Duration::from_secs(60);

async fn escalation_follows_the_clock(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let receiver = Receiver::start().await;
    let harness = Harness::start(&database, &receiver.url).await;
    let orchestrator = &harness.orchestrator;
    let id = open_one(orchestrator, &raised("st-1", "inc-1", "a-17")).await;
    harness.clock.advance(14 * MINUTE);
    assert_eq!(orchestrator.fire_due_timers(100).await.unwrap(), 0);
    harness.clock.advance(MINUTE);
    assert_eq!(orchestrator.fire_due_timers(100).await.unwrap(), 1);
    assert_eq!(orchestrator.fire_due_timers(100).await.unwrap(), 0);
    let escalated = orchestrator.recommendation(&id).await.unwrap();
    assert_eq!(escalated.escalation_level, 1);
    assert_eq!(escalated.escalated_to, "maintenance-lead");
    let last = escalated.history.last().unwrap();
    assert_eq!(last.event, "escalated");
    assert_eq!(last.comment, "step 1 to maintenance-lead");

    // The topic actions: one for the opening, one for the escalation.
    orchestrator.dispatch_due_actions(100).await.unwrap();
    let mut consumer = harness
        .bus
        .subscribe("test-reader", &[harness.actions_topic().as_str()])
        .await
        .unwrap();
    let mut triggers = Vec::new();
    for _ in 0..2 {
        let record = tokio::time::timeout(Duration::from_secs(5), consumer.recv())
            .await
            .expect("an action record")
            .unwrap();
        let action = Action::decode(record.payload.as_ref()).unwrap();
        assert_eq!(record.key.as_ref(), b"p-a-17");
        triggers.push((action.trigger(), action.target));
    }
    triggers.sort_by_key(|(trigger, _)| *trigger as i32);
    assert_eq!(
        triggers,
        vec![
            (Trigger::Opened, String::new()),
            (Trigger::Escalated, "maintenance-lead".to_owned())
        ]
    );

    orchestrator
        .acknowledge(TaskRequest {
            id: &id,
            actor: "ana",
            comment: "",
        })
        .await
        .unwrap();
    harness.clock.advance(60 * MINUTE);
    assert_eq!(orchestrator.fire_due_timers(100).await.unwrap(), 0);
    let acknowledged = orchestrator.recommendation(&id).await.unwrap();
    assert_eq!(acknowledged.escalation_level, 1);
}

async fn a_due_timer_fires_once_after_a_restart(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let receiver = Receiver::start().await;
    let first = Harness::start(&database, &receiver.url).await;
    let id = open_one(&first.orchestrator, &raised("st-1", "inc-1", "a-17")).await;
    let clock = first.clock.clone();
    let bus = first.bus.clone();
    first.orchestrator.store().close().await;
    drop(first);

    // Down for two hours: both steps came due meanwhile.
    clock.advance(120 * MINUTE);
    let second =
        Harness::start_with(&database, &receiver.url, clock.clone(), Some(bus.clone())).await;
    // The open gauge starts from the database.
    assert_eq!(
        second.orchestrator.metrics().open_count("bearing-overheat"),
        1
    );
    assert_eq!(second.orchestrator.fire_due_timers(100).await.unwrap(), 2);
    assert_eq!(second.orchestrator.fire_due_timers(100).await.unwrap(), 0);
    let escalated = second.orchestrator.recommendation(&id).await.unwrap();
    assert_eq!(escalated.escalation_level, 2);
    assert_eq!(escalated.escalated_to, "plant-manager");
    let comments: Vec<&str> = escalated
        .history
        .iter()
        .filter(|entry| entry.event == "escalated")
        .map(|entry| entry.comment.as_str())
        .collect();
    assert_eq!(comments.len(), 2);
    assert!(comments[0].contains("to maintenance-lead") && comments[0].contains("6300s late"));
    assert!(comments[1].contains("to plant-manager") && comments[1].contains("3600s late"));
    second.orchestrator.store().close().await;
    drop(second);

    // The same Solution applied again: nothing fires twice, no timer is re-armed.
    clock.advance(MINUTE);
    let third = Harness::start_with(&database, &receiver.url, clock, Some(bus)).await;
    assert_eq!(third.orchestrator.fire_due_timers(100).await.unwrap(), 0);
    let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM escalation_timers")
        .fetch_one(third.orchestrator.store().pool())
        .await
        .unwrap();
    assert_eq!(pending, 0, "both timers fired, and a fired timer is gone");
}

on_both_databases!(
    escalation_follows_the_clock,
    a_due_timer_fires_once_after_a_restart,
);

/// A timer whose recommendation is missing (PostgreSQL has no foreign key to stop a hand
/// in the database making one) is cleared away when due, and does not hold the others up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_without_its_recommendation_does_not_stall_the_rest() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let receiver = Receiver::start().await;
    let harness = Harness::start(&database, &receiver.url).await;
    let orchestrator = &harness.orchestrator;
    let id = open_one(orchestrator, &raised("st-1", "inc-1", "a-17")).await;
    sqlx::query(
        "INSERT INTO escalation_timers (recommendation_id, step, target, due_at) \
         VALUES ('rc-gone', 0, 'lead', 0)",
    )
    .execute(orchestrator.store().pool())
    .await
    .unwrap();
    harness.clock.advance(15 * MINUTE);
    // One timer a round: the orphan comes first, due since the epoch.
    assert_eq!(orchestrator.fire_due_timers(1).await.unwrap(), 0);
    assert_eq!(orchestrator.fire_due_timers(1).await.unwrap(), 1);
    let escalated = orchestrator.recommendation(&id).await.unwrap();
    assert_eq!(escalated.escalation_level, 1);
    let orphans: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM escalation_timers WHERE recommendation_id = 'rc-gone'",
    )
    .fetch_one(orchestrator.store().pool())
    .await
    .unwrap();
    assert_eq!(orphans, 0);
}
