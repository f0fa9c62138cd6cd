//! `GET /v1/admin/campaigns`: every campaign with its status, window, version,
//! each prize's stock and the budget left (as `GET /v1/admin/campaigns/{id}`
//! computes them), and the draws of the last minute and hour from the ledger.
//! Marketing's console lists campaigns with it.

use super::AppState;
use super::admin::{LiveBudget, LivePrize, live_campaign};
use super::auth::{Caller, Role};
use super::error::{ApiError, ApiResult, Problem};
use super::pacing;
use crate::domain::CampaignId;
use crate::store::pg::within;
use actix_web::{get, web};
use futures_util::StreamExt;
use serde::Serialize;
use std::collections::HashMap;

/// Campaigns read from Redis at once.
const READS_IN_FLIGHT: usize = 8;

/// Every campaign the ledger has recorded (each apply records one), as Redis
/// has it now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CampaignList {
    /// When the list was read (this replica's clock), RFC 3339.
    pub as_of: String,
    /// In order of id.
    pub campaigns: Vec<CampaignSummary>,
    /// Campaigns the ledger has recorded but Redis does not hold (e.g. lost
    /// with a Redis that was not recovered): they cannot draw until applied again.
    pub not_in_redis: Vec<String>,
}

/// One campaign as the draw sees it now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CampaignSummary {
    pub id: String,
    pub name: String,
    pub timezone: String,
    /// RFC 3339, as in the YAML.
    pub starts_at: String,
    pub ends_at: String,
    /// `scheduled`, `live`, `paused` or `ended` (the shopper's view).
    pub status: &'static str,
    pub version: u64,
    /// SHA-256 of the canonical config.
    pub config_hash: String,
    /// The instant (Redis's clock) the prizes and budget are taken at.
    pub as_of: String,
    /// Draws settled in the ledger whose draw time is within the last 60 s
    /// (settlement runs about a second behind the draws).
    pub spins_last_minute: i64,
    /// The same within the last hour.
    pub spins_last_hour: i64,
    /// In draw order, retired prizes included: as `GET /v1/admin/campaigns/{id}`.
    pub prizes: Vec<LivePrize>,
    /// Set when the campaign has a budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<LiveBudget>,
}

/// Every campaign, live.
#[utoipa::path(
    tag = "admin",
    responses(
        (status = 200, description = "Every campaign recorded in the ledger: status, window, version, per-prize stock, odds now and the budget left, draws in the last minute and hour", body = CampaignList),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `marketing` role", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis or PostgreSQL unavailable; retry shortly", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/admin/campaigns")]
pub async fn list_campaigns(
    state: web::Data<AppState>,
    caller: Caller,
) -> ApiResult<web::Json<CampaignList>> {
    caller.require(Role::Marketing)?;
    let now = chrono::Utc::now();
    let ids: Vec<String> = within(&state.pg, state.pg_query_limit, |c| {
        Box::pin(
            sqlx::query_scalar(
                "SELECT campaign_id FROM campaigns ORDER BY campaign_id COLLATE \"C\"",
            )
            .fetch_all(c),
        )
    })
    .await
    .map_err(pg_error)?;
    let ids: Vec<CampaignId> = ids
        .iter()
        .filter_map(|id| CampaignId::parse(id).ok())
        .collect();
    let counts = recent_draws(&state, &ids, now.timestamp_millis()).await?;
    let redis = &state.redis;
    let reads: Vec<_> = futures_util::stream::iter(ids.iter())
        .map(|id| async move { (id, redis.live_state(id).await) })
        .buffered(READS_IN_FLIGHT)
        .collect()
        .await;
    let mut campaigns = Vec::with_capacity(reads.len());
    let mut not_in_redis = Vec::new();
    for (id, read) in reads {
        let Some(live) = read? else {
            not_in_redis.push(id.to_string());
            continue;
        };
        let cfg = &live.draw.config;
        let text = |k: &str| cfg[k].as_str().unwrap_or_default().to_owned();
        let (name, timezone) = (text("name"), text("timezone"));
        let (starts_at, ends_at) = (text("starts_at"), text("ends_at"));
        let status = pacing::Inputs::from(&live.draw).status();
        let (minute, hour) = counts.get(id.as_str()).copied().unwrap_or((0, 0));
        let view = live_campaign(id, live);
        campaigns.push(CampaignSummary {
            id: view.id,
            name,
            timezone,
            starts_at,
            ends_at,
            status,
            version: view.version,
            config_hash: view.config_hash,
            as_of: view.as_of,
            spins_last_minute: minute,
            spins_last_hour: hour,
            prizes: view.prizes,
            budget: view.budget,
        });
    }
    Ok(web::Json(CampaignList {
        as_of: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        campaigns,
        not_in_redis,
    }))
}

/// Per campaign, its settled draws of the last minute and of the last hour
/// before `now_ms` (by draw time: the index `rewards_draw_order`).
async fn recent_draws(
    state: &AppState,
    ids: &[CampaignId],
    now_ms: i64,
) -> ApiResult<HashMap<String, (i64, i64)>> {
    let names: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    let rows: Vec<(String, i64, i64)> = within(&state.pg, state.pg_query_limit, move |c| {
        Box::pin(async move {
            sqlx::query_as(
                "SELECT campaign_id,
                        count(*) FILTER (WHERE stream_ms >= $2),
                        count(*)
                 FROM rewards
                 WHERE campaign_id = ANY($1) AND stream_ms >= $3
                 GROUP BY campaign_id",
            )
            .bind(&names)
            .bind(now_ms - 60_000)
            .bind(now_ms - 3_600_000)
            .fetch_all(c)
            .await
        })
    })
    .await
    .map_err(pg_error)?;
    Ok(rows.into_iter().map(|(id, m, h)| (id, (m, h))).collect())
}

/// PostgreSQL failures are the store being unavailable to this request.
fn pg_error(e: sqlx::Error) -> ApiError {
    ApiError::Unavailable(anyhow::Error::new(e).context("querying PostgreSQL"))
}
