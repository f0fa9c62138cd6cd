//! Marketing's admin API: apply a campaign's YAML, see its plan, read it live.

use super::AppState;
use super::auth::{Caller, Role};
use super::body::{read_limited, text};
use super::error::{ApiError, ApiResult, Problem, RoleGatedProblems};
use crate::campaign::apply::{ApplyReport, apply, plan_against_live};
use crate::campaign::plan::Plan;
use crate::campaign::{Campaign, parse_campaign};
use crate::domain::{CampaignId, truncate_for_message};
use actix_web::{HttpRequest, get, put, route, web};
use serde::Serialize;

/// Reads, parses and checks a YAML body against the campaign id in the path.
async fn campaign_body(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
    id: &str,
) -> ApiResult<(Campaign, String)> {
    let body = read_limited(req, payload, state.http.max_campaign_bytes).await?;
    let yaml = text(&body)?.to_owned();
    let campaign = parse_campaign(&yaml).map_err(ApiError::InvalidCampaign)?;
    if campaign.id.as_str() != id {
        return Err(ApiError::CampaignIdMismatch(format!(
            "the path names campaign `{}` but the file defines `{}`",
            truncate_for_message(id),
            campaign.id
        )));
    }
    Ok((campaign, yaml))
}

/// Apply a campaign (YAML body) atomically, also while it is live.
#[utoipa::path(
    tag = "admin",
    params(("id" = String, Path, description = "Campaign id; must equal the file's `id`")),
    request_body(content = String, content_type = "application/yaml", description = "The campaign YAML"),
    responses(
        RoleGatedProblems,
        (status = 200, body = ApplyReport),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another apply changed the campaign meanwhile", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid YAML, with every problem and its position", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[put("/v1/admin/campaigns/{id}")]
pub async fn put_campaign(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult<web::Json<ApplyReport>> {
    caller.require(Role::Marketing)?;
    let (campaign, yaml) = campaign_body(&state, &req, payload, &id).await?;
    let report = apply(
        &state.redis,
        &state.pg,
        state.pg_query_limit,
        &campaign,
        &yaml,
        caller.user.as_str(),
    )
    .await?;
    Ok(web::Json(report))
}

/// What applying a campaign (YAML body) would change; changes nothing. `POST`
/// serves clients that cannot send a body with `GET`.
#[utoipa::path(
    method(get, post),
    path = "/v1/admin/campaigns/{id}/plan",
    tag = "admin",
    params(("id" = String, Path, description = "Campaign id")),
    request_body(content = String, content_type = "application/yaml", description = "The campaign YAML"),
    responses(
        RoleGatedProblems,
        (status = 200, body = Plan),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[route("/v1/admin/campaigns/{id}/plan", method = "GET", method = "POST")]
pub async fn plan(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult<web::Json<Plan>> {
    caller.require(Role::Marketing)?;
    let (campaign, _) = campaign_body(&state, &req, payload, &id).await?;
    let (plan, _) = plan_against_live(&state.redis, &campaign).await?;
    Ok(web::Json(plan))
}

/// A live campaign: its config, version and per-prize stock.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LiveCampaign {
    pub id: String,
    pub version: u64,
    /// SHA-256 of the canonical config.
    pub config_hash: String,
    /// The YAML last applied.
    pub yaml: String,
    pub prizes: Vec<LivePrize>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LivePrize {
    pub id: String,
    pub name: String,
    pub weight: u64,
    /// Configured units; null = unlimited.
    pub stock: Option<i64>,
    /// Units left; null = unlimited.
    pub remaining: Option<i64>,
    pub awarded: i64,
    /// Dropped from the YAML by a later apply.
    pub retired: bool,
}

/// The live campaign.
#[utoipa::path(
    tag = "admin",
    params(("id" = String, Path, description = "Campaign id")),
    responses(
        RoleGatedProblems,
        (status = 200, body = LiveCampaign),
    ),
    security(("bearer" = []))
)]
#[get("/v1/admin/campaigns/{id}")]
pub async fn get_live(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> ApiResult<web::Json<LiveCampaign>> {
    caller.require(Role::Marketing)?;
    let not_found = || ApiError::CampaignNotFound(id.to_string());
    let campaign = CampaignId::parse(&id).map_err(|_| not_found())?;
    let live = state
        .redis
        .live_state(&campaign)
        .await?
        .ok_or_else(not_found)?;
    let unlimited_as_none = |v: Option<&i64>| v.copied().filter(|n| *n >= 0);
    let prizes = live
        .table
        .iter()
        .map(|p| LivePrize {
            id: p.id.clone(),
            name: p.name.clone(),
            weight: p.w,
            stock: unlimited_as_none(live.initial.get(&p.id)),
            remaining: unlimited_as_none(live.stock.get(&p.id)),
            awarded: live.awarded.get(&p.id).copied().unwrap_or(0),
            retired: p.w == 0,
        })
        .collect();
    Ok(web::Json(LiveCampaign {
        id: campaign.to_string(),
        version: live.version,
        config_hash: live.hash,
        yaml: live.yaml,
        prizes,
    }))
}
