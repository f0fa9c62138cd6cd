//! Reading a campaign's live state in one atomic snapshot (for plan and admin),
//! and what the draw decides from at an instant (admin, the gauge sampler).

use super::keys::CampaignKeys;
use super::table::TableEntry;
use super::{RedisStore, StoreError};
use crate::domain::CampaignId;
use std::collections::HashMap;

/// What Redis holds for a campaign right now.
#[derive(Debug, Clone)]
pub struct LiveState {
    pub version: u64,
    /// Hash of the canonical config last applied.
    pub hash: String,
    /// The YAML text last applied.
    pub yaml: String,
    pub table: Vec<TableEntry>,
    pub buckets: u64,
    /// Remaining units per prize id; -1 = unlimited.
    pub stock: HashMap<String, i64>,
    /// Configured units per prize id; -1 = unlimited.
    pub initial: HashMap<String, i64>,
    pub awarded: HashMap<String, i64>,
    /// The same snapshot as the draw reads it (budget, value awarded, days).
    pub draw: DrawState,
}

/// What lua/spin.lua decides a prize from, read in one atomic snapshot: the
/// views of each prize now (`http::pacing`) compute available units, odds and
/// releases from it.
#[derive(Debug, Clone)]
pub struct DrawState {
    /// Redis's clock (the draw's), Unix ms, read just after the snapshot.
    pub now_ms: i64,
    /// The canonical config JSON (see `campaign::canonical`).
    pub config: serde_json::Value,
    /// The prize table with each entry's units left (-1 = unlimited) and
    /// units awarded.
    pub prizes: Vec<(TableEntry, i64, u64)>,
    /// The budget in value units (`Money::units`, meta `bud`), if there is one.
    pub budget: Option<u64>,
    /// Value units awarded so far, every award counted (meta `bs`).
    pub spent: u64,
    /// The start of each campaign day, Unix ms (`pw:{C}:days`).
    pub day_starts: Vec<i64>,
}

/// The meta fields a [`DrawState`] needs.
const DRAW_FIELDS: [&str; 4] = ["cfg", "tbl", "bud", "bs"];

/// A [`DrawState`] from the fields read (`cfg`, `tbl`, `bud`, `bs` of meta).
fn draw_state(
    key: &str,
    field: impl Fn(&str) -> Option<String>,
    stock: &HashMap<String, i64>,
    awarded: &HashMap<String, i64>,
    days: Vec<i64>,
    now_ms: i64,
) -> Result<DrawState, StoreError> {
    let bad = |what: &str| StoreError::Protocol(format!("{key}: {what}"));
    let config = serde_json::from_str(&field("cfg").ok_or_else(|| bad("no field `cfg`"))?)
        .map_err(|_| bad("`cfg` is not JSON"))?;
    let table: Vec<TableEntry> =
        serde_json::from_str(&field("tbl").ok_or_else(|| bad("no field `tbl`"))?)
            .map_err(|_| bad("`tbl` is not JSON"))?;
    let number = |name: &str| field(name).and_then(|v| v.parse::<i64>().ok());
    let prizes = table
        .into_iter()
        .map(|e| {
            let left = stock.get(&e.id).copied().unwrap_or(0);
            let won = u64::try_from(awarded.get(&e.id).copied().unwrap_or(0)).unwrap_or(0);
            (e, left, won)
        })
        .collect();
    Ok(DrawState {
        now_ms,
        config,
        prizes,
        budget: number("bud").and_then(|b| u64::try_from(b).ok()),
        spent: number("bs")
            .and_then(|b| u64::try_from(b).ok())
            .unwrap_or(0),
        day_starts: days,
    })
}

/// Redis's clock in Unix ms (`TIME`).
async fn redis_now_ms(conn: &mut impl redis::aio::ConnectionLike) -> Result<i64, StoreError> {
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(conn).await?;
    Ok(secs * 1000 + micros / 1000)
}

impl RedisStore {
    /// The live state of `id`, or `None` if it was never applied.
    pub async fn live_state(&self, id: &CampaignId) -> Result<Option<LiveState>, StoreError> {
        let k = CampaignKeys::new(id);
        // Bytes: meta also holds the binary prize table spin.lua reads (`num`, `ws`, `p:<i>`, `pfb`).
        type Maps = (
            HashMap<String, Vec<u8>>,
            HashMap<String, i64>,
            HashMap<String, i64>,
            HashMap<String, i64>,
            Vec<i64>,
        );
        let mut conn = self.conn();
        let (meta, stock, initial, awarded, days): Maps = redis::pipe()
            .atomic()
            .hgetall(&k.meta)
            .hgetall(&k.stock)
            .hgetall(&k.initial)
            .hgetall(&k.awarded)
            .zrange(&k.days, 0, -1)
            .query_async(&mut conn)
            .await?;
        if meta.is_empty() {
            return Ok(None);
        }
        let now_ms = redis_now_ms(&mut conn).await?;
        let text = |name: &str| {
            meta.get(name)
                .and_then(|v| String::from_utf8(v.clone()).ok())
        };
        let draw = draw_state(&k.meta, text, &stock, &awarded, days, now_ms)?;
        let field = |name: &str| {
            text(name).ok_or_else(|| StoreError::Protocol(format!("{}: no field `{name}`", k.meta)))
        };
        let number = |name: &str| {
            field(name)?
                .parse::<u64>()
                .map_err(|_| StoreError::Protocol(format!("{}: `{name}` is not a number", k.meta)))
        };
        let table = serde_json::from_str(&field("tbl")?)
            .map_err(|_| StoreError::Protocol(format!("{}: `tbl` is not JSON", k.meta)))?;
        Ok(Some(LiveState {
            version: number("ver")?,
            hash: field("hash")?,
            yaml: field("yaml")?,
            table,
            buckets: number("nb")?,
            stock,
            initial,
            awarded,
            draw,
        }))
    }

    /// What the draw of `id` decides from now, or `None` if it was never
    /// applied: a lighter read than [`Self::live_state`] (no YAML), for the
    /// gauge sampler.
    pub async fn draw_state(&self, id: &CampaignId) -> Result<Option<DrawState>, StoreError> {
        let k = CampaignKeys::new(id);
        type Read = (
            Vec<Option<String>>,
            HashMap<String, i64>,
            HashMap<String, i64>,
            Vec<i64>,
        );
        let mut conn = self.conn();
        let (meta, stock, awarded, days): Read = redis::pipe()
            .atomic()
            .cmd("HMGET")
            .arg(&k.meta)
            .arg(&DRAW_FIELDS[..])
            .hgetall(&k.stock)
            .hgetall(&k.awarded)
            .zrange(&k.days, 0, -1)
            .query_async(&mut conn)
            .await?;
        if meta.first().is_none_or(Option::is_none) {
            return Ok(None);
        }
        let now_ms = redis_now_ms(&mut conn).await?;
        let field = |name: &str| {
            DRAW_FIELDS
                .iter()
                .position(|f| *f == name)
                .and_then(|i| meta.get(i).cloned().flatten())
        };
        draw_state(&k.meta, field, &stock, &awarded, days, now_ms).map(Some)
    }

    /// The applied version of each campaign and its grants counter (`None`
    /// where there is none). One read per campaign, all in flight at once:
    /// campaigns live on different cluster slots, so they cannot share a pipeline.
    pub async fn versions(
        &self,
        ids: &[CampaignId],
    ) -> Result<Vec<(Option<i64>, Option<i64>)>, StoreError> {
        let reads = ids.iter().map(|id| {
            let mut conn = self.conn();
            let meta = CampaignKeys::new(id).meta;
            async move {
                redis::cmd("HMGET")
                    .arg(meta)
                    .arg("ver")
                    .arg("gv")
                    .query_async::<(Option<i64>, Option<i64>)>(&mut conn)
                    .await
            }
        });
        Ok(futures_util::future::try_join_all(reads).await?)
    }
}
