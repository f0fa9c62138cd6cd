//! The one error type of the HTTP layer, rendered as `application/problem+json`
//! (RFC 9457) with a stable machine-readable `code`.
//!
//! Where errors belong: handlers return [`ApiError`]; store and draw code return
//! their own error types, converted here; `anyhow` is for the CLI. Client mistakes
//! are 4xx with a code the client can act on; an unavailable store is 503 with
//! `Retry-After`; anything else is an opaque 500 whose cause is logged once here.

use crate::campaign::Diagnostic;
use crate::campaign::tree::MAX_LISTED;
use crate::domain::truncate_for_message;
use crate::draw::DrawError;
use crate::rollout::apply::ApplyError;
use crate::store::redis::StoreError;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    /// The `Authorization` header is ambiguous (e.g. sent twice).
    #[error("{0}")]
    InvalidAuthorization(String),
    #[error("this operation needs the `{0}` role")]
    Forbidden(&'static str),
    /// With the id the client sent, shortened in the message.
    #[error("no campaign `{}`", truncate_for_message(.0))]
    CampaignNotFound(String),
    #[error("no such resource")]
    NotFound,
    #[error("campaign `{}` has no prize `{}`", .0, truncate_for_message(.1))]
    PrizeNotFound(String, String),
    #[error("prize `{0}` does not take codes: its stock is not `codes`")]
    NotCodePrize(String),
    /// With the methods the resource serves, for the `Allow` header.
    #[error("method not allowed on this resource (allowed: {0})")]
    MethodNotAllowed(String),
    #[error("the campaign has not started yet")]
    CampaignNotStarted,
    #[error("the campaign has ended")]
    CampaignEnded,
    #[error("the campaign is paused")]
    CampaignPaused,
    #[error("the campaign's budget is spent: no more prizes can be awarded")]
    BudgetExhausted,
    #[error("no spins left in this campaign")]
    QuotaExhausted,
    #[error("no spins left today; more after the day resets")]
    DailyQuotaExhausted { retry_after_secs: u64 },
    #[error("no spins left: earn more, e.g. with an order")]
    NoSpinsLeft,
    #[error("this campaign has no earned spins (`earned_spins` is not set): grants are refused")]
    GrantsNotEnabled,
    #[error("{0}")]
    InvalidGrant(String),
    #[error("no grant `{}` in this campaign", truncate_for_message(.0))]
    GrantNotFound(String),
    #[error("this Idempotency-Key was already used with a different request body")]
    IdempotencyKeyReused,
    #[error("the Idempotency-Key header is required")]
    IdempotencyKeyMissing,
    #[error("{0}")]
    IdempotencyKeyInvalid(String),
    #[error("{0}")]
    MalformedBody(String),
    #[error("{0}")]
    InvalidQuery(String),
    #[error("{0}")]
    InvalidIfMatch(String),
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request body did not arrive within {timeout_ms} ms")]
    BodyTimeout { timeout_ms: u64 },
    /// Every problem found; the answer lists the first [`MAX_LISTED`].
    #[error("the campaign file has {} problem(s){}", .0.len(), listed_note(.0))]
    InvalidCampaign(Vec<Diagnostic>),
    #[error("{0}")]
    CampaignIdMismatch(String),
    #[error("{0}")]
    ApplyConflict(String),
    #[error("{0}")]
    ApplyRefused(String),
    #[error("too many requests ({} limit); retry after {retry_after_secs} s", .layer.as_str())]
    RateLimited {
        layer: crate::admission::Layer,
        retry_after_secs: u64,
    },
    #[error("the service is at capacity; retry shortly")]
    Overloaded,
    #[error("campaign files are being parsed; retry shortly")]
    CampaignParserBusy,
    #[error("Redis restarted and this campaign is being rebuilt from the ledger; retry shortly")]
    Recovering,
    #[error("a backing store is unavailable; retry shortly")]
    Unavailable(#[source] anyhow::Error),
    #[error(
        "the spin was drawn but Redis did not confirm it on disk in time; retry with the same Idempotency-Key to get its result"
    )]
    DurabilityTimeout(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// Says which problems an `invalid_campaign` answer lists, when not all.
fn listed_note(problems: &[Diagnostic]) -> String {
    if problems.len() > MAX_LISTED {
        format!("; the first {MAX_LISTED} are listed")
    } else {
        String::new()
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `/problems/<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code, e.g. `spin_quota_exhausted`.
    pub code: &'static str,
    /// Seconds until a retry can succeed, where known (also in `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// Every problem of an invalid campaign file, with its position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<Diagnostic>>,
}

impl ApiError {
    /// The stable code and title of the error.
    pub fn code(&self) -> (&'static str, &'static str) {
        use ApiError::*;
        match self {
            Unauthorized(_) => ("invalid_token", "Unauthorized"),
            InvalidAuthorization(_) => ("invalid_authorization", "Invalid Authorization header"),
            Forbidden(_) => ("forbidden", "Forbidden"),
            CampaignNotFound(_) => ("campaign_not_found", "Campaign not found"),
            NotFound => ("not_found", "Not found"),
            PrizeNotFound(..) => ("prize_not_found", "Prize not found"),
            NotCodePrize(_) => ("not_a_code_prize", "Not a code prize"),
            MethodNotAllowed(_) => ("method_not_allowed", "Method not allowed"),
            CampaignNotStarted => ("campaign_not_started", "Campaign not started"),
            CampaignEnded => ("campaign_ended", "Campaign ended"),
            CampaignPaused => ("campaign_paused", "Campaign paused"),
            BudgetExhausted => ("budget_exhausted", "Campaign budget exhausted"),
            QuotaExhausted => ("spin_quota_exhausted", "Spin quota exhausted"),
            DailyQuotaExhausted { .. } => {
                ("daily_spin_quota_exhausted", "Daily spin quota exhausted")
            }
            NoSpinsLeft => ("no_spins_left", "No spins left"),
            GrantsNotEnabled => ("grants_not_enabled", "Campaign without earned spins"),
            InvalidGrant(_) => ("invalid_grant", "Invalid grant"),
            GrantNotFound(_) => ("grant_not_found", "Grant not found"),
            IdempotencyKeyReused => ("idempotency_key_reused", "Idempotency key reused"),
            IdempotencyKeyMissing => ("idempotency_key_missing", "Idempotency key missing"),
            IdempotencyKeyInvalid(_) => ("idempotency_key_invalid", "Idempotency key invalid"),
            MalformedBody(_) => ("malformed_body", "Malformed body"),
            InvalidQuery(_) => ("invalid_query", "Invalid query parameter"),
            InvalidIfMatch(_) => ("invalid_if_match", "Invalid If-Match header"),
            BodyTooLarge { .. } => ("body_too_large", "Body too large"),
            UnsupportedMediaType(_) => ("unsupported_media_type", "Unsupported media type"),
            BodyTimeout { .. } => ("body_timeout", "Body timeout"),
            InvalidCampaign(_) => ("invalid_campaign", "Invalid campaign"),
            CampaignIdMismatch(_) => ("campaign_id_mismatch", "Campaign id mismatch"),
            ApplyConflict(_) => ("apply_conflict", "Concurrent apply"),
            ApplyRefused(_) => ("apply_refused", "Change not allowed on a live campaign"),
            RateLimited { .. } => ("rate_limited", "Too many requests"),
            Overloaded => ("overloaded", "Service at capacity"),
            CampaignParserBusy => ("campaign_parser_busy", "Campaign parser busy"),
            Recovering => ("recovering", "Campaign recovering"),
            Unavailable(_) => ("service_unavailable", "Service unavailable"),
            DurabilityTimeout(_) => ("durability_timeout", "Draw not yet durable"),
            Internal(_) => ("internal_error", "Internal error"),
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::DailyQuotaExhausted { retry_after_secs }
            | ApiError::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            ApiError::Unavailable(_)
            | ApiError::Overloaded
            | ApiError::CampaignParserBusy
            | ApiError::Recovering
            | ApiError::DurabilityTimeout(_) => Some(1),
            _ => None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        use ApiError::*;
        match self {
            Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Forbidden(_) => StatusCode::FORBIDDEN,
            CampaignNotFound(_) | NotFound | GrantNotFound(_) | PrizeNotFound(..) => {
                StatusCode::NOT_FOUND
            }
            MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            CampaignNotStarted | CampaignEnded | CampaignPaused | BudgetExhausted
            | ApplyConflict(_) | ApplyRefused(_) | GrantsNotEnabled | NotCodePrize(_) => {
                StatusCode::CONFLICT
            }
            QuotaExhausted | DailyQuotaExhausted { .. } | NoSpinsLeft | RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            IdempotencyKeyReused | InvalidCampaign(_) | CampaignIdMismatch(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            IdempotencyKeyMissing
            | IdempotencyKeyInvalid(_)
            | MalformedBody(_)
            | InvalidGrant(_)
            | InvalidQuery(_)
            | InvalidIfMatch(_)
            | InvalidAuthorization(_) => StatusCode::BAD_REQUEST,
            BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Unavailable(_) | Overloaded | CampaignParserBusy | Recovering
            | DurabilityTimeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (code, title) = self.code();
        // The request's one log line (http/observe.rs) carries these; only a
        // bug gets a line of its own.
        let span = tracing::Span::current();
        span.record("error.code", code);
        match self {
            ApiError::Internal(e) => {
                span.record("exception.message", format!("{e:#}"));
                tracing::error!(error = ?e, "internal error");
            }
            ApiError::Unavailable(e) => {
                span.record("exception.message", format!("{e:#}"));
            }
            ApiError::RateLimited { layer, .. } => {
                crate::telemetry::metrics().rejected(layer.as_str())
            }
            ApiError::Overloaded => crate::telemetry::metrics().rejected("in_flight"),
            ApiError::DurabilityTimeout(e) => {
                span.record("exception.message", format!("{e:#}"));
            }
            _ => {}
        }
        let problem = Problem {
            kind: format!("/problems/{code}"),
            title,
            status: status.as_u16(),
            detail: self.to_string(),
            code,
            retry_after: self.retry_after(),
            errors: match self {
                ApiError::InvalidCampaign(errors) => {
                    Some(errors.iter().take(MAX_LISTED).cloned().collect())
                }
                _ => None,
            },
        };
        let mut res = HttpResponse::build(status);
        res.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if let Some(secs) = problem.retry_after {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let ApiError::MethodNotAllowed(allow) = self {
            res.insert_header((header::ALLOW, allow.as_str()));
        }
        match self {
            ApiError::Unauthorized(_) => {
                res.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                ));
            }
            ApiError::InvalidAuthorization(_) => {
                res.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_request\""),
                ));
            }
            // The rest of the body may never come: do not wait for it to read
            // the next request on this connection.
            ApiError::BodyTimeout { .. } => {
                res.force_close();
            }
            _ => {}
        }
        res.body(serde_json::to_string(&problem).unwrap_or_default())
    }
}

impl From<crate::admission::Limited> for ApiError {
    fn from(l: crate::admission::Limited) -> Self {
        ApiError::RateLimited {
            layer: l.layer,
            retry_after_secs: whole_seconds(l.retry_after),
        }
    }
}

/// A `Retry-After` in whole seconds: rounded up, at least one.
pub fn whole_seconds(d: std::time::Duration) -> u64 {
    d.as_millis().div_ceil(1000).max(1) as u64
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => ApiError::Unavailable(e.into()),
            StoreError::Overloaded => ApiError::Overloaded,
            StoreError::NotDurable(_) => ApiError::DurabilityTimeout(e.into()),
            _ => ApiError::Internal(e.into()),
        }
    }
}

impl From<DrawError> for ApiError {
    fn from(e: DrawError) -> Self {
        match e {
            DrawError::Store(s) => s.into(),
            DrawError::Seed(_) => ApiError::Internal(e.into()),
        }
    }
}

impl From<ApplyError> for ApiError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Conflict { .. } => ApiError::ApplyConflict(e.to_string()),
            ApplyError::ExpireFixed { .. } | ApplyError::PoolsNotApplied { .. } => {
                ApiError::ApplyRefused(e.to_string())
            }
            ApplyError::Redis(s) => s.into(),
            ApplyError::NotRecorded { .. } | ApplyError::NotRecovered { .. } => {
                ApiError::Unavailable(e.into())
            }
        }
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

/// The problems every role-gated endpoint may answer, documented once for the
/// OpenAPI document (the handlers return [`ApiError`]).
#[derive(utoipa::IntoResponses)]
pub enum RoleGatedProblems {
    /// Missing or invalid token.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The token lacks the endpoint's role.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// Unknown campaign.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// Redis or PostgreSQL unavailable; retry shortly.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}
