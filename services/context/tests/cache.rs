//! The read-through cache stays true: PostgreSQL notifications for changes made by
//! anyone, in-process invalidation for the service's own writes, the TTL as a backstop.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{TestDatabase, asset, device, seed, service_context, solution, work_order};
use sinter_context::mask::UpdateMask;
use sinter_context::registry::{ASSET_FIELDS, DEVICE_FIELDS};
use sinter_context::{ContextConfig, ContextService, DeviceLookup, Registry};
use sinter_core::ManualClock;
use sinter_proto::context::v1::{Asset, Device};
use sinter_proto::events::v1::AssetContext;

/// The service (TTL one hour, on a clock that does not move) and a second registry
/// handle that writes behind the service's back, as another process would.
async fn setup(database: &TestDatabase, clock: &ManualClock) -> (ContextService, Registry) {
    let context = service_context(solution("cache", ""), clock).await;
    let mut config = ContextConfig::new(&database.url);
    config.cache_ttl = Duration::from_secs(3600);
    let service = ContextService::build(context, &config)
        .await
        .expect("service");
    seed(service.registry()).await;
    let other = Registry::connect(&database.url, Arc::new(clock.clone()))
        .await
        .expect("second handle");
    (service, other)
}

async fn asset_of(service: &ContextService, device: &str) -> Option<AssetContext> {
    match service
        .enricher()
        .lookup(device)
        .await
        .expect("lookup")
        .as_ref()
    {
        DeviceLookup::Bound(context) => Some((**context).clone()),
        DeviceLookup::Unbound | DeviceLookup::Unknown => None,
    }
}

/// Warm the cache for `device` and check the second lookup is a hit.
///
/// The notification of an earlier change may still be on its way and empty the cache
/// between the two lookups (one extra miss, never stale data), so a few rounds are
/// allowed before a second lookup must hit.
async fn warm(service: &ContextService, device: &str) {
    let hits = || {
        service
            .enricher()
            .metrics()
            .counts()
            .hits
            .load(Ordering::SeqCst)
    };
    let mut rounds = Vec::new();
    for _ in 0..5 {
        asset_of(service, device).await;
        let before = hits();
        asset_of(service, device).await;
        let after = hits();
        if after == before + 1 {
            return;
        }
        rounds.push((before, after));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the second lookup of {device} is never a cache hit: {rounds:?}");
}

/// Wait until the lookup of `device` satisfies `check`; the TTL cannot help here.
async fn eventually(
    service: &ContextService,
    device: &str,
    what: &str,
    check: impl Fn(&Option<AssetContext>) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = asset_of(service, device).await;
        if check(&found) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still {found:?} after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn mask(fields: &[&str], all: &[&str]) -> UpdateMask {
    let paths: Vec<String> = fields.iter().map(|field| (*field).to_owned()).collect();
    UpdateMask::new("x", &paths, all).expect("mask")
}

#[tokio::test]
async fn postgres_notifications_invalidate_every_kind_of_change() {
    let database = TestDatabase::postgres().await;
    let clock = common::clock();
    let (service, other) = setup(&database, &clock).await;

    // Update: a full update of the asset.
    warm(&service, "p-17").await;
    let mut pump = other.get_asset("pump-17").await.unwrap();
    pump.name = "Pump P-17 (rebuilt)".into();
    pump.criticality = "critical".into();
    other
        .update_asset(pump, &UpdateMask::given())
        .await
        .unwrap();
    eventually(&service, "p-17", "update", |found| {
        found
            .as_ref()
            .is_some_and(|c| c.asset_name == "Pump P-17 (rebuilt)" && c.criticality == "critical")
    })
    .await;

    // Partial update of an ancestor: the line's name is on the path.
    warm(&service, "p-17").await;
    let patch = Asset {
        id: "loop-1".into(),
        name: "Loop 1 north".into(),
        ..Asset::default()
    };
    other
        .update_asset(patch, &mask(&["name"], &ASSET_FIELDS))
        .await
        .unwrap();
    eventually(&service, "p-17", "partial update", |found| {
        found
            .as_ref()
            .is_some_and(|c| c.path[2].name == "Loop 1 north" && c.criticality == "critical")
    })
    .await;

    // A new work order on the asset.
    warm(&service, "p-17").await;
    other
        .create_work_order(work_order("wo-9", "pump-17", "Align coupling"))
        .await
        .unwrap();
    eventually(&service, "p-17", "new work order", |found| {
        found
            .as_ref()
            .is_some_and(|c| c.open_work_orders.len() == 2)
    })
    .await;

    // Delete: the device becomes unbound.
    warm(&service, "p-17").await;
    other.delete_asset("pump-17").await.unwrap();
    eventually(&service, "p-17", "delete", Option::is_none).await;

    // Delete and recreate with the same id: the new asset's data, not the old.
    let mut again = asset("pump-17", "north", "loop-1", "Pump P-17 (new)", "asset");
    again.criticality = "low".into();
    other.create_asset(again).await.unwrap();
    let rebind = Device {
        id: "p-17".into(),
        asset_id: "pump-17".into(),
        ..Device::default()
    };
    other
        .update_device(rebind, &mask(&["asset_id"], &DEVICE_FIELDS))
        .await
        .unwrap();
    eventually(&service, "p-17", "recreate", |found| {
        found.as_ref().is_some_and(|c| {
            c.asset_name == "Pump P-17 (new)"
                && c.criticality == "low"
                && c.open_work_orders.is_empty()
        })
    })
    .await;
    warm(&service, "p-17").await;
    other.delete_asset("pump-17").await.unwrap();
    let mut third = asset("pump-17", "north", "cooling", "Pump P-17 (third)", "asset");
    third.owner_team = "mechanics".into();
    other.create_asset(third).await.unwrap();
    other.delete_device("p-17").await.unwrap();
    other
        .create_device(device("p-17", "pump-17"))
        .await
        .unwrap();
    eventually(&service, "p-17", "recreate again", |found| {
        found
            .as_ref()
            .is_some_and(|c| c.asset_name == "Pump P-17 (third)" && c.path.len() == 3)
    })
    .await;

    // Rebinding a device to another asset.
    other
        .create_asset(asset("pump-18", "north", "loop-1", "Pump P-18", "asset"))
        .await
        .unwrap();
    warm(&service, "p-17").await;
    let rebind = Device {
        id: "p-17".into(),
        asset_id: "pump-18".into(),
        ..Device::default()
    };
    other
        .update_device(rebind, &mask(&["asset_id"], &DEVICE_FIELDS))
        .await
        .unwrap();
    eventually(&service, "p-17", "rebind", |found| {
        found.as_ref().is_some_and(|c| c.asset_id == "pump-18")
    })
    .await;

    // A site's name is part of every context below it.
    warm(&service, "p-17").await;
    let mut north = other.get_site("north").await.unwrap();
    north.name = "North works".into();
    other
        .update_site(north, &UpdateMask::given())
        .await
        .unwrap();
    eventually(&service, "p-17", "site rename", |found| {
        found.as_ref().is_some_and(|c| c.site_name == "North works")
    })
    .await;

    // An unknown device that gets registered.
    assert!(asset_of(&service, "p-new").await.is_none());
    warm(&service, "p-new").await;
    other
        .create_device(device("p-new", "pump-18"))
        .await
        .unwrap();
    eventually(&service, "p-new", "new device", Option::is_some).await;
}

#[tokio::test]
async fn sqlite_own_writes_invalidate_at_once_and_the_ttl_bounds_the_rest() {
    let database = TestDatabase::sqlite();
    let clock = common::clock();
    let (service, other) = setup(&database, &clock).await;
    warm(&service, "p-17").await;

    // The service's own write: seen by the very next lookup.
    let patch = Asset {
        id: "pump-17".into(),
        owner_team: "mechanics".into(),
        ..Asset::default()
    };
    service
        .registry()
        .update_asset(patch, &mask(&["owner_team"], &ASSET_FIELDS))
        .await
        .unwrap();
    let found = asset_of(&service, "p-17").await.expect("bound");
    assert_eq!(found.owner_team, "mechanics");

    // Another process's write: SQLite cannot tell, so the TTL bounds how stale it gets.
    warm(&service, "p-17").await;
    let rebind_to_nothing = Device {
        id: "p-17".into(),
        ..Device::default()
    };
    other
        .update_device(rebind_to_nothing, &mask(&["asset_id"], &DEVICE_FIELDS))
        .await
        .unwrap();
    assert!(
        asset_of(&service, "p-17").await.is_some(),
        "stale until the TTL passes"
    );
    clock.advance(Duration::from_secs(3600));
    assert!(asset_of(&service, "p-17").await.is_none());
}
