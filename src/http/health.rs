//! Health endpoints for load balancers and orchestrators.

use super::AppState;
use super::error::Problem;
use actix_web::{HttpResponse, get, web};

/// Liveness: 200 while the process serves requests. Touches nothing else.
#[utoipa::path(tag = "operations", responses((status = 200, description = "The process is up")))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Readiness: 200 when Redis answers with the scripts loaded (loading them if
/// a restart or failover lost them) and, when this process settles, PostgreSQL
/// answers; otherwise 503 problem+json naming each failing check in `checks`.
#[utoipa::path(tag = "operations", responses(
    (status = 200, description = "Ready to serve spins"),
    (status = 503, description = "A store is unreachable; `checks` says which", body = Problem, content_type = "application/problem+json"),
))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let mut checks = serde_json::Map::new();
    let redis = match state.redis.ensure_scripts().await {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("{e}"),
    };
    checks.insert("redis".into(), redis.into());
    if state.settling {
        let pg = match sqlx::query("SELECT 1").execute(&state.pg).await {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("postgres unavailable: {e}"),
        };
        checks.insert("postgres".into(), pg.into());
    }
    let failing: Vec<&String> = checks
        .iter()
        .filter(|(_, v)| v.as_str() != Some("ok"))
        .map(|(k, _)| k)
        .collect();
    if failing.is_empty() {
        return HttpResponse::Ok().json(serde_json::json!({"status": "ready", "checks": checks}));
    }
    let detail = format!(
        "not ready: {}",
        failing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    HttpResponse::ServiceUnavailable()
        .content_type("application/problem+json")
        .insert_header(("Retry-After", "1"))
        .json(serde_json::json!({
            "type": "/problems/not_ready",
            "title": "Not ready",
            "status": 503,
            "code": "not_ready",
            "detail": detail,
            "retry_after": 1,
            "checks": checks,
        }))
}
