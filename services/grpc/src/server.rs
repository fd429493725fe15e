//! A gRPC server builder: every service added is authenticated and reported healthy;
//! health and reflection come with it.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Server, ServerTlsConfig};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::auth::Auth;

/// The standard health service's name.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
/// The reflection service's name.
pub const REFLECTION_SERVICE: &str = "grpc.reflection.v1.ServerReflection";

/// Why a gRPC server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("cannot build the reflection service")]
    Reflection(#[source] tonic_reflection::server::Error),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the gRPC transport failed")]
    Transport(#[source] tonic::transport::Error),
}

/// Builds one gRPC server.
///
/// Health answers without a token (Kubernetes probes carry none); reflection and every
/// added service require one when tokens are configured.
pub struct GrpcServer {
    routes: RoutesBuilder,
    services: Vec<&'static str>,
    auth: Auth,
    tls: Option<ServerTlsConfig>,
    health: HealthReporter,
    ready_at_start: bool,
}

impl GrpcServer {
    pub fn new(auth: Auth) -> Self {
        let (health, health_service) = tonic_health::server::health_reporter();
        let mut routes = RoutesBuilder::default();
        routes.add_service(health_service);
        GrpcServer {
            routes,
            services: Vec::new(),
            auth,
            tls: None,
            health,
            ready_at_start: true,
        }
    }

    /// Serve TLS only, with this configuration.
    pub fn with_tls(mut self, tls: Option<ServerTlsConfig>) -> Self {
        self.tls = tls;
        self
    }

    /// Start with health NOT_SERVING; the owner flips it through [`GrpcServer::health`]
    /// once its dependencies are there.
    pub fn not_ready_at_start(mut self) -> Self {
        self.ready_at_start = false;
        self
    }

    /// Add an API service; it is authenticated and listed by reflection.
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: tower_service::Service<
                http::Request<Body>,
                Response = http::Response<Body>,
                Error = Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.services.push(S::NAME);
        self.routes
            .add_service(InterceptedService::new(service, self.auth.clone()));
        self
    }

    /// The health reporter, to mark services serving or not as their state changes.
    pub fn health(&self) -> HealthReporter {
        self.health.clone()
    }

    /// Names of the API services added so far.
    pub fn services(&self) -> &[&'static str] {
        &self.services
    }

    /// Bind `addr` and serve until `shutdown` resolves. Returns the bound address
    /// (useful with port 0) and the serving future.
    pub async fn bind(
        self,
        addr: SocketAddr,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(SocketAddr, impl Future<Output = Result<(), GrpcError>>), GrpcError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| GrpcError::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| GrpcError::Bind { addr, source })?;
        let serving = self.serve(listener, shutdown).await?;
        Ok((bound, serving))
    }

    /// Serve on an already bound listener until `shutdown` resolves.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<impl Future<Output = Result<(), GrpcError>>, GrpcError> {
        let mut reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(sinter_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(HEALTH_SERVICE)
            .with_service_name(REFLECTION_SERVICE);
        let mut reflection_alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(sinter_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(HEALTH_SERVICE)
            .with_service_name(REFLECTION_SERVICE);
        for name in &self.services {
            reflection = reflection.with_service_name(*name);
            reflection_alpha = reflection_alpha.with_service_name(*name);
        }
        let reflection = reflection.build_v1().map_err(GrpcError::Reflection)?;
        let reflection_alpha = reflection_alpha
            .build_v1alpha()
            .map_err(GrpcError::Reflection)?;
        self.routes
            .add_service(InterceptedService::new(reflection, self.auth.clone()));
        self.routes
            .add_service(InterceptedService::new(reflection_alpha, self.auth.clone()));

        let status = if self.ready_at_start {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        // Empty name: the server as a whole.
        self.health.set_service_status("", status).await;
        for name in &self.services {
            self.health.set_service_status(*name, status).await;
        }
        if !self.auth.is_enabled() {
            tracing::warn!(services = ?self.services,
                "No bearer tokens configured: the gRPC API is open to anyone who can reach it.");
        }
        let tls = self.tls.is_some();
        let mut builder = Server::builder();
        if let Some(config) = self.tls.take() {
            builder = builder.tls_config(config).map_err(GrpcError::Transport)?;
        }
        match listener.local_addr() {
            Ok(addr) => {
                tracing::info!(%addr, services = ?self.services, tls, "Serving gRPC.");
            }
            Err(_) => tracing::info!(services = ?self.services, tls, "Serving gRPC."),
        }
        let router = builder.add_routes(self.routes.routes());
        let incoming = TcpListenerStream::new(listener);
        Ok(async move {
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
                .map_err(GrpcError::Transport)
        })
    }
}
