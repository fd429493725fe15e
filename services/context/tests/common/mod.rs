//! Shared test fixtures: a fresh PostgreSQL database or SQLite file per test, a service
//! context on the embedded bus, and a small registry.
#![allow(dead_code)]

use std::sync::Arc;

use sinter_bus::embedded::EmbeddedBus;
use sinter_bus::{Bus, TopicSpec};
use sinter_context::Registry;
use sinter_core::topic::Stream;
use sinter_core::{ManualClock, Solution, Timestamp};
use sinter_proto::context::v1::{Asset, Device, Site, WorkOrder};
use sinter_runtime::{ServiceContext, Shutdown};
use sqlx::Connection;

/// The admin connection tests create their databases with.
pub fn admin_url() -> String {
    std::env::var("SINTER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database of its own for one test, dropped when this is dropped.
pub struct TestDatabase {
    pub url: String,
    name: String,
}

impl TestDatabase {
    /// A new, empty PostgreSQL database; fails the test when PostgreSQL is unreachable.
    pub async fn postgres() -> TestDatabase {
        let admin = admin_url();
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|error| panic!("PostgreSQL is not reachable at {admin}: {error}"));
        let name = format!("sinter_context_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(base, _)| base);
        TestDatabase {
            url: format!("{base}/{name}"),
            name,
        }
    }

    /// A new SQLite file in the temporary directory.
    pub fn sqlite() -> TestDatabase {
        let path = std::env::temp_dir().join(format!(
            "sinter-context-{}.db",
            uuid::Uuid::new_v4().simple()
        ));
        TestDatabase {
            url: format!("sqlite:{}", path.display()),
            name: String::new(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.name.is_empty() {
            if let Some(path) = self.url.strip_prefix("sqlite:") {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{path}{suffix}"));
                }
            }
            return;
        }
        let name = self.name.clone();
        // Drop from a thread of its own: this may run inside an async test's runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A valid Solution named `name` in namespace `plant`, with `more` appended to its spec.
pub fn solution(name: &str, more: &str) -> Solution {
    let yaml = [
        "apiVersion: sinter.dev/v1alpha1",
        "kind: Solution",
        &format!("metadata: {{name: {name}, namespace: plant}}"),
        "spec:",
        "  devices:",
        "    - type: pump",
        "      match: [\"p-*\"]",
        "      metrics:",
        "        - {name: temp, min: -40, max: 200}",
        more,
    ]
    .join("\n");
    Solution::from_yaml(&yaml).unwrap_or_else(|errors| panic!("{errors}"))
}

pub fn clock() -> ManualClock {
    ManualClock::new(Timestamp::from_secs(1_764_756_000))
}

/// A service context on a new embedded bus, with every topic of `solution` made.
pub async fn service_context(solution: Solution, clock: &ManualClock) -> ServiceContext {
    let bus = Arc::new(EmbeddedBus::new());
    for stream in Stream::ALL {
        bus.ensure_topic(&TopicSpec::new(solution.topic_name(stream), 2))
            .await
            .expect("topic");
    }
    ServiceContext {
        solutions: Arc::new(vec![solution]),
        bus,
        clock: Arc::new(clock.clone()),
        shutdown: Shutdown::new(),
    }
}

pub fn site(id: &str, name: &str) -> Site {
    Site {
        id: id.into(),
        name: name.into(),
        timezone: "Europe/Berlin".into(),
        ..Site::default()
    }
}

pub fn asset(id: &str, site: &str, parent: &str, name: &str, level: &str) -> Asset {
    Asset {
        id: id.into(),
        site_id: site.into(),
        parent_id: parent.into(),
        name: name.into(),
        level: level.into(),
        ..Asset::default()
    }
}

pub fn device(id: &str, asset: &str) -> Device {
    Device {
        id: id.into(),
        asset_id: asset.into(),
        device_type: "pump".into(),
        ..Device::default()
    }
}

pub fn work_order(id: &str, asset: &str, title: &str) -> WorkOrder {
    WorkOrder {
        id: id.into(),
        asset_id: asset.into(),
        external_id: format!("CMMS-{id}"),
        title: title.into(),
        ..WorkOrder::default()
    }
}

/// North plant > cooling area > loop line > pump P-17 (high, reliability), with device
/// p-17 bound to the pump and one open work order on it.
pub async fn seed(registry: &Registry) {
    registry
        .create_site(site("north", "North plant"))
        .await
        .expect("site");
    registry
        .create_asset(asset("cooling", "north", "", "Cooling area", "area"))
        .await
        .expect("area");
    registry
        .create_asset(asset("loop-1", "north", "cooling", "Loop 1", "line"))
        .await
        .expect("line");
    let mut pump = asset("pump-17", "north", "loop-1", "Pump P-17", "asset");
    pump.criticality = "high".into();
    pump.owner_team = "reliability".into();
    pump.external_id = "SAP-4711".into();
    pump.attributes_json = r#"{"power_kw": 75, "vendor": "KSB"}"#.into();
    registry.create_asset(pump).await.expect("pump");
    registry
        .create_device(device("p-17", "pump-17"))
        .await
        .expect("device");
    registry
        .create_work_order(work_order("wo-1", "pump-17", "Replace bearing"))
        .await
        .expect("work order");
}
