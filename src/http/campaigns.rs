//! `GET /v1/campaigns/{id}`: what a client shows before spinning.

use super::AppState;
use super::auth::Caller;
use super::campaign_path::CampaignPath;
use super::error::{ApiResult, Problem};
use super::pacing;
use super::spins::PrizeValue;
use crate::draw::user_hash;
use crate::store::redis::live::DrawState;
use actix_web::{get, web};
use serde::Serialize;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CampaignView {
    pub id: String,
    pub name: String,
    pub timezone: String,
    pub starts_at: String,
    pub ends_at: String,
    /// `scheduled`, `live`, `paused` or `ended`.
    pub status: &'static str,
    pub spins_per_user: u64,
    pub spins_per_user_per_day: Option<u64>,
    /// Set when shoppers earn spins by ordering: `{"free": n, "expire":
    /// "campaign_end" | "end_of_day"}`.
    #[schema(value_type = Option<Object>)]
    pub earned_spins: Option<serde_json::Value>,
    /// Spins the caller has left now (with earned spins: free and earned ones,
    /// within the limits).
    pub spins_left: u64,
    pub prizes: Vec<PrizeView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PrizeView {
    pub id: String,
    pub name: String,
    pub value: PrizeValue,
    /// Whether the prize can be won now: false once its stock is used up,
    /// while a paced prize waits for its next unit, and when its value is
    /// above the budget left.
    pub available: bool,
    /// The share of the total weight the prize is drawn with now, from 0 to 1:
    /// its weight's share, 0 while it is held back or exhausted; the fallback
    /// takes the held-back shares.
    pub odds: f64,
    /// A paced prize waiting for its next unit: when it is released (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_release_at: Option<String>,
}

/// A campaign as the caller sees it.
#[utoipa::path(
    tag = "spins",
    params(("id" = String, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The campaign as this shopper sees it: window, prizes, spins left", body = CampaignView),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown campaign", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable; Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/campaigns/{id}")]
pub async fn get_campaign(
    state: web::Data<AppState>,
    caller: Caller,
    path: CampaignPath,
) -> ApiResult<web::Json<CampaignView>> {
    let campaign = path.id()?;
    let view = state
        .redis
        .client_view(campaign, &caller.user, user_hash(caller.user.as_str()))
        .await?
        .ok_or_else(|| path.not_found())?;
    let cfg = &view.draw.config;
    let text = |k: &str| {
        cfg.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let status = pacing::Inputs::from(&view.draw).status();
    let limits = cfg.get("limits");
    let limit = |k: &str| limits.and_then(|l| l.get(k)).and_then(|v| v.as_u64());
    Ok(web::Json(CampaignView {
        id: campaign.to_string(),
        name: text("name"),
        timezone: text("timezone"),
        starts_at: text("starts_at"),
        ends_at: text("ends_at"),
        status,
        spins_per_user: limit("spins_per_user").unwrap_or_default(),
        spins_per_user_per_day: limit("spins_per_user_per_day"),
        earned_spins: cfg.get("earned_spins").cloned(),
        spins_left: view.spins_left,
        prizes: prizes_now(&view.draw),
    }))
}

/// Each prize as it can be drawn at the view's instant: stock, pacing and
/// budget, by the model's rule (`draw::model`), with its odds now.
fn prizes_now(draw: &DrawState) -> Vec<PrizeView> {
    pacing::prizes_now(&draw.into())
        .into_iter()
        .filter(|p| p.state.entry.w > 0)
        .map(|p| PrizeView {
            next_release_at: p.waiting_until_ms().and_then(pacing::rfc3339_ms),
            available: p.held.is_ok(),
            odds: p.odds,
            id: p.state.entry.id,
            name: p.state.entry.name,
            value: PrizeValue {
                amount: p.state.entry.amt,
                currency: p.state.entry.cur,
            },
        })
        .collect()
}
