//! Traces: every request is a span (its route, campaign, outcome and status),
//! with children for the Redis script call and each settlement batch. The W3C
//! `traceparent` of a request is honoured, and spans are exported over OTLP
//! (http/protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, configured by the standard
//! `OTEL_*` variables. Without an endpoint spans still get trace ids, which the
//! logs carry, but nothing is exported.

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing::field::Empty;
use tracing_actix_web::RootSpanBuilder;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The tracer provider: exporting when an OTLP endpoint is configured.
pub fn provider() -> SdkTracerProvider {
    let mut builder = SdkTracerProvider::builder().with_resource(super::resource());
    if exporting() {
        // The blocking HTTP client must not be created (or dropped) on an async
        // runtime thread; the batch processor runs it on a thread of its own.
        let exporter = std::thread::spawn(|| {
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .build()
        })
        .join();
        match exporter {
            Ok(Ok(exporter)) => builder = builder.with_batch_exporter(exporter),
            Ok(Err(e)) => eprintln!("OTLP trace export disabled: {e}"),
            Err(_) => eprintln!("OTLP trace export disabled: the exporter panicked"),
        }
    }
    builder.build()
}

fn exporting() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// Shuts the provider down, flushing spans, off the async runtime (see above).
pub fn shutdown(provider: SdkTracerProvider) {
    let _ = std::thread::spawn(move || provider.shutdown()).join();
}

/// The root span of each request (for `TracingLogger`): named `METHOD route`,
/// child of the caller's `traceparent` when there is one.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let method = super::route::method(request);
        let route = super::route::route(request);
        let span = tracing::info_span!(
            "request",
            otel.name = %format_args!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = %method,
            http.route = %route,
            http.response.status_code = Empty,
            trace_id = Empty,
            campaign.id = Empty,
            outcome = Empty,
            error.code = Empty,
            exception.message = Empty,
        );
        if span.is_disabled() {
            // Filtered out (log level above info): skip the trace context work.
            return span;
        }
        let parent = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&Headers(request.headers()))
        });
        if parent.span().span_context().is_valid() {
            let _ = span.set_parent(parent);
        }
        let context = span.context();
        let trace_id = context.span().span_context().trace_id();
        if trace_id != opentelemetry::trace::TraceId::INVALID {
            span.record("trace_id", tracing::field::display(trace_id));
        }
        span
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let status = match outcome {
            Ok(res) => res.status(),
            Err(e) => e.as_response_error().status_code(),
        };
        span.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
    }
}

struct Headers<'a>(&'a actix_web::http::header::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
