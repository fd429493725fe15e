//! Imports against real PostgreSQL and SQLite: partial columns merge into existing rows,
//! a broken CSV quote is one refused row, enum text is matched ignoring case.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{TestDatabase, seed};
use sinter_context::{ImportFormat, ImportReport, Registry, import};
use sinter_proto::context::v1::work_order::Status;

async fn open(database: &TestDatabase) -> Registry {
    Registry::connect(&database.url, Arc::new(common::clock()))
        .await
        .expect("registry")
}

async fn csv(registry: &Registry, text: &str) -> ImportReport {
    import(registry, ImportFormat::Csv, text.as_bytes(), false)
        .await
        .unwrap()
}

fn refused(report: &ImportReport) -> Vec<(u32, String)> {
    report
        .rows
        .iter()
        .filter(|row| !row.imported)
        .map(|row| (row.line, row.error.clone()))
        .collect()
}

/// Regression: a file with only some columns used to blank every other field of the rows
/// it named (and refuse them when a required field was left out).
async fn omitted_columns_leave_stored_fields_alone(registry: &Registry) {
    seed(registry).await;

    let report = csv(registry, "kind,id,criticality\nasset,pump-17,low\n").await;
    assert_eq!((report.imported, report.refused), (1, 0), "{report:?}");
    let pump = registry.get_asset("pump-17").await.unwrap();
    assert_eq!(pump.criticality, "low");
    assert_eq!(pump.name, "Pump P-17");
    assert_eq!(pump.site_id, "north");
    assert_eq!(pump.parent_id, "loop-1");
    assert_eq!(pump.level, "asset");
    assert_eq!(pump.owner_team, "reliability");
    assert_eq!(pump.external_id, "SAP-4711");
    assert_eq!(pump.attributes_json, r#"{"power_kw":75,"vendor":"KSB"}"#);

    // JSON lines: a missing key is an omitted column.
    let lines = "{\"kind\":\"asset\",\"id\":\"pump-17\",\"owner_team\":\"mechanics\"}\n\
                 {\"kind\":\"device\",\"id\":\"p-17\",\"device_type\":\"vibration\"}\n\
                 {\"kind\":\"site\",\"id\":\"north\",\"timezone\":\"Europe/Paris\"}\n\
                 {\"kind\":\"work_order\",\"id\":\"wo-1\",\"status\":\"closed\"}\n";
    let report = import(registry, ImportFormat::JsonLines, lines.as_bytes(), false)
        .await
        .unwrap();
    assert_eq!((report.imported, report.refused), (4, 0), "{report:?}");
    let pump = registry.get_asset("pump-17").await.unwrap();
    assert_eq!(
        (pump.owner_team.as_str(), pump.criticality.as_str()),
        ("mechanics", "low")
    );
    assert_eq!(pump.name, "Pump P-17");
    let device = registry.get_device("p-17").await.unwrap();
    assert_eq!(
        (device.device_type.as_str(), device.asset_id.as_str()),
        ("vibration", "pump-17")
    );
    let site = registry.get_site("north").await.unwrap();
    assert_eq!(
        (site.name.as_str(), site.timezone.as_str()),
        ("North plant", "Europe/Paris")
    );
    let order = registry.get_work_order("wo-1").await.unwrap();
    assert_eq!(order.status, Status::Closed as i32);
    assert_eq!(
        (order.title.as_str(), order.asset_id.as_str()),
        ("Replace bearing", "pump-17")
    );

    // An empty cell in a present column sets the field to its empty value (or default).
    let report = csv(
        registry,
        "kind,id,owner_team,criticality,attributes_json\nasset,pump-17,,,\n",
    )
    .await;
    assert_eq!((report.imported, report.refused), (1, 0), "{report:?}");
    let pump = registry.get_asset("pump-17").await.unwrap();
    assert_eq!(pump.owner_team, "");
    assert_eq!(pump.criticality, "medium");
    assert_eq!(pump.attributes_json, "{}");
    assert_eq!(pump.external_id, "SAP-4711");

    // A required field left out of a new row is still refused, by name.
    let report = csv(registry, "kind,id,name\nasset,pump-99,Pump P-99\n").await;
    assert_eq!(
        refused(&report),
        [(2, "site_id: is required".to_owned())],
        "{report:?}"
    );
}

#[tokio::test]
async fn postgres_omitted_columns_leave_stored_fields_alone() {
    let database = TestDatabase::postgres().await;
    omitted_columns_leave_stored_fields_alone(&open(&database).await).await;
}

#[tokio::test]
async fn sqlite_omitted_columns_leave_stored_fields_alone() {
    let database = TestDatabase::sqlite();
    omitted_columns_leave_stored_fields_alone(&open(&database).await).await;
}

/// Regression: a quote that is never closed used to swallow every later row, either into
/// one imported field or into one refused row.
async fn an_unclosed_quote_is_one_refused_row(registry: &Registry) {
    let data = "kind,id,name\nsite,s1,North\nsite,s2,\"South\nsite,s3,Third\n\nsite,s4,Fourth\n";
    let report = csv(registry, data).await;
    let rows: Vec<(u32, bool)> = report
        .rows
        .iter()
        .map(|row| (row.line, row.imported))
        .collect();
    assert_eq!(
        rows,
        [(2, true), (3, false), (4, true), (6, true)],
        "{report:?}"
    );
    assert_eq!(
        report.rows[1].error,
        "a quoted field opened on line 3 is never closed; the lines after it are read as \
         rows of their own"
    );
    assert_eq!(registry.get_site("s3").await.unwrap().name, "Third");
    assert_eq!(registry.get_site("s4").await.unwrap().name, "Fourth");
    assert!(registry.get_site("s2").await.is_err());

    // The quote in a middle column, inside a file whose earlier quoted fields span lines.
    let data = "kind,id,name\nsite,m1,\"Multi\nline\"\nsite,\"m2,Open\nsite,m3,After\n";
    let report = csv(registry, data).await;
    let rows: Vec<(u32, bool, &str)> = report
        .rows
        .iter()
        .map(|row| (row.line, row.imported, row.id.as_str()))
        .collect();
    assert_eq!(
        rows,
        [(2, true, "m1"), (4, false, ""), (5, true, "m3")],
        "{report:?}"
    );
    assert_eq!(registry.get_site("m1").await.unwrap().name, "Multi\nline");
}

#[tokio::test]
async fn postgres_an_unclosed_quote_is_one_refused_row() {
    let database = TestDatabase::postgres().await;
    an_unclosed_quote_is_one_refused_row(&open(&database).await).await;
}

#[tokio::test]
async fn sqlite_an_unclosed_quote_is_one_refused_row() {
    let database = TestDatabase::sqlite();
    an_unclosed_quote_is_one_refused_row(&open(&database).await).await;
}

/// Enum text (criticality, work order status) is matched ignoring ASCII case and stored
/// in lowercase, the same in an import as through the API.
async fn enum_text_ignores_case_in_imports(registry: &Registry) {
    seed(registry).await;
    let data = "kind,id,criticality,status\nasset,pump-17,CRITICAL,\nwork_order,wo-1,,Closed\n";
    let report = csv(registry, data).await;
    assert_eq!((report.imported, report.refused), (2, 0), "{report:?}");
    assert_eq!(
        registry.get_asset("pump-17").await.unwrap().criticality,
        "critical"
    );
    assert_eq!(
        registry.get_work_order("wo-1").await.unwrap().status,
        Status::Closed as i32
    );
    let report = csv(registry, "kind,id,criticality\nasset,pump-17,Urgent\n").await;
    assert_eq!(
        refused(&report),
        [(
            2,
            "criticality: \"Urgent\" is not one of low, medium, high, critical".to_owned()
        )]
    );
}

#[tokio::test]
async fn postgres_enum_text_ignores_case_in_imports() {
    let database = TestDatabase::postgres().await;
    enum_text_ignores_case_in_imports(&open(&database).await).await;
}

#[tokio::test]
async fn sqlite_enum_text_ignores_case_in_imports() {
    let database = TestDatabase::sqlite();
    enum_text_ignores_case_in_imports(&open(&database).await).await;
}
