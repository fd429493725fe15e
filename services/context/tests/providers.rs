//! Context providers against real external databases: values bound, never spliced;
//! read-only; timeouts and failures recorded in the situation.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{TestDatabase, seed};
use sinter_context::cache::ContextCache;
use sinter_context::enrich::SolutionContext;
use sinter_context::metrics::ContextMetrics;
use sinter_context::{Enricher, Registry};
use sinter_proto::events::v1::Detection;
use sinter_proto::events::v1::situation::ContextStatus;
use sqlx::Connection;

const INJECTION: &str = "'; DROP TABLE assets; --";

fn url_file(url: &str) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("sinter-erp-{}.url", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, url).expect("write the URL file");
    path
}

fn provider(name: &str, file: &std::path::Path, query: &str, timeout: &str) -> String {
    format!(
        "        - {{name: {name}, urlFile: {file}, timeout: {timeout}, query: \"{query}\"}}",
        file = file.display()
    )
}

fn detection(device: &str) -> Detection {
    Detection {
        id: format!("dt-{device}"),
        device_id: device.into(),
        device_type: "pump".into(),
        metric: "temp".into(),
        value: 91.0,
        ..Detection::default()
    }
}

async fn enricher(registry_db: &TestDatabase) -> Enricher {
    let clock = common::clock();
    let registry = Registry::connect(&registry_db.url, Arc::new(clock.clone()))
        .await
        .unwrap();
    seed(&registry).await;
    let cache = Arc::new(ContextCache::new(
        std::time::Duration::from_secs(60),
        1000,
        Arc::new(clock.clone()),
    ));
    Enricher::new(registry, cache, ContextMetrics::new(), Arc::new(clock))
}

#[tokio::test]
async fn postgres_provider_binds_values_enforces_read_only_and_times_out() {
    let registry_db = TestDatabase::sqlite();
    let erp = TestDatabase::postgres().await;
    let mut conn = sqlx::PgConnection::connect(&erp.url).await.unwrap();
    sqlx::query("CREATE TABLE assets (device TEXT, name TEXT, opened_at TIMESTAMPTZ, qty NUMERIC)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO assets VALUES ('p-17', 'Pump', '2026-12-01T10:00:00Z', 2.5), \
         ($1, 'Tricky', NULL, NULL)",
    )
    .bind(INJECTION)
    .execute(&mut conn)
    .await
    .unwrap();
    let file = url_file(&erp.url);
    let providers = [
        provider(
            "lookup",
            &file,
            "SELECT name, opened_at, qty FROM assets WHERE device = :device",
            "2s",
        ),
        provider(
            "writer",
            &file,
            "SELECT name FROM assets WHERE device = :device AND \
             set_config('transaction_read_only', 'off', true) IS NOT NULL; DELETE FROM assets",
            "2s",
        ),
        provider(
            "slow",
            &file,
            "SELECT pg_sleep(5) IS NULL AS slept WHERE :device <> ''",
            "200ms",
        ),
        provider(
            "missing",
            std::path::Path::new("/nonexistent/erp.url"),
            "SELECT 1 AS one WHERE :device = ''",
            "1s",
        ),
    ];
    let solution = common::solution(
        "providers",
        &format!("  context:\n    providers:\n{}", providers.join("\n")),
    );
    let context = SolutionContext::new(&solution);
    let sql = context.providers[0].sql();
    assert!(
        sql.contains("device = $1") && !sql.contains("DROP"),
        "{sql}"
    );
    let enricher = enricher(&registry_db).await;

    let situation = enricher
        .enrich(&context, detection(INJECTION))
        .await
        .unwrap();
    assert_eq!(situation.context_status(), ContextStatus::MissingAsset);
    let lookup = &situation.providers[0];
    assert_eq!(lookup.error, "");
    assert_eq!(
        lookup.rows_json,
        r#"[{"name":"Tricky","opened_at":null,"qty":null}]"#
    );
    let writer = &situation.providers[1];
    assert!(
        writer.rows_json.is_empty() && !writer.error.is_empty(),
        "{writer:?}"
    );
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM assets")
        .fetch_one(&mut conn)
        .await
        .expect("the assets table is still there");
    assert_eq!(count, 2);

    let situation = enricher.enrich(&context, detection("p-17")).await.unwrap();
    assert_eq!(situation.context_status(), ContextStatus::Partial);
    assert_eq!(
        situation.providers[0].rows_json,
        r#"[{"name":"Pump","opened_at":"2026-12-01T10:00:00+00:00","qty":2.5}]"#
    );
    assert_eq!(situation.providers[2].error, "timed out after 200ms");
    assert!(situation.providers[2].rows_json.is_empty());
    assert!(
        situation.providers[3]
            .error
            .starts_with("cannot read urlFile /nonexistent/erp.url"),
        "{}",
        situation.providers[3].error
    );
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn sqlite_provider_binds_values_and_is_read_only() {
    let registry_db = TestDatabase::postgres().await;
    let erp = TestDatabase::sqlite();
    {
        let mut conn = sqlx::SqliteConnection::connect(&format!("{}?mode=rwc", erp.url))
            .await
            .unwrap();
        sqlx::query("CREATE TABLE assets (device TEXT, name TEXT, qty REAL, n INTEGER)")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO assets VALUES ('p-17', 'Pump', 2.5, 3), (?1, 'Tricky', NULL, 1)")
            .bind(INJECTION)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let file = url_file(&erp.url);
    let providers = [
        provider(
            "lookup",
            &file,
            "SELECT name, qty, n FROM assets WHERE device = :device",
            "2s",
        ),
        provider(
            "writer",
            &file,
            "WITH x AS (SELECT 1) DELETE FROM assets WHERE device <> :device RETURNING name",
            "2s",
        ),
    ];
    let solution = common::solution(
        "providers",
        &format!("  context:\n    providers:\n{}", providers.join("\n")),
    );
    let context = SolutionContext::new(&solution);
    let enricher = enricher(&registry_db).await;
    let situation = enricher
        .enrich(&context, detection(INJECTION))
        .await
        .unwrap();
    assert_eq!(
        situation.providers[0].rows_json,
        r#"[{"n":1,"name":"Tricky","qty":null}]"#
    );
    assert!(!situation.providers[1].error.is_empty());
    let situation = enricher.enrich(&context, detection("p-17")).await.unwrap();
    assert_eq!(situation.context_status(), ContextStatus::Partial);
    assert_eq!(
        situation.providers[0].rows_json,
        r#"[{"n":3,"name":"Pump","qty":2.5}]"#
    );
    let mut conn = sqlx::SqliteConnection::connect(&erp.url).await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM assets")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 2);
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn providers_bind_the_assets_registry_fields() {
    let registry_db = TestDatabase::sqlite();
    let erp = TestDatabase::postgres().await;
    let mut conn = sqlx::PgConnection::connect(&erp.url).await.unwrap();
    sqlx::query("CREATE TABLE equipment (sap_id TEXT, warranty TEXT)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO equipment VALUES ('SAP-4711', 'until 2027'), ($1, 'never')")
        .bind(INJECTION)
        .execute(&mut conn)
        .await
        .unwrap();
    let file = url_file(&erp.url);
    let providers = [provider(
        "warranty",
        &file,
        "SELECT warranty, :assetName AS asset, :criticality AS criticality FROM equipment \
         WHERE sap_id = :assetExternalId",
        "2s",
    )];
    let solution = common::solution(
        "asset-params",
        &format!("  context:\n    providers:\n{}", providers.join("\n")),
    );
    let context = SolutionContext::new(&solution);
    let enricher = enricher(&registry_db).await;

    let situation = enricher.enrich(&context, detection("p-17")).await.unwrap();
    assert_eq!(situation.context_status(), ContextStatus::Complete);
    let rows: serde_json::Value = serde_json::from_str(&situation.providers[0].rows_json).unwrap();
    assert_eq!(rows[0]["warranty"], "until 2027", "{rows}");
    assert_eq!(rows[0]["asset"], "Pump P-17", "{rows}");

    // An unknown device has no asset: its parameters are NULL and match nothing.
    let unknown = enricher.enrich(&context, detection("p-99")).await.unwrap();
    assert_eq!(unknown.context_status(), ContextStatus::MissingAsset);
    assert_eq!(unknown.providers[0].rows_json, "[]");
}
