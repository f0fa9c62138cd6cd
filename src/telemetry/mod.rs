//! Telemetry: logs (text for people or JSON for pipelines, to stdout, with the
//! request's trace id), traces (OpenTelemetry, exported over OTLP when
//! configured) and metrics (Prometheus text on `GET /metrics`). Never log tokens,
//! secrets or request bodies.

pub mod connection_errors;
pub mod metrics;
pub mod route;
pub mod traces;

/// Makes rustls's ring provider (the one sqlx uses) the process default, as
/// reqwest's TLS needs before any client is built: the OTLP exporter's and the
/// webhooks'. Called by [`init`] and by every builder of a client; idempotent.
pub fn install_tls_provider() {
    // Err: a provider is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub use metrics::metrics;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::Deserialize;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::prelude::*;

/// Keeps the tracer provider alive; [`Telemetry::shutdown`] flushes it.
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered (bounded by the exporter's timeout).
    pub fn shutdown(mut self) {
        if let Some(provider) = self.tracer.take() {
            traces::shutdown(provider);
        }
    }
}

/// `service.name` is `prizewheel` unless `OTEL_SERVICE_NAME` or
/// `OTEL_RESOURCE_ATTRIBUTES` say otherwise.
fn resource() -> opentelemetry_sdk::Resource {
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok()
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|a| a.contains("service.name="));
    let builder = opentelemetry_sdk::Resource::builder();
    if named {
        builder.build()
    } else {
        builder.with_service_name("prizewheel").build()
    }
}

/// Installs the global subscriber once; later calls do nothing (tests).
pub fn init(settings: &LogSettings) -> Telemetry {
    install_tls_provider();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    let provider = traces::provider();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("prizewheel"));
    let fmt = match settings.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stdout)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stdout)
            .boxed(),
    }
    // actix-http's connection errors are counted and passed on, rate-limited,
    // by the layer below instead.
    .with_filter(filter_fn(|meta| {
        !connection_errors::is_actix_connection_event(meta)
    }));
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(otel)
        .with(fmt)
        .with(connection_errors::ConnectionErrors::default())
        .try_init()
        .is_ok();
    if !installed {
        return Telemetry { tracer: None };
    }
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    Telemetry {
        tracer: Some(provider),
    }
}

/// Logging (`log:` in the service configuration).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `text` for people, `json` for log pipelines.
    pub format: LogFormat,
    /// `RUST_LOG`-style filter; `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}
