//! `GET /v1/campaigns/{id}`: what a client shows before spinning.

use super::AppState;
use super::auth::Caller;
use super::campaign_path::CampaignPath;
use super::error::{ApiResult, Problem};
use super::spins::PrizeValue;
use crate::campaign::model::Release;
use crate::draw::model::{Held, PrizeState, odds};
use crate::draw::release::{Window, next_release};
use crate::draw::user_hash;
use crate::store::redis::status::ClientView;
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
    let cfg = &view.config;
    let text = |k: &str| {
        cfg.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let millis = |k: &str| {
        chrono::DateTime::parse_from_rfc3339(&text(k))
            .map(|t| t.timestamp_millis())
            .unwrap_or_default()
    };
    let status = if cfg.get("paused").and_then(|v| v.as_bool()).unwrap_or(false) {
        "paused"
    } else if view.now_ms < millis("starts_at") {
        "scheduled"
    } else if view.now_ms >= millis("ends_at") {
        "ended"
    } else {
        "live"
    };
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
        prizes: prizes_now(&view, millis("starts_at"), millis("ends_at")),
    }))
}

/// Each prize as it can be drawn at the view's instant: stock, pacing and
/// budget, by the model's rule (`draw::model`), with its odds now.
fn prizes_now(view: &ClientView, starts_ms: i64, ends_ms: i64) -> Vec<PrizeView> {
    let configured = view
        .config
        .get("prizes")
        .and_then(|p| p.as_array())
        .cloned()
        .unwrap_or_default();
    let of = |id: &str| configured.iter().find(|p| p["id"].as_str() == Some(id));
    let fallback_id = view.config.get("fallback").and_then(|f| f.as_str());
    let fallback = view
        .prizes
        .iter()
        .position(|(e, _, _)| Some(e.id.as_str()) == fallback_id)
        .unwrap_or_default();
    let window = Window {
        start_ms: starts_ms,
        end_ms: ends_ms,
        day_starts: &view.day_starts,
    };
    let budget_left = view.budget.map(|b| b.saturating_sub(view.spent));
    let states: Vec<PrizeState> = view
        .prizes
        .iter()
        .map(|(entry, stock, awarded)| {
            let cfg = of(&entry.id);
            PrizeState {
                entry: entry.clone(),
                remaining: u64::try_from(*stock).ok(),
                awarded: *awarded,
                configured: cfg.and_then(|p| p["stock"].as_u64()).unwrap_or(0),
                release: cfg
                    .and_then(|p| p.get("release"))
                    .and_then(|r| serde_json::from_value::<Release>(r.clone()).ok())
                    .unwrap_or_default(),
            }
        })
        .collect();
    let held: Vec<Result<(), Held>> = states
        .iter()
        .enumerate()
        .map(|(i, p)| p.held(i == fallback, budget_left, window, view.now_ms))
        .collect();
    let weights: Vec<u64> = states.iter().map(|p| p.entry.w).collect();
    let drawable: Vec<bool> = held.iter().map(Result::is_ok).collect();
    let shares = odds(&weights, fallback, &drawable);
    states
        .into_iter()
        .zip(held)
        .zip(shares)
        .filter(|((p, _), _)| p.entry.w > 0)
        .map(|((p, held), odds)| {
            let next_release_at = (held == Err(Held::NotReleased))
                .then(|| next_release(&p.release, p.configured, p.awarded, window))
                .flatten()
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            PrizeView {
                id: p.entry.id,
                name: p.entry.name,
                value: PrizeValue {
                    amount: p.entry.amt,
                    currency: p.entry.cur,
                },
                available: held.is_ok(),
                odds,
                next_release_at,
            }
        })
        .collect()
}
