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
/// a restart or failover lost them), no active campaign awaits recovery after
/// Redis lost writes (src/recover) and, when this process settles, PostgreSQL
/// answers; otherwise 503 problem+json naming each failing check in `checks`.
#[utoipa::path(tag = "operations", responses(
    (status = 200, description = "Ready to serve spins"),
    (status = 503, description = "A store is unreachable or a campaign awaits recovery; `checks` says which", body = Problem, content_type = "application/problem+json"),
))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let mut checks = serde_json::Map::new();
    let redis = match state.redis.ensure_scripts().await {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("{e}"),
    };
    let redis_ok = redis == "ok";
    checks.insert("redis".into(), redis.into());
    if redis_ok && let Some(recovery) = awaiting_recovery(&state).await {
        checks.insert("recovery".into(), recovery.into());
    }
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

/// "ok", or the active campaigns whose new draws wait for recovery; `None` when
/// the campaigns cannot be listed (PostgreSQL down: the `postgres` check, when
/// this process settles, says so).
async fn awaiting_recovery(state: &AppState) -> Option<String> {
    let ids = crate::settle::ledger::active_campaigns(&state.pg)
        .await
        .ok()?;
    let mut conn = state.redis.conn();
    let mut waiting = Vec::new();
    for id in ids
        .iter()
        .filter_map(|i| crate::domain::CampaignId::parse(i).ok())
    {
        match crate::store::redis::recovery::state(&mut conn, &id).await {
            Ok(s) if s.awaits_recovery() => waiting.push(id.to_string()),
            Ok(_) => {}
            Err(e) => return Some(format!("{e}")),
        }
    }
    Some(if waiting.is_empty() {
        "ok".to_owned()
    } else {
        format!("awaiting recovery: {}", waiting.join(", "))
    })
}
