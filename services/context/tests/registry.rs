//! The registry against real PostgreSQL and SQLite: CRUD, constraints, paging, context,
//! import.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{TestDatabase, asset, device, seed, site, work_order};
use sinter_context::mask::UpdateMask;
use sinter_context::registry::{AssetFilter, PageRequest};
use sinter_context::{DeviceLookup, ImportFormat, Registry, RegistryError, import};
use sinter_proto::context::v1::{Asset, Device, work_order::Status};

async fn open(database: &TestDatabase) -> Registry {
    Registry::connect(&database.url, Arc::new(common::clock()))
        .await
        .expect("registry")
}

async fn crud_and_errors(registry: &Registry) {
    seed(registry).await;
    let error = registry
        .create_site(site("north", "Again"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::AlreadyExists { .. }),
        "{error}"
    );
    assert_eq!(error.to_string(), "site \"north\" already exists");

    let error = registry
        .create_asset(asset("x", "south", "", "X", "area"))
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "asset.site_id: no site \"south\"");
    let mut bad = asset("x", "north", "", "X", "area");
    bad.criticality = "urgent".into();
    assert_eq!(
        registry.create_asset(bad).await.unwrap_err().to_string(),
        "asset.criticality: \"urgent\" is not one of low, medium, high, critical"
    );
    let mut bad = asset("x", "north", "", "X", "area");
    bad.attributes_json = "[1, 2]".into();
    assert_eq!(
        registry.create_asset(bad).await.unwrap_err().to_string(),
        "asset.attributes_json: must be a JSON object, not an array"
    );
    registry
        .create_site(site("south", "South plant"))
        .await
        .unwrap();
    let error = registry
        .create_asset(asset("x", "south", "loop-1", "X", "asset"))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "asset.parent_id: asset \"loop-1\" is in site \"north\", not \"south\""
    );
    assert!(matches!(
        registry.get_asset("nope").await.unwrap_err(),
        RegistryError::NotFound { .. }
    ));

    // A move that would make a cycle is refused.
    let cycle = Asset {
        id: "cooling".into(),
        parent_id: "pump-17".into(),
        ..Asset::default()
    };
    let mask = UpdateMask::new(
        "asset",
        &["parent_id".into()],
        &sinter_context::registry::ASSET_FIELDS,
    )
    .unwrap();
    let error = registry.update_asset(cycle, &mask).await.unwrap_err();
    assert!(error.to_string().contains("would make a cycle"), "{error}");

    // A partial update changes only the named field.
    let patch = Asset {
        id: "pump-17".into(),
        owner_team: "mechanics".into(),
        name: "ignored".into(),
        ..Asset::default()
    };
    let mask = UpdateMask::new(
        "asset",
        &["owner_team".into()],
        &sinter_context::registry::ASSET_FIELDS,
    )
    .unwrap();
    let updated = registry.update_asset(patch, &mask).await.unwrap();
    assert_eq!(updated.owner_team, "mechanics");
    assert_eq!(updated.name, "Pump P-17");
    assert_eq!(updated.criticality, "high");

    // Deleting refuses what still has children, and unbinds devices.
    let error = registry.delete_asset("loop-1").await.unwrap_err();
    assert!(matches!(error, RegistryError::Conflict(_)), "{error:?}");
    let error = registry.delete_site("north").await.unwrap_err();
    assert!(matches!(error, RegistryError::Conflict(_)), "{error}");

    // Work orders: closing one removes it from the context.
    let mut closed = work_order("wo-2", "pump-17", "Old job");
    closed.status = Status::Closed as i32;
    registry.create_work_order(closed).await.unwrap();
    let listed = registry
        .list_work_orders(&PageRequest::first(10), "pump-17", Status::Open)
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].external_id, "CMMS-wo-1");
    let error = registry
        .create_work_order(work_order("wo-3", "pump-17", "Dup"))
        .await
        .map(|_| ());
    assert!(error.is_ok());
    let mut dup = work_order("wo-4", "pump-17", "Dup");
    dup.external_id = "CMMS-wo-3".into();
    let error = registry.create_work_order(dup).await.unwrap_err();
    assert!(
        matches!(error, RegistryError::AlreadyExists { .. }),
        "{error}"
    );
}

async fn context_of_a_deep_hierarchy(registry: &Registry) {
    seed(registry).await;
    let DeviceLookup::Bound(context) = registry.device_context("p-17").await.unwrap() else {
        panic!("p-17 is bound");
    };
    let path: Vec<(&str, &str)> = context
        .path
        .iter()
        .map(|node| (node.id.as_str(), node.level.as_str()))
        .collect();
    assert_eq!(
        path,
        [
            ("north", "site"),
            ("cooling", "area"),
            ("loop-1", "line"),
            ("pump-17", "asset")
        ]
    );
    assert_eq!(context.site_name, "North plant");
    assert_eq!(context.criticality, "high");
    assert_eq!(context.owner_team, "reliability");
    assert_eq!(context.external_id, "SAP-4711");
    assert_eq!(context.attributes_json, r#"{"power_kw":75,"vendor":"KSB"}"#);
    assert_eq!(context.open_work_orders.len(), 1);
    assert_eq!(context.open_work_orders[0].title, "Replace bearing");
    assert_eq!(
        registry.device_context("nobody").await.unwrap(),
        DeviceLookup::Unknown
    );
    registry.create_device(device("p-99", "")).await.unwrap();
    assert_eq!(
        registry.device_context("p-99").await.unwrap(),
        DeviceLookup::Unbound
    );

    // Ten levels deep.
    let mut parent = "pump-17".to_owned();
    for level in 0..10 {
        let id = format!("part-{level}");
        registry
            .create_asset(asset(&id, "north", &parent, &id, "part"))
            .await
            .unwrap();
        parent = id;
    }
    registry
        .create_device(device("p-deep", &parent))
        .await
        .unwrap();
    let DeviceLookup::Bound(deep) = registry.device_context("p-deep").await.unwrap() else {
        panic!("p-deep is bound");
    };
    assert_eq!(deep.path.len(), 14);
    assert_eq!(deep.path[13].id, "part-9");
}

async fn paging_and_filters(registry: &Registry) {
    registry
        .create_site(site("north", "North plant"))
        .await
        .unwrap();
    for n in 0..25 {
        let mut node = asset(
            &format!("a-{n:02}"),
            "north",
            "",
            &format!("Pump {n}"),
            "asset",
        );
        node.criticality = if n % 5 == 0 { "high" } else { "low" }.into();
        registry.create_asset(node).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = PageRequest::parse(10, &token).unwrap();
        let listed = registry
            .list_assets(&page, &AssetFilter::default())
            .await
            .unwrap();
        seen.extend(listed.items.into_iter().map(|asset| asset.id));
        if listed.next_page_token.is_empty() {
            break;
        }
        token = listed.next_page_token;
    }
    assert_eq!(seen.len(), 25);
    assert_eq!(seen[0], "a-00");
    let high = AssetFilter {
        criticality: "high".into(),
        ..AssetFilter::default()
    };
    let listed = registry
        .list_assets(&PageRequest::first(100), &high)
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 5);
    let named = AssetFilter {
        name_contains: "PUMP 1".into(),
        ..AssetFilter::default()
    };
    let listed = registry
        .list_assets(&PageRequest::first(100), &named)
        .await
        .unwrap();
    let ids: Vec<&str> = listed.items.iter().map(|asset| asset.id.as_str()).collect();
    assert_eq!(ids.len(), 11, "{ids:?}");
}

/// A device has one row naming one asset: a second binding cannot even be written.
async fn a_device_cannot_be_bound_twice(registry: &Registry, database: &TestDatabase) {
    seed(registry).await;
    registry
        .create_asset(asset("pump-18", "north", "loop-1", "Pump P-18", "asset"))
        .await
        .unwrap();
    let error = registry
        .create_device(device("p-17", "pump-18"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::AlreadyExists { .. }),
        "{error}"
    );
    // Straight SQL, past the storage layer's checks, is refused by the schema.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&database.url).await.unwrap();
    let second = sqlx::query(
        "INSERT INTO devices (id, asset_id, device_type, attributes, created_at, updated_at) \
         VALUES ('p-17', 'pump-18', 'pump', '{}', 0, 0)",
    )
    .execute(&pool)
    .await;
    assert!(second.is_err_and(|error| {
        error
            .as_database_error()
            .is_some_and(|db| db.is_unique_violation())
    }));
    let dangling = sqlx::query(
        "INSERT INTO devices (id, asset_id, device_type, attributes, created_at, updated_at) \
         VALUES ('p-x', 'no-such-asset', 'pump', '{}', 0, 0)",
    )
    .execute(&pool)
    .await;
    assert!(dangling.is_err_and(|error| {
        error
            .as_database_error()
            .is_some_and(|db| db.is_foreign_key_violation())
    }));
    let bad_json = sqlx::query(
        "INSERT INTO sites (id, name, timezone, attributes, created_at, updated_at) \
         VALUES ('s-x', 'X', '', '[1]', 0, 0)",
    )
    .execute(&pool)
    .await;
    assert!(bad_json.is_err());
    // Rebinding moves the one binding.
    let mask = UpdateMask::new(
        "device",
        &["asset_id".into()],
        &sinter_context::registry::DEVICE_FIELDS,
    )
    .unwrap();
    let patch = Device {
        id: "p-17".into(),
        asset_id: "pump-18".into(),
        ..Device::default()
    };
    assert_eq!(
        registry.update_device(patch, &mask).await.unwrap().asset_id,
        "pump-18"
    );
    // Deleting the asset leaves the device registered and unbound.
    registry.delete_asset("pump-18").await.unwrap();
    assert_eq!(registry.get_device("p-17").await.unwrap().asset_id, "");
    pool.close().await;
}

const CSV: &str = "\
kind,id,name,site_id,parent_id,level,criticality,owner_team,attributes_json,asset_id,title,status
site,north,North plant,,,,,,,,,
asset,cooling,Cooling area,north,,area,,,,,,
asset,pump-17,Pump P-17,north,cooling,asset,high,reliability,\"{\"\"power_kw\"\": 75}\",,,
asset,pump-18,Pump P-18,north,cooling,asset,urgent,,,,,
asset,pump-19,Pump P-19,south,,asset,,,,,,
device,p-17,,,,,,,,pump-17,,
device,p-18,,,,,,,,pump-18,,
work_order,wo-1,,,,,,,,pump-17,Replace bearing,open
work_order,wo-2,,,,,,,,pump-17,,open
asset,pump-20,Pump P-20,north,cooling,asset,low,,{not json},,,
gadget,g-1,,,,,,,,,,
";

async fn csv_import_reports_each_bad_row(registry: &Registry) {
    let report = import(registry, ImportFormat::Csv, CSV.as_bytes(), false)
        .await
        .unwrap();
    let refused: Vec<(u32, &str)> = report
        .rows
        .iter()
        .filter(|row| !row.imported)
        .map(|row| (row.line, row.error.as_str()))
        .collect();
    assert_eq!(
        refused,
        [
            (
                5,
                "criticality: \"urgent\" is not one of low, medium, high, critical"
            ),
            (6, "site_id: no site \"south\""),
            (8, "asset_id: no asset \"pump-18\""),
            (10, "title: is required"),
            (
                11,
                "attributes_json: is not valid JSON: key must be a string at line 1 column 2"
            ),
            (
                12,
                "kind: \"gadget\" is not site, asset, device or work_order"
            ),
        ]
    );
    assert_eq!((report.imported, report.refused), (5, 6));
    let DeviceLookup::Bound(context) = registry.device_context("p-17").await.unwrap() else {
        panic!("p-17 was imported");
    };
    assert_eq!(context.attributes_json, r#"{"power_kw":75}"#);
    assert_eq!(context.open_work_orders.len(), 1);
    assert!(registry.get_device("p-18").await.is_err());

    // Importing again replaces rather than fails; a dry run writes nothing.
    let again = import(registry, ImportFormat::Csv, CSV.as_bytes(), false)
        .await
        .unwrap();
    assert_eq!(again.imported, 5);
    let dry = "kind,id,name\nsite,west,West plant\n";
    let report = import(registry, ImportFormat::Csv, dry.as_bytes(), true)
        .await
        .unwrap();
    assert_eq!(report.imported, 1);
    assert!(registry.get_site("west").await.is_err());

    let lines = "{\"kind\":\"site\",\"id\":\"east\",\"name\":\"East\",\"attributes\":{\"a\":1}}\n\
                 {\"kind\":\"asset\",\"id\":\"e1\",\"site_id\":\"east\",\"name\":\"E1\"}\n\
                 not json\n";
    let report = import(registry, ImportFormat::JsonLines, lines.as_bytes(), false)
        .await
        .unwrap();
    assert_eq!((report.imported, report.refused), (2, 1));
    assert_eq!(report.rows[2].line, 3);
    assert_eq!(
        registry.get_site("east").await.unwrap().attributes_json,
        r#"{"a":1}"#
    );
}

#[tokio::test]
async fn postgres_crud_and_errors() {
    let database = TestDatabase::postgres().await;
    crud_and_errors(&open(&database).await).await;
}

#[tokio::test]
async fn sqlite_crud_and_errors() {
    let database = TestDatabase::sqlite();
    crud_and_errors(&open(&database).await).await;
}

#[tokio::test]
async fn postgres_context_of_a_deep_hierarchy() {
    let database = TestDatabase::postgres().await;
    context_of_a_deep_hierarchy(&open(&database).await).await;
}

#[tokio::test]
async fn sqlite_context_of_a_deep_hierarchy() {
    let database = TestDatabase::sqlite();
    context_of_a_deep_hierarchy(&open(&database).await).await;
}

#[tokio::test]
async fn postgres_paging_and_filters() {
    let database = TestDatabase::postgres().await;
    paging_and_filters(&open(&database).await).await;
}

#[tokio::test]
async fn sqlite_paging_and_filters() {
    let database = TestDatabase::sqlite();
    paging_and_filters(&open(&database).await).await;
}

#[tokio::test]
async fn postgres_a_device_cannot_be_bound_twice() {
    let database = TestDatabase::postgres().await;
    a_device_cannot_be_bound_twice(&open(&database).await, &database).await;
}

#[tokio::test]
async fn sqlite_a_device_cannot_be_bound_twice() {
    let database = TestDatabase::sqlite();
    a_device_cannot_be_bound_twice(&open(&database).await, &database).await;
}

#[tokio::test]
async fn postgres_csv_import_reports_each_bad_row() {
    let database = TestDatabase::postgres().await;
    csv_import_reports_each_bad_row(&open(&database).await).await;
}

#[tokio::test]
async fn sqlite_csv_import_reports_each_bad_row() {
    let database = TestDatabase::sqlite();
    csv_import_reports_each_bad_row(&open(&database).await).await;
}

/// The shipped example registry, for the example Solution, imports without a refusal.
#[tokio::test]
async fn sqlite_the_example_registry_imports_cleanly() {
    let database = TestDatabase::sqlite();
    let registry = open(&database).await;
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pump-health-registry.csv");
    let report = sinter_context::import_path(&registry, &path, false)
        .await
        .unwrap();
    assert_eq!(
        (report.imported, report.refused),
        (91, 0),
        "{:?}",
        report.rows.iter().find(|row| !row.imported)
    );
    let DeviceLookup::Bound(context) = registry.device_context("p-17").await.unwrap() else {
        panic!("p-17 is bound");
    };
    assert_eq!(context.criticality, "critical");
    assert_eq!(context.open_work_orders[0].external_id, "CMMS-1001");
    let error = sinter_context::import_path(&registry, std::path::Path::new("x.xlsx"), false)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("cannot tell the format"),
        "{error}"
    );
}

/// A hierarchy deeper than the cycle check looks is refused, so a cycle cannot be closed
/// beyond the levels it walks.
async fn the_hierarchy_depth_is_bounded(registry: &Registry) {
    registry
        .create_site(site("deep", "Deep site"))
        .await
        .unwrap();
    let mut parent = String::new();
    let mut refused = None;
    for level in 0..70 {
        let id = format!("level-{level:02}");
        match registry
            .create_asset(asset(&id, "deep", &parent, &id, "asset"))
            .await
        {
            Ok(_) => parent = id,
            Err(error) => {
                refused = Some((level, error.to_string()));
                break;
            }
        }
    }
    let (level, error) = refused.expect("a chain of 70 levels is refused somewhere");
    assert!(
        (60..=66).contains(&level),
        "refused at level {level}: {error}"
    );
    assert!(error.contains("at most 64 levels deep"), "{error}");
}

#[tokio::test]
async fn postgres_the_hierarchy_depth_is_bounded() {
    let database = TestDatabase::postgres().await;
    the_hierarchy_depth_is_bounded(&open(&database).await).await;
}

#[tokio::test]
async fn sqlite_the_hierarchy_depth_is_bounded() {
    let database = TestDatabase::sqlite();
    the_hierarchy_depth_is_bounded(&open(&database).await).await;
}

/// Regression: a page token carried no trace of the list or filters it came from, so a
/// token from one filter silently continued another listing.
async fn page_tokens_are_bound_to_their_list_and_filters(registry: &Registry) {
    registry
        .create_site(site("north", "North plant"))
        .await
        .unwrap();
    for n in 0..6 {
        let mut node = asset(&format!("a-{n}"), "north", "", &format!("A{n}"), "asset");
        node.criticality = if n % 2 == 0 { "high" } else { "low" }.into();
        registry.create_asset(node).await.unwrap();
        registry
            .create_device(device(&format!("d-{n}"), &format!("a-{n}")))
            .await
            .unwrap();
    }
    let high = AssetFilter {
        criticality: "high".into(),
        ..AssetFilter::default()
    };
    let first = registry
        .list_assets(&PageRequest::parse(2, "").unwrap(), &high)
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    assert!(!first.next_page_token.is_empty());

    // The same filter continues.
    let page = PageRequest::parse(2, &first.next_page_token).unwrap();
    let second = registry.list_assets(&page, &high).await.unwrap();
    assert_eq!(second.items[0].id, "a-4");

    // Another filter, or another list, is refused by name.
    let low = AssetFilter {
        criticality: "low".into(),
        ..AssetFilter::default()
    };
    let error = registry.list_assets(&page, &low).await.unwrap_err();
    assert!(matches!(error, RegistryError::Invalid { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "page_token: was issued for another list or other filters; repeat the request \
         that returned it, or start again without a token"
    );
    let error = registry
        .list_assets(&page, &AssetFilter::default())
        .await
        .unwrap_err();
    assert!(error.to_string().starts_with("page_token: "), "{error}");
    let error = registry.list_devices(&page, "", "").await.unwrap_err();
    assert!(error.to_string().starts_with("page_token: "), "{error}");
    let error = registry.list_sites(&page, "").await.unwrap_err();
    assert!(error.to_string().starts_with("page_token: "), "{error}");
    let error = registry
        .list_work_orders(&page, "", Status::Unspecified)
        .await
        .unwrap_err();
    assert!(error.to_string().starts_with("page_token: "), "{error}");
}

#[tokio::test]
async fn postgres_page_tokens_are_bound_to_their_list_and_filters() {
    let database = TestDatabase::postgres().await;
    page_tokens_are_bound_to_their_list_and_filters(&open(&database).await).await;
}

#[tokio::test]
async fn sqlite_page_tokens_are_bound_to_their_list_and_filters() {
    let database = TestDatabase::sqlite();
    page_tokens_are_bound_to_their_list_and_filters(&open(&database).await).await;
}

/// Regression: any text was taken as a site's timezone.
async fn site_timezones_are_iana_names(registry: &Registry) {
    let mut bad = site("north", "North plant");
    bad.timezone = "Mars/Olympus_Mons".into();
    let error = registry.create_site(bad).await.unwrap_err();
    assert!(matches!(error, RegistryError::Invalid { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "site.timezone: \"Mars/Olympus_Mons\" is not an IANA time zone name (like \
         Europe/Berlin or UTC)"
    );
    let mut bad = site("north", "North plant");
    bad.timezone = "+02:00".into();
    assert!(registry.create_site(bad).await.is_err());
    for (id, zone) in [("s-1", "Europe/Berlin"), ("s-2", "UTC"), ("s-3", "")] {
        let mut good = site(id, "Plant");
        good.timezone = zone.into();
        assert_eq!(registry.create_site(good).await.unwrap().timezone, zone);
    }
    let report = import(
        registry,
        ImportFormat::Csv,
        b"kind,id,name,timezone\nsite,s-4,Four,America/New_York\nsite,s-5,Five,Berlin\n",
        false,
    )
    .await
    .unwrap();
    let refused: Vec<(u32, &str)> = report
        .rows
        .iter()
        .filter(|row| !row.imported)
        .map(|row| (row.line, row.error.as_str()))
        .collect();
    assert_eq!(
        refused,
        [(
            3,
            "timezone: \"Berlin\" is not an IANA time zone name (like Europe/Berlin or UTC)"
        )]
    );
    let mask = UpdateMask::new(
        "site",
        &["timezone".into()],
        &sinter_context::registry::SITE_FIELDS,
    )
    .unwrap();
    let patch = sinter_proto::context::v1::Site {
        id: "s-1".into(),
        timezone: "Europe/Atlantis".into(),
        ..Default::default()
    };
    assert!(registry.update_site(patch, &mask).await.is_err());
}

#[tokio::test]
async fn postgres_site_timezones_are_iana_names() {
    let database = TestDatabase::postgres().await;
    site_timezones_are_iana_names(&open(&database).await).await;
}

#[tokio::test]
async fn sqlite_site_timezones_are_iana_names() {
    let database = TestDatabase::sqlite();
    site_timezones_are_iana_names(&open(&database).await).await;
}

/// Regression: the API refused `HIGH` as a criticality while the import took `CLOSED` as
/// a status. Enum text now ignores ASCII case everywhere and is stored in lowercase.
async fn enum_text_ignores_case_through_the_api(registry: &Registry) {
    registry
        .create_site(site("north", "North plant"))
        .await
        .unwrap();
    let mut node = asset("a-1", "north", "", "A1", "asset");
    node.criticality = "HIGH".into();
    assert_eq!(
        registry.create_asset(node).await.unwrap().criticality,
        "high"
    );
    let mask = UpdateMask::new(
        "asset",
        &["criticality".into()],
        &sinter_context::registry::ASSET_FIELDS,
    )
    .unwrap();
    let patch = Asset {
        id: "a-1".into(),
        criticality: "Low".into(),
        ..Asset::default()
    };
    assert_eq!(
        registry
            .update_asset(patch, &mask)
            .await
            .unwrap()
            .criticality,
        "low"
    );
    let filter = AssetFilter {
        criticality: "LOW".into(),
        ..AssetFilter::default()
    };
    let listed = registry
        .list_assets(&PageRequest::first(10), &filter)
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let mut bad = asset("a-2", "north", "", "A2", "asset");
    bad.criticality = "Urgent".into();
    assert_eq!(
        registry.create_asset(bad).await.unwrap_err().to_string(),
        "asset.criticality: \"Urgent\" is not one of low, medium, high, critical"
    );
}

#[tokio::test]
async fn postgres_enum_text_ignores_case_through_the_api() {
    let database = TestDatabase::postgres().await;
    enum_text_ignores_case_through_the_api(&open(&database).await).await;
}

#[tokio::test]
async fn sqlite_enum_text_ignores_case_through_the_api() {
    let database = TestDatabase::sqlite();
    enum_text_ignores_case_through_the_api(&open(&database).await).await;
}
