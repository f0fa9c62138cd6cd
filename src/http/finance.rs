//! Finance's API: settled rewards (JSON pages or a CSV stream) and the
//! reconciliation summary of a campaign.

use super::AppState;
use super::auth::{Caller, Role};
use super::campaign_path::CampaignPath;
use super::error::{ApiError, ApiResult, Problem, RoleGatedProblems};
use crate::domain::{CampaignId, PrizeId, UserId};
use crate::finance::reconcile::{Reconciliation, reconcile};
use crate::finance::rewards::{CSV_HEADER, Cursor, Filter, RewardRow, page};
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::Serialize;
use std::collections::HashMap;

/// Largest page of a JSON listing.
pub const MAX_LIMIT: i64 = 1000;
const DEFAULT_LIMIT: i64 = 100;
/// Rows per query while streaming CSV: memory stays bounded by this.
const CSV_PAGE: i64 = 1000;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RewardsPage {
    pub rewards: Vec<RewardRow>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<String>,
}

/// Parses the query string strictly: unknown or malformed parameters are 400.
fn filters(req: &HttpRequest) -> ApiResult<(Filter, Option<i64>)> {
    let bad = |m: String| ApiError::InvalidQuery(m);
    let q = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map_err(|e| bad(format!("cannot read the query string: {e}")))?;
    let mut f = Filter::default();
    let mut limit = None;
    for (k, v) in q.iter() {
        match k.as_str() {
            "prize" => f.prize = Some(PrizeId::parse(v).map_err(bad)?.to_string()),
            "user" => {
                f.user = Some(
                    UserId::parse(v)
                        .map_err(|_| bad("`user` is not a valid user id".into()))?
                        .as_str()
                        .to_owned(),
                )
            }
            "code" => {
                if !crate::rollout::codes::is_code(v) {
                    return Err(bad(
                        "`code` must be a prize code: 1 to 64 of A-Z, a-z, 0-9, `_` and `-`".into(),
                    ));
                }
                f.code = Some(v.clone());
            }
            "from" | "to" => {
                let t = chrono::DateTime::parse_from_rfc3339(v)
                    .map_err(|_| {
                        bad(format!(
                            "`{k}` must be an RFC 3339 time, e.g. 2026-11-01T00:00:00Z"
                        ))
                    })?
                    .with_timezone(&chrono::Utc);
                if k == "from" {
                    f.from = Some(t)
                } else {
                    f.to = Some(t)
                }
            }
            "after" => {
                f.after = Some(
                    Cursor::decode(v)
                        .ok_or_else(|| bad("`after` is not a cursor from `next_after`".into()))?,
                )
            }
            "limit" => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| bad("`limit` must be an integer".into()))?;
                if !(1..=MAX_LIMIT).contains(&n) {
                    return Err(bad(format!("`limit` must be between 1 and {MAX_LIMIT}")));
                }
                limit = Some(n);
            }
            other => {
                return Err(bad(format!(
                    "unknown parameter `{}`",
                    crate::domain::truncate_for_message(other)
                )));
            }
        }
    }
    // [from, to) may be empty (from == to: no rows); reversed is a mistake.
    if let (Some(a), Some(b)) = (f.from, f.to)
        && a > b
    {
        return Err(bad("`from` must not be after `to`".into()));
    }
    Ok((f, limit))
}

fn wants_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"))
}

/// Settled rewards of a campaign, oldest first, with filters and keyset
/// pagination; with `Accept: text/csv`, every matching row as a CSV stream.
/// Each reward carries the prize code its win handed out (`code`; null, or an
/// empty CSV field, for a prize without codes).
#[utoipa::path(
    tag = "finance",
    params(
        ("id" = String, Path, description = "Campaign id"),
        ("prize" = Option<String>, Query, pattern = "^[a-z0-9-]{1,32}$", description = "Only this prize"),
        ("user" = Option<String>, Query, pattern = "^[!-~]{1,128}$", description = "Only this user (the token subject)"),
        ("code" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]{1,64}$", description = "Only the reward that handed out this prize code"),
        ("from" = Option<String>, Query, format = DateTime, description = "Spun at or after (RFC 3339)"),
        ("to" = Option<String>, Query, format = DateTime, description = "Spun before (RFC 3339)"),
        ("after" = Option<String>, Query, pattern = "^[0-9]{1,16}_[0-9a-f]{32}$", description = "`next_after` of the previous page"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size, 1-1000 (default 100; CSV: all rows)"),
    ),
    responses(
        RoleGatedProblems,
        (status = 200, body = RewardsPage, description = "A page (JSON) or every row (text/csv)"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/finance/campaigns/{id}/rewards")]
pub async fn list_rewards(
    state: web::Data<AppState>,
    caller: Caller,
    path: CampaignPath,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    caller.require(Role::Finance)?;
    let campaign = path.id()?.clone();
    let (filter, limit) = filters(&req)?;
    if wants_csv(&req) {
        return Ok(csv_stream(
            state.pg.clone(),
            state.pg_query_limit,
            campaign,
            filter,
            limit,
        ));
    }
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    let rows = page(
        &state.pg,
        state.pg_query_limit,
        campaign.as_str(),
        &filter,
        limit,
    )
    .await
    .map_err(pg_error)?;
    let next_after = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.cursor().encode()))
        .flatten();
    Ok(HttpResponse::Ok().json(RewardsPage {
        rewards: rows,
        next_after,
    }))
}

/// PostgreSQL failures are the store being unavailable to this request.
fn pg_error(e: sqlx::Error) -> ApiError {
    ApiError::Unavailable(anyhow::Error::new(e).context("querying PostgreSQL"))
}

/// Streams rows page by page through a small channel: memory is bounded by a
/// page, however many rows match.
fn csv_stream(
    pg: sqlx::PgPool,
    within: std::time::Duration,
    campaign: CampaignId,
    mut filter: Filter,
    limit: Option<i64>,
) -> HttpResponse {
    let file_name = filter.csv_file_name(campaign.as_str());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut left = limit.unwrap_or(i64::MAX);
        let mut first = true;
        loop {
            let mut w = csv::Writer::from_writer(Vec::new());
            if std::mem::take(&mut first) {
                let _ = w.write_record(CSV_HEADER);
            }
            let rows = match page(&pg, within, campaign.as_str(), &filter, CSV_PAGE.min(left)).await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!(error = %e, campaign.id = %campaign, "CSV export aborted");
                    let _ = tx.send(Err(std::io::Error::other("export aborted"))).await;
                    return;
                }
            };
            for r in &rows {
                let _ = w.write_record(r.csv_fields());
            }
            let chunk = w.into_inner().unwrap_or_default();
            if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return; // the client went away
            }
            left -= rows.len() as i64;
            match rows.last() {
                Some(last) if rows.len() as i64 == CSV_PAGE && left > 0 => {
                    filter.after = Some(last.cursor())
                }
                _ => return,
            }
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file_name}\""),
        ))
        .streaming(body)
}

/// Per prize: configured stock, awarded in Redis, settled count and value in
/// PostgreSQL, and what is in flight between them; for a code prize its codes
/// (loaded, withdrawn, available, awarded against the rewards with a code);
/// plus settlement lag.
#[utoipa::path(
    tag = "finance",
    params(("id" = String, Path, description = "Campaign id")),
    responses(
        RoleGatedProblems,
        (status = 200, description = "Drawn against settled, prize by prize, and settlement's lag", body = Reconciliation),
    ),
    security(("bearer" = []))
)]
#[get("/v1/finance/campaigns/{id}/summary")]
pub async fn summary(
    state: web::Data<AppState>,
    caller: Caller,
    path: CampaignPath,
) -> ApiResult<web::Json<Reconciliation>> {
    caller.require(Role::Finance)?;
    let campaign = path.id()?;
    let r = reconcile(
        &state.redis,
        &state.pg,
        state.pg_query_limit,
        campaign,
        &state.settlement,
    )
    .await
    .map_err(|e| match e {
        crate::finance::reconcile::ReconcileError::Redis(s) => s.into(),
        crate::finance::reconcile::ReconcileError::Pg(p) => pg_error(p),
    })?
    .ok_or_else(|| path.not_found())?;
    Ok(web::Json(r))
}
