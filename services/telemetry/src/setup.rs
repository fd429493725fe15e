//! Installs the tracing subscriber, the tracer provider and the meter provider.

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{KeyValue, global};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::args::{LogFormat, TelemetryArgs};

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot build the OTLP {signal} exporter")]
    Otlp {
        signal: &'static str,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    #[error("cannot build the Prometheus exporter")]
    Prometheus(#[source] opentelemetry_sdk::error::OTelSdkError),
    #[error("a global tracing subscriber is already installed")]
    SubscriberTaken(#[source] tracing_subscriber::util::TryInitError),
    #[error("the log filter (RUST_LOG) is invalid")]
    Filter(#[source] tracing_subscriber::filter::ParseError),
}

/// The installed providers. Keep it alive for the life of the process, and call
/// [`Telemetry::shutdown`] before exit so buffered spans and metrics are flushed.
#[derive(Debug)]
pub struct Telemetry {
    service: &'static str,
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
    registry: prometheus::Registry,
    otlp: bool,
}

impl Telemetry {
    /// The service name this process reports as (`service.name`).
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The registry that the Prometheus endpoint renders.
    pub fn registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    /// Whether traces and metrics also go out over OTLP.
    pub fn exports_otlp(&self) -> bool {
        self.otlp
    }

    /// A meter for this process's instruments.
    pub fn meter(&self) -> opentelemetry::metrics::Meter {
        global::meter(self.service)
    }

    /// Flush and stop the exporters.
    pub fn shutdown(&self) {
        if let Err(err) = self.tracer_provider.shutdown() {
            tracing::warn!(error = %err, "Tracer provider did not shut down cleanly.");
        }
        if let Err(err) = self.meter_provider.shutdown() {
            tracing::warn!(error = %err, "Meter provider did not shut down cleanly.");
        }
    }
}

fn otlp_configured(signal_var: &str) -> bool {
    let set = |name: &str| {
        std::env::var(name)
            .map(|v| !v.trim().is_empty())
            .unwrap_or(false)
    };
    set("OTEL_EXPORTER_OTLP_ENDPOINT") || set(signal_var)
}

/// Set up logs, traces and metrics for `service` (e.g. `sinter-ingest`).
///
/// Call once, inside a Tokio runtime. Installs the global tracing subscriber, tracer
/// provider, meter provider and the W3C trace-context propagator.
pub fn init(service: &'static str, args: &TelemetryArgs) -> Result<Telemetry, TelemetryError> {
    init_with_filter(service, args, "info")
}

/// [`init`], with `default_filter` (an `EnvFilter` directive such as `warn`) for the logs
/// when `RUST_LOG` is not set.
pub fn init_with_filter(
    service: &'static str,
    args: &TelemetryArgs,
    default_filter: &str,
) -> Result<Telemetry, TelemetryError> {
    let resource = Resource::builder()
        .with_service_name(service)
        .with_attribute(KeyValue::new("service.namespace", "sinter"))
        .build();

    let traces_otlp = otlp_configured("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let mut tracer_builder = SdkTracerProvider::builder().with_resource(resource.clone());
    if traces_otlp {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
            .map_err(|source| TelemetryError::Otlp {
                signal: "trace",
                source,
            })?;
        tracer_builder = tracer_builder.with_batch_exporter(exporter);
    }
    let tracer_provider = tracer_builder.build();
    global::set_tracer_provider(tracer_provider.clone());
    global::set_text_map_propagator(TraceContextPropagator::new());

    let registry = prometheus::Registry::new();
    let prometheus_reader = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .build()
        .map_err(TelemetryError::Prometheus)?;
    let mut meter_builder = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(prometheus_reader);
    let metrics_otlp = otlp_configured("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT");
    if metrics_otlp {
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .build()
            .map_err(|source| TelemetryError::Otlp {
                signal: "metric",
                source,
            })?;
        meter_builder = meter_builder.with_reader(PeriodicReader::builder(exporter).build());
    }
    let meter_provider = meter_builder.build();
    global::set_meter_provider(meter_provider.clone());

    let filter = match std::env::var("RUST_LOG") {
        Ok(text) if !text.trim().is_empty() => {
            EnvFilter::try_new(text).map_err(TelemetryError::Filter)?
        }
        _ => EnvFilter::try_new(default_filter).map_err(TelemetryError::Filter)?,
    };
    let otel_layer = tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer(service));
    // Colour only for a person at a terminal, never in files and collectors.
    let colour = std::io::stdout().is_terminal();
    let registry_layer = tracing_subscriber::registry().with(filter).with(otel_layer);
    match args.log_format {
        LogFormat::Text => registry_layer
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(true)
                    .with_ansi(colour),
            )
            .try_init(),
        LogFormat::Json => registry_layer
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true))
            .try_init(),
    }
    .map_err(TelemetryError::SubscriberTaken)?;

    tracing::info!(
        service,
        otlp_traces = traces_otlp,
        otlp_metrics = metrics_otlp,
        "Telemetry started."
    );
    Ok(Telemetry {
        service,
        tracer_provider,
        meter_provider,
        registry,
        otlp: traces_otlp || metrics_otlp,
    })
}
