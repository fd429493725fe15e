//! The recommendation lifecycle against real PostgreSQL and SQLite: transitions and
//! refusals, one active recommendation per rule and asset under concurrency, a new breach
//! after a resolve, `resolveWhen`, redelivered situations and failing rules.
// A test that cannot unwrap has failed: panicking is how it says so.
#![allow(clippy::unwrap_used)]

mod common;

use common::webhook::Receiver;
use common::{Backend, Harness, SOLUTION, TestDatabase, cleared, open_one, raised, situation};
use sinter_orchestrator::{Position, State, TaskError, TaskRequest};
use sinter_proto::events::v1::detection::Transition;
use sinter_proto::orchestrator::v1::{Outcome, RecommendationState};

fn request<'a>(id: &'a str, actor: &'a str, comment: &'a str) -> TaskRequest<'a> {
    TaskRequest { id, actor, comment }
}

async fn lifecycle_and_invalid_transitions(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let receiver = Receiver::start().await;
    let harness = Harness::start(&database, &receiver.url).await;
    let orchestrator = &harness.orchestrator;

    let applied = orchestrator
        .apply_situation(SOLUTION, &raised("st-1", "inc-1", "a-17"), None)
        .await
        .unwrap();
    assert_eq!(applied.opened.len(), 1, "{applied:?}");
    let id = applied.opened[0].clone();
    let opened = orchestrator.recommendation(&id).await.unwrap();
    assert_eq!(opened.state(), RecommendationState::Open);
    assert_eq!(opened.title, "Inspect Pump a-17: bearing at 91.5 degC");
    assert_eq!(opened.description, "At North plant.");
    assert_eq!(opened.rule, "bearing-overheat");
    assert_eq!(opened.asset_id, "a-17");

    harness.clock.advance(std::time::Duration::from_secs(120));
    let acknowledged = orchestrator
        .acknowledge(request(&id, "ana", "on my way"))
        .await
        .unwrap();
    assert_eq!(acknowledged.state(), RecommendationState::Acknowledged);
    assert!(acknowledged.acknowledged_at.is_some());

    let again = orchestrator.acknowledge(request(&id, "ben", "")).await;
    match again {
        Err(TaskError::WrongState { state, .. }) => assert_eq!(state, State::Acknowledged),
        other => panic!("a second acknowledge must be refused, got {other:?}"),
    }
    let message = orchestrator
        .acknowledge(request(&id, "ben", ""))
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("is acknowledged"), "{message}");

    let assigned = orchestrator
        .assign(request(&id, "ana", ""), "  carl ")
        .await
        .unwrap();
    assert_eq!(assigned.state(), RecommendationState::InProgress);
    assert_eq!(assigned.assignee, "carl");
    orchestrator
        .comment(request(&id, "carl", "bearing replaced"))
        .await
        .unwrap();
    let blank = orchestrator.comment(request(&id, "carl", "  ")).await;
    assert!(matches!(
        blank,
        Err(TaskError::InvalidArgument {
            field: "comment",
            ..
        })
    ));
    // Too long, or a terminal escape in it: refused, naming the field, and nothing written.
    let before = orchestrator
        .recommendation(&id)
        .await
        .unwrap()
        .history
        .len();
    let long = "a".repeat(sinter_orchestrator::tasks::COMMENT_MAX + 1);
    let too_long = orchestrator.comment(request(&id, "carl", &long)).await;
    assert!(matches!(
        too_long,
        Err(TaskError::InvalidArgument {
            field: "comment",
            ..
        })
    ));
    let escape = orchestrator
        .acknowledge(request(&id, "carl", "\u{1b}[31mred"))
        .await;
    assert!(matches!(
        escape,
        Err(TaskError::InvalidArgument {
            field: "comment",
            ..
        })
    ));
    let two_lines = orchestrator
        .assign(request(&id, "ana", ""), "ben\ncarl")
        .await;
    assert!(matches!(
        two_lines,
        Err(TaskError::InvalidArgument {
            field: "assignee",
            ..
        })
    ));
    let after = orchestrator.recommendation(&id).await.unwrap();
    assert_eq!(after.history.len(), before);
    assert_eq!(after.assignee, "carl");
    let cleared_outcome = orchestrator
        .resolve(request(&id, "carl", ""), Outcome::Cleared)
        .await;
    assert!(matches!(
        cleared_outcome,
        Err(TaskError::InvalidArgument {
            field: "outcome",
            ..
        })
    ));
    let resolved = orchestrator
        .resolve(request(&id, "carl", "done"), Outcome::Fixed)
        .await
        .unwrap();
    assert_eq!(resolved.state(), RecommendationState::Resolved);
    assert_eq!(resolved.outcome(), Outcome::Fixed);
    let twice = orchestrator
        .resolve(request(&id, "carl", ""), Outcome::Fixed)
        .await
        .unwrap_err()
        .to_string();
    assert!(twice.contains("is resolved"), "{twice}");
    let acknowledge_resolved = orchestrator
        .acknowledge(request(&id, "ana", ""))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        acknowledge_resolved.contains("is resolved"),
        "{acknowledge_resolved}"
    );

    harness.clock.advance(std::time::Duration::from_secs(60));
    let reopened = orchestrator
        .reopen(request(&id, "ana", "came back"))
        .await
        .unwrap();
    assert_eq!(reopened.state(), RecommendationState::Open);
    assert_eq!(reopened.outcome(), Outcome::Unspecified);
    let false_alarm = orchestrator
        .resolve(request(&id, "ana", "sensor fault"), Outcome::FalseAlarm)
        .await
        .unwrap();
    assert_eq!(false_alarm.state(), RecommendationState::FalseAlarm);
    assert!(
        false_alarm.history.is_empty(),
        "changes answer without history"
    );
    let false_alarm = orchestrator.recommendation(&id).await.unwrap();

    let history: Vec<(String, String)> = false_alarm
        .history
        .iter()
        .map(|entry| (entry.event.clone(), entry.actor.clone()))
        .collect();
    let expected = [
        ("opened", "sinter"),
        ("acknowledged", "ana"),
        ("assigned", "ana"),
        ("commented", "carl"),
        ("resolved", "carl"),
        ("reopened", "ana"),
        ("false_alarm", "ana"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(event, actor)| ((*event).to_owned(), (*actor).to_owned()))
        .collect();
    assert_eq!(history, expected);
    assert_eq!(false_alarm.history[1].comment, "on my way");
    assert_eq!(false_alarm.history[2].comment, "assigned to carl");
    assert_eq!(
        false_alarm.history[4].from_state(),
        RecommendationState::InProgress
    );
    assert_eq!(
        harness
            .orchestrator
            .metrics()
            .false_alarm_ratio("bearing-overheat"),
        Some(0.5)
    );
    // Each ending starts its own topic record, the second one too.
    let endings: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM action_outbox WHERE recommendation_id = $1 AND kind = 'topic'",
    )
    .bind(&id)
    .fetch_one(harness.orchestrator.store().pool())
    .await
    .unwrap();
    assert_eq!(endings, 3, "the opening's record and one per ending");
    let missing = orchestrator
        .acknowledge(request("rc-none", "ana", ""))
        .await;
    assert!(matches!(missing, Err(TaskError::NotFound(_))));
}

async fn concurrent_situations_open_one_recommendation(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let receiver = Receiver::start().await;
    let harness = Harness::start(&database, &receiver.url).await;
    let orchestrator = harness.orchestrator.clone();
    let mut tasks = Vec::new();
    for n in 0..8 {
        let orchestrator = orchestrator.clone();
        tasks.push(tokio::spawn(async move {
            let situation = raised(&format!("st-{n}"), &format!("inc-{n}"), "a-17");
            orchestrator
                .apply_situation(SOLUTION, &situation, None)
                .await
                .expect("apply a situation")
        }));
    }
    let mut opened = 0;
    let mut repeated = 0;
    for task in tasks {
        let applied = task.await.unwrap();
        opened += applied.opened.len();
        repeated += applied.repeated.len();
    }
    assert_eq!((opened, repeated), (1, 7));
    assert_eq!(orchestrator.metrics().open_count("bearing-overheat"), 1);
    let query = sinter_orchestrator::listing::ListQuery {
        solution: SOLUTION.to_owned(),
        ..Default::default()
    };
    let (all, _) = orchestrator.list_recommendations(&query).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].occurrences, 8);
    let full = orchestrator.recommendation(&all[0].id).await.unwrap();
    let occurrences = full
        .history
        .iter()
        .filter(|entry| entry.event == "occurrence")
        .count();
    assert_eq!(occurrences, 7);
}

async fn a_new_breach_after_resolve_opens_a_new_recommendation(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let receiver = Receiver::start().await;
    let harness = Harness::start(&database, &receiver.url).await;
    let orchestrator = &harness.orchestrator;
    let first = open_one(orchestrator, &raised("st-1", "inc-1", "a-17")).await;
    orchestrator
        .resolve(request(&first, "ana", ""), Outcome::Fixed)
        .await
        .unwrap();
    let applied = orchestrator
        .apply_situation(SOLUTION, &raised("st-2", "inc-2", "a-17"), None)
        .await
        .unwrap();
    assert_eq!(applied.opened.len(), 1);
    let second = applied.opened[0].clone();
    assert_ne!(first, second);
    let old = orchestrator.recommendation(&first).await.unwrap();
    assert_eq!(old.state(), RecommendationState::Resolved);
    assert_eq!(old.occurrences, 1);
    // The old one cannot come back while the new one is active.
    let reopen = orchestrator.reopen(request(&first, "ana", "")).await;
    match reopen {
        Err(TaskError::AlreadyActive { active, .. }) => assert_eq!(active, second),
        other => panic!("reopen must be refused while another is active, got {other:?}"),
    }
    // Once the new one ends, the old one may come back, and new breaches add to it.
    orchestrator
        .resolve(request(&second, "ana", ""), Outcome::FalseAlarm)
        .await
        .unwrap();
    let reopened = orchestrator
        .reopen(request(&first, "ana", ""))
        .await
        .unwrap();
    assert_eq!(reopened.state(), RecommendationState::Open);
    let again = orchestrator
        .apply_situation(SOLUTION, &raised("st-4", "inc-4", "a-17"), None)
        .await
        .unwrap();
    assert_eq!(
        (again.opened.len(), again.repeated),
        (0, vec![first.clone()])
    );
    let reopen = orchestrator.reopen(request(&second, "ana", "")).await;
    assert!(
        matches!(&reopen, Err(TaskError::AlreadyActive { active, .. }) if *active == first),
        "{reopen:?}"
    );
    // Another asset is another recommendation.
    let elsewhere = orchestrator
        .apply_situation(SOLUTION, &raised("st-3", "inc-3", "a-18"), None)
        .await
        .unwrap();
    assert_eq!(elsewhere.opened.len(), 1);
}

async fn a_clear_follows_the_rules_resolve_when(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let receiver = Receiver::start().await;
    let harness = Harness::start(&database, &receiver.url).await;
    let orchestrator = &harness.orchestrator;
    let bearing = open_one(orchestrator, &raised("st-1", "inc-1", "a-17")).await;
    let vibration_situation = situation(
        "st-2",
        "inc-2",
        "vibration_rms",
        "a-17",
        Transition::Raised,
        9.0,
    );
    let vibration = open_one(orchestrator, &vibration_situation).await;
    harness.clock.advance(std::time::Duration::from_secs(600));
    let applied = orchestrator
        .apply_situation(SOLUTION, &cleared("st-3", "inc-1", "a-17"), None)
        .await
        .unwrap();
    assert_eq!(applied.closed, vec![bearing.clone()]);
    let closed = orchestrator.recommendation(&bearing).await.unwrap();
    assert_eq!(closed.state(), RecommendationState::Closed);
    assert_eq!(closed.outcome(), Outcome::Cleared);
    assert_eq!(
        closed.history.last().map(|e| e.event.as_str()),
        Some("cleared")
    );

    let vibration_clear = situation(
        "st-4",
        "inc-2",
        "vibration_rms",
        "a-17",
        Transition::Cleared,
        2.0,
    );
    let applied = orchestrator
        .apply_situation(SOLUTION, &vibration_clear, None)
        .await
        .unwrap();
    assert!(applied.closed.is_empty());
    let manual = orchestrator.recommendation(&vibration).await.unwrap();
    assert_eq!(manual.state(), RecommendationState::Open);
    assert_eq!(
        manual.history.last().map(|e| e.event.as_str()),
        Some("detection_cleared")
    );
}

async fn a_redelivered_situation_changes_nothing_twice(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let receiver = Receiver::start().await;
    let harness = Harness::start(&database, &receiver.url).await;
    let orchestrator = &harness.orchestrator;
    let position = Position {
        group: "sinter-orchestrator".to_owned(),
        topic: harness.situations_topic(),
        partition: 1,
        offset: 41,
    };
    let situation = raised("st-1", "inc-1", "a-17");
    let first = orchestrator
        .apply_situation(SOLUTION, &situation, Some(&position))
        .await
        .unwrap();
    assert!(!first.duplicate);
    let id = first.opened[0].clone();
    let second = orchestrator
        .apply_situation(SOLUTION, &situation, Some(&position))
        .await
        .unwrap();
    assert!(second.duplicate);
    assert!(second.opened.is_empty() && second.repeated.is_empty());
    let recommendation = orchestrator.recommendation(&id).await.unwrap();
    assert_eq!(recommendation.occurrences, 1);
    assert_eq!(recommendation.history.len(), 1);
    assert_eq!(orchestrator.actions_of(&id).await.unwrap().len(), 2);
    let next: i64 = sqlx::query_scalar(
        "SELECT next_offset FROM consumer_positions WHERE topic = $1 AND partition_id = 1",
    )
    .bind(&position.topic)
    .fetch_one(orchestrator.store().pool())
    .await
    .unwrap();
    assert_eq!(next, 42);
}

async fn a_failing_rule_is_reported_and_stops_nothing(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let receiver = Receiver::start().await;
    let harness = Harness::start(&database, &receiver.url).await;
    let orchestrator = &harness.orchestrator;
    // No asset: `asset.criticality` cannot be read, while another rule needs none.
    let unknown_device = situation(
        "st-1",
        "inc-1",
        "bearing_temperature",
        "",
        Transition::Raised,
        160.0,
    );
    let applied = orchestrator
        .apply_situation(SOLUTION, &unknown_device, None)
        .await
        .unwrap();
    assert_eq!(applied.opened.len(), 1);
    assert_eq!(applied.failures.len(), 1);
    assert_eq!(applied.failures[0].rule, "bearing-overheat");
    let reason: String = sqlx::query_scalar(
        "SELECT reason FROM rule_failures WHERE situation_id = 'st-1' AND rule = $1",
    )
    .bind("bearing-overheat")
    .fetch_one(orchestrator.store().pool())
    .await
    .unwrap();
    assert!(reason.contains("criticality"), "{reason}");
    // The rule still works on the next situation.
    let known = orchestrator
        .apply_situation(SOLUTION, &raised("st-2", "inc-2", "a-17"), None)
        .await
        .unwrap();
    assert_eq!(known.opened.len(), 1);
    assert!(known.failures.is_empty(), "{:?}", known.failures);
    let recommendation = orchestrator
        .recommendation(&applied.opened[0])
        .await
        .unwrap();
    assert_eq!(recommendation.rule, "extreme-temperature");
    assert_eq!(
        recommendation.severity,
        sinter_proto::events::v1::Severity::Major as i32
    );
    assert_eq!(recommendation.device_id, "p-");
    assert_eq!(recommendation.asset_id, "");
}

on_both_databases!(
    lifecycle_and_invalid_transitions,
    concurrent_situations_open_one_recommendation,
    a_new_breach_after_resolve_opens_a_new_recommendation,
    a_clear_follows_the_rules_resolve_when,
    a_redelivered_situation_changes_nothing_twice,
    a_failing_rule_is_reported_and_stops_nothing,
);

/// A raise that finds its rule and asset held, while the holder ends before the raise can
/// add its occurrence, opens a new recommendation: it is neither an occurrence nor lost.
/// PostgreSQL only: it takes a second writer, which SQLite's one connection cannot have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raise_racing_the_end_of_the_active_one_is_not_lost() {
    use sqlx::Connection;
    let database = TestDatabase::create(Backend::Postgres).await;
    let receiver = Receiver::start().await;
    let harness = Harness::start(&database, &receiver.url).await;
    let orchestrator = harness.orchestrator.clone();
    let first = open_one(&orchestrator, &raised("st-1", "inc-1", "a-17")).await;

    // Another writer holds a-18's key, uncommitted: the batch's claim waits on it, after
    // it found a-17 held by `first`.
    let mut side = sqlx::AnyConnection::connect(&database.url).await.unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut side).await.unwrap();
    sqlx::query(
        "INSERT INTO active_recommendations (solution, rule, asset_key, recommendation_id) \
         VALUES ($1, 'bearing-overheat', 'a-18', 'rc-side')",
    )
    .bind(SOLUTION)
    .execute(&mut side)
    .await
    .unwrap();
    let batch = vec![
        (raised("st-2", "inc-2", "a-17"), None),
        (raised("st-3", "inc-3", "a-18"), None),
    ];
    let applying = {
        let orchestrator = orchestrator.clone();
        tokio::spawn(async move { orchestrator.apply_situations(SOLUTION, &batch).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // While it waits, `first` ends; then the other writer gives a-18 up.
    orchestrator
        .resolve(request(&first, "ana", ""), Outcome::Fixed)
        .await
        .unwrap();
    sqlx::raw_sql("ROLLBACK").execute(&mut side).await.unwrap();

    let applied = applying.await.unwrap().unwrap();
    assert_eq!(applied[0].opened.len(), 1, "{:?}", applied[0]);
    assert_ne!(applied[0].opened[0], first);
    assert!(applied[0].repeated.is_empty(), "{:?}", applied[0]);
    assert_eq!(applied[1].opened.len(), 1, "{:?}", applied[1]);
    let active = orchestrator
        .recommendation(&applied[0].opened[0])
        .await
        .unwrap();
    assert_eq!(active.state(), RecommendationState::Open);
}
