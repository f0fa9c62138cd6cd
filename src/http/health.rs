//! Health endpoints for load balancers and orchestrators.

use super::AppState;
use super::error::{ApiError, ApiResult, Problem};
use actix_web::{HttpResponse, get, web};

/// Liveness: 200 while the process serves requests. Touches nothing else.
#[utoipa::path(tag = "operations", responses((status = 200, description = "The process is up")))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Readiness: 200 when Redis answers, 503 otherwise (spins would fail).
#[utoipa::path(tag = "operations", responses(
    (status = 200, description = "Ready to serve spins"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    state
        .redis
        .ping()
        .await
        .map_err(|e| ApiError::Unavailable(e.into()))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ready"})))
}
