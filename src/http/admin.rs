//! Marketing's admin API: apply a campaign's YAML, see its plan, read it live.

use super::AppState;
use super::auth::{Caller, Role};
use super::body::{read_limited, text};
use super::campaign_path::CampaignPath;
use super::error::{ApiError, ApiResult, Problem, RoleGatedProblems};
use super::pacing;
use crate::campaign::{Campaign, parse_campaign};
use crate::domain::{CampaignId, Money, truncate_for_message};
use crate::rollout::apply::{ApplyReport, apply_if, plan_against_live};
use crate::rollout::plan::Plan;
use crate::store::redis::live::LiveState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, put, route, web};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Reads, parses and checks a YAML body against the campaign id in the path.
async fn campaign_body(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
    id: &str,
) -> ApiResult<(Campaign, String)> {
    let body = read_limited(req, payload, state.http.max_campaign_bytes).await?;
    let yaml = text(&body)?.to_owned();
    let (campaign, yaml) = state.campaign_parser.parse(yaml).await?;
    if campaign.id.as_str() != id {
        return Err(ApiError::CampaignIdMismatch(format!(
            "the path names campaign `{}` but the file defines `{}`",
            truncate_for_message(id),
            campaign.id
        )));
    }
    Ok((campaign, yaml))
}

/// Parses campaign YAML on a blocking thread, never on an HTTP worker, one
/// file at a time per process. A parse is CPU-bound (milliseconds within the
/// parser's budgets, see `campaign::tree`), and no number of uploads may take
/// the workers or the cores from the spins. A request waits up to
/// [`PARSE_WAIT`] for its turn, then answers 503 `campaign_parser_busy`.
pub struct CampaignParser(Arc<Semaphore>);

/// Longest a request waits for the parser.
pub const PARSE_WAIT: Duration = Duration::from_secs(2);

impl Default for CampaignParser {
    fn default() -> Self {
        CampaignParser(Arc::new(Semaphore::new(1)))
    }
}

impl CampaignParser {
    /// The campaign of `yaml`, and `yaml` back.
    pub async fn parse(&self, yaml: String) -> ApiResult<(Campaign, String)> {
        let permit = tokio::time::timeout(PARSE_WAIT, self.0.clone().acquire_owned())
            .await
            .map_err(|_| ApiError::CampaignParserBusy)?
            .map_err(|e| ApiError::Internal(e.into()))?;
        web::block(move || {
            // Held until the parse ends, also when the client has gone.
            let _permit = permit;
            parse_campaign(&yaml).map(|c| (c, yaml))
        })
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("campaign parse: {e}")))?
        .map_err(ApiError::InvalidCampaign)
    }
}

/// The config hash an `If-Match` header names: one strong entity tag, the
/// quoted `config_hash` of the live campaign (as `plan` answers it in its
/// `ETag`, and `GET /v1/admin/campaigns/{id}` in `config_hash`). None when
/// the request has no `If-Match`.
fn if_match(req: &HttpRequest) -> ApiResult<Option<String>> {
    let mut values = req.headers().get_all(header::IF_MATCH);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let refuse = || {
        ApiError::InvalidIfMatch(
            "If-Match must be one quoted config hash, e.g. the ETag of the plan: \"<config_hash>\""
                .into(),
        )
    };
    if values.next().is_some() {
        return Err(refuse());
    }
    let text = value.to_str().map_err(|_| refuse())?.trim();
    let hash = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .filter(|h| !h.is_empty() && h.len() <= 128 && h.bytes().all(|b| b.is_ascii_alphanumeric()))
        .ok_or_else(refuse)?;
    Ok(Some(hash.to_owned()))
}

/// Apply a campaign (YAML body) atomically, also while it is live. With
/// `If-Match: "<config_hash>"` (the `ETag` of the plan the change was checked
/// with), it applies only while the live config still has that hash: another
/// change made since the plan answers 409 `apply_conflict` and nothing is
/// overwritten.
#[utoipa::path(
    tag = "admin",
    params(
        ("id" = String, Path, description = "Campaign id; must equal the file's `id`"),
        ("If-Match" = Option<String>, Header, description = "The quoted config hash the change was planned against (the plan's `ETag`); another one live answers 409 `apply_conflict`"),
    ),
    request_body(content = String, content_type = "application/yaml", description = "The campaign YAML"),
    responses(
        RoleGatedProblems,
        (status = 200, description = "Applied (or unchanged): the version, and the plan that was applied", body = ApplyReport),
        (status = 400, description = "The body is not UTF-8 text, or `If-Match` is not one quoted hash (`invalid_if_match`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another apply changed the campaign meanwhile, or the live config's hash is not `If-Match`'s (`apply_conflict`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The YAML is larger than `http.max_campaign_bytes`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid YAML, with every problem and its position, or a file whose `id` is not the path's", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[put("/v1/admin/campaigns/{id}")]
pub async fn put_campaign(
    state: web::Data<AppState>,
    caller: Caller,
    path: CampaignPath,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult<web::Json<ApplyReport>> {
    caller.require(Role::Marketing)?;
    let expected = if_match(&req)?;
    let (campaign, yaml) = campaign_body(&state, &req, payload, path.as_str()).await?;
    let report = apply_if(
        &state.redis,
        &state.pg,
        state.pg_query_limit,
        &campaign,
        &yaml,
        caller.user.as_str(),
        expected.as_deref(),
    )
    .await?;
    Ok(web::Json(report))
}

/// What applying a campaign (YAML body) would change; changes nothing. `POST`
/// serves clients that cannot send a body with `GET`. The `ETag` is the
/// quoted hash of the live config the plan was computed against: sent back as
/// `If-Match` with the `PUT`, it makes the apply refuse a change made since.
#[utoipa::path(
    method(get, post),
    path = "/v1/admin/campaigns/{id}/plan",
    tag = "admin",
    params(("id" = String, Path, description = "Campaign id")),
    request_body(content = String, content_type = "application/yaml", description = "The campaign YAML"),
    responses(
        RoleGatedProblems,
        (status = 200, description = "The changes applying the file would make, and warnings", body = Plan,
            headers(("ETag" = String, description = "The quoted config hash of the live campaign planned against (absent when it is not live): the `If-Match` of the apply"))),
        (status = 422, description = "Invalid YAML, with every problem and its position, or a file whose `id` is not the path's", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[route("/v1/admin/campaigns/{id}/plan", method = "GET", method = "POST")]
pub async fn plan(
    state: web::Data<AppState>,
    caller: Caller,
    path: CampaignPath,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    caller.require(Role::Marketing)?;
    let (campaign, _) = campaign_body(&state, &req, payload, path.as_str()).await?;
    let (changes, live): (Plan, _) = plan_against_live(&state.redis, &campaign).await?;
    let mut res = HttpResponse::Ok();
    if let Some(live) = live {
        res.insert_header((header::ETAG, format!("\"{}\"", live.hash)));
    }
    Ok(res.json(changes))
}

/// A live campaign: its config, version, per-prize stock and releases, the
/// budget, as the draw sees them at `as_of`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LiveCampaign {
    pub id: String,
    pub version: u64,
    /// SHA-256 of the canonical config.
    pub config_hash: String,
    /// The YAML last applied.
    pub yaml: String,
    /// The instant (Redis's clock, the draw's) the figures below are taken at.
    pub as_of: String,
    /// In draw order, retired prizes included.
    pub prizes: Vec<LivePrize>,
    /// Set when the campaign has a budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<LiveBudget>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LivePrize {
    pub id: String,
    pub name: String,
    pub weight: u64,
    /// Configured units (of a code prize: its codes loaded and not
    /// withdrawn); null = unlimited.
    pub stock: Option<i64>,
    /// A code prize (`stock: codes`): `remaining` is its pool of codes.
    pub codes: bool,
    /// Units left; null = unlimited.
    pub remaining: Option<i64>,
    pub awarded: i64,
    /// Dropped from the YAML by a later apply.
    pub retired: bool,
    /// How its units are released, as in the YAML: `"all_at_start"`,
    /// `"even"`, `{"per_day": n}` or `{"schedule": [{"at": unix_ms, "units": n}, …]}`.
    #[schema(value_type = Value)]
    pub release: serde_json::Value,
    /// Units released by now (all of `stock` unless paced; a curve drawn over
    /// the configured stock, so a live top-up or cut redraws it); null = unlimited.
    pub released: Option<u64>,
    /// Whether a spin can win it now.
    pub available: bool,
    /// Why it cannot now: `no_stock`, `not_released` (its next unit is not
    /// released yet) or `over_budget` (worth more than the budget has left).
    #[schema(value_type = Option<String>)]
    pub held: Option<&'static str>,
    /// The share of the total weight it is drawn with now, 0 to 1 (the
    /// fallback takes the shares of prizes held back).
    pub odds: f64,
    /// A paced prize with units still to come: when its next unit beyond
    /// those released (or awarded) is released, RFC 3339. While it waits
    /// (`held: not_released`) that is when it can be won again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_release_at: Option<String>,
}

/// A campaign's budget: the most value it may award, and what was awarded.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LiveBudget {
    /// As configured, decimal string.
    #[schema(example = "500000.00")]
    pub amount: String,
    pub currency: String,
    /// Value awarded so far, every award counted (also those before the budget
    /// was set), as the draw counts it; decimal string, four decimals.
    #[schema(example = "1234.5000")]
    pub spent: String,
    /// `amount` − `spent`, never below 0 (a budget set below what was already
    /// awarded has nothing left); decimal string, four decimals.
    #[schema(example = "498765.5000")]
    pub left: String,
}

/// The live campaign.
#[utoipa::path(
    tag = "admin",
    params(("id" = String, Path, description = "Campaign id")),
    responses(
        RoleGatedProblems,
        (status = 200, description = "The live campaign: version, YAML, per-prize stock, releases and odds now, the budget", body = LiveCampaign),
    ),
    security(("bearer" = []))
)]
#[get("/v1/admin/campaigns/{id}")]
pub async fn get_live(
    state: web::Data<AppState>,
    caller: Caller,
    path: CampaignPath,
) -> ApiResult<web::Json<LiveCampaign>> {
    caller.require(Role::Marketing)?;
    let campaign = path.id()?;
    let live = state
        .redis
        .live_state(campaign)
        .await?
        .ok_or_else(|| path.not_found())?;
    Ok(web::Json(live_campaign(campaign, live)))
}

/// The live view of `campaign` from its Redis snapshot: each prize as the draw
/// treats it at the snapshot's instant, the budget. Also for the list of
/// campaigns (`campaign_list.rs`).
pub fn live_campaign(campaign: &CampaignId, live: LiveState) -> LiveCampaign {
    let inputs = pacing::Inputs::from(&live.draw);
    let unlimited_as_none = |v: Option<&i64>| v.copied().filter(|n| *n >= 0);
    let release_of = |id: &str| {
        live.draw.config["prizes"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["id"].as_str() == Some(id)))
            .and_then(|p| p.get("release").cloned())
            .unwrap_or_else(|| serde_json::json!("all_at_start"))
    };
    let prizes = pacing::prizes_now(&inputs)
        .into_iter()
        .map(|p| {
            let id = &p.state.entry.id;
            LivePrize {
                id: id.clone(),
                name: p.state.entry.name.clone(),
                weight: p.state.entry.w,
                stock: unlimited_as_none(live.initial.get(id)),
                codes: p.state.entry.c.is_some(),
                remaining: unlimited_as_none(live.stock.get(id)),
                awarded: live.awarded.get(id).copied().unwrap_or(0),
                retired: p.state.entry.w == 0,
                release: release_of(id),
                released: p.released,
                available: p.held.is_ok(),
                held: p.held_reason(),
                odds: p.odds,
                next_release_at: p.next_release_ms.and_then(pacing::rfc3339_ms),
            }
        })
        .collect();
    let budget = live.draw.config.get("budget").map(|b| {
        let text = |k: &str| b[k].as_str().unwrap_or_default().to_owned();
        LiveBudget {
            amount: text("amount"),
            currency: text("currency"),
            spent: Money::amount_of_units(live.draw.spent).to_string(),
            left: Money::amount_of_units(inputs.budget_left().unwrap_or(0)).to_string(),
        }
    });
    LiveCampaign {
        id: campaign.to_string(),
        version: live.version,
        as_of: pacing::rfc3339_ms(live.draw.now_ms).unwrap_or_default(),
        config_hash: live.hash,
        yaml: live.yaml,
        prizes,
        budget,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_waits_its_turn_then_answers_503() {
        let parser = CampaignParser::default();
        let busy = parser.0.clone().acquire_owned().await.unwrap();
        let started = std::time::Instant::now();
        let err = parser.parse("id: x\n".into()).await.unwrap_err();
        assert!(matches!(err, ApiError::CampaignParserBusy), "{err:?}");
        assert!(started.elapsed() >= PARSE_WAIT);
        drop(busy);
        let err = parser.parse("id: x\n".into()).await.unwrap_err();
        assert!(matches!(err, ApiError::InvalidCampaign(_)), "{err:?}");
    }
}
