//! Marketing's prize codes: `POST|GET|DELETE /v1/admin/campaigns/{id}/prizes/{prize}/codes`.
//! An upload is streamed into Redis batch by batch (`rollout::codes::Upload`),
//! so its size bounds neither memory nor a worker: the handler awaits Redis
//! between chunks, within `http.codes_upload_timeout_ms`.

use super::AppState;
use super::auth::{Caller, Role};
use super::body::{media_essence, refuse_declared_over};
use super::campaign_path::CampaignPath;
use super::error::{ApiError, ApiResult, Problem, RoleGatedProblems};
use crate::domain::{CampaignId, PrizeId};
use crate::rollout::codes::{Invalid, Op, Report, Upload, UploadError};
use crate::store::redis::codes::{CodeCounts, CodesRejection};
use actix_web::http::header;
use actix_web::{HttpRequest, delete, get, post, web};
use futures_util::StreamExt;
use serde::Serialize;

/// Invalid lines an answer lists (all are counted).
pub const MAX_INVALID_LISTED: usize = 100;

/// What an upload of codes did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CodesAdded {
    /// New codes, now in the prize's pool.
    pub added: u64,
    /// Codes the campaign had already: loaded (for any prize), awarded or
    /// withdrawn, or repeated in the file. Nothing is loaded twice.
    pub duplicates: u64,
    /// The first 100 lines that hold no code, with why.
    pub invalid: Vec<Invalid>,
    /// Every line that holds no code.
    pub invalid_count: u64,
    /// Codes in the prize's pool now.
    pub available: u64,
}

/// What a withdrawal did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CodesWithdrawn {
    /// Taken out of the pool: no win hands them out.
    pub withdrawn: u64,
    /// Handed out before the withdrawal: they stay with their winners.
    pub already_awarded: u64,
    /// Not in the prize's pool (never loaded for it, or withdrawn before).
    pub unknown: u64,
    pub invalid: Vec<Invalid>,
    pub invalid_count: u64,
    pub available: u64,
}

/// Add codes to a code prize's pool (`stock: codes`): one code per line, or a
/// CSV whose first column is the code (a header line is allowed). Loading the
/// same file again adds nothing.
#[utoipa::path(
    tag = "admin",
    params(
        ("id" = String, Path, description = "Campaign id"),
        ("prize" = String, Path, description = "Prize id of a prize with `stock: codes`"),
    ),
    request_body(content = String, content_type = "text/plain", description = "Codes, one per line (or text/csv); each 1 to 64 of A-Z a-z 0-9 _ -"),
    responses(
        RoleGatedProblems,
        (status = 200, description = "Codes added, duplicates, invalid lines (the first 100) and the pool now", body = CodesAdded),
        (status = 404, description = "No such campaign or prize", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The prize's stock is not `codes`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than `http.max_codes_upload_bytes` (16 MiB)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not text/plain or text/csv", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/admin/campaigns/{id}/prizes/{prize}/codes")]
pub async fn add_codes(
    state: web::Data<AppState>,
    caller: Caller,
    path: CampaignPath,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult<web::Json<CodesAdded>> {
    caller.require(Role::Marketing)?;
    let r = upload(&state, &path, &req, payload, Op::Add).await?;
    Ok(web::Json(CodesAdded {
        added: r.added,
        duplicates: r.duplicates,
        invalid: r.invalid,
        invalid_count: r.invalid_count,
        available: r.available,
    }))
}

/// Withdraw codes that have not been handed out (a leaked batch): the body
/// lists them as an upload does. A withdrawn code is never loaded again.
#[utoipa::path(
    tag = "admin",
    params(
        ("id" = String, Path, description = "Campaign id"),
        ("prize" = String, Path, description = "Prize id"),
    ),
    request_body(content = String, content_type = "text/plain", description = "The codes to withdraw, one per line (or text/csv)"),
    responses(
        RoleGatedProblems,
        (status = 200, description = "Codes withdrawn, already awarded and unknown", body = CodesWithdrawn),
        (status = 404, description = "No such campaign or prize", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The prize never took codes", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than `http.max_codes_upload_bytes`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not text/plain or text/csv", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[delete("/v1/admin/campaigns/{id}/prizes/{prize}/codes")]
pub async fn withdraw_codes(
    state: web::Data<AppState>,
    caller: Caller,
    path: CampaignPath,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult<web::Json<CodesWithdrawn>> {
    caller.require(Role::Marketing)?;
    let r = upload(&state, &path, &req, payload, Op::Withdraw).await?;
    Ok(web::Json(CodesWithdrawn {
        withdrawn: r.withdrawn,
        already_awarded: r.already_awarded,
        unknown: r.unknown,
        invalid: r.invalid,
        invalid_count: r.invalid_count,
        available: r.available,
    }))
}

/// A code prize's codes: loaded, awarded, withdrawn and available.
#[utoipa::path(
    tag = "admin",
    params(
        ("id" = String, Path, description = "Campaign id"),
        ("prize" = String, Path, description = "Prize id"),
    ),
    responses(
        RoleGatedProblems,
        (status = 200, description = "The prize's codes", body = CodeCounts),
        (status = 409, description = "The prize never took codes", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/admin/campaigns/{id}/prizes/{prize}/codes")]
pub async fn get_codes(
    state: web::Data<AppState>,
    caller: Caller,
    path: CampaignPath,
    req: HttpRequest,
) -> ApiResult<web::Json<CodeCounts>> {
    caller.require(Role::Marketing)?;
    let (campaign, prize) = target(&path, &req)?;
    let counts = state
        .redis
        .count_codes(campaign, &prize)
        .await?
        .map_err(|r| rejected(r, &path, &prize))?;
    Ok(web::Json(counts))
}

fn target<'a>(path: &'a CampaignPath, req: &HttpRequest) -> ApiResult<(&'a CampaignId, PrizeId)> {
    let campaign = path.id()?;
    let raw = req.match_info().get("prize").unwrap_or_default();
    let prize = PrizeId::parse(raw)
        .map_err(|_| ApiError::PrizeNotFound(campaign.to_string(), raw.to_owned()))?;
    Ok((campaign, prize))
}

fn rejected(r: CodesRejection, path: &CampaignPath, prize: &PrizeId) -> ApiError {
    match r {
        CodesRejection::NoCampaign => path.not_found(),
        CodesRejection::NoPrize => {
            ApiError::PrizeNotFound(path.as_str().to_owned(), prize.to_string())
        }
        CodesRejection::NotCodePrize => ApiError::NotCodePrize(prize.to_string()),
    }
}

/// Streams the body into an [`Upload`]: its size checked up front by
/// `Content-Length` and while reading, the whole within the upload timeout.
async fn upload(
    state: &AppState,
    path: &CampaignPath,
    req: &HttpRequest,
    mut payload: web::Payload,
    op: Op,
) -> ApiResult<Report> {
    let (campaign, prize) = target(path, req)?;
    check_media_type(req)?;
    let limit = state.http.max_codes_upload_bytes;
    refuse_declared_over(req, limit)?;
    let timeout = std::time::Duration::from_millis(state.http.codes_upload_timeout_ms.get());
    let mut up = Upload::new(&state.redis, campaign, &prize, op, MAX_INVALID_LISTED);
    let read = async {
        let mut read = 0usize;
        while let Some(chunk) = payload.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::MalformedBody(format!("cannot read the body: {e}")))?;
            read += chunk.len();
            if read > limit {
                return Err(ApiError::BodyTooLarge { limit });
            }
            up.feed(&chunk)
                .await
                .map_err(|e| upload_error(e, path, &prize))?;
        }
        up.finish().await.map_err(|e| upload_error(e, path, &prize))
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| ApiError::BodyTimeout {
            timeout_ms: timeout.as_millis() as u64,
        })?
}

fn upload_error(e: UploadError, path: &CampaignPath, prize: &PrizeId) -> ApiError {
    match e {
        UploadError::Store(s) => s.into(),
        UploadError::Rejected(r) => rejected(r, path, prize),
    }
}

/// text/plain or text/csv (any parameters), or no `Content-Type` at all.
fn check_media_type(req: &HttpRequest) -> ApiResult<()> {
    let Some(ct) = req.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = media_essence(ct.to_str().unwrap_or_default()).to_ascii_lowercase();
    if essence == "text/plain" || essence == "text/csv" {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(
            "codes are sent as text/plain or text/csv".into(),
        ))
    }
}
