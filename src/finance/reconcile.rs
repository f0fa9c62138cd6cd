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
use std::collections::{BTreeMap, HashMap, HashSet};

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
    /// All of this prize's checks hold.
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
    /// (prize, currency, rows, sum) of rows up to Redis's last stream id.
    settled: Vec<(String, String, i64, Decimal)>,
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
        "SELECT prize_id, currency, count(*), coalesce(sum(amount), 0) FROM rewards
         WHERE campaign_id = $1 AND (stream_ms, stream_seq) <= ($2, $3)
         GROUP BY prize_id, currency",
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
    type Snapshot = (
        HashMap<String, i64>,
        HashMap<String, i64>,
        HashMap<String, i64>,
        HashMap<String, redis::Value>,
        u64,
        MetaFields,
    );
    type MetaFields = (
        Option<String>,
        Option<i64>,
        Option<i64>,
        Option<String>,
        Option<i64>,
    );
    let (initial, stock, awarded, last, dead_letters, meta): Snapshot = redis::pipe()
        .atomic()
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
        .query_async(&mut conn)
        .await
        .map_err(StoreError::from)?;
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
                            unsettled.push((spin, prize, value(f.get("amount"))));
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
        .filter_map(|(s, _, _)| s.parse().ok())
        .collect();
    let grant_ids: Vec<String> = unsettled_grants
        .iter()
        .chain(&dead_grants)
        .map(|(_, id)| id.clone())
        .collect();
    let owned = campaign.to_string();
    let LedgerSnapshot {
        settled,
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
    let mut spent_unsettled = Decimal::ZERO;
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    for (spin, prize, amount) in &unsettled {
        if !seen.insert(spin.as_str()) {
            duplicates += 1;
        }
        if spin.parse().map(|u| !landed.contains(&u)).unwrap_or(true) {
            *in_flight.entry(prize.as_str()).or_default() += 1;
            spent_unsettled += amount;
        }
    }

    // A dead letter whose spin is in the ledger was settled again by hand
    // (`dead-letters retry` stopped before deleting it): counted as settled.
    // A settler that crashed between dead-lettering and acking dead-letters the
    // entry again when it is redelivered: count each spin once.
    let mut dead_lettered: HashMap<&str, i64> = HashMap::new();
    let mut dead_seen = HashSet::new();
    for (spin, prize, amount) in &dead {
        if !dead_seen.insert(spin.as_str()) {
            continue;
        }
        if spin.parse().map(|u| !landed.contains(&u)).unwrap_or(true) {
            *dead_lettered.entry(prize.as_str()).or_default() += 1;
            spent_unsettled += amount;
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
            ok: true,
        });
    }
    spins.used = settled.iter().map(|s| s.2).sum();
    let spent_ledger: Decimal = settled.iter().map(|s| s.3).sum();
    for (prize, currency, count, amount) in settled {
        if let Some(p) = prizes.get_mut(&prize) {
            p.settled += count;
            p.settled_amount += amount;
            p.currency = Some(currency);
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

/// A spin entry of the results (or dead-letter) stream: (spin id, prize, value).
type SpinEntry = (String, String, Decimal);

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

/// (spin id, prize, value) of the spins in the dead-letter stream, and its
/// grants and revocations.
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
                        out.push((spin, prize, value(field("amount").as_ref())));
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
