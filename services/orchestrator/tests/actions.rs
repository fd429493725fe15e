//! Actions through the outbox to a real HTTP server, against real PostgreSQL and SQLite:
//! a crash before or during delivery still yields one work order, failures are retried
//! then parked, and a parked action can be retried.
// A test that cannot unwrap has failed: panicking is how it says so.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::webhook::Receiver;
use common::{Backend, CMMS_TOKEN, Harness, SOLUTION, TestDatabase, open_one, raised};
use sinter_orchestrator::dispatch::RetryError;
use sinter_orchestrator::outbox;

async fn a_crash_before_delivery_still_delivers_once(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let receiver = Receiver::start().await;
    let first = Harness::start(&database, &receiver.url).await;
    let id = open_one(&first.orchestrator, &raised("st-1", "inc-1", "a-17")).await;
    // The process dies after the commit, before its dispatcher ran.
    let clock = first.clock.clone();
    let bus = first.bus.clone();
    first.orchestrator.store().close().await;
    drop(first);
    assert!(receiver.requests().is_empty());

    let second = Harness::start_with(&database, &receiver.url, clock, Some(bus)).await;
    assert_eq!(
        second.orchestrator.dispatch_due_actions(100).await.unwrap(),
        2
    );
    assert_eq!(
        second.orchestrator.dispatch_due_actions(100).await.unwrap(),
        0
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let actions = second.orchestrator.actions_of(&id).await.unwrap();
    let webhook = actions
        .iter()
        .find(|entry| entry.kind == outbox::KIND_WEBHOOK)
        .unwrap();
    assert_eq!(webhook.state, outbox::DELIVERED);
    assert_eq!(
        requests[0].idempotency_key.as_deref(),
        Some(webhook.id.as_str())
    );
    assert_eq!(requests[0].token.as_deref(), Some(CMMS_TOKEN));
    assert_eq!(requests[0].body["asset"], "Pump a-17");
    assert_eq!(requests[0].body["priority"], "major");
    assert_eq!(
        requests[0].body["title"],
        "Inspect Pump a-17: bearing at 91.5 degC"
    );
    assert_eq!(receiver.work_orders(), 1);
}

async fn a_crash_during_delivery_is_exactly_once_for_the_receiver(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let receiver = Receiver::start().await;
    receiver.hang_next();
    let first = Harness::start(&database, &receiver.url).await;
    first
        .orchestrator
        .apply_situation(SOLUTION, &raised("st-1", "inc-1", "a-17"), None)
        .await
        .unwrap();
    let dispatcher = {
        let orchestrator = first.orchestrator.clone();
        tokio::spawn(async move { orchestrator.dispatch_due_actions(100).await })
    };
    // The receiver has the request; the sender dies before it hears back.
    tokio::time::timeout(Duration::from_secs(10), async {
        while receiver.requests().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the webhook reaches the receiver");
    dispatcher.abort();
    let _ = dispatcher.await;
    let clock = first.clock.clone();
    let bus = first.bus.clone();
    first.orchestrator.store().close().await;
    drop(first);

    let second = Harness::start_with(&database, &receiver.url, clock.clone(), Some(bus)).await;
    // Still within the dead dispatcher's lease: nobody sends it again yet.
    second.orchestrator.dispatch_due_actions(100).await.unwrap();
    assert_eq!(receiver.requests().len(), 1);
    clock.advance(Duration::from_secs(61));
    second.orchestrator.dispatch_due_actions(100).await.unwrap();
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].idempotency_key, requests[1].idempotency_key);
    assert!(requests[0].idempotency_key.is_some());
    assert_eq!(receiver.work_orders(), 1);
    second.orchestrator.dispatch_due_actions(100).await.unwrap();
    assert_eq!(receiver.requests().len(), 2);
}

async fn a_failing_webhook_is_retried_then_parked(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let receiver = Receiver::start().await;
    receiver.fail(503, 3);
    let harness = Harness::start(&database, &receiver.url).await;
    let orchestrator = &harness.orchestrator;
    orchestrator
        .apply_situation(SOLUTION, &raised("st-1", "inc-1", "a-17"), None)
        .await
        .unwrap();
    // Three attempts (the test policy), then parked; the topic record went through.
    assert_eq!(orchestrator.dispatch_due_actions(100).await.unwrap(), 1);
    assert_eq!(receiver.requests().len(), 3);
    let parked = orchestrator.parked_actions(SOLUTION, 10, 0).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].attempts, 3);
    assert!(
        parked[0].last_error.contains("503"),
        "{}",
        parked[0].last_error
    );
    assert_eq!(orchestrator.dispatch_due_actions(100).await.unwrap(), 0);
    assert_eq!(receiver.requests().len(), 3);

    let retried = orchestrator
        .retry_action(&parked[0].id, "ops")
        .await
        .unwrap();
    assert_eq!(retried.state, outbox::PENDING);
    assert_eq!(orchestrator.dispatch_due_actions(100).await.unwrap(), 1);
    assert_eq!(receiver.work_orders(), 1);
    assert!(
        orchestrator
            .parked_actions(SOLUTION, 10, 0)
            .await
            .unwrap()
            .is_empty()
    );
    let again = orchestrator.retry_action(&parked[0].id, "ops").await;
    assert!(matches!(again, Err(RetryError::NotParked { ref state, .. }) if state == "delivered"));
    let unknown = orchestrator.retry_action("ac-none", "ops").await;
    assert!(matches!(unknown, Err(RetryError::NotFound(_))));
}

async fn a_refused_webhook_is_parked_at_once(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let receiver = Receiver::start().await;
    receiver.fail(422, 1);
    let harness = Harness::start(&database, &receiver.url).await;
    let orchestrator = &harness.orchestrator;
    orchestrator
        .apply_situation(SOLUTION, &raised("st-1", "inc-1", "a-17"), None)
        .await
        .unwrap();
    orchestrator.dispatch_due_actions(100).await.unwrap();
    assert_eq!(receiver.requests().len(), 1);
    let parked = orchestrator.parked_actions("", 10, 0).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].attempts, 1);
    assert!(
        parked[0].last_error.contains("422"),
        "{}",
        parked[0].last_error
    );
}

on_both_databases!(
    a_crash_before_delivery_still_delivers_once,
    a_crash_during_delivery_is_exactly_once_for_the_receiver,
    a_failing_webhook_is_retried_then_parked,
    a_refused_webhook_is_parked_at_once,
);
