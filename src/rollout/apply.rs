//! Applying a campaign: plan against the live state, one atomic Redis script,
//! then the version record in PostgreSQL. Serves the CLI and the admin API.

use super::plan::{Plan, plan};
use crate::campaign::Campaign;
use crate::campaign::canonical;
use crate::store::pg::{VersionRecord, record_version};
use crate::store::redis::apply::{Applied, ApplyCall};
use crate::store::redis::live::LiveState;
use crate::store::redis::table::merge;
use crate::store::redis::{RedisStore, StoreError};
use sqlx::PgPool;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(
        "the live campaign changed while this apply was being prepared (live config {live_hash}); plan again"
    )]
    Conflict { live_hash: String },
    #[error(
        "`earned_spins.expire` is `{live}` on the live campaign and cannot change: users' earned spins are counted by that rule"
    )]
    ExpireFixed { live: String },
    /// Sub-pools are planned and simulated, not yet drawn (docs/ARCHITECTURE.md,
    /// "Sub-pools").
    #[error(
        "`pools: {pools}` cannot be applied by this version: it plans and simulates sub-pools, but their draws, settlement and recovery are not built yet; apply with pools: 1"
    )]
    PoolsNotApplied { pools: u32 },
    #[error(transparent)]
    Redis(#[from] StoreError),
    /// Redis has the new version but PostgreSQL could not record it; applying the
    /// same file again records it.
    #[error(
        "version {version} is live in Redis but was not recorded in PostgreSQL (apply the same file again to record it): {source:#}"
    )]
    NotRecorded {
        version: u64,
        #[source]
        source: anyhow::Error,
    },
    /// Redis has the version, but the campaign awaits recovery (Redis restarted)
    /// and it could not run; a settler retries by itself, as does applying again.
    #[error(
        "version {version} is live, but the campaign awaits recovery from the ledger and it failed (a settler retries it; so does applying the same file again): {source}"
    )]
    NotRecovered {
        version: u64,
        #[source]
        source: crate::recover::RecoverError,
    },
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ApplyReport {
    pub version: u64,
    /// False when the live config already equalled the file.
    pub changed: bool,
    pub plan: Plan,
}

/// The plan of applying `c`, and the live state it was computed against.
pub async fn plan_against_live(
    redis: &RedisStore,
    c: &Campaign,
) -> Result<(Plan, Option<LiveState>), StoreError> {
    let live = redis.live_state(&c.id).await?;
    Ok((plan(c, live.as_ref(), chrono::Utc::now()), live))
}

/// Applies `c` (parsed from `yaml`) on behalf of `applied_by`. Recording the
/// version in PostgreSQL takes at most `pg_limit` (`database.query_timeout_ms`),
/// the wait for a connection included; past it, `NotRecorded`.
pub async fn apply(
    redis: &RedisStore,
    pg: &PgPool,
    pg_limit: std::time::Duration,
    c: &Campaign,
    yaml: &str,
    applied_by: &str,
) -> Result<ApplyReport, ApplyError> {
    apply_if(redis, pg, pg_limit, c, yaml, applied_by, None).await
}

/// [`apply`], guarded by the hash of the live config the caller planned
/// against (`If-Match` of the admin API): when `expected` is given and the
/// live config's hash is not it (or the campaign is not live), nothing is
/// applied and the answer is `Conflict`. The same hash guards the Redis
/// script, so a change between this read and the script is a conflict too.
pub async fn apply_if(
    redis: &RedisStore,
    pg: &PgPool,
    pg_limit: std::time::Duration,
    c: &Campaign,
    yaml: &str,
    applied_by: &str,
    expected: Option<&str>,
) -> Result<ApplyReport, ApplyError> {
    if c.pools != 1 {
        return Err(ApplyError::PoolsNotApplied { pools: c.pools });
    }
    let (plan, live) = plan_against_live(redis, c).await?;
    if let Some(expected) = expected {
        let live_hash = live.as_ref().map(|l| l.hash.as_str());
        if live_hash != Some(expected) {
            return Err(ApplyError::Conflict {
                live_hash: live_hash
                    .unwrap_or("none: the campaign is not live")
                    .to_owned(),
            });
        }
    }
    let live_table = live
        .as_ref()
        .map(|l| l.table.as_slice())
        .unwrap_or_default();
    let (table, fallback) = merge(live_table, c);
    let applied = redis
        .apply(&ApplyCall {
            campaign: c,
            yaml,
            expected_hash: live.as_ref().map(|l| l.hash.as_str()),
            table: &table,
            fallback,
        })
        .await?;
    let (version, changed) = match applied {
        Applied::Applied { version } => (version, true),
        Applied::Unchanged { version } => (version, false),
        Applied::Conflict { live_hash } => return Err(ApplyError::Conflict { live_hash }),
        Applied::ExpireFixed { live } => return Err(ApplyError::ExpireFixed { live }),
    };
    let changes = serde_json::to_value(&plan.changes).unwrap_or_default();
    let config = canonical::to_json(c);
    let record = VersionRecord {
        campaign: c,
        version,
        config_hash: &canonical::hash(c),
        config: &config,
        yaml,
        applied_by,
        changes: &changes,
        table: &table,
    };
    let deadline = tokio::time::Instant::now() + pg_limit;
    let recorded: anyhow::Result<()> = async {
        let mut conn = crate::store::pg::acquire_by(pg, deadline).await?;
        let outcome = tokio::time::timeout_at(deadline, record_version(&mut conn, &record)).await;
        crate::store::pg::unless_late(conn, outcome)
    }
    .await;
    recorded.map_err(|source| ApplyError::NotRecorded { version, source })?;
    // A new campaign starts awaiting recovery like any other without an epoch:
    // its empty ledger certifies it at once. After a Redis restart, an apply
    // recovers the campaign too.
    crate::recover::recover_if_needed(&mut redis.conn(), pg, pg_limit, &c.id)
        .await
        .map_err(|source| ApplyError::NotRecovered { version, source })?;
    tracing::info!(
        campaign.id = %c.id,
        campaign.version = version,
        changed,
        applied_by,
        "campaign applied"
    );
    Ok(ApplyReport {
        version,
        changed,
        plan,
    })
}
