//! Enrichment: a detection joined with its device's asset context and the Solution's
//! context providers becomes a situation.

use std::sync::Arc;
use std::time::Instant;

use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
use sinter_core::{SharedClock, Solution};
use sinter_proto::events::v1::situation::ContextStatus;
use sinter_proto::events::v1::{Detection, ProviderResult, Situation};

use crate::cache::{CachedLookup, ContextCache};
use crate::error::RegistryError;
use crate::metrics::ContextMetrics;
use crate::providers::{ContextProvider, QueryValues};
use crate::registry::{DeviceLookup, Registry};

/// The id kind of a situation: `st-<hash of the detection id>`.
pub const SITUATION_ID_KIND: &str = "st";

/// The situation id for a detection: the same detection always makes the same situation.
pub fn situation_id(detection_id: &str) -> String {
    sinter_core::id::derive(SITUATION_ID_KIND, &[detection_id.as_bytes()])
}

/// Looks devices up through the cache and turns detections into situations.
#[derive(Clone)]
pub struct Enricher {
    registry: Registry,
    cache: Arc<ContextCache>,
    metrics: ContextMetrics,
    clock: SharedClock,
}

/// The providers of one Solution, and the names its parameters are bound with.
pub struct SolutionContext {
    pub namespace: String,
    pub name: String,
    pub providers: Vec<ContextProvider>,
}

impl SolutionContext {
    /// Prepare every provider of `solution`.
    pub fn new(solution: &Solution) -> SolutionContext {
        SolutionContext {
            namespace: solution.namespace().to_owned(),
            name: solution.name().to_owned(),
            providers: solution
                .spec
                .context
                .providers
                .iter()
                .map(ContextProvider::new)
                .collect(),
        }
    }
}

impl Enricher {
    pub fn new(
        registry: Registry,
        cache: Arc<ContextCache>,
        metrics: ContextMetrics,
        clock: SharedClock,
    ) -> Self {
        Enricher {
            registry,
            cache,
            metrics,
            clock,
        }
    }

    pub fn cache(&self) -> &Arc<ContextCache> {
        &self.cache
    }

    pub fn metrics(&self) -> &ContextMetrics {
        &self.metrics
    }

    /// What the registry knows about `device`, from the cache when fresh.
    pub async fn lookup(&self, device: &str) -> Result<Arc<DeviceLookup>, RegistryError> {
        Ok(self.cached_lookup(device).await?.lookup)
    }

    async fn cached_lookup(&self, device: &str) -> Result<CachedLookup, RegistryError> {
        let started = Instant::now();
        if let Some(hit) = self.cache.get_cached(device) {
            self.metrics.cache_lookup(true, started.elapsed());
            return Ok(hit);
        }
        let generation = self.cache.generation();
        let lookup = Arc::new(self.registry.device_context(device).await?);
        let cached = CachedLookup::new(lookup);
        self.cache.insert_cached(device, cached.clone(), generation);
        self.metrics.cache_lookup(false, started.elapsed());
        Ok(cached)
    }

    /// The situation for `detection`. Fails only when the registry cannot be read; an
    /// unknown device gives a situation marked MISSING_ASSET, a failed provider one
    /// marked PARTIAL with the provider's error.
    pub async fn enrich(
        &self,
        solution: &SolutionContext,
        detection: Detection,
    ) -> Result<Situation, RegistryError> {
        let parts = self.enriched(solution, &detection).await?;
        let asset = match parts.cached.lookup.as_ref() {
            DeviceLookup::Bound(context) => Some((**context).clone()),
            DeviceLookup::Unknown | DeviceLookup::Unbound => None,
        };
        Ok(Situation {
            id: situation_id(&detection.id),
            detection: Some(detection),
            asset,
            context_status: parts.status as i32,
            providers: parts.providers,
            enriched_at: parts.enriched_at,
            // The trace travels in the record headers; the orchestrator copies it in.
            trace_id: String::new(),
        })
    }

    /// The situation for `detection` as the bytes published on the bus, the same message
    /// [`Enricher::enrich`] gives, encoded. `payload` is the detection as it arrived: its
    /// bytes are copied rather than encoded again, and so are the asset context's, encoded
    /// once when it was cached.
    pub async fn enrich_encoded(
        &self,
        solution: &SolutionContext,
        detection: &Detection,
        payload: &[u8],
    ) -> Result<Vec<u8>, RegistryError> {
        let parts = self.enriched(solution, detection).await?;
        // Fields in number order, as prost writes them: id, detection, asset, the rest.
        let head = Situation {
            id: situation_id(&detection.id),
            ..Situation::default()
        };
        let tail = Situation {
            context_status: parts.status as i32,
            providers: parts.providers,
            enriched_at: parts.enriched_at,
            ..Situation::default()
        };
        let embedded = |bytes: &[u8]| 1 + encoded_len_varint(bytes.len() as u64) + bytes.len();
        let asset = parts.cached.asset.as_deref();
        let mut encoded = Vec::with_capacity(
            head.encoded_len() + embedded(payload) + asset.map_or(0, embedded) + tail.encoded_len(),
        );
        append(&head, &mut encoded);
        encode_key(2, WireType::LengthDelimited, &mut encoded);
        encode_varint(payload.len() as u64, &mut encoded);
        encoded.extend_from_slice(payload);
        if let Some(asset) = asset {
            encode_key(3, WireType::LengthDelimited, &mut encoded);
            encode_varint(asset.len() as u64, &mut encoded);
            encoded.extend_from_slice(asset);
        }
        append(&tail, &mut encoded);
        Ok(encoded)
    }

    /// The lookup, the providers' results and the status of a situation for `detection`.
    async fn enriched(
        &self,
        solution: &SolutionContext,
        detection: &Detection,
    ) -> Result<Enriched, RegistryError> {
        let cached = self.cached_lookup(&detection.device_id).await?;
        let asset = match cached.lookup.as_ref() {
            DeviceLookup::Bound(context) => Some(&**context),
            DeviceLookup::Unknown | DeviceLookup::Unbound => None,
        };
        let providers = if solution.providers.is_empty() {
            Vec::new()
        } else {
            self.run_providers(solution, detection, asset).await
        };
        let failed = providers.iter().any(|result| result.rows_json.is_empty());
        let status = match cached.lookup.as_ref() {
            DeviceLookup::Bound(_) if failed => ContextStatus::Partial,
            DeviceLookup::Bound(_) => ContextStatus::Complete,
            DeviceLookup::Unknown | DeviceLookup::Unbound => {
                tracing::debug!(device = %detection.device_id, "No asset for the device.");
                ContextStatus::MissingAsset
            }
        };
        self.metrics.situation(status);
        Ok(Enriched {
            cached,
            status,
            providers,
            enriched_at: Some(sinter_proto::time::to_proto(self.clock.now())),
        })
    }

    async fn run_providers(
        &self,
        solution: &SolutionContext,
        detection: &Detection,
        asset: Option<&sinter_proto::events::v1::AssetContext>,
    ) -> Vec<ProviderResult> {
        let values = QueryValues {
            detection,
            namespace: &solution.namespace,
            solution: &solution.name,
            asset,
        };
        let providers = futures::future::join_all(
            solution
                .providers
                .iter()
                .map(|provider| provider.lookup(&values)),
        )
        .await;
        for (provider, result) in solution.providers.iter().zip(&providers) {
            if result.rows_json.is_empty() {
                self.metrics.provider_failure(provider.name());
                tracing::debug!(provider = provider.name(), device = %detection.device_id,
                    error = %result.error, "Context provider lookup failed.");
            }
        }
        providers
    }
}

/// What a situation is made of besides the detection.
struct Enriched {
    cached: CachedLookup,
    status: ContextStatus,
    providers: Vec<ProviderResult>,
    enriched_at: Option<prost_types::Timestamp>,
}

/// Encode `message` at the end of `out`.
fn append(message: &impl Message, out: &mut Vec<u8>) {
    // Encoding fails only for want of room, and a Vec makes room.
    let appended = message.encode(out);
    debug_assert!(appended.is_ok());
}
