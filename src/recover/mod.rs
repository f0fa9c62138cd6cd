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
//! 3. replayed those users' draws, grants and revocations, in draw order, to
//!    the state the ledger proves (counters and earned spins), and restored the
//!    idempotency records of their forgotten draws and the records of their
//!    forgotten grants and revocations, so a retry replays instead of drawing
//!    or granting again;
//! 4. certified: awarded raised to the ledger's count, stock lowered to
//!    max(0, configured − awarded), the value awarded (what the budget counts)
//!    raised to the ledger's sum, the stream's last id moved past the ledger's,
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

use crate::campaign::model::{EarnedSpins, Expiry};
use crate::domain::CampaignId;
use crate::domain::StreamId;
use crate::draw::grants::{grant_fingerprint, grant_hash};
use crate::draw::model::{Counters, day_index};
use crate::draw::{fingerprint, record_field, user_hash};
use crate::settle::{Shutdown, ledger, stream};
use crate::store::pg::within;
use crate::store::redis::StoreError;
use crate::store::redis::connection::{RedisConn, RedisTarget, Timeouts};
use crate::store::redis::keys::CampaignKeys;
use crate::store::redis::recovery::{
    self, Certified, CounterFix, GrantRecordFix, RecordFix, RecoveryState,
};
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
    /// Grant records restored or marked revoked.
    pub grant_records: i64,
    /// Codes of forgotten draws taken out of their pools again.
    pub codes_removed: i64,
    /// Units added to awarded counts.
    pub awarded_raised: i64,
    /// Units taken from remaining stock.
    pub stock_lowered: i64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "campaign {}: recovered ({} stream entries settled first; {} settled draws, grants and revocations Redis had forgotten: {} users' counters restored, {} idempotency records and {} grant records restored, {} prize codes taken out of their pools again, awarded +{}, stock -{})",
            self.campaign,
            self.drained,
            self.forgotten,
            self.counters,
            self.records,
            self.grant_records,
            self.codes_removed,
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
        spent,
        ledger_last,
        forgotten_users,
    } = within(pg, pg_limit, move |c| {
        Box::pin(async move { ledger_view(c, &id, known).await })
    })
    .await?;
    let versions = if forgotten_users.is_empty() {
        Vec::new()
    } else {
        earned_versions(pg, pg_limit, campaign).await?
    };
    for users in forgotten_users.chunks(USERS_PER_QUERY) {
        let events = user_events(pg, pg_limit, campaign, users).await?;
        let fixes = live.fixes(&k, &events, known, &versions);
        report.forgotten += events
            .in_order()
            .iter()
            .filter(|e| e.stream() > known)
            .count() as u64;
        for chunk in fixes.counters.chunks(FIXES_PER_CALL) {
            report.counters += recovery::restore_counters(conn, campaign, chunk).await?;
        }
        for chunk in fixes.records.chunks(FIXES_PER_CALL) {
            report.records += recovery::restore_records(conn, campaign, chunk).await?;
        }
        for chunk in fixes.grants.chunks(FIXES_PER_CALL) {
            report.grant_records += recovery::restore_grant_records(conn, campaign, chunk).await?;
        }
    }

    report.codes_removed = remove_forgotten_codes(conn, pg, pg_limit, campaign, known).await?;

    let ledger_last = ledger_last.map(|(ms, seq)| StreamId { ms, seq });
    let certified = recovery::certify(conn, campaign, state.lastsave, ledger_last, &settled, spent);
    match certified.await? {
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

/// Takes every code the ledger awarded after `known` (in draws Redis may have
/// forgotten, whose SPOP went with them) out of its pool before draws resume:
/// a code is never handed out twice. Earlier draws' codes left their pools
/// with the draw: a script's writes reach the AOF together. Pages in draw order.
async fn remove_forgotten_codes(
    conn: &mut RedisConn,
    pg: &PgPool,
    pg_limit: Duration,
    campaign: &CampaignId,
    known: StreamId,
) -> Result<i64, RecoverError> {
    let mut after = known;
    let mut removed = 0;
    loop {
        let id = campaign.to_string();
        let page: Vec<(String, String, i64, i64)> = within(pg, pg_limit, move |c| {
            Box::pin(async move {
                sqlx::query_as(
                    "SELECT prize_id, code, stream_ms, stream_seq FROM rewards
                     WHERE campaign_id = $1 AND code IS NOT NULL
                       AND (stream_ms, stream_seq) > ($2, $3)
                     ORDER BY stream_ms, stream_seq LIMIT $4",
                )
                .bind(&id)
                .bind(after.ms)
                .bind(after.seq)
                .bind(FIXES_PER_CALL as i64)
                .fetch_all(&mut *c)
                .await
            })
        })
        .await?;
        let Some(&(_, _, ms, seq)) = page.last() else {
            return Ok(removed);
        };
        let codes: Vec<(String, String)> = page.into_iter().map(|(p, c, _, _)| (p, c)).collect();
        removed += recovery::remove_codes(conn, campaign, &codes).await?;
        if codes.len() < FIXES_PER_CALL {
            return Ok(removed);
        }
        after = StreamId { ms, seq };
    }
}

/// What the rebuild reads of the ledger, besides the forgotten users' draws.
struct LedgerView {
    /// Units per prize.
    settled: Vec<(String, i64)>,
    /// The value of every reward, in `Money::units` (the budget's count),
    /// saturating as lua/spin.lua's.
    spent: i64,
    /// The last stream id settled (draws, grants, revocations), if any.
    ledger_last: Option<(i64, i64)>,
    /// Users with a settled draw, grant or revocation after `known` (Redis's
    /// last stream id).
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
    let spent = sqlx::query_scalar(
        "SELECT LEAST(coalesce(sum(amount), 0) * 10000, $2)::bigint FROM rewards WHERE campaign_id = $1",
    )
    .bind(campaign)
    .bind(crate::draw::model::SPENT_CAP as i64)
    .fetch_one(&mut *c)
    .await?;
    let ledger_last = sqlx::query_as(
        "SELECT stream_ms, stream_seq FROM (
             SELECT stream_ms, stream_seq FROM rewards WHERE campaign_id = $1
             UNION ALL SELECT stream_ms, stream_seq FROM grants WHERE campaign_id = $1
             UNION ALL SELECT stream_ms, stream_seq FROM grant_revocations WHERE campaign_id = $1
         ) settled ORDER BY stream_ms DESC, stream_seq DESC LIMIT 1",
    )
    .bind(campaign)
    .fetch_optional(&mut *c)
    .await?;
    let forgotten_users = sqlx::query_scalar(
        "SELECT user_id FROM rewards
         WHERE campaign_id = $1 AND (stream_ms, stream_seq) > ($2, $3)
         UNION SELECT user_id FROM grants
         WHERE campaign_id = $1 AND (stream_ms, stream_seq) > ($2, $3)
         UNION SELECT g.user_id FROM grant_revocations r
         JOIN grants g USING (campaign_id, grant_id)
         WHERE r.campaign_id = $1 AND (r.stream_ms, r.stream_seq) > ($2, $3)",
    )
    .bind(campaign)
    .bind(known.ms)
    .bind(known.seq)
    .fetch_all(&mut *c)
    .await?;
    Ok(LedgerView {
        settled,
        spent,
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
    /// The prize code the draw handed out, if any.
    code: Option<String>,
    spun_ms: i64,
    stream_ms: i64,
    stream_seq: i64,
}

/// One settled grant of such a user, with its revocation if it was revoked.
#[derive(Debug, sqlx::FromRow)]
struct GrantRow {
    user_id: String,
    grant_id: String,
    spins: i32,
    reason: Option<String>,
    grant_day: i32,
    stream_ms: i64,
    stream_seq: i64,
    revoked: Option<i32>,
    already_used: Option<i32>,
    lapsed: Option<i32>,
    revoked_ms: Option<i64>,
    revoke_ms: Option<i64>,
    revoke_seq: Option<i64>,
}

/// A user's settled event, in draw order.
#[derive(Debug)]
enum Event<'a> {
    Draw(&'a Draw),
    Grant(&'a GrantRow),
    /// The revocation of the grant, at its own place in the draw order.
    Revoke(&'a GrantRow, StreamId),
}

impl Event<'_> {
    fn user(&self) -> &str {
        match self {
            Event::Draw(d) => &d.user_id,
            Event::Grant(g) | Event::Revoke(g, _) => &g.user_id,
        }
    }

    fn stream(&self) -> StreamId {
        match self {
            Event::Draw(d) => StreamId {
                ms: d.stream_ms,
                seq: d.stream_seq,
            },
            Event::Grant(g) => StreamId {
                ms: g.stream_ms,
                seq: g.stream_seq,
            },
            Event::Revoke(_, at) => *at,
        }
    }
}

/// Every settled draw, grant and revocation of `users`.
struct UserEvents {
    draws: Vec<Draw>,
    grants: Vec<GrantRow>,
}

impl UserEvents {
    /// All of them, per user in draw order.
    fn in_order(&self) -> Vec<Event<'_>> {
        let mut events: Vec<Event> = self.draws.iter().map(Event::Draw).collect();
        for g in &self.grants {
            events.push(Event::Grant(g));
            if let (Some(ms), Some(seq)) = (g.revoke_ms, g.revoke_seq) {
                events.push(Event::Revoke(g, StreamId { ms, seq }));
            }
        }
        events.sort_by(|a, b| (a.user(), a.stream()).cmp(&(b.user(), b.stream())));
        events
    }
}

async fn user_events(
    pg: &PgPool,
    pg_limit: Duration,
    campaign: &CampaignId,
    users: &[String],
) -> Result<UserEvents, sqlx::Error> {
    let (id, users) = (campaign.to_string(), users.to_vec());
    within(pg, pg_limit, move |c| {
        Box::pin(async move {
            let draws = sqlx::query_as(
                "SELECT user_id, spin_id, prize_id, idempotency_key, context::text AS context, code,
                        (extract(epoch FROM spun_at) * 1000)::bigint AS spun_ms, stream_ms, stream_seq
                 FROM rewards WHERE campaign_id = $1 AND user_id = ANY($2)",
            )
            .bind(&id)
            .bind(&users)
            .fetch_all(&mut *c)
            .await?;
            let grants = sqlx::query_as(
                "SELECT g.user_id, g.grant_id, g.spins, g.reason::text AS reason, g.grant_day,
                        g.stream_ms, g.stream_seq, r.revoked, r.already_used, r.lapsed,
                        (extract(epoch FROM r.revoked_at) * 1000)::bigint AS revoked_ms,
                        r.stream_ms AS revoke_ms, r.stream_seq AS revoke_seq
                 FROM grants g LEFT JOIN grant_revocations r USING (campaign_id, grant_id)
                 WHERE g.campaign_id = $1 AND g.user_id = ANY($2)",
            )
            .bind(&id)
            .bind(&users)
            .fetch_all(&mut *c)
            .await?;
            Ok(UserEvents { draws, grants })
        })
    })
    .await
}

/// The earned spins of each version in the draw order: (where the apply sits,
/// its `earned_spins`). A spin spends a free or an earned spin by the free
/// spins of the version that held.
async fn earned_versions(
    pg: &PgPool,
    pg_limit: Duration,
    campaign: &CampaignId,
) -> Result<Vec<(StreamId, Option<EarnedSpins>)>, sqlx::Error> {
    let id = campaign.to_string();
    let rows: Vec<(i64, i64, String)> = within(pg, pg_limit, move |c| {
        Box::pin(async move {
            sqlx::query_as(
                "SELECT a.stream_ms, a.stream_seq, v.yaml FROM ledger_applies a
                 JOIN campaign_versions v USING (campaign_id, version)
                 WHERE a.campaign_id = $1 ORDER BY a.stream_ms, a.stream_seq",
            )
            .bind(&id)
            .fetch_all(c)
            .await
        })
    })
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(ms, seq, yaml)| {
            let c = crate::campaign::parse_campaign(&yaml).ok()?;
            Some((StreamId { ms, seq }, c.earned_spins))
        })
        .collect())
}

/// What the rebuild writes for a group of users.
#[derive(Default)]
struct Fixes {
    counters: Vec<CounterFix>,
    records: Vec<RecordFix>,
    grants: Vec<GrantRecordFix>,
}

/// What the rebuild needs from the campaign's live config.
struct Live {
    limit: u32,
    daily_limit: Option<u32>,
    /// Earned spins as configured now (for a draw before any recorded apply).
    earned: Option<EarnedSpins>,
    /// The rule earned spins lapse by (meta `ex`, fixed once set).
    expire: Expiry,
    buckets: u64,
    /// 1-based position of each prize id in the draw table (what records hold).
    position: HashMap<String, u16>,
    day_starts: Vec<i64>,
}

impl Live {
    async fn read(conn: &mut RedisConn, k: &CampaignKeys) -> Result<Option<Live>, RecoverError> {
        type Meta = (
            Option<u32>,
            Option<u32>,
            Option<u64>,
            Option<String>,
            Option<i64>,
            Option<String>,
        );
        let ((limit, daily, buckets, table, free, expire), days): (Meta, Vec<i64>) = redis::pipe()
            .atomic()
            .cmd("HMGET")
            .arg(&k.meta)
            .arg(&["lim", "dlim", "nb", "tbl", "ef", "ex"])
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
        let expire = match expire.as_deref() {
            Some("end_of_day") => Expiry::EndOfDay,
            _ => Expiry::CampaignEnd,
        };
        Ok(Some(Live {
            limit,
            daily_limit: (daily > 0).then_some(daily),
            earned: free
                .and_then(|f| u32::try_from(f).ok())
                .map(|free| EarnedSpins { free, expire }),
            expire,
            buckets: buckets.max(1),
            position: table
                .into_iter()
                .enumerate()
                .map(|(i, e)| (e.id, (i + 1) as u16))
                .collect(),
            day_starts: days,
        }))
    }

    /// Each user's state replayed from `events` (all their draws, grants and
    /// revocations, in order, under the earned spins of the `versions` that
    /// held), and the records of what came after `known`, the last stream id
    /// Redis kept.
    fn fixes(
        &self,
        k: &CampaignKeys,
        events: &UserEvents,
        known: StreamId,
        versions: &[(StreamId, Option<EarnedSpins>)],
    ) -> Fixes {
        let today_utc = chrono::Utc::now().timestamp_millis().div_euclid(DAY_MS);
        let mut out = Fixes::default();
        let events = events.in_order();
        let mut c = Counters::default();
        // Spins left after each grant of the user, for its record.
        let mut granted_left: HashMap<&str, u64> = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            if i == 0 || events[i - 1].user() != e.user() {
                c = Counters::default();
            }
            let at = e.stream();
            let earned = versions
                .iter()
                .rev()
                .find(|(applied, _)| *applied < at)
                .map_or(self.earned, |(_, e)| *e);
            let user = e.user();
            let bucket = u64::from(user_hash(user)) % self.buckets;
            match e {
                Event::Draw(d) => {
                    let today = day_index(&self.day_starts, d.spun_ms);
                    c.record_spin(today, earned);
                    let utc_day = d.spun_ms.div_euclid(DAY_MS);
                    // Records older than yesterday have expired anyway.
                    if at > known
                        && utc_day >= today_utc - 1
                        && let Some(&position) = self.position.get(&d.prize_id)
                    {
                        out.records.push(RecordFix {
                            key: k.records(utc_day, bucket),
                            field: record_field(user, &d.idempotency_key),
                            record: pack_record(
                                &fingerprint(&canonical_context(d.context.as_deref())),
                                &d.spin_id,
                                position,
                                c.spins_left_on(self.limit, self.daily_limit, earned, today),
                                d.code.as_deref(),
                            ),
                            expire_at: (utc_day + 2) * 86_400 + RECORD_TTL_SLACK_S,
                        });
                    }
                }
                Event::Grant(g) => {
                    let day = i64::from(g.grant_day);
                    c.grant(self.expire, g.spins as u32, day);
                    let left = c.spins_left_on(self.limit, self.daily_limit, earned, day);
                    granted_left.insert(&g.grant_id, left);
                    if at > known {
                        out.grants.push(self.grant_record(k, g, left, None));
                    }
                }
                Event::Revoke(g, _) => {
                    let today = g
                        .revoked_ms
                        .map_or(i64::from(g.grant_day), |ms| day_index(&self.day_starts, ms));
                    let split =
                        c.revoke(self.expire, g.spins as u32, i64::from(g.grant_day), today);
                    if at > known {
                        let recorded = (
                            g.revoked.unwrap_or(split.revoked as i32) as u8,
                            g.already_used.unwrap_or(split.already_used as i32) as u8,
                            g.lapsed.unwrap_or(split.lapsed as i32) as u8,
                        );
                        let left = granted_left.get(g.grant_id.as_str()).copied().unwrap_or(0);
                        out.grants
                            .push(self.grant_record(k, g, left, Some(recorded)));
                    }
                }
            }
            if events.get(i + 1).is_none_or(|n| n.user() != user) {
                out.counters.push(CounterFix {
                    user: user.to_owned(),
                    bucket,
                    total: u64::from(c.total),
                    day_count: u64::from(c.day_count),
                    day_index: c.day_index.max(0) as u64,
                    earned: c
                        .earned
                        .map(|p| format!("{}:{}:{}:{}", p.granted, p.used, p.day, p.free_used)),
                });
            }
        }
        out
    }

    /// A grant record as lua/grant.lua writes it (`revoked`: as lua/revoke.lua
    /// marks it, with the split the ledger holds).
    fn grant_record(
        &self,
        k: &CampaignKeys,
        g: &GrantRow,
        left: u64,
        revoked: Option<(u8, u8, u8)>,
    ) -> GrantRecordFix {
        let reason = canonical_context(g.reason.as_deref());
        let mut r = Vec::with_capacity(23 + g.user_id.len());
        r.extend_from_slice(&grant_fingerprint(&g.user_id, g.spins as u32, &reason));
        r.push(g.spins as u8);
        r.extend_from_slice(&(g.grant_day as i16).to_be_bytes());
        r.extend_from_slice(&(left.min(u64::from(u32::MAX)) as u32).to_be_bytes());
        let (rv, used, lapsed) = revoked.unwrap_or_default();
        r.extend_from_slice(&[rv, used, lapsed, u8::from(revoked.is_some())]);
        r.extend_from_slice(&user_hash(&g.user_id).to_be_bytes());
        r.extend_from_slice(g.user_id.as_bytes());
        GrantRecordFix {
            key: k.grants(u64::from(grant_hash(&g.grant_id)) % self.buckets),
            field: g.grant_id.clone(),
            record: r,
        }
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
/// (16) .. prize position (u16) .. spins left (u32), big-endian, then the
/// prize code of a code prize's win.
fn pack_record(
    fingerprint: &[u8; 8],
    spin_id: &uuid::Uuid,
    position: u16,
    left: u64,
    code: Option<&str>,
) -> Vec<u8> {
    let mut r = Vec::with_capacity(30 + code.map_or(0, str::len));
    r.extend_from_slice(fingerprint);
    r.extend_from_slice(spin_id.as_bytes());
    r.extend_from_slice(&position.to_be_bytes());
    r.extend_from_slice(&(left.min(u64::from(u32::MAX)) as u32).to_be_bytes());
    r.extend_from_slice(code.unwrap_or_default().as_bytes());
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
