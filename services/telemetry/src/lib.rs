//! Logs, traces and metrics for every Sinter binary, set up in one call.
//!
//! - Logs: `tracing`, as text or JSON lines, filtered by `RUST_LOG` (default `info`).
//! - Traces: every span is an OpenTelemetry span; exported over OTLP/gRPC when
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set,
//!   kept local otherwise, so that trace context still flows through the bus.
//! - Metrics: OpenTelemetry instruments, read by a Prometheus registry that
//!   [`serve_metrics`] exposes at `/metrics`, and exported over OTLP when the endpoint
//!   variable is set.
#![forbid(unsafe_code)]

mod args;
mod http;
mod setup;

pub use args::{LogFormat, MetricsAddr, TelemetryArgs};
pub use http::{Readiness, metrics_router, serve_metrics};
pub use setup::{Telemetry, TelemetryError, init, init_with_filter};
