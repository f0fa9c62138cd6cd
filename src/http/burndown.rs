//! Marketing's burn-down of a live campaign: per stock-bounded prize, the
//! units settled in the ledger over time (`rewards`, bucketed by draw time),
//! the release line of a paced prize (its release rule over the window), and
//! the `campaign simulate` projection from now to the end (`simulate::simulate_from`,
//! started from the live awards and stock). As JSON, and as an SVG chart drawn
//! with plotters for the console.

use super::AppState;
use super::auth::{Caller, Role};
use super::campaign_path::CampaignPath;
use super::error::{ApiError, ApiResult, RoleGatedProblems};
use crate::campaign::Campaign;
use crate::draw::model::Model;
use crate::draw::release::released;
use crate::simulate::{Arrival, Options, Resume, simulate_from};
use crate::store::redis::live::LiveState;
use actix_web::http::header;
use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

/// Buckets of the settled series, at most, from the start to now.
pub const MAX_BUCKETS: i64 = 120;
/// Points of the release line of a paced prize, over the window.
const RELEASE_POINTS: i64 = 120;
/// Spin attempts the projection simulates, at most: more expected attempts
/// are scaled down to this (fewer shoppers, each with the same spins), and
/// the answer says so (`projection.scaled`).
pub const MAX_PROJECTED_ATTEMPTS: u64 = 1_000_000;
/// A projection is reused for this long for the same campaign, config and awards.
const PROJECTION_TTL: Duration = Duration::from_secs(10);

/// (instant, units), cumulative.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Point {
    /// RFC 3339, UTC.
    pub at: String,
    pub units: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PrizeBurndown {
    pub id: String,
    pub name: String,
    /// Configured units (of a code prize: its codes loaded and not withdrawn).
    pub stock: u64,
    /// Units awarded now (Redis, the draw's count).
    pub awarded: u64,
    /// Units left now.
    pub remaining: u64,
    /// Units settled in the ledger by the end of each bucket (`bucket_secs`),
    /// from the start (0) to now: awarded over time as finance sees it
    /// (settlement runs about a second behind the draws).
    pub settled: Vec<Point>,
    /// A paced prize (`even`, `per_day`, `schedule`): units released by each
    /// instant over the window, from its release rule. Empty otherwise.
    pub released: Vec<Point>,
    /// The projection: units awarded by each instant from now to the end
    /// (those awarded so far included), the median of the simulated runs.
    pub projected: Vec<Point>,
}

/// How the projection was made: `campaign simulate`'s model from now to the end.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProjectionInfo {
    /// Shoppers simulated over the rest of the window.
    pub users: u64,
    pub spins_per_user: u64,
    /// `uniform`: the rest of the expected attempts spread evenly to the end.
    pub arrival: String,
    pub runs: u32,
    pub seed: u64,
    /// Attempts simulated: the campaign's `expected_users` × `spins_per_user`
    /// times the share of the window left, at most 1,000,000; 0 once the
    /// window is over (every `projected` is then empty).
    pub attempts: u64,
    /// True when the expected attempts were more than 1,000,000 and fewer
    /// shoppers were simulated: the projection then undercounts awards.
    pub scaled: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Burndown {
    pub campaign_id: String,
    pub name: String,
    pub version: u64,
    pub timezone: String,
    /// RFC 3339, UTC.
    pub starts_at: String,
    pub ends_at: String,
    /// The instant (Redis's clock) the live figures are read at.
    pub as_of: String,
    /// Width of a bucket of `settled`, seconds.
    pub bucket_secs: u64,
    /// Stock-bounded prizes, in draw order (retired ones left out).
    pub prizes: Vec<PrizeBurndown>,
    pub projection: ProjectionInfo,
}

fn rfc3339(ms: i64) -> String {
    super::pacing::rfc3339_ms(ms).unwrap_or_default()
}

/// Only one projection runs at a time per process, off the HTTP workers.
static SIMULATING: LazyLock<tokio::sync::Semaphore> =
    LazyLock::new(|| tokio::sync::Semaphore::new(1));

type CacheKey = (String, String, Vec<(String, i64)>);
type Projected = (ProjectionInfo, BTreeMap<String, Vec<Point>>);
/// Per campaign id, the last projection: when it was made, of what, and it.
type Cached = (Instant, CacheKey, Arc<Projected>);
static PROJECTIONS: LazyLock<Mutex<HashMap<String, Cached>>> = LazyLock::new(Default::default);

/// The options of the projection from `now_ms`: the rest of the expected
/// attempts (`expected_users` × `spins_per_user`, as `campaign simulate`
/// assumes them), spread evenly to the end.
fn projection_options(c: &Campaign, now_ms: i64) -> ProjectionInfo {
    let (start, end) = (c.starts_at.timestamp_millis(), c.ends_at.timestamp_millis());
    let left = ((end - now_ms.max(start)) as f64 / (end - start).max(1) as f64).clamp(0.0, 1.0);
    let spins_per_user = u64::from(c.limits.spins_per_user).clamp(1, 10_000);
    let users = c.expected_users.clamp(1, 100_000_000);
    let expected = (users as f64 * spins_per_user as f64 * left).round() as u64;
    let scaled = expected > MAX_PROJECTED_ATTEMPTS;
    let attempts = expected.min(MAX_PROJECTED_ATTEMPTS);
    // At least one shopper while any attempt is left; none once the window is over.
    let users = if attempts == 0 {
        0
    } else {
        (attempts / spins_per_user).max(1)
    };
    ProjectionInfo {
        users,
        spins_per_user,
        arrival: Arrival::Uniform.as_str().to_owned(),
        runs: 1,
        seed: 1,
        attempts: users * spins_per_user,
        scaled,
    }
}

/// Runs the projection of `c` from the live state (or reuses the last one of
/// the same config and awards, if recent).
async fn projection(c: Campaign, live: &LiveState) -> ApiResult<Arc<Projected>> {
    let mut awarded: Vec<(String, i64)> =
        live.awarded.iter().map(|(k, v)| (k.clone(), *v)).collect();
    awarded.sort();
    let key: CacheKey = (c.id.to_string(), live.hash.clone(), awarded);
    if let Some((at, k, p)) = PROJECTIONS
        .lock()
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("projection cache poisoned")))?
        .get(c.id.as_str())
        && *k == key
        && at.elapsed() < PROJECTION_TTL
    {
        return Ok(p.clone());
    }
    let now_ms = live.draw.now_ms;
    let info = projection_options(&c, now_ms);
    if info.attempts == 0 {
        // The window is over: nothing left to project.
        return Ok(Arc::new((info, BTreeMap::new())));
    }
    let resume = Resume {
        at_ms: now_ms,
        prizes: c
            .prizes
            .iter()
            .map(|p| {
                let id = p.id.as_str();
                let awarded = live.awarded.get(id).copied().unwrap_or(0).max(0) as u64;
                let remaining = live.stock.get(id).copied().filter(|n| *n >= 0);
                (id.to_owned(), (awarded, remaining.map(|n| n as u64)))
            })
            .collect(),
        spent: live.draw.spent,
    };
    let codes = c
        .prizes
        .iter()
        .filter(|p| matches!(p.stock, crate::campaign::model::Stock::Codes))
        .map(|p| {
            let left = live.stock.get(p.id.as_str()).copied().unwrap_or(0).max(0) as u64;
            (p.id.to_string(), left)
        })
        .collect();
    let options = Options {
        users: info.users,
        spins_per_user: info.spins_per_user,
        arrival: Arrival::Uniform,
        runs: info.runs,
        seed: info.seed,
        samples: 100,
        grants_per_user: 1.0,
        spins_per_grant: 1,
        codes,
    };
    let _turn = SIMULATING
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let start_ms = c.starts_at.timestamp_millis();
    let report = web::block(move || simulate_from(&c, &options, &resume))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("projection: {e}")))?;
    let mut series = BTreeMap::new();
    for b in &report.burn_down {
        let before = live.awarded.get(&b.id).copied().unwrap_or(0).max(0) as u64;
        let points = b
            .points
            .iter()
            .filter(|(t, _)| (start_ms + (*t * 1000.0) as i64) >= now_ms - 1)
            .map(|(t, left)| Point {
                at: rfc3339(start_ms + (*t * 1000.0) as i64),
                units: before + (b.stock - left),
            })
            .collect();
        series.insert(b.id.clone(), points);
    }
    let projected = Arc::new((info, series));
    if let Ok(mut cache) = PROJECTIONS.lock() {
        cache.retain(|_, (at, _, _)| at.elapsed() < PROJECTION_TTL);
        cache.insert(key.0.clone(), (Instant::now(), key, projected.clone()));
    }
    Ok(projected)
}

/// Settled units per prize and bucket of draw time since `start_ms`.
async fn settled(
    state: &AppState,
    campaign: &str,
    start_ms: i64,
    bucket_ms: i64,
) -> ApiResult<Vec<(String, i64, i64)>> {
    let campaign = campaign.to_owned();
    crate::store::pg::within(&state.pg, state.pg_query_limit, move |c| {
        Box::pin(async move {
            sqlx::query_as::<_, (String, i64, i64)>(
                "SELECT prize_id, ((stream_ms - $2) / $3)::bigint AS bucket, count(*)::bigint \
                 FROM rewards WHERE campaign_id = $1 GROUP BY prize_id, bucket ORDER BY prize_id, bucket",
            )
            .bind(&campaign)
            .bind(start_ms)
            .bind(bucket_ms)
            .fetch_all(c)
            .await
        })
    })
    .await
    .map_err(|e| ApiError::Unavailable(anyhow::Error::new(e).context("querying PostgreSQL")))
}

/// The burn-down of the live campaign of `path`.
async fn burndown_of(state: &AppState, path: &CampaignPath) -> ApiResult<Burndown> {
    let id = path.id()?;
    let live = state
        .redis
        .live_state(id)
        .await?
        .ok_or_else(|| path.not_found())?;
    let (c, _) = state.campaign_parser.parse(live.yaml.clone()).await?;
    let now_ms = live.draw.now_ms;
    let (start, end) = (c.starts_at.timestamp_millis(), c.ends_at.timestamp_millis());
    let until = now_ms.clamp(start, end);
    let bucket_ms = ((until - start) / MAX_BUCKETS).max(1000);
    let rows = settled(state, id.as_str(), start, bucket_ms).await?;
    let model = Model::new(&c);
    let window = model.window();
    let projected = projection(c.clone(), &live).await?;
    let view = super::admin::live_campaign(id, live.clone());
    let prizes = view
        .prizes
        .iter()
        .filter(|p| !p.retired && p.stock.is_some())
        .map(|p| {
            let mut per_bucket: BTreeMap<i64, i64> = BTreeMap::new();
            for (_, b, n) in rows.iter().filter(|(prize, _, _)| *prize == p.id) {
                *per_bucket.entry(*b).or_default() += n;
            }
            let buckets = (until - start + bucket_ms - 1) / bucket_ms;
            let mut total = 0u64;
            let mut settled = vec![Point {
                at: rfc3339(start),
                units: 0,
            }];
            for b in 0..buckets.max(0) {
                total += per_bucket.get(&b).copied().unwrap_or(0).max(0) as u64;
                settled.push(Point {
                    at: rfc3339((start + (b + 1) * bucket_ms).min(until)),
                    units: total,
                });
            }
            let released_line = model
                .prizes
                .iter()
                .find(|m| m.entry.id == p.id && m.release.is_paced())
                .map(|m| {
                    (0..=RELEASE_POINTS)
                        .map(|k| {
                            let at = start + (end - 1 - start) * k / RELEASE_POINTS;
                            Point {
                                at: rfc3339(at),
                                units: released(&m.release, m.configured, window, at),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            PrizeBurndown {
                id: p.id.clone(),
                name: p.name.clone(),
                stock: p.stock.unwrap_or(0).max(0) as u64,
                awarded: p.awarded.max(0) as u64,
                remaining: p.remaining.unwrap_or(0).max(0) as u64,
                settled,
                released: released_line,
                projected: projected.1.get(&p.id).cloned().unwrap_or_default(),
            }
        })
        .collect();
    Ok(Burndown {
        campaign_id: id.to_string(),
        name: c.name.clone(),
        version: live.version,
        timezone: c.timezone.name().to_owned(),
        starts_at: rfc3339(start),
        ends_at: rfc3339(end),
        as_of: rfc3339(now_ms),
        bucket_secs: (bucket_ms / 1000) as u64,
        prizes,
        projection: projected.0.clone(),
    })
}

/// The burn-down of a live campaign: per stock-bounded prize, units settled
/// over time, the release line of a paced prize, and the projection to the end.
#[utoipa::path(
    tag = "admin",
    params(("id" = String, Path, description = "Campaign id")),
    responses(
        RoleGatedProblems,
        (status = 200, description = "Per stock-bounded prize: settled units over time (bucketed), the release line, the projection to the end", body = Burndown),
    ),
    security(("bearer" = []))
)]
#[get("/v1/admin/campaigns/{id}/burndown")]
pub async fn get_burndown(
    state: web::Data<AppState>,
    caller: Caller,
    path: CampaignPath,
) -> ApiResult<web::Json<Burndown>> {
    caller.require(Role::Marketing)?;
    Ok(web::Json(burndown_of(&state, &path).await?))
}

/// The burn-down as an SVG chart (the console shows it): per prize the share
/// of its stock settled (solid), released (dashed, paced prizes) and
/// projected to the end (dotted).
#[utoipa::path(
    tag = "admin",
    params(("id" = String, Path, description = "Campaign id")),
    responses(
        RoleGatedProblems,
        (status = 200, description = "The burn-down chart", body = String, content_type = "image/svg+xml"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/admin/campaigns/{id}/burndown.svg")]
pub async fn get_burndown_svg(
    state: web::Data<AppState>,
    caller: Caller,
    path: CampaignPath,
) -> ApiResult<HttpResponse> {
    caller.require(Role::Marketing)?;
    let b = burndown_of(&state, &path).await?;
    let svg = chart::svg(&b).map_err(ApiError::Internal)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "image/svg+xml"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(svg))
}

mod chart {
    use super::{Burndown, Point};
    use crate::simulate::plot::PALETTE;
    use plotters::prelude::*;

    const WIDTH: u32 = 1100;
    const HEIGHT: u32 = 460;
    const INK: RGBColor = RGBColor(0x1A, 0x1A, 0x1A);
    const MUTED: RGBColor = RGBColor(0x4D, 0x4D, 0x4D);
    const GRID: RGBColor = RGBColor(0xD9, 0xD9, 0xD9);

    fn ms(at: &str) -> f64 {
        chrono::DateTime::parse_from_rfc3339(at)
            .map(|t| t.timestamp_millis() as f64)
            .unwrap_or(0.0)
    }

    fn share(points: &[Point], stock: u64, start: f64) -> Vec<(f64, f64)> {
        let stock = stock.max(1) as f64;
        points
            .iter()
            .map(|p| ((ms(&p.at) - start) / 1000.0, p.units as f64 * 100.0 / stock))
            .collect()
    }

    /// The chart of `b` as an SVG document.
    pub fn svg(b: &Burndown) -> anyhow::Result<String> {
        let mut out = String::new();
        draw(b, &mut out).map_err(|e| anyhow::anyhow!("drawing the burn-down: {e}"))?;
        Ok(out)
    }

    fn draw(b: &Burndown, out: &mut String) -> Result<(), Box<dyn std::error::Error>> {
        let tz: chrono_tz::Tz = b.timezone.parse().unwrap_or(chrono_tz::UTC);
        let start = ms(&b.starts_at);
        let end_secs = ((ms(&b.ends_at) - start) / 1000.0).max(1.0);
        let root = SVGBackend::with_string(out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.margin(10, 10, 10, 10);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{}: share of stock awarded", b.name),
                ("sans-serif", 20).into_font().color(&INK),
            )
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..end_secs, 0.0..105.0)?;
        let label = |secs: &f64| {
            let t = chrono::DateTime::from_timestamp_millis((start + secs * 1000.0) as i64)
                .unwrap_or_default()
                .with_timezone(&tz);
            t.format("%d %b %H:%M").to_string()
        };
        chart
            .configure_mesh()
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .axis_style(MUTED)
            .x_labels(6)
            .x_label_formatter(&label)
            .y_labels(6)
            .y_label_formatter(&|y| format!("{y:.0} %"))
            .y_desc("share of stock")
            .label_style(("sans-serif", 13).into_font().color(&MUTED))
            .draw()?;
        let now = (ms(&b.as_of) - start) / 1000.0;
        if (0.0..=end_secs).contains(&now) {
            chart.draw_series(LineSeries::new(
                [(now, 0.0), (now, 105.0)],
                MUTED.stroke_width(1),
            ))?;
        }
        for (i, p) in b.prizes.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    share(&p.settled, p.stock, start),
                    colour.stroke_width(3),
                ))?
                .label(format!("{}: settled", p.name))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(3))
                });
            if !p.released.is_empty() {
                chart
                    .draw_series(DashedLineSeries::new(
                        share(&p.released, p.stock, start),
                        8,
                        5,
                        colour.stroke_width(1),
                    ))?
                    .label(format!("{}: released", p.name))
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(1))
                    });
            }
            if !p.projected.is_empty() {
                chart
                    .draw_series(DashedLineSeries::new(
                        share(&p.projected, p.stock, start),
                        2,
                        4,
                        colour.stroke_width(2),
                    ))?
                    .label(format!("{}: projected", p.name))
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2))
                    });
            }
        }
        if !b.prizes.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(GRID)
                .label_font(("sans-serif", 13).into_font().color(&INK))
                .draw()?;
        }
        root.present()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale(users: u64, spins: u32) -> Campaign {
        let yaml = format!(
            "id: s\nname: S\nstarts_at: 2026-11-01T00:00:00Z\nends_at: 2026-11-03T00:00:00Z\n\
             expected_users: {users}\nlimits:\n  spins_per_user: {spins}\nfallback: none\nprizes:\n\
             \x20 - {{id: gold, name: G, weight: 1, stock: 5, value: {{amount: \"1.00\", currency: INR}}}}\n\
             \x20 - {{id: none, name: N, weight: 9, stock: unlimited, value: {{amount: \"0\", currency: INR}}}}\n"
        );
        crate::campaign::parse_campaign(&yaml).unwrap()
    }

    #[test]
    fn the_projection_takes_the_rest_of_the_expected_attempts() {
        let c = sale(1000, 4);
        let start = c.starts_at.timestamp_millis();
        let day = 86_400_000;
        let half = projection_options(&c, start + day);
        assert_eq!((half.users, half.attempts, half.scaled), (500, 2000, false));
        let before = projection_options(&c, start - day);
        assert_eq!(before.attempts, 4000, "the whole sale before it starts");
        let over = projection_options(&c, start + 3 * day);
        assert_eq!((over.users, over.attempts), (0, 0), "nothing left");
        let big = projection_options(&sale(10_000_000, 10), start);
        assert!(big.scaled);
        assert_eq!(big.attempts, MAX_PROJECTED_ATTEMPTS);
    }
}
