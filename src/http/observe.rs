//! Per-request observation: the `http.server.request.duration` histogram and
//! the one access-log line of each request (info; warn for 5xx), inside the
//! request's span so the line carries its trace id, route, campaign and outcome.

use crate::telemetry::{metrics, route};
use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use opentelemetry::KeyValue;
use std::time::Instant;

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = route::method(&req);
    let route = route::route(&req);
    let res = next.call(req).await;
    let status = match &res {
        Ok(r) => r.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    let seconds = started.elapsed().as_secs_f64();
    metrics().http_duration.record(
        seconds,
        &[
            KeyValue::new("http.request.method", method),
            KeyValue::new("http.route", route),
            KeyValue::new("http.response.status_code", i64::from(status.as_u16())),
        ],
    );
    let duration_ms = seconds * 1000.0;
    if status.is_server_error() {
        tracing::warn!(target: "prizewheel::access", status = status.as_u16(), duration_ms, "request");
    } else {
        tracing::info!(target: "prizewheel::access", status = status.as_u16(), duration_ms, "request");
    }
    res
}
