//! The context service as a whole: the registry, the cache and its invalidation, the
//! gRPC API and one enrichment loop per Solution, built from a `ServiceContext`.

use std::sync::Arc;
use std::time::Duration;

use sinter_grpc::GrpcServer;
use sinter_proto::context::v1::context_service_server::ContextServiceServer;
use sinter_runtime::{BoxError, Service, ServiceContext, Shutdown};

use crate::api::ContextApi;
use crate::cache::{ContextCache, DEFAULT_CAPACITY};
use crate::enrich::{Enricher, SolutionContext};
use crate::error::RegistryError;
use crate::metrics::ContextMetrics;
use crate::registry::{Backend, Registry};

/// Largest gRPC message the API takes or sends (an import's response lists every row).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How long closing the registry may wait for busy connections at shutdown.
const CLOSE_WITHIN: Duration = Duration::from_secs(3);

/// How the context service is set up beyond its `ServiceContext`.
#[derive(Clone, Debug)]
pub struct ContextConfig {
    /// `postgres://...` (cluster mode) or `sqlite:path` (embedded mode).
    pub database_url: String,
    /// How long a cached lookup is used at most, in case an invalidation was lost.
    pub cache_ttl: Duration,
    /// Cached lookups kept at most.
    pub cache_capacity: usize,
}

impl ContextConfig {
    /// Defaults for everything but the database.
    pub fn new(database_url: impl Into<String>) -> Self {
        ContextConfig {
            database_url: database_url.into(),
            cache_ttl: Duration::from_secs(300),
            cache_capacity: DEFAULT_CAPACITY,
        }
    }
}

/// Why the service could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("cannot open the asset registry")]
    Registry(#[from] RegistryError),
    #[error("cannot listen for registry changes")]
    Listen(#[source] sqlx::Error),
}

/// The context service.
pub struct ContextService {
    context: ServiceContext,
    registry: Registry,
    enricher: Enricher,
}

impl ContextService {
    /// Open (and migrate) the registry, set up the cache, and on PostgreSQL start
    /// listening for changes, so that nothing changed from now on is served stale.
    pub async fn build(
        context: ServiceContext,
        config: &ContextConfig,
    ) -> Result<ContextService, ContextError> {
        let registry = Registry::connect(&config.database_url, context.clock.clone()).await?;
        let cache = Arc::new(ContextCache::new(
            config.cache_ttl,
            config.cache_capacity,
            context.clock.clone(),
        ));
        let invalidated = cache.clone();
        registry.on_change(Arc::new(move |keys: Option<&[String]>| match keys {
            Some(keys) => keys.iter().for_each(|key| invalidated.invalidate(key)),
            None => invalidated.clear(),
        }));
        if registry.backend() == Backend::Postgres {
            crate::invalidation::listen(
                &config.database_url,
                cache.clone(),
                context.shutdown.clone(),
            )
            .await
            .map_err(ContextError::Listen)?;
        }
        let enricher = Enricher::new(
            registry.clone(),
            cache,
            ContextMetrics::new(),
            context.clock.clone(),
        );
        tracing::info!(backend = ?registry.backend(), ttl_s = config.cache_ttl.as_secs(),
            "Asset registry open.");
        Ok(ContextService {
            context,
            registry,
            enricher,
        })
    }

    /// The registry, for seeding and imports in the same process.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn enricher(&self) -> &Enricher {
        &self.enricher
    }

    /// The gRPC service, for a server other than the runtime's.
    pub fn grpc_service(&self) -> ContextServiceServer<ContextApi> {
        ContextServiceServer::new(ContextApi::new(
            self.registry.clone(),
            self.enricher.clone(),
            self.context.shutdown.clone(),
        ))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

#[async_trait::async_trait]
impl Service for ContextService {
    fn register(&self, server: GrpcServer) -> GrpcServer {
        server.add_service(self.grpc_service())
    }

    async fn run(self: Box<Self>, shutdown: Shutdown) -> Result<(), BoxError> {
        let mut loops = tokio::task::JoinSet::new();
        for solution in self.context.solutions.iter() {
            loops.spawn(crate::pipeline::run(
                self.context.bus.clone(),
                self.enricher.clone(),
                SolutionContext::new(solution),
                self.context.clock.clone(),
                shutdown.clone(),
            ));
        }
        while let Some(finished) = loops.join_next().await {
            match finished {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    shutdown.trigger();
                    return Err(Box::new(error));
                }
                Err(join) => {
                    shutdown.trigger();
                    return Err(Box::new(join));
                }
            }
        }
        // Imports see the same shutdown and roll back; closing waits for their connections,
        // bounded so that a stuck statement cannot hold the process.
        if tokio::time::timeout(CLOSE_WITHIN, self.registry.close())
            .await
            .is_err()
        {
            tracing::warn!(
                within_s = CLOSE_WITHIN.as_secs(),
                "Registry connections still busy at shutdown; leaving them to the database."
            );
        }
        Ok(())
    }
}
