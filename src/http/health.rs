//! Health endpoints for load balancers and orchestrators.

use super::AppState;
use super::error::Problem;
use crate::store::pg::within;
use actix_web::{HttpResponse, get, web};
use std::time::Duration;

/// How long readiness waits for PostgreSQL, per query: a probe must answer
/// (orchestrators give up after about a second), and a PostgreSQL that does not
/// answer in time is a failing check, not a hung probe.
const PG_PROBE_LIMIT: Duration = Duration::from_millis(800);

/// Checks that are reported but do not make the replica unready: spins do not
/// need PostgreSQL, so settlement being behind is for operators and alerts,
/// and taking replicas out of the load balancer would not help it.
const ADVISORY: &[&str] = &["settlement"];

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
/// The check `settlement` says whether any active campaign's oldest unsettled
/// draw is older than `settle.max_lag_ms`; it is reported, never a 503.
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
    if redis_ok && let Some(campaigns) = campaign_checks(&state).await {
        checks.insert("recovery".into(), campaigns.recovery.into());
        checks.insert("settlement".into(), campaigns.settlement.into());
    }
    if state.settling {
        let probe = within(&state.pg, PG_PROBE_LIMIT, |c| {
            Box::pin(sqlx::query("SELECT 1").execute(c))
        });
        let pg = match probe.await {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("postgres unavailable: {e}"),
        };
        checks.insert("postgres".into(), pg.into());
    }
    let failing: Vec<&String> = checks
        .iter()
        .filter(|(k, v)| v.as_str() != Some("ok") && !ADVISORY.contains(&k.as_str()))
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

/// What readiness says of the active campaigns.
struct CampaignChecks {
    /// "ok", or the campaigns whose new draws wait for recovery.
    recovery: String,
    /// "ok", or the campaigns whose settlement is behind `settle.max_lag_ms`.
    settlement: String,
}

/// The checks of every active campaign; `None` when the campaigns cannot be
/// listed (PostgreSQL down: the `postgres` check, when this process settles,
/// says so).
async fn campaign_checks(state: &AppState) -> Option<CampaignChecks> {
    let ids = within(&state.pg, PG_PROBE_LIMIT, |c| {
        Box::pin(crate::settle::ledger::active_campaigns(c))
    })
    .await
    .ok()?;
    let mut conn = state.redis.conn();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let bound = i64::try_from(state.settlement.max_lag_ms).unwrap_or(i64::MAX);
    let (mut waiting, mut behind) = (Vec::new(), Vec::new());
    let mut recovery_error = None;
    let mut settlement_error = None;
    for id in ids
        .iter()
        .filter_map(|i| crate::domain::CampaignId::parse(i).ok())
    {
        match crate::store::redis::recovery::state(&mut conn, &id).await {
            Ok(s) if s.awaits_recovery() => waiting.push(id.to_string()),
            Ok(_) => {}
            Err(e) => recovery_error = Some(format!("{e}")),
        }
        let stream = crate::store::redis::keys::CampaignKeys::new(&id).results;
        match crate::settle::stream::lag(&mut conn, &stream).await {
            Ok(lag) if lag.oldest_age_ms(now_ms) > bound => behind.push(format!(
                "{id} (oldest unsettled {} ms)",
                lag.oldest_age_ms(now_ms)
            )),
            Ok(_) => {}
            Err(e) => settlement_error = Some(format!("{e}")),
        }
    }
    let verdict = |error: Option<String>, list: Vec<String>, what: &str| {
        error.unwrap_or_else(|| {
            if list.is_empty() {
                "ok".to_owned()
            } else {
                format!("{what}: {}", list.join(", "))
            }
        })
    };
    Some(CampaignChecks {
        recovery: verdict(recovery_error, waiting, "awaiting recovery"),
        settlement: verdict(
            settlement_error,
            behind,
            &format!(
                "behind settle.max_lag_ms = {} ms",
                state.settlement.max_lag_ms
            ),
        ),
    })
}
