//! Enrichment: a detection joined with its device's asset context and the Solution's
//! context providers becomes a situation.

use std::sync::Arc;
use std::time::Instant;

use sinter_core::{SharedClock, Solution};
use sinter_proto::events::v1::situation::ContextStatus;
use sinter_proto::events::v1::{Detection, Situation};

use crate::cache::ContextCache;
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
        let started = Instant::now();
        if let Some(hit) = self.cache.get(device) {
            self.metrics.cache_lookup(true, started.elapsed());
            return Ok(hit);
        }
        let generation = self.cache.generation();
        let lookup = Arc::new(self.registry.device_context(device).await?);
        self.cache.insert(device, lookup.clone(), generation);
        self.metrics.cache_lookup(false, started.elapsed());
        Ok(lookup)
    }

    /// The situation for `detection`. Fails only when the registry cannot be read; an
    /// unknown device gives a situation marked MISSING_ASSET, a failed provider one
    /// marked PARTIAL with the provider's error.
    pub async fn enrich(
        &self,
        solution: &SolutionContext,
        detection: Detection,
    ) -> Result<Situation, RegistryError> {
        let lookup = self.lookup(&detection.device_id).await?;
        let asset = match lookup.as_ref() {
            DeviceLookup::Bound(context) => Some(&**context),
            DeviceLookup::Unknown | DeviceLookup::Unbound => None,
        };
        let values = QueryValues {
            detection: &detection,
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
        let failed = providers.iter().any(|result| result.rows_json.is_empty());
        let (asset, status) = match lookup.as_ref() {
            DeviceLookup::Bound(context) if failed => {
                (Some((**context).clone()), ContextStatus::Partial)
            }
            DeviceLookup::Bound(context) => (Some((**context).clone()), ContextStatus::Complete),
            DeviceLookup::Unknown | DeviceLookup::Unbound => (None, ContextStatus::MissingAsset),
        };
        if status == ContextStatus::MissingAsset {
            tracing::debug!(device = %detection.device_id, "No asset for the device.");
        }
        self.metrics.situation(status);
        Ok(Situation {
            id: situation_id(&detection.id),
            detection: Some(detection),
            asset,
            context_status: status as i32,
            providers,
            enriched_at: Some(sinter_proto::time::to_proto(self.clock.now())),
        })
    }
}
