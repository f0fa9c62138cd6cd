//! The order service's endpoints: spins granted when a shopper orders, taken
//! back when the order is cancelled. Role `grants`; the shopper is named in the
//! body, the caller is the order service (the token's subject).

use super::AppState;
use super::auth::{Caller, Role};
use super::body::{is_json_media_type, read_limited};
use super::campaign_path::CampaignPath;
use super::error::{ApiError, ApiResult, Problem, RoleGatedProblems};
use super::spins::idempotency_key;
use crate::campaign::model::EarnedSpins;
use crate::domain::{CampaignId, IdempotencyKey, UserId};
use crate::draw::grants::{self, GrantRequest};
use crate::store::redis::StoreError;
use crate::store::redis::grant::{GrantRejection, Granted, RevokeRejection, Revoked};
use crate::telemetry::metrics;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, delete, post, web};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Longest body of one grant: a user id, a count and a reason of at most
/// [`MAX_REASON_BYTES`], with room for spacing.
pub const MAX_GRANT_BODY_BYTES: usize = 4 * 1024;
/// Most grants in one batch.
pub const MAX_BATCH: usize = 1000;
/// Longest batch body: [`MAX_BATCH`] grants of the longest kind, about.
pub const MAX_BATCH_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Longest reason, as canonical JSON.
pub const MAX_REASON_BYTES: usize = 1024;
/// Grants of one batch in flight to Redis at once: enough to keep the
/// connection's pipeline full, few enough that a handful of batches leave most
/// of the replica's in-flight Redis slots (`redis.max_in_flight`) to spins.
const BATCH_CONCURRENCY: usize = 16;

/// A grant as the order service sends it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    /// The shopper, as the subject of their tokens.
    pub user_id: String,
    /// 1 to 100.
    pub spins: i64,
    /// Why (e.g. `{"order_id": "…"}`): a JSON object of at most 1 KiB, kept in the ledger.
    #[schema(value_type = Option<Object>)]
    pub reason: Option<Box<RawValue>>,
}

/// One grant of a batch: a grant with its id.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchItem {
    /// `[A-Za-z0-9_-]{1,64}`, e.g. the order id; as the Idempotency-Key of a single grant.
    pub grant_id: String,
    pub user_id: String,
    pub spins: i64,
    #[schema(value_type = Option<Object>)]
    pub reason: Option<Box<RawValue>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    /// 1 to 1,000 grants.
    #[schema(value_type = Vec<Object>)]
    pub grants: Vec<Box<RawValue>>,
}

/// A grant made, or repeated for a retry.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GrantResponse {
    pub grant_id: String,
    pub user_id: String,
    pub spins: u32,
    /// The shopper's spins after the grant, within the campaign's limits.
    pub spins_left: u64,
    /// True when this answer repeats the grant's first one.
    pub replayed: bool,
}

/// One item of a batch's answer: `status` 200 with the grant, or the status and
/// code a single grant would have answered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchResult {
    pub status: u16,
    /// The item's grant id, when it had a readable one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<GrantResponse>,
    /// The problem's code (as a single grant's problem+json `code`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchResponse {
    /// In the order of the request's grants.
    pub results: Vec<BatchResult>,
}

/// A revocation: the grant's spins, split by what became of them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RevokeResponse {
    pub grant_id: String,
    #[serde(flatten)]
    pub split: Revoked,
    /// True when the grant had been revoked before: this repeats that answer.
    pub replayed: bool,
}

/// Grant spins to a shopper (an order was placed).
///
/// The `Idempotency-Key` is the grant's id, e.g. the order id, unique within
/// the campaign: the same key and body again returns the first answer with
/// `replayed: true`; the same key with another body is 422
/// `idempotency_key_reused`.
#[utoipa::path(
    tag = "grants",
    params(
        ("id" = String, Path, description = "Campaign id"),
        ("Idempotency-Key" = String, Header, pattern = "^[A-Za-z0-9_-]{1,64}$", description = "The grant's id, e.g. the order id"),
    ),
    request_body(content = GrantBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The grant (or its first answer, replayed)", body = GrantResponse),
        (status = 400, description = "Missing or invalid Idempotency-Key (`idempotency_key_missing`, `idempotency_key_invalid`), malformed body (`malformed_body`) or an invalid grant (`invalid_grant`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The campaign has ended (`campaign_ended`), has not started and its earned spins lapse daily (`campaign_not_started`), or has no earned spins (`grants_not_enabled`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Idempotency-Key reused with another body", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The caller's grant rate (`rate_limited`, Retry-After)", body = Problem, content_type = "application/problem+json"),
        RoleGatedProblems,
    ),
    security(("bearer" = []))
)]
#[post("/v1/campaigns/{id}/grants")]
pub async fn create_grant(
    state: web::Data<AppState>,
    caller: Caller,
    path: CampaignPath,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    caller.require(Role::Grants)?;
    let campaign = path.id()?;
    state.admission.check_granter(&caller.user, 1)?;
    let grant_id = idempotency_key(&req)?;
    let body = json_body(&req, payload, MAX_GRANT_BODY_BYTES).await?;
    let parsed: GrantBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::MalformedBody(format!("the grant is not valid: {e}")))?;
    let valid = Valid::check(&parsed.user_id, parsed.spins, parsed.reason.as_deref())?;
    match run_grant(&state, campaign, &grant_id, &valid).await? {
        Ok(g) => {
            let mut res = HttpResponse::Ok();
            if g.replayed {
                res.insert_header(("Idempotent-Replayed", "true"));
            }
            Ok(res.json(GrantResponse::new(&grant_id, &valid, g)))
        }
        Err(r) => Err(grant_rejection(r, &path)),
    }
}

/// Grant spins to many shoppers at once (a feed of orders).
///
/// Each item is a grant with the semantics of a single one, its `grant_id` as
/// the Idempotency-Key. The answer lists one result per item, in order; an item
/// that fails (its status and code as a single grant's) fails alone, and
/// resending the whole batch is safe.
#[utoipa::path(
    tag = "grants",
    params(("id" = String, Path, description = "Campaign id")),
    request_body(content = BatchBody, content_type = "application/json",
        description = "`{\"grants\": [{\"grant_id\", \"user_id\", \"spins\", \"reason\"}, …]}`, 1 to 1,000 items"),
    responses(
        (status = 200, description = "One result per item, in order", body = BatchResponse),
        (status = 400, description = "Not a batch: malformed JSON (`malformed_body`), no items or more than 1,000 (`invalid_grant`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The caller's grant rate, each item counted (`rate_limited`, Retry-After)", body = Problem, content_type = "application/problem+json"),
        RoleGatedProblems,
    ),
    security(("bearer" = []))
)]
#[post("/v1/campaigns/{id}/grants/batch")]
pub async fn create_grants(
    state: web::Data<AppState>,
    caller: Caller,
    path: CampaignPath,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult<web::Json<BatchResponse>> {
    caller.require(Role::Grants)?;
    let campaign = path.id()?;
    let body = json_body(&req, payload, MAX_BATCH_BODY_BYTES).await?;
    let batch: BatchBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::MalformedBody(format!("the batch is not valid: {e}")))?;
    if batch.grants.is_empty() || batch.grants.len() > MAX_BATCH {
        return Err(ApiError::InvalidGrant(format!(
            "a batch holds 1 to {MAX_BATCH} grants, this one {}",
            batch.grants.len()
        )));
    }
    state
        .admission
        .check_granter(&caller.user, batch.grants.len() as u32)?;
    let state = &state;
    let path = &path;
    let results = futures_util::stream::iter(batch.grants.iter())
        .map(|raw| async move { batch_item(state, campaign, path, raw).await })
        .buffered(BATCH_CONCURRENCY)
        .collect()
        .await;
    Ok(web::Json(BatchResponse { results }))
}

/// Revoke a grant (the order was cancelled).
///
/// Takes back what is left of the grant's spins: `revoked` + `already_used` +
/// `lapsed` = the grant's spins. The shopper's spins never go below zero.
/// Revoking again repeats the first answer (`replayed: true`).
#[utoipa::path(
    tag = "grants",
    params(
        ("id" = String, Path, description = "Campaign id"),
        ("grant_id" = String, Path, description = "The grant's id (its Idempotency-Key)"),
    ),
    responses(
        (status = 200, description = "What became of the grant's spins", body = RevokeResponse),
        (status = 429, description = "The caller's grant rate (`rate_limited`, Retry-After)", body = Problem, content_type = "application/problem+json"),
        RoleGatedProblems,
    ),
    security(("bearer" = []))
)]
#[delete("/v1/campaigns/{id}/grants/{grant_id}")]
pub async fn revoke_grant(
    state: web::Data<AppState>,
    caller: Caller,
    path: CampaignPath,
    grant_id: web::Path<(String, String)>,
) -> ApiResult<web::Json<RevokeResponse>> {
    caller.require(Role::Grants)?;
    let campaign = path.id()?;
    state.admission.check_granter(&caller.user, 1)?;
    let (_, raw) = grant_id.into_inner();
    let id = IdempotencyKey::parse(&raw).map_err(|_| ApiError::GrantNotFound(raw.clone()))?;
    let outcome = grants::revoke(&state.redis, campaign, &id).await?;
    let m = metrics();
    match outcome {
        Ok((split, replayed)) => {
            m.grant(
                Some(campaign.as_str()),
                if replayed {
                    "revoke_replayed"
                } else {
                    "revoked"
                },
            );
            Ok(web::Json(RevokeResponse {
                grant_id: raw,
                split,
                replayed,
            }))
        }
        Err(RevokeRejection::NoCampaign) => {
            m.grant(None, "unknown_campaign");
            Err(path.not_found())
        }
        Err(RevokeRejection::UnknownGrant) => {
            m.grant(Some(campaign.as_str()), "unknown_grant");
            Err(ApiError::GrantNotFound(raw))
        }
        Err(RevokeRejection::Recovering) => Err(ApiError::Recovering),
    }
}

/// A grant's fields once checked.
struct Valid {
    user: UserId,
    spins: u32,
    /// Canonical JSON, or empty.
    reason: String,
}

impl Valid {
    fn check(user_id: &str, spins: i64, reason: Option<&RawValue>) -> ApiResult<Self> {
        let user = UserId::parse(user_id).map_err(|_| {
            ApiError::InvalidGrant(format!(
                "`user_id` must be 1 to {} printable ASCII characters, as the shopper's token subject",
                UserId::MAX_LEN
            ))
        })?;
        let max = EarnedSpins::MAX_PER_GRANT;
        let spins = u32::try_from(spins)
            .ok()
            .filter(|s| (1..=max).contains(s))
            .ok_or_else(|| {
                ApiError::InvalidGrant(format!("`spins` must be 1 to {max}, not {spins}"))
            })?;
        let reason = match reason {
            None => String::new(),
            Some(r) if r.get() == "null" => String::new(),
            Some(r) => crate::domain::context::canonical(r.get().as_bytes(), MAX_REASON_BYTES)
                .map_err(|e| {
                    ApiError::InvalidGrant(format!(
                        "`reason` must be a JSON object of at most {MAX_REASON_BYTES} bytes: {}",
                        e.0
                    ))
                })?,
        };
        Ok(Valid {
            user,
            spins,
            reason,
        })
    }
}

impl GrantResponse {
    fn new(grant_id: &IdempotencyKey, v: &Valid, g: Granted) -> Self {
        GrantResponse {
            grant_id: grant_id.as_str().to_owned(),
            user_id: v.user.as_str().to_owned(),
            spins: v.spins,
            spins_left: g.spins_left,
            replayed: g.replayed,
        }
    }
}

/// The body, bounded and within `http.body_timeout_ms`, which must be JSON.
async fn json_body(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> ApiResult<web::Bytes> {
    let body = read_limited(req, payload, limit).await?;
    // As for spins: a missing Content-Type is taken for JSON, another refused.
    let other = req
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| !is_json_media_type(v.to_str().unwrap_or_default()));
    if other {
        return Err(ApiError::UnsupportedMediaType(
            "the body must be application/json".into(),
        ));
    }
    Ok(body)
}

/// Runs a checked grant and counts its outcome.
async fn run_grant(
    state: &AppState,
    campaign: &CampaignId,
    grant_id: &IdempotencyKey,
    v: &Valid,
) -> Result<Result<Granted, GrantRejection>, StoreError> {
    let request = GrantRequest {
        grant_id,
        user: &v.user,
        spins: v.spins,
        reason: &v.reason,
    };
    let outcome = grants::grant(&state.redis, campaign, &request).await?;
    let (known, kind) = match &outcome {
        Ok(g) if g.replayed => (true, "replayed"),
        Ok(_) => (true, "granted"),
        Err(GrantRejection::NoCampaign) => (false, "unknown_campaign"),
        Err(GrantRejection::NotEnabled) => (true, "not_enabled"),
        Err(GrantRejection::NotStarted) => (true, "not_started"),
        Err(GrantRejection::Ended) => (true, "ended"),
        Err(GrantRejection::KeyReused) => (true, "key_reused"),
        Err(GrantRejection::Recovering) => (true, "recovering"),
    };
    metrics().grant(known.then_some(campaign.as_str()), kind);
    Ok(outcome)
}

fn grant_rejection(r: GrantRejection, path: &CampaignPath) -> ApiError {
    match r {
        GrantRejection::NoCampaign => path.not_found(),
        GrantRejection::NotEnabled => ApiError::GrantsNotEnabled,
        GrantRejection::NotStarted => ApiError::CampaignNotStarted,
        GrantRejection::Ended => ApiError::CampaignEnded,
        GrantRejection::KeyReused => ApiError::IdempotencyKeyReused,
        GrantRejection::Recovering => ApiError::Recovering,
    }
}

/// One item of a batch, answered as a single grant would be.
async fn batch_item(
    state: &AppState,
    campaign: &CampaignId,
    path: &CampaignPath,
    raw: &RawValue,
) -> BatchResult {
    let item: BatchItem = match serde_json::from_str(raw.get()) {
        Ok(item) => item,
        Err(e) => {
            let grant_id = serde_json::from_str::<serde_json::Value>(raw.get())
                .ok()
                .and_then(|v| v.get("grant_id")?.as_str().map(str::to_owned))
                .and_then(|id| IdempotencyKey::parse(&id).ok())
                .map(|id| id.as_str().to_owned());
            return BatchResult::failed(
                grant_id,
                &ApiError::InvalidGrant(format!("the grant is not valid: {e}")),
            );
        }
    };
    let outcome = async {
        let grant_id = IdempotencyKey::parse(&item.grant_id).map_err(|_| {
            ApiError::InvalidGrant(format!(
                "`grant_id` must be 1 to {} characters of A-Z, a-z, 0-9, _ and -",
                IdempotencyKey::MAX_LEN
            ))
        })?;
        let valid = Valid::check(&item.user_id, item.spins, item.reason.as_deref())?;
        match run_grant(state, campaign, &grant_id, &valid).await? {
            Ok(g) => Ok(GrantResponse::new(&grant_id, &valid, g)),
            Err(r) => Err(grant_rejection(r, path)),
        }
    }
    .await;
    let readable_id = IdempotencyKey::parse(&item.grant_id)
        .ok()
        .map(|id| id.as_str().to_owned());
    match outcome {
        Ok(grant) => BatchResult {
            status: 200,
            grant_id: readable_id,
            grant: Some(grant),
            code: None,
            detail: None,
        },
        Err(e) => BatchResult::failed(readable_id, &e),
    }
}

impl BatchResult {
    fn failed(grant_id: Option<String>, e: &ApiError) -> Self {
        if let ApiError::Internal(cause) = e {
            tracing::error!(error = ?cause, "internal error in a grant batch");
        }
        BatchResult {
            status: e.status_code().as_u16(),
            grant_id,
            grant: None,
            code: Some(e.code().0),
            detail: Some(e.to_string()),
        }
    }
}
