//! A read-through cache of device lookups, invalidated by the registry records each one
//! depends on, with a TTL bounding staleness when an invalidation is lost.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use sinter_core::{SharedClock, Timestamp};

use crate::registry::{DeviceLookup, dependency_keys};

/// A lookup as the cache keeps it: the lookup itself and, for a bound device, its
/// `AssetContext` encoded once, so that every situation built from it copies bytes
/// instead of cloning and re-encoding the context. Cheap to clone.
#[derive(Clone, Debug)]
pub struct CachedLookup {
    pub lookup: Arc<DeviceLookup>,
    /// The encoded `AssetContext`; `None` when the device is bound to no asset.
    pub asset: Option<Bytes>,
}

impl CachedLookup {
    pub fn new(lookup: Arc<DeviceLookup>) -> Self {
        let asset = match lookup.as_ref() {
            DeviceLookup::Bound(context) => Some(Bytes::from(context.encode_to_vec())),
            DeviceLookup::Unknown | DeviceLookup::Unbound => None,
        };
        CachedLookup { lookup, asset }
    }
}

/// Entries kept at most; past it new lookups are served but not cached.
// Limitation: there is no eviction; with more devices than this, the rest always read
// the registry until entries expire or are invalidated.
pub const DEFAULT_CAPACITY: usize = 1_000_000;

struct Entry {
    cached: CachedLookup,
    loaded_at: Timestamp,
    dependencies: Vec<String>,
}

#[derive(Default)]
struct Entries {
    by_device: HashMap<String, Entry>,
    /// Dependency key (`asset:<id>`, ...) to the devices whose entries depend on it.
    dependents: HashMap<String, HashSet<String>>,
}

impl Entries {
    fn remove(&mut self, device: &str) {
        let Some(entry) = self.by_device.remove(device) else {
            return;
        };
        for key in &entry.dependencies {
            if let Some(devices) = self.dependents.get_mut(key) {
                devices.remove(device);
                if devices.is_empty() {
                    self.dependents.remove(key);
                }
            }
        }
    }
}

/// The cache. Cheap to share behind an `Arc`.
pub struct ContextCache {
    entries: RwLock<Entries>,
    ttl: Duration,
    capacity: usize,
    clock: SharedClock,
    /// Bumped by every invalidation: a lookup that started before one is not cached,
    /// since it may have read what the invalidation was about.
    generation: AtomicU64,
}

impl std::fmt::Debug for ContextCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextCache")
            .field("ttl", &self.ttl)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl ContextCache {
    pub fn new(ttl: Duration, capacity: usize, clock: SharedClock) -> Self {
        ContextCache {
            entries: RwLock::new(Entries::default()),
            ttl,
            capacity,
            clock,
            generation: AtomicU64::new(0),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        self.entries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached lookup of `device`, unless missing or older than the TTL.
    pub fn get(&self, device: &str) -> Option<Arc<DeviceLookup>> {
        self.get_cached(device).map(|cached| cached.lookup)
    }

    /// [`ContextCache::get`] with the encoded asset context.
    pub fn get_cached(&self, device: &str) -> Option<CachedLookup> {
        let entries = self.read();
        let entry = entries.by_device.get(device)?;
        if self.clock.now().duration_since(entry.loaded_at) >= self.ttl {
            return None;
        }
        Some(entry.cached.clone())
    }

    /// The generation to hand to [`ContextCache::insert`]; take it before reading the
    /// registry.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Cache `lookup`, read after `generation` was taken; skipped when something was
    /// invalidated since, or when the cache is full.
    pub fn insert(&self, device: &str, lookup: Arc<DeviceLookup>, generation: u64) {
        self.insert_cached(device, CachedLookup::new(lookup), generation);
    }

    /// [`ContextCache::insert`] of a lookup already encoded.
    pub fn insert_cached(&self, device: &str, cached: CachedLookup, generation: u64) {
        let dependencies = dependency_keys(device, &cached.lookup);
        let mut entries = self.write();
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        entries.remove(device);
        if entries.by_device.len() >= self.capacity {
            return;
        }
        for key in &dependencies {
            entries
                .dependents
                .entry(key.clone())
                .or_default()
                .insert(device.to_owned());
        }
        entries.by_device.insert(
            device.to_owned(),
            Entry {
                cached,
                loaded_at: self.clock.now(),
                dependencies,
            },
        );
    }

    /// Drop every entry that depends on `key` (`device:<id>`, `asset:<id>`, `site:<id>`).
    pub fn invalidate(&self, key: &str) {
        let mut entries = self.write();
        self.generation.fetch_add(1, Ordering::SeqCst);
        let devices: Vec<String> = entries
            .dependents
            .get(key)
            .map(|devices| devices.iter().cloned().collect())
            .unwrap_or_default();
        for device in devices {
            entries.remove(&device);
        }
        if let Some(device) = key.strip_prefix("device:") {
            entries.remove(device);
        }
    }

    /// Drop everything: after an import, or when notifications may have been lost.
    pub fn clear(&self) {
        let mut entries = self.write();
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.by_device.clear();
        entries.dependents.clear();
    }

    pub fn len(&self) -> usize {
        self.read().by_device.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sinter_core::ManualClock;
    use sinter_proto::events::v1::{AssetContext, AssetRef};

    fn bound(asset: &str, parent: &str, site: &str) -> Arc<DeviceLookup> {
        let node = |id: &str, level: &str| AssetRef {
            id: id.to_owned(),
            name: id.to_owned(),
            level: level.to_owned(),
        };
        Arc::new(DeviceLookup::Bound(Box::new(AssetContext {
            asset_id: asset.to_owned(),
            site_id: site.to_owned(),
            path: vec![
                node(site, "site"),
                node(parent, "line"),
                node(asset, "asset"),
            ],
            ..AssetContext::default()
        })))
    }

    #[test]
    fn an_ancestor_change_drops_every_device_below_it() {
        let clock = ManualClock::new(Timestamp::from_secs(100));
        let cache = ContextCache::new(Duration::from_secs(60), 10, Arc::new(clock));
        cache.insert("d1", bound("a1", "line-1", "s1"), cache.generation());
        cache.insert("d2", bound("a2", "line-1", "s1"), cache.generation());
        cache.insert("d3", bound("a3", "line-2", "s1"), cache.generation());
        cache.invalidate("asset:line-1");
        assert!(cache.get("d1").is_none() && cache.get("d2").is_none());
        assert!(cache.get("d3").is_some());
        cache.invalidate("site:s1");
        assert!(cache.is_empty());
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let clock = ManualClock::new(Timestamp::from_secs(100));
        let cache = ContextCache::new(Duration::from_secs(60), 10, Arc::new(clock.clone()));
        cache.insert("d1", Arc::new(DeviceLookup::Unknown), cache.generation());
        clock.advance(Duration::from_secs(59));
        assert!(cache.get("d1").is_some());
        clock.advance(Duration::from_secs(1));
        assert!(cache.get("d1").is_none());
    }

    #[test]
    fn a_lookup_overtaken_by_an_invalidation_is_not_cached() {
        let clock = ManualClock::new(Timestamp::from_secs(100));
        let cache = ContextCache::new(Duration::from_secs(60), 10, Arc::new(clock));
        let before = cache.generation();
        cache.invalidate("device:d1");
        cache.insert("d1", Arc::new(DeviceLookup::Unknown), before);
        assert!(cache.get("d1").is_none());
        cache.insert("d1", Arc::new(DeviceLookup::Unknown), cache.generation());
        assert!(cache.get("d1").is_some());
        cache.invalidate("device:d1");
        assert!(cache.get("d1").is_none());
    }
}
