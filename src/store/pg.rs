//! PostgreSQL: applied campaign versions (and, with settlement, the ledger).
//! Queries are checked at run time (`sqlx::query`), so a build needs no database.

use crate::campaign::model::{Campaign, Stock};
use crate::store::redis::table::{StockSetting, TableEntry};
use anyhow::Context;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::num::NonZeroU64;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgSettings {
    /// `postgres://user@host:port/db`; from `DATABASE_URL`.
    pub url: secrecy::SecretString,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    #[serde(default = "default_acquire_timeout_ms")]
    pub acquire_timeout_ms: u64,
    /// Longest a request's or a command's PostgreSQL step (a page of rewards, a
    /// reconciliation's snapshot, recording an apply, a step of a recovery) may
    /// take, the wait for a connection included; then it fails (503) and the
    /// connection is closed rather than held (see [`within`]). Zero is refused
    /// when the settings load: every such step would fail.
    #[serde(default = "default_query_timeout_ms")]
    pub query_timeout_ms: NonZeroU64,
}

impl PgSettings {
    pub fn query_limit(&self) -> Duration {
        Duration::from_millis(self.query_timeout_ms.get())
    }
}

fn default_max_connections() -> u32 {
    8
}
fn default_acquire_timeout_ms() -> u64 {
    3000
}
fn default_query_timeout_ms() -> NonZeroU64 {
    NonZeroU64::new(30_000).unwrap_or(NonZeroU64::MIN)
}

/// A pool that connects on first use, so the API serves spins while Postgres is down.
///
/// Its sessions end any transaction left idle for `query_timeout_ms`: a step
/// that ran out of time (see [`within`]) closes its connection, but when the
/// close cannot reach PostgreSQL (the network between them is gone), the
/// server keeps the abandoned transaction and its row locks until its TCP
/// keepalive gives up (hours by default). The service's own transactions are
/// a few statements back to back, never idle that long. (Not exercised by the
/// tests: their fault proxy passes a close on.)
pub fn pool(settings: &PgSettings) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(settings.url.expose_secret())
        .context("DATABASE_URL is not a valid postgres:// URL")?
        .options([(
            "idle_in_transaction_session_timeout",
            format!("{}ms", settings.query_timeout_ms),
        )]);
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
        .connect_lazy_with(options))
}

/// Runs `step` on a connection of `pool` and gives up after `limit`, the wait
/// for a connection included. Every call to PostgreSQL made by a loop or a probe
/// goes through here: a PostgreSQL that vanished without a reset (a black hole,
/// a cut cable) would otherwise hold the caller until the kernel gives up, about
/// 15 minutes later.
pub async fn within<T>(
    pool: &PgPool,
    limit: Duration,
    step: impl for<'c> FnOnce(
        &'c mut sqlx::PgConnection,
    ) -> futures_util::future::BoxFuture<'c, Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut conn = acquire_by(pool, deadline).await?;
    let outcome = tokio::time::timeout_at(deadline, step(&mut conn)).await;
    unless_late(conn, outcome)
}

/// A connection of `pool`, or a timeout error at `deadline`. With
/// [`unless_late`], for a step [`within`] cannot take (a future that borrows
/// more than the connection).
pub async fn acquire_by(
    pool: &PgPool,
    deadline: tokio::time::Instant,
) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, sqlx::Error> {
    match tokio::time::timeout_at(deadline, pool.acquire()).await {
        Ok(acquired) => acquired,
        Err(_) => Err(late()),
    }
}

fn late() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "PostgreSQL did not answer in time; connection closed",
    ))
}

/// The outcome of a step run on `conn` under `tokio::time::timeout`. When the
/// step ran out of time, `conn` is closed instead of going back to the pool: its
/// state is unknown, and the pool would check it with a ping that, on a peer that
/// vanished without a reset, never ends and keeps the connection's pool slot.
pub fn unless_late<T, E: From<sqlx::Error>>(
    conn: sqlx::pool::PoolConnection<sqlx::Postgres>,
    outcome: Result<Result<T, E>, tokio::time::error::Elapsed>,
) -> Result<T, E> {
    match outcome {
        Ok(done) => done,
        Err(_) => {
            drop(conn.detach());
            Err(late().into())
        }
    }
}

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Applies the embedded migrations.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("running database migrations")
}

/// One applied version, as recorded.
pub struct VersionRecord<'a> {
    pub campaign: &'a Campaign,
    pub version: u64,
    pub config_hash: &'a str,
    pub config: &'a serde_json::Value,
    pub yaml: &'a str,
    pub applied_by: &'a str,
    pub changes: &'a serde_json::Value,
    pub table: &'a [(TableEntry, StockSetting)],
}

/// Records a version (idempotent: recording the same version twice keeps the
/// first record) and the prizes as it defines them, in one transaction.
pub async fn record_version(
    conn: &mut sqlx::PgConnection,
    r: &VersionRecord<'_>,
) -> anyhow::Result<()> {
    use sqlx::Connection;
    let c = r.campaign;
    let version = i64::try_from(r.version).context("version out of range")?;
    let mut tx = conn.begin().await.context("starting a transaction")?;
    sqlx::query(
        "INSERT INTO campaigns (campaign_id, name, timezone, starts_at, ends_at, version)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (campaign_id) DO UPDATE SET
            name = EXCLUDED.name, timezone = EXCLUDED.timezone,
            starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at,
            version = GREATEST(campaigns.version, EXCLUDED.version), updated_at = now()",
    )
    .bind(c.id.as_str())
    .bind(&c.name)
    .bind(c.timezone.name())
    .bind(c.starts_at)
    .bind(c.ends_at)
    .bind(version)
    .execute(&mut *tx)
    .await
    .context("recording the campaign")?;
    sqlx::query(
        "INSERT INTO campaign_versions
            (campaign_id, version, config_hash, config, yaml, yaml_sha256, applied_by, changes)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (campaign_id, version) DO NOTHING",
    )
    .bind(c.id.as_str())
    .bind(version)
    .bind(r.config_hash)
    .bind(r.config)
    .bind(r.yaml)
    .bind(crate::campaign::canonical::sha256_hex(r.yaml))
    .bind(r.applied_by)
    .bind(r.changes)
    .execute(&mut *tx)
    .await
    .context("recording the campaign version")?;
    for (entry, setting) in r.table {
        let amount: rust_decimal::Decimal = entry.amt.parse().context("prize amount")?;
        let (stock, retired) = match setting {
            StockSetting::Configured(Stock::Limited(n)) => (Some(*n as i64), false),
            StockSetting::Configured(Stock::Unlimited | Stock::Codes) => (None, false),
            StockSetting::Retired => (None, true),
        };
        let codes = matches!(setting, StockSetting::Configured(Stock::Codes));
        sqlx::query(
            "INSERT INTO prizes (campaign_id, prize_id, name, amount, currency, weight, stock, retired, codes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (campaign_id, prize_id) DO UPDATE SET
                name = EXCLUDED.name, amount = EXCLUDED.amount, currency = EXCLUDED.currency,
                weight = EXCLUDED.weight,
                stock = CASE WHEN EXCLUDED.retired THEN prizes.stock ELSE EXCLUDED.stock END,
                codes = CASE WHEN EXCLUDED.retired THEN prizes.codes ELSE EXCLUDED.codes END,
                retired = EXCLUDED.retired, updated_at = now()",
        )
        .bind(c.id.as_str())
        .bind(&entry.id)
        .bind(&entry.name)
        .bind(amount)
        .bind(&entry.cur)
        .bind(entry.w as i64)
        .bind(stock)
        .bind(retired)
        .bind(codes)
        .execute(&mut *tx)
        .await
        .context("recording a prize")?;
    }
    tx.commit()
        .await
        .context("committing the campaign version")?;
    Ok(())
}
