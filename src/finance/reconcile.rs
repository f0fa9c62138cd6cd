//! Reconciling what Redis drew with what PostgreSQL settled, prize by prize.
//!
//! The figures are taken consistently: one atomic Redis snapshot (stock, awarded
//! and the last stream id), the unsettled part of the stream, then one
//! repeatable-read PostgreSQL transaction. For each prize:
//!
//! - configured − remaining = awarded (for stock-bounded prizes);
//! - awarded = settled up to the snapshot + in flight (in the stream, not yet in
//!   PostgreSQL) + dead-lettered (answered draws the ledger refused: still the
//!   shopper's, waiting for `prizewheel dead-letters retry`);
//! - grants made (meta `gv`) = settled + in flight + dead-lettered, and the
//!   same for revocations (meta `rv`);
//! - the value Redis counted as awarded (meta `bs`, what a budget is held
//!   against) = the value settled + in flight + dead-lettered;
//! - with a budget, the value settled is within it, unless the budget was set
//!   below what had already been awarded when it was applied: legal (the draw
//!   then awards nothing with a value), so reported as a notice, not a failure;
//! - prize codes (`stock: codes`), the same way as units: the codes handed out
//!   (the set `pw:{C}:codes-awarded`, and per prize loaded − withdrawn −
//!   available from `pw:{C}:codes-stats` and its pool) = the rewards with a
//!   code settled + in flight + dead-lettered; and every settled reward of a
//!   prize that was a code prize in the version that drew it has a code;
//! - and for the campaign: no spin id twice, nothing stuck pending, the oldest
//!   unsettled entry younger than `settle.max_lag_ms`, nothing in the
//!   dead-letter stream.

use crate::domain::CampaignId;
use crate::domain::Money;
use crate::domain::StreamId;
use crate::draw::model::SPENT_CAP;
use crate::settle::Thresholds;
use crate::settle::stream as results;
use crate::store::redis::keys::CampaignKeys;
use crate::store::redis::table::TableEntry;
use crate::store::redis::{RedisStore, StoreError};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Redis(#[from] StoreError),
    #[error("postgres: {0}")]
    Pg(#[from] sqlx::Error),
}

impl From<redis::RedisError> for ReconcileError {
    fn from(e: redis::RedisError) -> Self {
        ReconcileError::Redis(e.into())
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PrizeFigures {
    pub prize_id: String,
    /// Configured units; null = unlimited.
    pub stock: Option<i64>,
    /// Units left in Redis; null = unlimited.
    pub remaining: Option<i64>,
    /// Units drawn, as counted in Redis.
    pub awarded: i64,
    /// Rewards of this prize in PostgreSQL (drawn up to the snapshot).
    pub settled: i64,
    /// Their total value, exact decimal string.
    #[schema(value_type = String)]
    pub settled_amount: Decimal,
    pub currency: Option<String>,
    /// Drawn but not yet in PostgreSQL.
    pub in_flight: i64,
    /// Drawn, refused by the ledger and kept in the dead-letter stream.
    pub dead_lettered: i64,
    /// Its prize codes, for a prize that has or had `stock: codes` (or whose
    /// rewards carry codes); null for any other prize.
    pub codes: Option<PrizeCodes>,
    /// All of this prize's checks hold.
    pub ok: bool,
}

/// A code prize's codes: Redis's pool and counts against the rewards that
/// carry them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PrizeCodes {
    /// Codes ever added to the prize's pool.
    pub loaded: i64,
    /// Codes withdrawn from the pool (never handed out).
    pub withdrawn: i64,
    /// Codes in the pool now: what the next wins hand out.
    pub available: i64,
    /// Codes handed out: loaded − withdrawn − available.
    pub awarded: i64,
    /// Rewards of this prize in PostgreSQL with a code (up to the snapshot).
    pub settled: i64,
    /// Draws of this prize with a code, not yet in PostgreSQL.
    pub in_flight: i64,
    /// Draws of this prize with a code in the dead-letter stream.
    pub dead_lettered: i64,
    /// Settled rewards drawn while this was a code prize that carry no code.
    pub without_code: i64,
    /// awarded = settled + in flight + dead-lettered, and no reward without a code.
    pub ok: bool,
}

/// The campaign's prize codes handed out (the set `pw:{C}:codes-awarded`)
/// against the rewards that carry one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CodeFigures {
    /// Codes handed out, as Redis counts them (every prize).
    pub awarded: i64,
    /// Rewards in PostgreSQL with a code (up to the snapshot).
    pub settled: i64,
    /// Draws with a code not yet in PostgreSQL.
    pub in_flight: i64,
    /// Draws with a code in the dead-letter stream.
    pub dead_lettered: i64,
    /// awarded = settled + in flight + dead-lettered.
    pub ok: bool,
}

/// Grants (or revocations) of earned spins: made in Redis against the ledger.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct GrantFigures {
    /// Made, as counted in Redis.
    pub made: i64,
    /// In PostgreSQL (made up to the snapshot).
    pub settled: i64,
    /// Made but not yet in PostgreSQL.
    pub in_flight: i64,
    /// Made, refused by the ledger and kept in the dead-letter stream.
    pub dead_lettered: i64,
    pub ok: bool,
}

/// Spins of earned-spin campaigns as the ledger has them (up to the snapshot).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct SpinFigures {
    /// Spins the order service granted.
    pub granted: i64,
    /// Spins taken back by revocations.
    pub revoked: i64,
    /// Granted spins that lapsed unused (`expire: end_of_day`), as revocations
    /// found them.
    pub lapsed: i64,
    /// Spins made: every settled reward.
    pub used: i64,
}

/// The campaign's budget against the value awarded, in Redis and in the ledger.
/// Amounts are exact decimal strings.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BudgetFigures {
    /// The live campaign's budget; null: it has none.
    #[schema(value_type = Option<String>)]
    pub amount: Option<Decimal>,
    /// The budget's currency (every prize is in it), or the prizes' without a budget.
    pub currency: Option<String>,
    /// The value of the settled rewards (up to the snapshot).
    #[schema(value_type = String)]
    pub spent_ledger: Decimal,
    /// The value of the draws in flight and dead-lettered.
    #[schema(value_type = String)]
    pub spent_unsettled: Decimal,
    /// The value Redis counted as awarded (meta `bs`), every award counted:
    /// what the draw holds the budget against.
    #[schema(value_type = String)]
    pub spent_redis: Decimal,
    /// `amount` − `spent_redis`, never below 0; null without a budget.
    #[schema(value_type = Option<String>)]
    pub left: Option<Decimal>,
    /// The value the ledger had settled, in draw order, before the apply that
    /// set the current budget; null without a budget.
    #[schema(value_type = Option<String>)]
    pub spent_when_set: Option<Decimal>,
    /// The budget was set below what had already been awarded: legal, and
    /// reported (in `notices`), not a failure.
    pub set_below_spent: bool,
    /// The value checks hold.
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Reconciliation {
    pub campaign_id: String,
    pub prizes: Vec<PrizeFigures>,
    pub budget: BudgetFigures,
    /// Prize codes handed out against the rewards that carry one (all zero
    /// for a campaign without code prizes).
    pub codes: CodeFigures,
    pub grants: GrantFigures,
    pub revocations: GrantFigures,
    pub spins: SpinFigures,
    /// Stream entries delivered to a settler and not acknowledged.
    pub pending: u64,
    /// Pending entries idle longer than the stuck threshold.
    pub stuck: u64,
    /// Stream entries no settler has read yet.
    pub undelivered: u64,
    /// Age of the oldest unsettled entry, milliseconds.
    pub oldest_unsettled_age_ms: i64,
    /// The bound on that age (`settle.max_lag_ms`).
    pub max_lag_ms: u64,
    /// The oldest unsettled entry is older than `max_lag_ms`: settlement is
    /// stuck or far behind.
    pub settlement_behind: bool,
    /// Entries that could not be settled (see the dead-letter stream).
    pub dead_letters: u64,
    /// Spin ids found twice (in the ledger or among in-flight entries).
    pub duplicates: u64,
    /// Settled draws newer than anything Redis remembers: Redis lost writes
    /// (a crash, a failover) and the campaign was not recovered since.
    pub forgotten_by_redis: i64,
    /// New draws wait for a recovery (Redis restarted since the last one).
    pub awaiting_recovery: bool,
    /// Human-readable reasons for every failed check.
    pub problems: Vec<String>,
    /// What is worth knowing and fails no check (a budget set below what had
    /// already been awarded).
    pub notices: Vec<String>,
    pub ok: bool,
}

/// What the ledger holds of a campaign, read in one consistent snapshot.
struct LedgerSnapshot {
    /// (prize, currency, rows, sum, rows with a code) of rows up to Redis's
    /// last stream id.
    settled: Vec<(String, String, i64, Decimal, i64)>,
    /// Per prize, rows up to Redis's last stream id drawn while it was a code
    /// prize (in the version that drew them) that carry no code.
    without_code: Vec<(String, i64)>,
    /// Rows after Redis's last stream id: draws Redis no longer knows.
    forgotten_by_redis: i64,
    /// Which of the unsettled stream entries' spins are in the ledger already.
    landed: HashSet<uuid::Uuid>,
    /// Grants and revocations up to Redis's last stream id.
    grants: i64,
    revocations: i64,
    /// Spins granted, revoked and lapsed in them.
    spins: SpinFigures,
    /// Which of the unsettled and dead-lettered grants' ids are in the ledger
    /// already, and which revocations'.
    landed_grants: HashSet<String>,
    landed_revocations: HashSet<String>,
    /// The budget (amount, currency) of the last apply in the ledger, and the
    /// value settled before the apply that last set or changed it.
    budget_history: BudgetHistory,
}

/// The budget as the ledger's applies have it (see [`LedgerSnapshot`]).
#[derive(Debug, Default, sqlx::FromRow)]
struct BudgetHistory {
    amount: Option<String>,
    currency: Option<String>,
    spent_before: Decimal,
}

async fn ledger_snapshot(
    conn: &mut sqlx::PgConnection,
    campaign: &str,
    last: StreamId,
    unsettled: &[uuid::Uuid],
    grant_ids: &[String],
) -> Result<LedgerSnapshot, sqlx::Error> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let settled = sqlx::query_as(
        "SELECT prize_id, currency, count(*), coalesce(sum(amount), 0), count(code) FROM rewards
         WHERE campaign_id = $1 AND (stream_ms, stream_seq) <= ($2, $3)
         GROUP BY prize_id, currency",
    )
    .bind(campaign)
    .bind(last.ms)
    .bind(last.seq)
    .fetch_all(&mut *tx)
    .await?;
    // The prizes each version gave `stock: codes` (its canonical config), and
    // the rewards they drew without a code.
    let without_code = sqlx::query_as(
        "WITH code_prizes AS (
             SELECT v.version, p ->> 'id' AS prize_id
             FROM campaign_versions v, jsonb_array_elements(v.config -> 'prizes') p
             WHERE v.campaign_id = $1 AND p ->> 'stock' = 'codes'
         )
         SELECT r.prize_id, count(*) FROM rewards r
         JOIN code_prizes c ON c.version = r.config_version AND c.prize_id = r.prize_id
         WHERE r.campaign_id = $1 AND (r.stream_ms, r.stream_seq) <= ($2, $3) AND r.code IS NULL
         GROUP BY r.prize_id",
    )
    .bind(campaign)
    .bind(last.ms)
    .bind(last.seq)
    .fetch_all(&mut *tx)
    .await?;
    let forgotten_by_redis = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM rewards
                 WHERE campaign_id = $1 AND (stream_ms, stream_seq) > ($2, $3))
              + (SELECT count(*) FROM grants
                 WHERE campaign_id = $1 AND (stream_ms, stream_seq) > ($2, $3))
              + (SELECT count(*) FROM grant_revocations
                 WHERE campaign_id = $1 AND (stream_ms, stream_seq) > ($2, $3))",
    )
    .bind(campaign)
    .bind(last.ms)
    .bind(last.seq)
    .fetch_one(&mut *tx)
    .await?;
    let landed =
        sqlx::query_scalar::<_, uuid::Uuid>("SELECT spin_id FROM rewards WHERE spin_id = ANY($1)")
            .bind(unsettled)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
    let (grants, revocations, granted, revoked, lapsed): (i64, i64, i64, i64, i64) =
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM grants
                 WHERE campaign_id = $1 AND (stream_ms, stream_seq) <= ($2, $3)),
                (SELECT count(*) FROM grant_revocations
                 WHERE campaign_id = $1 AND (stream_ms, stream_seq) <= ($2, $3)),
                (SELECT COALESCE(sum(spins), 0)::bigint FROM grants
                 WHERE campaign_id = $1 AND (stream_ms, stream_seq) <= ($2, $3)),
                (SELECT COALESCE(sum(revoked), 0)::bigint FROM grant_revocations
                 WHERE campaign_id = $1 AND (stream_ms, stream_seq) <= ($2, $3)),
                (SELECT COALESCE(sum(lapsed), 0)::bigint FROM grant_revocations
                 WHERE campaign_id = $1 AND (stream_ms, stream_seq) <= ($2, $3))",
        )
        .bind(campaign)
        .bind(last.ms)
        .bind(last.seq)
        .fetch_one(&mut *tx)
        .await?;
    let landed_in = |table: &'static str| {
        format!("SELECT grant_id FROM {table} WHERE campaign_id = $1 AND grant_id = ANY($2)")
    };
    let landed_grants = sqlx::query_scalar(&landed_in("grants"))
        .bind(campaign)
        .bind(grant_ids)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
    let landed_revocations = sqlx::query_scalar(&landed_in("grant_revocations"))
        .bind(campaign)
        .bind(grant_ids)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
    // Each apply in draw order with the budget of its version; the last one
    // whose budget differs from the apply before it set the budget now in
    // force (when the ledger has it), and what was settled before it.
    let budget_history = sqlx::query_as(
        "WITH applies AS (
             SELECT a.stream_ms, a.stream_seq, v.config -> 'budget' AS budget,
                    lag(v.config -> 'budget') OVER (ORDER BY a.stream_ms, a.stream_seq) AS before
             FROM ledger_applies a
             JOIN campaign_versions v ON v.campaign_id = a.campaign_id AND v.version = a.version
             WHERE a.campaign_id = $1 AND (a.stream_ms, a.stream_seq) <= ($2, $3)
         ),
         latest AS (
             SELECT budget FROM applies ORDER BY stream_ms DESC, stream_seq DESC LIMIT 1
         ),
         set_at AS (
             SELECT stream_ms, stream_seq FROM applies
             WHERE budget IS DISTINCT FROM before
             ORDER BY stream_ms DESC, stream_seq DESC LIMIT 1
         )
         SELECT (SELECT budget ->> 'amount' FROM latest) AS amount,
                (SELECT budget ->> 'currency' FROM latest) AS currency,
                (SELECT coalesce(sum(r.amount), 0) FROM rewards r, set_at s
                 WHERE r.campaign_id = $1
                   AND (r.stream_ms, r.stream_seq) < (s.stream_ms, s.stream_seq)) AS spent_before",
    )
    .bind(campaign)
    .bind(last.ms)
    .bind(last.seq)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(LedgerSnapshot {
        settled,
        without_code,
        forgotten_by_redis,
        landed,
        grants,
        revocations,
        spins: SpinFigures {
            granted,
            revoked,
            lapsed,
            used: 0,
        },
        landed_grants,
        landed_revocations,
        budget_history,
    })
}

/// Grant and revocation entries of a stream (or the dead-letter stream), by
/// grant id: (kind, grant id), kind `grant` or `revoke`.
type GrantEntry = (String, String);

/// [`GrantFigures`] from Redis's count, the ledger's, and the entries not yet
/// settled or dead-lettered that are not in the ledger.
fn grant_figures(
    kind: &str,
    made: i64,
    settled: i64,
    unsettled: &[GrantEntry],
    dead: &[GrantEntry],
    landed: &HashSet<String>,
) -> GrantFigures {
    let count = |entries: &[GrantEntry]| {
        entries
            .iter()
            .filter(|(k, id)| k == kind && !landed.contains(id))
            .map(|(_, id)| id)
            .collect::<HashSet<_>>()
            .len() as i64
    };
    let (in_flight, dead_lettered) = (count(unsettled), count(dead));
    GrantFigures {
        made,
        settled,
        in_flight,
        dead_lettered,
        ok: made == settled + in_flight + dead_lettered,
    }
}

/// Reconciles `campaign`; `None` when Redis does not know it. Entries pending
/// longer than `thresholds.stuck_after_ms` count as stuck, an oldest unsettled
/// entry older than `thresholds.max_lag_ms` as settlement behind. PostgreSQL's
/// part runs within `pg_limit` (`store::pg::within`).
pub async fn reconcile(
    redis: &RedisStore,
    pg: &PgPool,
    pg_limit: std::time::Duration,
    campaign: &CampaignId,
    thresholds: &Thresholds,
) -> Result<Option<Reconciliation>, ReconcileError> {
    let Thresholds {
        stuck_after_ms,
        max_lag_ms,
    } = *thresholds;
    let k = CampaignKeys::new(campaign);
    let mut conn = redis.conn();
    // Every applied campaign has a results stream (apply writes to it), which the
    // snapshot below needs to exist.
    let known: bool = redis::cmd("EXISTS")
        .arg(&k.meta)
        .query_async(&mut conn)
        .await
        .map_err(StoreError::from)?;
    if !known {
        return Ok(None);
    }
    let RedisSnapshot {
        initial,
        stock,
        awarded,
        last,
        dead_letters,
        meta,
        codes: code_snapshot,
    } = redis_snapshot(&mut conn, &k).await?;
    let (table, made_grants, made_revocations, config, value_awarded) = meta;
    let Some(table) = table else {
        return Ok(None);
    };
    let table: Vec<TableEntry> = serde_json::from_str(&table)
        .map_err(|_| StoreError::Protocol(format!("{}: `tbl` is not JSON", k.meta)))?;
    let retired: HashSet<&str> = table
        .iter()
        .filter(|e| e.w == 0)
        .map(|e| e.id.as_str())
        .collect();
    // A prize's currency, also before anything of it is settled.
    let currencies: HashMap<&str, &str> = table
        .iter()
        .map(|e| (e.id.as_str(), e.cur.as_str()))
        .collect();
    let last = match last.get("last-generated-id") {
        Some(redis::Value::BulkString(b)) => std::str::from_utf8(b).ok().and_then(StreamId::parse),
        Some(redis::Value::SimpleString(s)) => StreamId::parse(s),
        _ => None,
    }
    .unwrap_or(StreamId { ms: 0, seq: 0 });

    // The stream from the oldest unsettled entry up to the snapshot.
    let mut mc = redis.conn();
    let lag = results::lag(&mut mc, &k.results).await?;
    let stuck = stuck_count(&mut mc, &k.results, stuck_after_ms).await?;
    let mut unsettled: Vec<SpinEntry> = Vec::new();
    let mut unsettled_grants: Vec<GrantEntry> = Vec::new();
    if let Some(from) = lag.oldest.filter(|o| *o <= last) {
        let mut start = from.to_string();
        loop {
            let page: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
                .arg(&k.results)
                .arg(&start)
                .arg(last.to_string())
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut mc)
                .await?;
            let Some((last_id, _)) = page.last() else {
                break;
            };
            let next = StreamId::parse(last_id).map(|s| format!("({s}"));
            let done = page.len() < 1000;
            for (_, mut f) in page {
                match f.get("type").map(String::as_str) {
                    Some("spin") => {
                        if let (Some(spin), Some(prize)) = (f.remove("spin"), f.remove("prize")) {
                            unsettled.push(SpinEntry {
                                spin,
                                prize,
                                amount: value(f.get("amount")),
                                code: f.remove("code"),
                            });
                        }
                    }
                    Some(kind @ ("grant" | "revoke")) => {
                        let kind = kind.to_owned();
                        if let Some(id) = f.remove("grant") {
                            unsettled_grants.push((kind, id));
                        }
                    }
                    _ => {}
                }
            }
            match next {
                Some(n) if !done => start = n,
                _ => break,
            }
        }
    }

    let (dead, dead_grants) = dead_lettered(&mut mc, &k.dead).await?;
    let ids: Vec<uuid::Uuid> = unsettled
        .iter()
        .chain(&dead)
        .filter_map(|e| e.spin.parse().ok())
        .collect();
    let grant_ids: Vec<String> = unsettled_grants
        .iter()
        .chain(&dead_grants)
        .map(|(_, id)| id.clone())
        .collect();
    let owned = campaign.to_string();
    let LedgerSnapshot {
        settled,
        without_code,
        forgotten_by_redis,
        landed,
        grants: settled_grants,
        revocations: settled_revocations,
        mut spins,
        landed_grants,
        landed_revocations,
        budget_history,
    } = crate::store::pg::within(pg, pg_limit, move |c| {
        Box::pin(async move { ledger_snapshot(c, &owned, last, &ids, &grant_ids).await })
    })
    .await?;
    let grants = grant_figures(
        "grant",
        made_grants.unwrap_or(0),
        settled_grants,
        &unsettled_grants,
        &dead_grants,
        &landed_grants,
    );
    let revocations = grant_figures(
        "revoke",
        made_revocations.unwrap_or(0),
        settled_revocations,
        &unsettled_grants,
        &dead_grants,
        &landed_revocations,
    );

    let mut in_flight: HashMap<&str, i64> = HashMap::new();
    // Codes are counted exactly as units are: per prize, in flight and
    // dead-lettered, each entry not in the ledger yet.
    let mut codes_in_flight: HashMap<&str, i64> = HashMap::new();
    let mut spent_unsettled = Decimal::ZERO;
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    for e in &unsettled {
        if !seen.insert(e.spin.as_str()) {
            duplicates += 1;
        }
        if e.spin.parse().map(|u| !landed.contains(&u)).unwrap_or(true) {
            *in_flight.entry(e.prize.as_str()).or_default() += 1;
            if e.code.is_some() {
                *codes_in_flight.entry(e.prize.as_str()).or_default() += 1;
            }
            spent_unsettled += e.amount;
        }
    }

    // A dead letter whose spin is in the ledger was settled again by hand
    // (`dead-letters retry` stopped before deleting it): counted as settled.
    // A settler that crashed between dead-lettering and acking dead-letters the
    // entry again when it is redelivered: count each spin once.
    let mut dead_lettered: HashMap<&str, i64> = HashMap::new();
    let mut codes_dead_lettered: HashMap<&str, i64> = HashMap::new();
    let mut dead_seen = HashSet::new();
    for e in &dead {
        if !dead_seen.insert(e.spin.as_str()) {
            continue;
        }
        if e.spin.parse().map(|u| !landed.contains(&u)).unwrap_or(true) {
            *dead_lettered.entry(e.prize.as_str()).or_default() += 1;
            if e.code.is_some() {
                *codes_dead_lettered.entry(e.prize.as_str()).or_default() += 1;
            }
            spent_unsettled += e.amount;
        }
    }

    let mut prizes: BTreeMap<String, PrizeFigures> = BTreeMap::new();
    let ids_known: Vec<&String> = initial
        .keys()
        .chain(awarded.keys())
        .chain(settled.iter().map(|s| &s.0))
        .collect();
    for id in ids_known {
        prizes.entry(id.clone()).or_insert_with(|| PrizeFigures {
            prize_id: id.clone(),
            stock: initial.get(id).copied().filter(|n| *n >= 0),
            remaining: stock.get(id).copied().filter(|n| *n >= 0),
            awarded: awarded.get(id).copied().unwrap_or(0),
            settled: 0,
            settled_amount: Decimal::ZERO,
            currency: currencies.get(id.as_str()).map(|c| c.to_string()),
            in_flight: in_flight.get(id.as_str()).copied().unwrap_or(0),
            dead_lettered: dead_lettered.get(id.as_str()).copied().unwrap_or(0),
            codes: None,
            ok: true,
        });
    }
    spins.used = settled.iter().map(|s| s.2).sum();
    let spent_ledger: Decimal = settled.iter().map(|s| s.3).sum();
    let mut codes_settled: HashMap<String, i64> = HashMap::new();
    for (prize, currency, count, amount, with_code) in settled {
        if with_code > 0 {
            *codes_settled.entry(prize.clone()).or_default() += with_code;
        }
        if let Some(p) = prizes.get_mut(&prize) {
            p.settled += count;
            p.settled_amount += amount;
            p.currency = Some(currency);
        }
    }
    let code_prizes: HashSet<&str> = table
        .iter()
        .filter(|e| e.c.is_some())
        .map(|e| e.id.as_str())
        .collect();
    let without_code: HashMap<String, i64> = without_code.into_iter().collect();
    let codes = code_figures(
        &code_snapshot,
        &codes_settled,
        &codes_in_flight,
        &codes_dead_lettered,
    );
    for p in prizes.values_mut() {
        let id = p.prize_id.as_str();
        let figures = prize_codes(
            &code_snapshot,
            id,
            codes_settled.get(id).copied().unwrap_or(0),
            codes_in_flight.get(id).copied().unwrap_or(0),
            codes_dead_lettered.get(id).copied().unwrap_or(0),
            without_code.get(id).copied().unwrap_or(0),
        );
        // Shown for a code prize, one that was (its codes counted), and any
        // prize whose rewards carry codes (which fails its check).
        if code_prizes.contains(id) || figures != PrizeCodes::default() {
            p.codes = Some(PrizeCodes {
                ok: code_check(id, &figures).is_empty(),
                ..figures
            });
        }
    }
    let mut problems = Vec::new();
    for p in prizes.values_mut() {
        // remaining = max(0, configured - awarded): a cut below what was awarded
        // leaves nothing, never a negative.
        if let (Some(s), Some(r)) = (p.stock, p.remaining)
            && !retired.contains(p.prize_id.as_str())
            && r != (s - p.awarded).max(0)
        {
            p.ok = false;
            problems.push(format!(
                "{}: remaining {r} != max(0, configured {s} - awarded {})",
                p.prize_id, p.awarded
            ));
        }
        if p.settled + p.in_flight + p.dead_lettered != p.awarded {
            p.ok = false;
            problems.push(format!(
                "{}: awarded {} != settled {} + in flight {} + dead-lettered {}",
                p.prize_id, p.awarded, p.settled, p.in_flight, p.dead_lettered
            ));
        }
        if let Some(c) = &p.codes {
            let failed = code_check(&p.prize_id, c);
            p.ok &= failed.is_empty();
            problems.extend(failed);
        }
    }
    if !codes.ok {
        problems.push(format!(
            "codes: {} handed out in Redis (pw:{{{campaign}}}:codes-awarded) != rewards with a code: settled {} + in flight {} + dead-lettered {}",
            codes.awarded, codes.settled, codes.in_flight, codes.dead_lettered
        ));
    }
    let (budget, budget_problems, notices) = budget_figures(
        config.as_deref(),
        table.first().map(|e| e.cur.as_str()),
        u64::try_from(value_awarded.unwrap_or(0)).unwrap_or(0),
        spent_ledger,
        spent_unsettled,
        &budget_history,
    );
    problems.extend(budget_problems);
    for (what, g) in [("grants", &grants), ("revocations", &revocations)] {
        if !g.ok {
            problems.push(format!(
                "{what}: made {} != settled {} + in flight {} + dead-lettered {}",
                g.made, g.settled, g.in_flight, g.dead_lettered
            ));
        }
    }
    let awaiting_recovery = crate::store::redis::recovery::state(&mut mc, campaign)
        .await?
        .awaits_recovery();
    if forgotten_by_redis > 0 {
        problems.push(format!(
            "Redis lost writes (a crash or a failover): {forgotten_by_redis} settled draw(s), grant(s) or revocation(s) are newer than the last it remembers ({last}); `prizewheel recover {campaign}` (or any settler, by itself) rebuilds it from the ledger"
        ));
    } else if awaiting_recovery {
        problems.push(format!(
            "Redis restarted or failed over since this campaign was last recovered: new draws wait until `prizewheel recover {campaign}` (or any settler, by itself) rebuilds it from the ledger"
        ));
    }
    if duplicates > 0 {
        problems.push(format!(
            "{duplicates} spin id(s) appear twice in the results stream"
        ));
    }
    if stuck > 0 {
        problems.push(format!(
            "{stuck} entr(ies) pending for more than {stuck_after_ms} ms"
        ));
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    let oldest_unsettled_age_ms = lag.oldest_age_ms(now_ms);
    let settlement_behind = oldest_unsettled_age_ms > i64::try_from(max_lag_ms).unwrap_or(i64::MAX);
    if settlement_behind {
        problems.push(format!(
            "settlement is stuck or behind: the oldest unsettled entry is {oldest_unsettled_age_ms} ms old (bound settle.max_lag_ms = {max_lag_ms} ms; {} unsettled)",
            lag.unsettled()
        ));
    }
    if dead_letters > 0 {
        problems.push(format!(
            "{dead_letters} entr(ies) in the dead-letter stream {} (`prizewheel dead-letters list {campaign}` shows why; `… retry` settles them once the cause is fixed)",
            k.dead
        ));
    }
    Ok(Some(Reconciliation {
        campaign_id: campaign.to_string(),
        ok: problems.is_empty(),
        prizes: prizes.into_values().collect(),
        budget,
        codes,
        grants,
        revocations,
        spins,
        pending: lag.pending,
        stuck,
        undelivered: lag.undelivered,
        oldest_unsettled_age_ms,
        max_lag_ms,
        settlement_behind,
        dead_letters,
        duplicates,
        forgotten_by_redis,
        awaiting_recovery,
        problems,
        notices,
    }))
}

/// A spin entry of the results (or dead-letter) stream.
#[derive(Debug, Clone)]
struct SpinEntry {
    spin: String,
    prize: String,
    /// Its value.
    amount: Decimal,
    /// The prize code it handed out (a win of a code prize).
    code: Option<String>,
}

/// `meta` fields `tbl gv rv cfg bs`.
type MetaFields = (
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
);

/// Redis's side of a reconciliation, read in one atomic pipeline.
struct RedisSnapshot {
    initial: HashMap<String, i64>,
    stock: HashMap<String, i64>,
    awarded: HashMap<String, i64>,
    /// `XINFO STREAM` of the results stream.
    last: HashMap<String, redis::Value>,
    dead_letters: u64,
    meta: MetaFields,
    codes: CodeSnapshot,
}

/// The campaign's prize codes in Redis (lua/codes.lua, lua/spin.lua).
#[derive(Debug, Default)]
struct CodeSnapshot {
    /// `SCARD pw:{C}:codes-awarded`.
    awarded: i64,
    /// `pw:{C}:codes-stats`: `<prize>:loaded`, `<prize>:withdrawn`.
    stats: HashMap<String, i64>,
    /// `SCARD pw:{C}:codes:<prize>` of every prize the stats name.
    pools: HashMap<String, i64>,
}

impl CodeSnapshot {
    /// The prizes whose codes were ever loaded (or withdrawn): the stats' fields
    /// are `<prize>:loaded` and `<prize>:withdrawn` (prize ids have no `:`).
    fn prizes<'a>(fields: impl Iterator<Item = &'a String>) -> BTreeSet<String> {
        fields
            .filter_map(|f| f.rsplit_once(':').map(|(p, _)| p.to_owned()))
            .collect()
    }

    fn stat(&self, prize: &str, what: &str) -> i64 {
        self.stats
            .get(&format!("{prize}:{what}"))
            .copied()
            .unwrap_or(0)
    }
}

/// One element of a pipeline's reply.
fn next_reply<T: redis::FromRedisValue>(
    it: &mut impl Iterator<Item = redis::Value>,
) -> Result<T, ReconcileError> {
    let v = it
        .next()
        .ok_or_else(|| StoreError::Protocol("reconcile: a short pipeline reply".into()))?;
    Ok(redis::from_redis_value(v).map_err(redis::RedisError::from)?)
}

/// Stock, awarded, the last stream id, meta and the prize codes, in one
/// atomic pipeline. The pools to count are those the code stats name, read
/// just before; when a prize's first codes are loaded in between, the
/// snapshot is taken again (a prize it still misses counts an empty pool).
async fn redis_snapshot(
    conn: &mut (impl redis::aio::ConnectionLike + Send),
    k: &CampaignKeys,
) -> Result<RedisSnapshot, ReconcileError> {
    let (awarded_set, stats_key) = (&k.codes_awarded, &k.codes_stats);
    let fields: Vec<String> = redis::cmd("HKEYS").arg(stats_key).query_async(conn).await?;
    let mut pools = CodeSnapshot::prizes(fields.iter());
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hgetall(&k.initial)
            .hgetall(&k.stock)
            .hgetall(&k.awarded)
            // The last id ever added (entries may have been trimmed since).
            .cmd("XINFO")
            .arg("STREAM")
            .arg(&k.results)
            .cmd("XLEN")
            .arg(&k.dead)
            .cmd("HMGET")
            .arg(&k.meta)
            .arg(&["tbl", "gv", "rv", "cfg", "bs"])
            .scard(awarded_set)
            .hgetall(stats_key);
        for p in &pools {
            pipe.scard(k.code_pool(p));
        }
        let reply: Vec<redis::Value> = pipe.query_async(conn).await?;
        let mut it = reply.into_iter();
        let mut snapshot = RedisSnapshot {
            initial: next_reply(&mut it)?,
            stock: next_reply(&mut it)?,
            awarded: next_reply(&mut it)?,
            last: next_reply(&mut it)?,
            dead_letters: next_reply(&mut it)?,
            meta: next_reply(&mut it)?,
            codes: CodeSnapshot {
                awarded: next_reply(&mut it)?,
                stats: next_reply(&mut it)?,
                pools: HashMap::new(),
            },
        };
        for p in &pools {
            snapshot.codes.pools.insert(p.clone(), next_reply(&mut it)?);
        }
        let named = CodeSnapshot::prizes(snapshot.codes.stats.keys());
        if named.is_subset(&pools) || attempt == 3 {
            return Ok(snapshot);
        }
        pools.extend(named);
    }
}

/// The campaign's codes handed out in Redis against the rewards with a code:
/// settled, in flight and dead-lettered (per prize, summed).
fn code_figures(
    redis: &CodeSnapshot,
    settled: &HashMap<String, i64>,
    in_flight: &HashMap<&str, i64>,
    dead_lettered: &HashMap<&str, i64>,
) -> CodeFigures {
    let (settled, in_flight, dead_lettered) = (
        settled.values().sum::<i64>(),
        in_flight.values().sum::<i64>(),
        dead_lettered.values().sum::<i64>(),
    );
    CodeFigures {
        awarded: redis.awarded,
        settled,
        in_flight,
        dead_lettered,
        ok: redis.awarded == settled + in_flight + dead_lettered,
    }
}

/// A prize's codes: Redis's counts (lua/codes.lua `count`: awarded = loaded −
/// withdrawn − available) and the ledger's. `ok` is left false: see [`code_check`].
fn prize_codes(
    redis: &CodeSnapshot,
    prize: &str,
    settled: i64,
    in_flight: i64,
    dead_lettered: i64,
    without_code: i64,
) -> PrizeCodes {
    let (loaded, withdrawn) = (redis.stat(prize, "loaded"), redis.stat(prize, "withdrawn"));
    let available = redis.pools.get(prize).copied().unwrap_or(0);
    PrizeCodes {
        loaded,
        withdrawn,
        available,
        awarded: loaded - withdrawn - available,
        settled,
        in_flight,
        dead_lettered,
        without_code,
        ok: false,
    }
}

/// The failed checks of a prize's codes, readable.
fn code_check(prize: &str, c: &PrizeCodes) -> Vec<String> {
    let mut problems = Vec::new();
    if c.awarded != c.settled + c.in_flight + c.dead_lettered {
        problems.push(format!(
            "{prize}: codes awarded {} (loaded {} - withdrawn {} - available {}) != rewards with a code: settled {} + in flight {} + dead-lettered {}",
            c.awarded, c.loaded, c.withdrawn, c.available, c.settled, c.in_flight, c.dead_lettered
        ));
    }
    if c.without_code > 0 {
        problems.push(format!(
            "{prize}: {} settled reward(s) drawn while it was a code prize carry no code",
            c.without_code
        ));
    }
    problems
}

/// The `amount` of a spin entry (0 when missing or not a decimal, which only an
/// entry spin.lua did not write can be: no value was counted for it).
fn value(amount: Option<&String>) -> Decimal {
    amount.and_then(|a| a.parse().ok()).unwrap_or_default()
}

/// [`BudgetFigures`] from the live config (`cfg`), the value Redis counted
/// (`bs`, in `Money::units`), the ledger's and what is unsettled, with the
/// failed checks (problems) and a budget legally set below the value awarded
/// (a notice).
fn budget_figures(
    config: Option<&str>,
    prize_currency: Option<&str>,
    value_awarded: u64,
    spent_ledger: Decimal,
    spent_unsettled: Decimal,
    history: &BudgetHistory,
) -> (BudgetFigures, Vec<String>, Vec<String>) {
    let (mut problems, mut notices) = (Vec::new(), Vec::new());
    let config: serde_json::Value = config
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    let configured = config.get("budget").and_then(|b| {
        let amount: Decimal = b.get("amount")?.as_str()?.parse().ok()?;
        Some((amount, b.get("currency")?.as_str()?.to_owned()))
    });
    let currency = configured
        .as_ref()
        .map(|(_, c)| c.clone())
        .or(prize_currency.map(str::to_owned));
    let cur = currency.as_deref().unwrap_or("");
    let spent_redis = Money::amount_of_units(value_awarded);
    let mut ok = true;
    // Past 2^53 units Redis stops counting (every budget is below it).
    if value_awarded < SPENT_CAP && spent_redis != spent_ledger + spent_unsettled {
        ok = false;
        problems.push(format!(
            "budget: Redis counted {spent_redis} {cur} awarded (meta bs) != settled {spent_ledger} + in flight and dead-lettered {spent_unsettled}"
        ));
    }
    // When the ledger's last apply has another budget, the apply that set the
    // one in force is not settled yet: all that is settled came before it.
    let spent_when_set = configured.as_ref().map(|(amount, c)| {
        let in_ledger = history
            .amount
            .as_deref()
            .and_then(|a| a.parse::<Decimal>().ok())
            == Some(*amount)
            && history.currency.as_deref() == Some(c.as_str());
        if in_ledger {
            history.spent_before
        } else {
            spent_ledger
        }
    });
    let mut set_below_spent = false;
    if let (Some((amount, _)), Some(when_set)) = (&configured, spent_when_set)
        && spent_ledger > *amount
    {
        if spent_ledger <= when_set {
            set_below_spent = true;
            notices.push(format!(
                "budget: {amount} {cur} was set below the {when_set} {cur} already awarded; the ledger holds {spent_ledger} {cur}, nothing with a value was drawn since (legal: the draw awards nothing the budget cannot pay)"
            ));
        } else {
            ok = false;
            problems.push(format!(
                "budget: the ledger's rewards add up to {spent_ledger} {cur}, above the budget of {amount} {cur} (and above the {when_set} {cur} awarded when it was set): more was awarded than the budget allows"
            ));
        }
    }
    let figures = BudgetFigures {
        left: configured
            .as_ref()
            .map(|(amount, _)| (*amount - spent_redis).max(Decimal::ZERO)),
        amount: configured.map(|(amount, _)| amount),
        currency,
        spent_ledger,
        spent_unsettled,
        spent_redis,
        spent_when_set,
        set_below_spent,
        ok,
    };
    (figures, problems, notices)
}

/// Most dead letters read per reconciliation; past it the counts are a floor
/// (the `dead_letters` total and its problem still say how many there are).
const MAX_DEAD_READ: usize = 100_000;

/// The spins in the dead-letter stream (with the `f:code` of a code prize's
/// win), and its grants and revocations.
async fn dead_lettered(
    conn: &mut impl redis::aio::ConnectionLike,
    dead: &str,
) -> Result<(Vec<SpinEntry>, Vec<GrantEntry>), ReconcileError> {
    let mut out = Vec::new();
    let mut grants = Vec::new();
    let mut after: Option<String> = None;
    while out.len() < MAX_DEAD_READ {
        let page = crate::settle::dead::list(conn, dead, after.as_deref(), 1000).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.id.clone());
        let done = page.len() < 1000;
        for d in &page {
            let field = |k: &str| {
                d.fields
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
            };
            match field("type").as_deref() {
                Some("spin") => {
                    if let (Some(spin), Some(prize)) = (field("spin"), field("prize")) {
                        out.push(SpinEntry {
                            spin,
                            prize,
                            amount: value(field("amount").as_ref()),
                            code: field("code"),
                        });
                    }
                }
                Some(kind @ ("grant" | "revoke")) => {
                    if let Some(id) = field("grant") {
                        grants.push((kind.to_owned(), id));
                    }
                }
                _ => {}
            }
        }
        if done {
            break;
        }
    }
    Ok((out, grants))
}

async fn stuck_count(
    conn: &mut impl redis::aio::ConnectionLike,
    stream: &str,
    stuck_after_ms: u64,
) -> Result<u64, ReconcileError> {
    let reply: redis::RedisResult<Vec<(String, String, u64, u64)>> = redis::cmd("XPENDING")
        .arg(stream)
        .arg(results::GROUP)
        .arg("IDLE")
        .arg(stuck_after_ms)
        .arg("-")
        .arg("+")
        .arg(10_000)
        .query_async(conn)
        .await;
    match reply {
        Ok(v) => Ok(v.len() as u64),
        // No stream or no group yet: nothing can be stuck.
        Err(e) if e.code() == Some("NOGROUP") => Ok(0),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"{"budget": {"amount": "60.00", "currency": "INR"}}"#;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    /// The ledger's last apply set the 60.00 budget when `before` was settled.
    fn set_at(before: &str) -> BudgetHistory {
        BudgetHistory {
            amount: Some("60.00".into()),
            currency: Some("INR".into()),
            spent_before: d(before),
        }
    }

    #[test]
    fn a_spend_within_the_budget_adds_up() {
        let (b, problems, notices) =
            budget_figures(Some(CFG), None, 500_000, d("40"), d("10"), &set_at("0"));
        assert!(
            b.ok && problems.is_empty() && notices.is_empty(),
            "{problems:?}"
        );
        assert_eq!((b.amount, b.left), (Some(d("60")), Some(d("10"))));
        assert_eq!(b.currency.as_deref(), Some("INR"));
        assert_eq!(b.spent_when_set, Some(d("0")));
    }

    #[test]
    fn a_budget_set_below_what_was_awarded_is_a_notice() {
        let (b, problems, notices) =
            budget_figures(Some(CFG), None, 800_000, d("80"), d("0"), &set_at("80"));
        assert!(b.ok && problems.is_empty(), "{problems:?}");
        assert!(b.set_below_spent);
        assert_eq!(b.left, Some(Decimal::ZERO));
        assert_eq!(notices.len(), 1);
        // Its apply not settled yet: all that is settled came before it.
        let older = BudgetHistory {
            amount: Some("90.00".into()),
            ..set_at("0")
        };
        let (b, problems, _) = budget_figures(Some(CFG), None, 800_000, d("80"), d("0"), &older);
        assert!(b.ok && b.set_below_spent, "{problems:?}");
        assert_eq!(b.spent_when_set, Some(d("80")));
    }

    #[test]
    fn a_spend_above_the_budget_and_a_redis_count_apart_fail() {
        // 65.00 settled on a budget set at 50.00 spent.
        let (b, problems, _) =
            budget_figures(Some(CFG), None, 650_000, d("65"), d("0"), &set_at("50"));
        assert!(!b.ok);
        assert!(
            problems[0].contains("above the budget of 60.00 INR"),
            "{problems:?}"
        );
        // Redis counted 1.00 less than the ledger holds.
        let (b, problems, _) =
            budget_figures(Some(CFG), None, 390_000, d("40"), d("0"), &set_at("0"));
        assert!(!b.ok);
        assert!(
            problems[0].contains("Redis counted 39.0000 INR"),
            "{problems:?}"
        );
        // Saturated: Redis stopped counting, nothing to compare.
        let (b, problems, _) =
            budget_figures(None, Some("INR"), SPENT_CAP, d("1"), d("0"), &set_at("0"));
        assert!(b.ok && problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn codes_add_up_like_units_and_a_reward_without_one_fails() {
        let redis = CodeSnapshot {
            awarded: 7,
            stats: [
                ("coupon:loaded", 10),
                ("coupon:withdrawn", 1),
                ("old:loaded", 2),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
            pools: [("coupon".to_owned(), 4)].into_iter().collect(),
        };
        assert_eq!(
            CodeSnapshot::prizes(redis.stats.keys()),
            ["coupon", "old"].map(str::to_owned).into()
        );
        // 10 loaded - 1 withdrawn - 4 available = 5 handed out.
        let c = prize_codes(&redis, "coupon", 3, 1, 1, 0);
        assert_eq!((c.awarded, c.available), (5, 4));
        assert!(code_check("coupon", &c).is_empty());
        let short = prize_codes(&redis, "coupon", 2, 1, 1, 1);
        let problems = code_check("coupon", &short);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("codes awarded 5 (loaded 10 - withdrawn 1 - available 4)"));
        assert!(problems[1].contains("1 settled reward(s)"));
        // A pool never counted is empty: all its codes are handed out.
        assert_eq!(prize_codes(&redis, "old", 0, 0, 0, 0).awarded, 2);

        let settled = [("coupon".to_owned(), 5), ("old".to_owned(), 1)].into();
        let unsettled = [("coupon", 1)].into();
        let f = code_figures(&redis, &settled, &unsettled, &HashMap::new());
        assert!(f.ok, "{f:?}");
        let f = code_figures(&redis, &settled, &HashMap::new(), &HashMap::new());
        assert!(!f.ok && f.settled == 6 && f.awarded == 7, "{f:?}");
    }

    #[test]
    fn without_a_budget_only_the_value_is_counted() {
        let (b, problems, notices) = budget_figures(
            Some("{}"),
            Some("INR"),
            15_000,
            d("1.5"),
            d("0"),
            &BudgetHistory::default(),
        );
        assert!(b.ok && problems.is_empty() && notices.is_empty());
        assert_eq!((b.amount, b.left, b.spent_when_set), (None, None, None));
        assert_eq!(b.currency.as_deref(), Some("INR"), "the prizes'");
        assert_eq!(b.spent_redis.to_string(), "1.5000");
    }
}
