//! A served GrpcServer over a real port: health without a token, reflection only with one.

use sinter_grpc::{Auth, BearerToken, GrpcServer, Tokens};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

async fn start(auth: Auth) -> (String, tokio::sync::oneshot::Sender<()>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = GrpcServer::new(auth);
    let (addr, serving) = server
        .bind("127.0.0.1:0".parse().expect("addr"), async {
            stopped.await.ok();
        })
        .await
        .expect("bind");
    tokio::spawn(serving);
    (format!("http://{addr}"), stop)
}

#[tokio::test]
async fn health_answers_without_a_token() {
    let (endpoint, _stop) = start(Auth::new(Tokens::from_list("s3cret"))).await;
    let channel = sinter_grpc::connect(&endpoint, BearerToken::default())
        .await
        .expect("connect");
    let mut health = HealthClient::new(channel);
    let response = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health check")
        .into_inner();
    assert_eq!(
        response.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test]
async fn reflection_needs_a_valid_token() {
    let (endpoint, _stop) = start(Auth::new(Tokens::from_list("s3cret"))).await;

    let missing = sinter_grpc::list_services(&endpoint, BearerToken::default())
        .await
        .expect_err("no token must be refused");
    assert_eq!(missing.code(), tonic::Code::Unauthenticated);

    let wrong = BearerToken::new(Some("guess")).expect("token");
    let refused = sinter_grpc::list_services(&endpoint, wrong)
        .await
        .expect_err("wrong token");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    let right = BearerToken::new(Some("s3cret")).expect("token");
    let names = sinter_grpc::list_services(&endpoint, right)
        .await
        .expect("listing");
    assert_eq!(
        names,
        vec![
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection"
        ]
    );
}

#[tokio::test]
async fn open_server_lists_without_a_token() {
    let (endpoint, _stop) = start(Auth::disabled()).await;
    let names = sinter_grpc::list_services(&endpoint, BearerToken::default())
        .await
        .expect("list");
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
}
