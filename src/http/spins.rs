//! `POST /v1/campaigns/{id}/spins`: the hot path.

use super::AppState;
use super::admission::SpinGate;
use super::auth::Caller;
use super::body::{read_limited, spin_context};
use super::campaign_path::CampaignPath;
use super::error::{ApiError, ApiResult, Problem};
use crate::domain::{CampaignId, IdempotencyKey};
use crate::draw;
use crate::store::redis::spin::{Drawn, Rejection};
use crate::telemetry::metrics;
use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::Serialize;
use tracing::Span;

/// The outcome of a spin.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SpinResponse {
    /// Unique id of the draw (UUID v7); the ledger's key.
    pub spin_id: uuid::Uuid,
    pub campaign_id: String,
    pub prize: PrizeWon,
    /// Spins the user has left after this one (the smaller of the total and today's).
    pub spins_left: u64,
    /// True when this answer repeats an earlier spin with the same Idempotency-Key.
    pub replayed: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PrizeWon {
    pub id: String,
    pub name: String,
    pub value: PrizeValue,
    /// The coupon code of a code prize (`stock: codes`): unique to this win,
    /// the same on every replay. Absent for other prizes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "DIWALI-7KQ2M9")]
    pub code: Option<String>,
}

/// A prize's value: an exact decimal string and a currency code.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PrizeValue {
    #[schema(example = "100.00")]
    pub amount: String,
    #[schema(example = "INR")]
    pub currency: String,
}

/// Spin the wheel once.
///
/// The user is the token's subject. Retrying with the same `Idempotency-Key` and
/// body returns the original outcome (with `replayed: true` and the header
/// `Idempotent-Replayed: true`) and never draws again. Under durability
/// `fsync-wins`, a stock-bounded prize is answered only once Redis has fsynced
/// it (else 503 `durability_timeout`: the retry with the same key returns it).
#[utoipa::path(
    tag = "spins",
    params(
        ("id" = String, Path, description = "Campaign id"),
        ("Idempotency-Key" = String, Header, pattern = "^[A-Za-z0-9_-]{1,64}$", description = "Client-chosen key, `[A-Za-z0-9_-]{1,64}`; a retry reuses it"),
    ),
    request_body(content = Object, content_type = "application/json",
        description = "Optional client context (at most 4 KiB), e.g. {\"order_id\": \"…\"}; stored with the result"),
    responses(
        (status = 200, description = "The prize drawn (or replayed)", body = SpinResponse),
        (status = 400, description = "Missing or invalid Idempotency-Key, malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown campaign", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Campaign not started, ended or paused", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Idempotency-Key reused with another body", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Spin quota used up (Retry-After when a daily reset applies), or a rate limit (per address, per user, per replica; with Retry-After)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable, the replica at capacity, or (durability `fsync-wins`) a bounded win not confirmed on disk in time (`durability_timeout`), or the campaign being rebuilt from the ledger after Redis restarted (`recovering`); Retry-After; retry with the same key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/campaigns/{id}/spins")]
pub async fn create_spin(
    state: web::Data<AppState>,
    caller: Caller,
    path: CampaignPath,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let campaign = path.id()?;
    let gate = SpinGate::enter(&state, campaign, &caller.user)?;
    let key = idempotency_key(&req)?;
    let body = read_limited(&req, payload, state.http.max_spin_body_bytes).await?;
    let context = spin_context(&req, &body, state.http.max_spin_body_bytes)?;
    let outcome = draw::spin(&state.redis, campaign, &caller.user, &key, &context).await?;
    observe(campaign, &outcome);
    let drawn = outcome.map_err(|r| {
        gate.refused(&state, campaign, &caller.user, r);
        rejection(r, campaign)
    })?;
    Ok(respond(drawn, campaign))
}

/// Counts the spin Redis decided and names it on the request's span. A campaign
/// Redis does not know is counted without its id (ids in a path are the client's).
fn observe(campaign: &CampaignId, outcome: &Result<Drawn, Rejection>) {
    let m = metrics();
    let kind = match outcome {
        Ok(d) if d.replayed => "replayed",
        Ok(d) => {
            m.prize_awarded(campaign.as_str(), &d.prize_id);
            "drawn"
        }
        Err(Rejection::NoCampaign) => {
            m.unknown_campaign();
            Span::current().record("outcome", "unknown_campaign");
            return;
        }
        Err(Rejection::NotStarted) => "not_started",
        Err(Rejection::Ended) => "ended",
        Err(Rejection::Paused) => "paused",
        Err(Rejection::QuotaExhausted) => "quota_exhausted",
        Err(Rejection::NoSpinsLeft) => "no_spins_left",
        Err(Rejection::DailyQuotaExhausted { .. }) => "daily_quota_exhausted",
        Err(Rejection::KeyReused) => "key_reused",
        Err(Rejection::Recovering) => "recovering",
        Err(Rejection::BudgetExhausted) => "budget_exhausted",
    };
    m.spin(campaign.as_str(), kind);
    let span = Span::current();
    span.record("campaign.id", campaign.as_str());
    span.record("outcome", kind);
}

pub(super) fn idempotency_key(req: &HttpRequest) -> ApiResult<IdempotencyKey> {
    let raw = req
        .headers()
        .get("idempotency-key")
        .ok_or(ApiError::IdempotencyKeyMissing)?;
    let text = raw
        .to_str()
        .map_err(|_| ApiError::IdempotencyKeyInvalid("Idempotency-Key must be ASCII".into()))?;
    IdempotencyKey::parse(text).map_err(ApiError::IdempotencyKeyInvalid)
}

fn rejection(r: Rejection, campaign: &CampaignId) -> ApiError {
    match r {
        Rejection::NoCampaign => ApiError::CampaignNotFound(campaign.to_string()),
        Rejection::NotStarted => ApiError::CampaignNotStarted,
        Rejection::Ended => ApiError::CampaignEnded,
        Rejection::Paused => ApiError::CampaignPaused,
        Rejection::QuotaExhausted => ApiError::QuotaExhausted,
        Rejection::NoSpinsLeft => ApiError::NoSpinsLeft,
        Rejection::DailyQuotaExhausted { retry_after_ms } => ApiError::DailyQuotaExhausted {
            retry_after_secs: retry_after_ms.div_ceil(1000).max(1),
        },
        Rejection::KeyReused => ApiError::IdempotencyKeyReused,
        Rejection::Recovering => ApiError::Recovering,
        Rejection::BudgetExhausted => ApiError::BudgetExhausted,
    }
}

fn respond(d: Drawn, campaign: &CampaignId) -> HttpResponse {
    let value = PrizeValue {
        amount: d.amount,
        currency: d.currency,
    };
    let mut res = HttpResponse::Ok();
    if d.replayed {
        res.insert_header(("Idempotent-Replayed", "true"));
    }
    res.json(SpinResponse {
        spin_id: d.spin_id,
        campaign_id: campaign.to_string(),
        prize: PrizeWon {
            id: d.prize_id,
            name: d.prize_name,
            value,
            code: d.code,
        },
        spins_left: d.spins_left,
        replayed: d.replayed,
    })
}
