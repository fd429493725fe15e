//! The ingestion service as `sinter_runtime` runs it: the gRPC API, the HTTP API and the
//! Solutions' MQTT sources over one pipeline, built from a `ServiceContext` so the same code
//! runs in `sinter-ingest` and in `sinter dev`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sinter_core::solution::Source;
use sinter_grpc::GrpcServer;
use sinter_proto::ingest::v1::ingest_service_server::IngestServiceServer;
use sinter_runtime::{BoxError, Service, ServiceContext, Shutdown};
use tokio::net::TcpListener;

use crate::grpc::{DEFAULT_STREAM_PIPELINE, GrpcApi};
use crate::mqtt::{self, MqttSettings};
use crate::pipeline::{Ingestor, PipelineConfig};

/// The service's own settings, beside what the Solutions say.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// Where the HTTP JSON API listens; `None` turns it off.
    pub http_addr: Option<SocketAddr>,
    /// How long an HTTP request waits for room before 503; also its `Retry-After`.
    pub http_busy_wait: Duration,
    /// The largest HTTP body accepted, in bytes (413 beyond).
    pub http_max_body_bytes: usize,
    /// The largest gRPC message accepted, in bytes.
    pub grpc_max_message_bytes: usize,
    /// Batches of one gRPC stream published at once.
    pub stream_pipeline: usize,
    /// Limits of the pipeline shared by every transport.
    pub pipeline: PipelineConfig,
    /// Whether the Solutions' MQTT sources are subscribed to.
    pub mqtt_enabled: bool,
    pub mqtt: MqttSettings,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            http_addr: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            http_busy_wait: crate::http::DEFAULT_BUSY_WAIT,
            http_max_body_bytes: 8 * 1024 * 1024,
            grpc_max_message_bytes: 16 * 1024 * 1024,
            stream_pipeline: DEFAULT_STREAM_PIPELINE,
            pipeline: PipelineConfig::default(),
            mqtt_enabled: true,
            mqtt: MqttSettings::default(),
        }
    }
}

impl IngestConfig {
    /// For tests and `sinter dev`: HTTP on a free loopback port, everything else default.
    pub fn loopback() -> Self {
        IngestConfig {
            http_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..IngestConfig::default()
        }
    }
}

/// Why the service could not be built.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot listen for HTTP on {addr}")]
    HttpBind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The ingestion service.
pub struct IngestService {
    ingestor: Arc<Ingestor>,
    config: IngestConfig,
    http: Option<(SocketAddr, TcpListener)>,
    shutdown: Shutdown,
}

impl IngestService {
    /// Build the service from `context`; binds the HTTP listener at once, so a port in use
    /// is an error here and [`IngestService::http_addr`] knows the port.
    pub async fn build(context: ServiceContext, config: IngestConfig) -> Result<Self, IngestError> {
        let ingestor = Arc::new(Ingestor::new(
            &context.solutions,
            context.bus.producer(),
            context.clock.clone(),
            &config.pipeline,
        ));
        let http = match config.http_addr {
            None => None,
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| IngestError::HttpBind { addr, source })?;
                let bound = listener
                    .local_addr()
                    .map_err(|source| IngestError::HttpBind { addr, source })?;
                Some((bound, listener))
            }
        };
        Ok(IngestService {
            ingestor,
            config,
            http,
            shutdown: context.shutdown,
        })
    }

    /// Where the HTTP API listens, once built.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|(addr, _)| *addr)
    }

    /// The pipeline every transport uses.
    pub fn ingestor(&self) -> Arc<Ingestor> {
        self.ingestor.clone()
    }

    /// The tonic service, for a caller that builds its own server.
    pub fn grpc_service(&self) -> IngestServiceServer<GrpcApi> {
        GrpcApi::new(self.ingestor.clone(), self.config.stream_pipeline)
            .into_server(self.config.grpc_max_message_bytes)
    }
}

#[async_trait::async_trait]
impl Service for IngestService {
    fn register(&self, server: GrpcServer) -> GrpcServer {
        server.add_service(self.grpc_service())
    }

    async fn run(self: Box<Self>, shutdown: Shutdown) -> Result<(), BoxError> {
        let IngestService {
            ingestor,
            config,
            http,
            shutdown: built_with,
        } = *self;
        // Either signal stops the work: the one `run` was given and the context's.
        let stop = Shutdown::new();
        for signal in [shutdown, built_with] {
            let stop = stop.clone();
            tokio::spawn(async move {
                signal.wait().await;
                stop.trigger();
            });
        }
        let mut tasks = tokio::task::JoinSet::new();
        if let Some((addr, listener)) = http {
            let router = crate::http::router(
                ingestor.clone(),
                config.http_busy_wait,
                config.http_max_body_bytes,
            );
            let stopping = stop.clone();
            tracing::info!(addr = %addr, "Serving the HTTP JSON API.");
            tasks.spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(stopping.wait())
                    .await
                    .map_err(|error| Box::new(error) as BoxError)
            });
        }
        if config.mqtt_enabled {
            for served in ingestor.solutions() {
                for (index, Source::Mqtt(source)) in served.solution.spec.sources.iter().enumerate()
                {
                    let run = mqtt::run_source(
                        ingestor.clone(),
                        served.qualified_name.clone(),
                        index,
                        source.clone(),
                        config.mqtt.clone(),
                        stop.clone(),
                    );
                    let solution = served.qualified_name.clone();
                    tasks.spawn(async move {
                        if let Err(error) = run.await {
                            tracing::error!(solution = %solution, error = %error,
                                "MQTT source not started.");
                        }
                        Ok(())
                    });
                }
            }
        }
        stop.clone().wait().await;
        let mut outcome: Result<(), BoxError> = Ok(());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(error)) => outcome = Err(error),
                Err(join) => tracing::error!(error = %join, "An ingest task failed."),
            }
        }
        outcome
    }
}
