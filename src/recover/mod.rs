//! Redis crash recovery: a campaign's stock, awarded counts, user counters and
//! idempotency records rebuilt from the ledger before its draws resume.
//!
//! With `appendfsync everysec` a machine crash loses up to the last second of
//! Redis writes (a killed Redis process alone loses nothing: its writes are in
//! the kernel), and a failover loses what the replica had not received. The
//! settler may already have written some of those draws to PostgreSQL. Redis
//! would then believe more stock remains than really does, and would forget
//! quota counts and the idempotency records that make a retry replay.
//!
//! So a campaign draws only while its `epoch` matches the Redis process it lives
//! on (lua/recover.lua explains the epoch); after a restart or a failover
//! lua/spin.lua answers `recovering` (503) to new draws until [`rebuild`] has:
//! 1. written every draw still in the campaign's stream to the ledger (the ledger
//!    then holds every draw either side remembers: the same insert as the settler,
//!    so nothing is in flight any more);
//! 2. found the settled draws Redis forgot: ledger rows after the stream's last
//!    generated id (Redis keeps a prefix of its history, and stream ids only grow);
//! 3. raised those users' counters to what the ledger counts and restored their
//!    idempotency records, so a retry replays instead of drawing again;
//! 4. certified: awarded raised to the ledger's count, stock lowered to
//!    max(0, configured − awarded), the stream's last id moved past the ledger's,
//!    epoch set. Draws resume.
//!
//! Every step only moves Redis towards the ledger and may run twice, so a
//! recovery that stops half-way is simply run again, and two at once are
//! harmless. Any settler runs it by itself ([`watch`]), as does an apply;
//! `prizewheel recover CAMPAIGN` runs it on demand.
//!
//! What no recovery can bring back: a draw that was answered but neither synced
//! to the AOF nor settled. Under durability `fsync-wins` no such draw is a
//! stock-bounded win.

use crate::domain::CampaignId;
use crate::domain::StreamId;
use crate::draw::model::{Counters, day_index};
use crate::draw::{fingerprint, record_field, user_hash};
use crate::settle::{Shutdown, ledger, stream};
use crate::store::pg::within;
use crate::store::redis::StoreError;
use crate::store::redis::connection::{RedisConn, RedisTarget, Timeouts};
use crate::store::redis::keys::CampaignKeys;
use crate::store::redis::recovery::{self, Certified, CounterFix, RecordFix, RecoveryState};
use crate::store::redis::table::TableEntry;
use sqlx::PgPool;
use std::collections::HashMap;
use std::time::Duration;

const DAY_MS: i64 = 86_400_000;
/// As lua/spin.lua: records live until two UTC days after theirs, plus an hour.
const RECORD_TTL_SLACK_S: i64 = 3600;
/// Stream entries per read while draining, users per ledger query, fixes per script call.
const PAGE: usize = 1000;
const USERS_PER_QUERY: usize = 500;
const FIXES_PER_CALL: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error(transparent)]
    Redis(#[from] StoreError),
    #[error("postgres: {0}")]
    Pg(#[from] sqlx::Error),
    #[error("no campaign `{0}` in Redis (apply it first)")]
    NoCampaign(String),
    #[error("Redis restarted while the recovery ran; run it again")]
    Restarted,
}

impl From<redis::RedisError> for RecoverError {
    fn from(e: redis::RedisError) -> Self {
        RecoverError::Redis(e.into())
    }
}

/// What a recovery did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub campaign: String,
    /// Stream entries (draws and applies) written to the ledger first.
    pub drained: u64,
    /// Settled draws Redis had forgotten.
    pub forgotten: u64,
    /// Users whose counters were raised to the ledger's.
    pub counters: i64,
    /// Idempotency records restored.
    pub records: i64,
    /// Units added to awarded counts.
    pub awarded_raised: i64,
    /// Units taken from remaining stock.
    pub stock_lowered: i64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "campaign {}: recovered ({} stream entries settled first; {} settled draws Redis had forgotten: {} users' counters raised, {} idempotency records restored, awarded +{}, stock -{})",
            self.campaign,
            self.drained,
            self.forgotten,
            self.counters,
            self.records,
            self.awarded_raised,
            self.stock_lowered
        )
    }
}

/// Rebuilds `campaign` if it awaits recovery; `None` when it does not. Each
/// PostgreSQL step takes at most `pg_limit` (`store::pg::within`); a step that
/// runs out of time fails the rebuild, which is simply run again.
pub async fn recover_if_needed(
    conn: &mut RedisConn,
    pg: &PgPool,
    pg_limit: Duration,
    campaign: &CampaignId,
) -> Result<Option<Report>, RecoverError> {
    let state = recovery::state(conn, campaign).await?;
    if !state.awaits_recovery() {
        return Ok(None);
    }
    rebuild(conn, pg, pg_limit, campaign, &state)
        .await
        .map(Some)
}

/// Stops new draws of `campaign` and rebuilds it, whether or not Redis lost
/// anything (an operator's `prizewheel recover`).
pub async fn recover(
    conn: &mut RedisConn,
    pg: &PgPool,
    pg_limit: Duration,
    campaign: &CampaignId,
) -> Result<Report, RecoverError> {
    recovery::pause(conn, campaign).await?;
    let state = recovery::state(conn, campaign).await?;
    rebuild(conn, pg, pg_limit, campaign, &state).await
}

/// Steps 1–4 of the module comment, with new draws stopped.
async fn rebuild(
    conn: &mut RedisConn,
    pg: &PgPool,
    pg_limit: Duration,
    campaign: &CampaignId,
    state: &RecoveryState,
) -> Result<Report, RecoverError> {
    let k = CampaignKeys::new(campaign);
    let live = Live::read(conn, &k).await?;
    let live = live.ok_or_else(|| RecoverError::NoCampaign(campaign.to_string()))?;
    let mut report = Report {
        campaign: campaign.to_string(),
        drained: drain(conn, pg, pg_limit, campaign, &k.results).await?,
        ..Report::default()
    };

    // A stream Redis lost entirely remembers nothing: every settled draw is forgotten.
    let known = state.last_id.unwrap_or(StreamId { ms: 0, seq: 0 });
    let id = campaign.to_string();
    let LedgerView {
        settled,
        ledger_last,
        forgotten_users,
    } = within(pg, pg_limit, move |c| {
        Box::pin(async move { ledger_view(c, &id, known).await })
    })
    .await?;
    for users in forgotten_users.chunks(USERS_PER_QUERY) {
        let rows = user_draws(pg, pg_limit, campaign, users).await?;
        let (counters, records) = live.fixes(campaign, &rows, known);
        report.forgotten += rows.iter().filter(|r| r.stream() > known).count() as u64;
        for chunk in counters.chunks(FIXES_PER_CALL) {
            report.counters += recovery::restore_counters(conn, campaign, chunk).await?;
        }
        for chunk in records.chunks(FIXES_PER_CALL) {
            report.records += recovery::restore_records(conn, campaign, chunk).await?;
        }
    }

    let ledger_last = ledger_last.map(|(ms, seq)| StreamId { ms, seq });
    match recovery::certify(conn, campaign, state.lastsave, ledger_last, &settled).await? {
        Certified::Done { raised, lowered } => {
            report.awarded_raised = raised;
            report.stock_lowered = lowered;
            Ok(report)
        }
        Certified::Restarted => Err(RecoverError::Restarted),
    }
}

/// Writes every entry of the stream to the ledger (as the settler would; it
/// still settles and acknowledges them itself). Returns how many were written.
async fn drain(
    conn: &mut RedisConn,
    pg: &PgPool,
    pg_limit: Duration,
    campaign: &CampaignId,
    stream: &str,
) -> Result<u64, RecoverError> {
    let mut after = None;
    let mut drained = 0;
    loop {
        let page = stream::range_after(conn, stream, after, PAGE).await?;
        let Some(last) = page.last().and_then(|(id, _)| StreamId::parse(id)) else {
            return Ok(drained);
        };
        let entries = page.iter().map(|(id, fields)| (id.as_str(), fields));
        // What does not parse or what the ledger refuses, the settler dead-letters.
        ledger::write_stream_entries(pg, pg_limit, campaign.as_str(), entries, |_| {}).await?;
        drained += page.len() as u64;
        if page.len() < PAGE {
            return Ok(drained);
        }
        after = Some(last);
    }
}

/// What the rebuild reads of the ledger, besides the forgotten users' draws.
struct LedgerView {
    /// Units per prize.
    settled: Vec<(String, i64)>,
    /// The last stream id settled, if any.
    ledger_last: Option<(i64, i64)>,
    /// Users with a settled draw after `known` (Redis's last stream id).
    forgotten_users: Vec<String>,
}

async fn ledger_view(
    c: &mut sqlx::PgConnection,
    campaign: &str,
    known: StreamId,
) -> Result<LedgerView, sqlx::Error> {
    let settled = sqlx::query_as(
        "SELECT prize_id, count(*) FROM rewards WHERE campaign_id = $1 GROUP BY prize_id",
    )
    .bind(campaign)
    .fetch_all(&mut *c)
    .await?;
    let ledger_last = sqlx::query_as(
        "SELECT stream_ms, stream_seq FROM rewards WHERE campaign_id = $1
         ORDER BY stream_ms DESC, stream_seq DESC LIMIT 1",
    )
    .bind(campaign)
    .fetch_optional(&mut *c)
    .await?;
    let forgotten_users = sqlx::query_scalar(
        "SELECT DISTINCT user_id FROM rewards
         WHERE campaign_id = $1 AND (stream_ms, stream_seq) > ($2, $3)",
    )
    .bind(campaign)
    .bind(known.ms)
    .bind(known.seq)
    .fetch_all(&mut *c)
    .await?;
    Ok(LedgerView {
        settled,
        ledger_last,
        forgotten_users,
    })
}

/// One settled draw of a user whose state Redis may have lost.
#[derive(Debug, sqlx::FromRow)]
struct Draw {
    user_id: String,
    spin_id: uuid::Uuid,
    prize_id: String,
    idempotency_key: String,
    context: Option<String>,
    spun_ms: i64,
    stream_ms: i64,
    stream_seq: i64,
}

impl Draw {
    fn stream(&self) -> StreamId {
        StreamId {
            ms: self.stream_ms,
            seq: self.stream_seq,
        }
    }
}

/// Every draw of `users`, per user in draw order.
async fn user_draws(
    pg: &PgPool,
    pg_limit: Duration,
    campaign: &CampaignId,
    users: &[String],
) -> Result<Vec<Draw>, sqlx::Error> {
    let (id, users) = (campaign.to_string(), users.to_vec());
    within(pg, pg_limit, move |c| {
        Box::pin(async move {
            sqlx::query_as(
                "SELECT user_id, spin_id, prize_id, idempotency_key, context::text AS context,
                        (extract(epoch FROM spun_at) * 1000)::bigint AS spun_ms, stream_ms, stream_seq
                 FROM rewards WHERE campaign_id = $1 AND user_id = ANY($2)
                 ORDER BY user_id, stream_ms, stream_seq",
            )
            .bind(&id)
            .bind(&users)
            .fetch_all(c)
            .await
        })
    })
    .await
}

/// What the rebuild needs from the campaign's live config.
struct Live {
    limit: u32,
    daily_limit: Option<u32>,
    buckets: u64,
    /// 1-based position of each prize id in the draw table (what records hold).
    position: HashMap<String, u16>,
    day_starts: Vec<i64>,
}

impl Live {
    async fn read(conn: &mut RedisConn, k: &CampaignKeys) -> Result<Option<Live>, RecoverError> {
        type Meta = (Option<u32>, Option<u32>, Option<u64>, Option<String>);
        let ((limit, daily, buckets, table), days): (Meta, Vec<i64>) = redis::pipe()
            .atomic()
            .cmd("HMGET")
            .arg(&k.meta)
            .arg(&["lim", "dlim", "nb", "tbl"])
            .zrange(&k.days, 0, -1)
            .query_async(conn)
            .await?;
        let (Some(limit), Some(daily), Some(buckets), Some(table)) = (limit, daily, buckets, table)
        else {
            return Ok(None);
        };
        let table: Vec<TableEntry> = serde_json::from_str(&table).map_err(|e| {
            StoreError::Protocol(format!("{}: `tbl` is not a prize table: {e}", k.meta))
        })?;
        Ok(Some(Live {
            limit,
            daily_limit: (daily > 0).then_some(daily),
            buckets: buckets.max(1),
            position: table
                .into_iter()
                .enumerate()
                .map(|(i, e)| (e.id, (i + 1) as u16))
                .collect(),
            day_starts: days,
        }))
    }

    /// The counters of each user of `rows` (all their draws, in order) and the
    /// records of their draws after `known`, the last stream id Redis kept.
    fn fixes(
        &self,
        campaign: &CampaignId,
        rows: &[Draw],
        known: StreamId,
    ) -> (Vec<CounterFix>, Vec<RecordFix>) {
        let today_utc = chrono::Utc::now().timestamp_millis().div_euclid(DAY_MS);
        let mut counters: Vec<CounterFix> = Vec::new();
        let mut records = Vec::new();
        let mut c = Counters::default();
        for (i, d) in rows.iter().enumerate() {
            if i == 0 || rows[i - 1].user_id != d.user_id {
                c = Counters::default();
            }
            c.count(day_index(&self.day_starts, d.spun_ms));
            let utc_day = d.spun_ms.div_euclid(DAY_MS);
            let bucket = u64::from(user_hash(&d.user_id)) % self.buckets;
            // Records older than yesterday have expired anyway.
            if d.stream() > known
                && utc_day >= today_utc - 1
                && let Some(&position) = self.position.get(&d.prize_id)
            {
                records.push(RecordFix {
                    key: CampaignKeys::records(campaign, utc_day, bucket),
                    field: record_field(&d.user_id, &d.idempotency_key),
                    record: pack_record(
                        &fingerprint(&canonical_context(d.context.as_deref())),
                        &d.spin_id,
                        position,
                        c.spins_left(self.limit, self.daily_limit),
                    ),
                    expire_at: (utc_day + 2) * 86_400 + RECORD_TTL_SLACK_S,
                });
            }
            if rows.get(i + 1).is_none_or(|n| n.user_id != d.user_id) {
                counters.push(CounterFix {
                    user: d.user_id.clone(),
                    bucket,
                    total: u64::from(c.total),
                    day_count: u64::from(c.day_count),
                    day_index: c.day_index.max(0) as u64,
                });
            }
        }
        (counters, records)
    }
}

/// The client context as the service hashed it (canonical JSON, or empty), from
/// the ledger's jsonb text.
fn canonical_context(context: Option<&str>) -> String {
    context
        .and_then(|t| crate::domain::context::canonical(t.as_bytes(), usize::MAX).ok())
        .unwrap_or_default()
}

/// An idempotency record as lua/spin.lua writes it: fingerprint (8) .. spin id
/// (16) .. prize position (u16) .. spins left (u32), big-endian.
fn pack_record(fingerprint: &[u8; 8], spin_id: &uuid::Uuid, position: u16, left: u64) -> Vec<u8> {
    let mut r = Vec::with_capacity(30);
    r.extend_from_slice(fingerprint);
    r.extend_from_slice(spin_id.as_bytes());
    r.extend_from_slice(&position.to_be_bytes());
    r.extend_from_slice(&(left.min(u64::from(u32::MAX)) as u32).to_be_bytes());
    r
}

/// Recovers, by itself, every active campaign that awaits it: checked every
/// `every`, the campaign list re-read every `refresh`, each PostgreSQL step
/// within `pg_limit`. Runs beside each settler.
pub async fn watch(
    target: RedisTarget,
    pg: PgPool,
    every: Duration,
    refresh: Duration,
    pg_limit: Duration,
    mut shutdown: Shutdown,
) {
    let timeouts = Timeouts {
        connect: Duration::from_secs(2),
        response: Duration::from_secs(10),
    };
    let mut conn: Option<RedisConn> = None;
    let mut campaigns: Vec<CampaignId> = Vec::new();
    let mut listed = tokio::time::Instant::now() - refresh;
    while !*shutdown.borrow() {
        if listed.elapsed() >= refresh {
            let list = within(&pg, refresh, |c| Box::pin(ledger::active_campaigns(c)));
            match list.await {
                Ok(ids) => {
                    campaigns = ids
                        .iter()
                        .filter_map(|i| CampaignId::parse(i).ok())
                        .collect();
                    listed = tokio::time::Instant::now();
                }
                Err(e) => tracing::debug!(error = %e, "recovery watch: cannot list campaigns"),
            }
        }
        if conn.is_none() {
            conn = target.dedicated(timeouts).await.ok();
        }
        if let Some(c) = conn.as_mut() {
            for id in &campaigns {
                match recover_if_needed(c, &pg, pg_limit, id).await {
                    Ok(Some(report)) => tracing::warn!(campaign.id = %id, "{report}"),
                    Ok(None) => {}
                    Err(RecoverError::Redis(e)) => {
                        tracing::warn!(campaign.id = %id, error = %e, "recovery waits for Redis");
                        conn = None;
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(campaign.id = %id, error = %e, "recovery failed; retrying")
                    }
                }
            }
        }
        tokio::select! {
            _ = shutdown.changed() => {}
            _ = tokio::time::sleep(every) => {}
        }
    }
}
