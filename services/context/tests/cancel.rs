//! Imports that nobody waits for any more: a client that gives up and a service that
//! stops. Against real PostgreSQL, watching its sessions from outside.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{TestDatabase, service_context, solution};
use sinter_context::{ContextConfig, ContextService, client};
use sinter_grpc::{Auth, BearerToken, GrpcServer, Tokens};
use sinter_proto::context::v1::import_registry_request::Format;
use sinter_runtime::Service;
use sqlx::{Connection, PgConnection, Row};
use tonic::Code;

/// A file of `rows` sites: long enough (one savepoint and a few statements a row) to be
/// still running when the test acts on it.
fn big_file(rows: usize) -> Vec<u8> {
    let mut text = String::from("kind,id,name,timezone\n");
    for n in 0..rows {
        text.push_str(&format!("site,site-{n},Site {n},UTC\n"));
    }
    text.into_bytes()
}

/// Sessions of the test database with a transaction open, seen from the admin connection.
async fn open_transactions(admin: &mut PgConnection, database: &str) -> i64 {
    sqlx::query(
        "SELECT COUNT(*) AS n FROM pg_stat_activity \
         WHERE datname = $1 AND xact_start IS NOT NULL AND pid <> pg_backend_pid()",
    )
    .bind(database)
    .fetch_one(admin)
    .await
    .unwrap()
    .get::<i64, _>("n")
}

async fn wait_for_transactions(admin: &mut PgConnection, database: &str, open: bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if (open_transactions(admin, database).await > 0) == open {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn sites(url: &str) -> i64 {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let n = sqlx::query("SELECT COUNT(*) AS n FROM sites")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get::<i64, _>("n");
    conn.close().await.unwrap();
    n
}

struct Running {
    api: client::Client,
    shutdown: sinter_runtime::Shutdown,
    service: tokio::task::JoinHandle<Result<(), sinter_runtime::BoxError>>,
}

/// The service with its gRPC API and its work loop, as the runtime runs them.
async fn start(database: &TestDatabase, name: &str) -> Running {
    let clock = common::clock();
    let context = service_context(solution(name, ""), &clock).await;
    let shutdown = context.shutdown.clone();
    let service = ContextService::build(context, &ContextConfig::new(&database.url))
        .await
        .expect("service");
    let server = service.register(GrpcServer::new(Auth::new(Tokens::default())));
    let (addr, serving) = server
        .bind("127.0.0.1:0".parse().unwrap(), shutdown.clone().wait())
        .await
        .expect("bind");
    tokio::spawn(serving);
    let service = tokio::spawn(Box::new(service).run(shutdown.clone()));
    let api = client::connect(&format!("http://{addr}"), BearerToken::default())
        .await
        .expect("connect");
    Running {
        api,
        shutdown,
        service,
    }
}

fn database_name(url: &str) -> String {
    url.rsplit('/').next().unwrap_or_default().to_owned()
}

/// Regression: a stop while an import ran waited for the import to finish (the service
/// closed its pool only once the import's connection came back), so the process stayed up
/// past its grace period. The import now stops, rolls back, and the service ends at once.
#[tokio::test]
async fn postgres_a_stop_rolls_back_a_running_import_promptly() {
    let database = TestDatabase::postgres().await;
    let name = database_name(&database.url);
    let mut admin = PgConnection::connect(&common::admin_url()).await.unwrap();
    let Running {
        mut api,
        shutdown,
        service,
    } = start(&database, "stop-import").await;
    let import = tokio::spawn(async move {
        client::import_bytes(&mut api, Format::Csv, big_file(50_000), false).await
    });
    assert!(
        wait_for_transactions(&mut admin, &name, true).await,
        "the import never opened its transaction"
    );

    shutdown.trigger();
    let stopped = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(5), import)
        .await
        .expect("the import call ends within 5 s of the stop")
        .unwrap();
    let error = outcome.expect_err("an import cut short is not a success");
    assert!(error.to_string().contains("rolled back"), "{error}");
    tokio::time::timeout(Duration::from_secs(5), service)
        .await
        .expect("the service stops within 5 s, import or not")
        .unwrap()
        .unwrap();
    assert!(stopped.elapsed() < Duration::from_secs(5));
    assert!(wait_for_transactions(&mut admin, &name, false).await);
    assert_eq!(sites(&database.url).await, 0, "nothing committed");
}

/// A client that gives up (drops the call) leaves no import behind: the transaction is
/// rolled back and no session keeps working for it.
#[tokio::test]
async fn postgres_an_abandoned_import_is_rolled_back() {
    let database = TestDatabase::postgres().await;
    let name = database_name(&database.url);
    let mut admin = PgConnection::connect(&common::admin_url()).await.unwrap();
    let Running {
        mut api,
        shutdown,
        service,
    } = start(&database, "drop-import").await;
    let mut second = api.clone();
    let import = tokio::spawn(async move {
        client::import_bytes(&mut api, Format::Csv, big_file(50_000), false).await
    });
    assert!(
        wait_for_transactions(&mut admin, &name, true).await,
        "the import never opened its transaction"
    );
    import.abort();
    let abandoned = Instant::now();
    assert!(
        wait_for_transactions(&mut admin, &name, false).await,
        "the abandoned import still holds a transaction"
    );
    assert!(
        abandoned.elapsed() < Duration::from_secs(5),
        "took {:?} to roll back",
        abandoned.elapsed()
    );
    assert_eq!(sites(&database.url).await, 0);

    // The service goes on: a small import afterwards works.
    let report = client::import_bytes(&mut second, Format::Csv, big_file(3), false)
        .await
        .unwrap();
    assert_eq!(report.imported, 3);
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), service)
        .await
        .expect("the service stops")
        .unwrap()
        .unwrap();
}

/// An upload that stops sending is not waited for forever: a stop ends it too.
#[tokio::test]
async fn postgres_a_stalled_upload_does_not_hold_a_stop() {
    let database = TestDatabase::postgres().await;
    let Running {
        mut api,
        shutdown,
        service,
    } = start(&database, "stall-import").await;
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    sender
        .send(sinter_proto::context::v1::ImportRegistryRequest {
            format: Format::Csv as i32,
            chunk: b"kind,id,name\n".to_vec(),
            dry_run: false,
        })
        .await
        .unwrap();
    let call = tokio::spawn(async move {
        api.import_registry(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.trigger();
    let outcome = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("the stalled call ends within 5 s of the stop")
        .unwrap();
    assert_eq!(outcome.unwrap_err().code(), Code::Unavailable);
    tokio::time::timeout(Duration::from_secs(5), service)
        .await
        .expect("the service stops")
        .unwrap()
        .unwrap();
    drop(sender);
}
