//! What every Sinter gRPC server has: the standard health service, reflection,
//! optional TLS and bearer-token authentication.
#![forbid(unsafe_code)]

mod args;
mod auth;
mod client;
mod server;

pub use args::GrpcArgs;
pub use auth::{Auth, AuthError, Tokens};
pub use client::{BearerToken, connect, list_services};
pub use server::{GrpcError, GrpcServer, HEALTH_SERVICE, REFLECTION_SERVICE};
pub use tonic_health::ServingStatus;
pub use tonic_health::server::HealthReporter;
