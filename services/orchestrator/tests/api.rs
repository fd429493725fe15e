//! The gRPC API over a real socket, against real PostgreSQL and SQLite: lists with
//! filters and pages, history, refusals with their codes, the watch stream, parked
//! actions.
// A test that cannot unwrap has failed: panicking is how it says so.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::webhook::Receiver;
use common::{Backend, Harness, SOLUTION, TestDatabase, raised};
use sinter_grpc::{Auth, BearerToken, GrpcServer};
use sinter_orchestrator::client;
use sinter_proto::events::v1::Severity;
use sinter_proto::orchestrator::v1::{
    AcknowledgeRecommendationRequest, AssignRecommendationRequest, CommentRecommendationRequest,
    GetRecommendationRequest, ListParkedActionsRequest, ListRecommendationsRequest, Outcome,
    RecommendationState, ReopenRecommendationRequest, ResolveRecommendationRequest,
    RetryActionRequest, WatchRecommendationsRequest,
};
use sinter_runtime::Service;
use tonic::Code;

async fn serve(harness: &Harness) -> String {
    let server = harness
        .orchestrator
        .register(GrpcServer::new(Auth::disabled()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = server
        .serve(listener, std::future::pending())
        .await
        .unwrap();
    tokio::spawn(serving);
    format!("http://{addr}")
}

async fn the_api_serves_human_tasks(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let receiver = Receiver::start().await;
    receiver.fail(400, 1);
    let harness = Harness::start(&database, &receiver.url).await;
    let endpoint = serve(&harness).await;
    let mut api = client::connect(&endpoint, BearerToken::default())
        .await
        .unwrap();
    let orchestrator = &harness.orchestrator;
    let mut ids = Vec::new();
    for asset in ["a-1", "a-2", "a-3"] {
        harness.clock.advance(Duration::from_secs(1));
        let situation = raised(&format!("st-{asset}"), &format!("inc-{asset}"), asset);
        let applied = orchestrator
            .apply_situation(SOLUTION, &situation, None)
            .await
            .unwrap();
        ids.push(applied.opened[0].clone());
    }
    let mut watch = api
        .watch_recommendations(WatchRecommendationsRequest {
            solution: SOLUTION.to_owned(),
            include_open: true,
        })
        .await
        .unwrap()
        .into_inner();
    for _ in 0..3 {
        let initial = watch.message().await.unwrap().unwrap();
        assert!(initial.change.is_none());
    }

    // Newest first, two per page.
    let first_page = api
        .list_recommendations(ListRecommendationsRequest {
            solution: SOLUTION.to_owned(),
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let listed: Vec<&str> = first_page
        .recommendations
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str()]);
    assert!(first_page.recommendations[0].history.is_empty());
    let second_page = api
        .list_recommendations(ListRecommendationsRequest {
            solution: SOLUTION.to_owned(),
            page_size: 2,
            page_token: first_page.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second_page.recommendations.len(), 1);
    assert_eq!(second_page.recommendations[0].id, ids[0]);
    assert!(second_page.next_page_token.is_empty());
    let bad_token = api
        .list_recommendations(ListRecommendationsRequest {
            page_token: "nonsense".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_token.code(), Code::InvalidArgument);
    assert!(bad_token.message().contains("page_token"));
    let unknown = api
        .list_recommendations(ListRecommendationsRequest {
            solution: "nowhere/nothing".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(
        unknown
            .message()
            .starts_with("solution: \"nowhere/nothing\""),
        "{unknown:?}"
    );
    let typo = api
        .list_recommendations(ListRecommendationsRequest {
            solution: SOLUTION.to_owned(),
            rule: "bearing-overheet".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(typo.code(), Code::InvalidArgument);
    assert!(
        typo.message()
            .starts_with("rule: \"bearing-overheet\" is not a recommendation rule"),
        "{typo:?}"
    );

    let acknowledged = api
        .acknowledge_recommendation(AcknowledgeRecommendationRequest {
            id: ids[0].clone(),
            actor: "ana".to_owned(),
            comment: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acknowledged.state(), RecommendationState::Acknowledged);
    let change = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(change.change.unwrap().event, "acknowledged");
    assert_eq!(change.recommendation.unwrap().id, ids[0]);

    let refused = api
        .acknowledge_recommendation(AcknowledgeRecommendationRequest {
            id: ids[0].clone(),
            actor: "ben".to_owned(),
            comment: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("is acknowledged"),
        "{}",
        refused.message()
    );

    api.assign_recommendation(AssignRecommendationRequest {
        id: ids[1].clone(),
        actor: "ana".to_owned(),
        assignee: "carl".to_owned(),
        comment: String::new(),
    })
    .await
    .unwrap();
    api.comment_recommendation(CommentRecommendationRequest {
        id: ids[1].clone(),
        actor: "carl".to_owned(),
        comment: "ordered a bearing".to_owned(),
    })
    .await
    .unwrap();
    let unspecified = api
        .resolve_recommendation(ResolveRecommendationRequest {
            id: ids[1].clone(),
            actor: "carl".to_owned(),
            outcome: Outcome::Unspecified as i32,
            comment: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(unspecified.code(), Code::InvalidArgument);
    assert!(unspecified.message().starts_with("outcome:"));
    let resolved = api
        .resolve_recommendation(ResolveRecommendationRequest {
            id: ids[1].clone(),
            actor: "carl".to_owned(),
            outcome: Outcome::Fixed as i32,
            comment: "replaced".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.state(), RecommendationState::Resolved);

    let by_state = api
        .list_recommendations(ListRecommendationsRequest {
            solution: SOLUTION.to_owned(),
            states: vec![RecommendationState::Open as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_state.recommendations.len(), 1);
    assert_eq!(by_state.recommendations[0].id, ids[2]);
    let by_asset = api
        .list_recommendations(ListRecommendationsRequest {
            asset_id: "a-2".to_owned(),
            rule: "bearing-overheat".to_owned(),
            severity: Severity::Major as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_asset.recommendations.len(), 1);
    assert_eq!(
        by_asset.recommendations[0].state(),
        RecommendationState::Resolved
    );
    let by_severity = api
        .list_recommendations(ListRecommendationsRequest {
            severity: Severity::Critical as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(by_severity.recommendations.is_empty());
    let bad_state = api
        .list_recommendations(ListRecommendationsRequest {
            states: vec![42],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_state.code(), Code::InvalidArgument);
    assert!(bad_state.message().starts_with("states[0]"));

    let full = api
        .get_recommendation(GetRecommendationRequest { id: ids[1].clone() })
        .await
        .unwrap()
        .into_inner();
    let events: Vec<&str> = full.history.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(events, ["opened", "assigned", "commented", "resolved"]);
    let missing = api
        .get_recommendation(GetRecommendationRequest {
            id: "rc-x".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let reopen_open = api
        .reopen_recommendation(ReopenRecommendationRequest {
            id: ids[2].clone(),
            actor: "ana".to_owned(),
            comment: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(reopen_open.code(), Code::FailedPrecondition);
    assert!(reopen_open.message().contains("is open"));

    // The CMMS refused the first webhook: parked, listed, retried.
    orchestrator.dispatch_due_actions(100).await.unwrap();
    let parked = api
        .list_parked_actions(ListParkedActionsRequest {
            solution: SOLUTION.to_owned(),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(parked.actions.len(), 1);
    assert!(parked.actions[0].last_error.contains("400"));
    assert_eq!(parked.actions[0].kind, "webhook");
    assert!(parked.actions[0].parked_at.is_some());
    let retried = api
        .retry_action(RetryActionRequest {
            id: parked.actions[0].id.clone(),
            actor: "ops".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried.id, parked.actions[0].id);
    let not_parked = api
        .retry_action(RetryActionRequest {
            id: parked.actions[0].id.clone(),
            actor: "ops".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(not_parked.code(), Code::FailedPrecondition);
    assert!(not_parked.message().contains("is pending"));
    orchestrator.dispatch_due_actions(100).await.unwrap();
    assert_eq!(receiver.work_orders(), 3);
}

on_both_databases!(the_api_serves_human_tasks);
