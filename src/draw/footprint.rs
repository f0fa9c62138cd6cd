//! What a campaign's per-user state costs in Redis: the counters of each user,
//! the idempotency record of each spin and the record of each grant, summed
//! with `MEMORY USAGE` over the campaign's bucket hashes; and what a prize
//! code costs, in its prize's pool and once awarded. Used by the memory test
//! and bench/redis_footprint.rs.

use crate::domain::{CampaignId, IdempotencyKey, PrizeId, UserId};
use crate::draw::grants::{self, GrantRequest};
use crate::store::redis::keys::CampaignKeys;
use crate::store::redis::{RedisStore, StoreError};
use futures_util::StreamExt;
use futures_util::stream;

/// Bytes and entries of the per-user hashes (`u:*`), the idempotency record
/// hashes (`i:*`) and the grant record hashes (`g:*`) of one campaign.
#[derive(Debug, Clone, Copy, Default)]
pub struct Footprint {
    pub users: u64,
    pub user_bytes: u64,
    pub user_keys: u64,
    pub records: u64,
    pub record_bytes: u64,
    pub record_keys: u64,
    pub grants: u64,
    pub grant_bytes: u64,
    pub grant_keys: u64,
}

impl Footprint {
    pub fn per_user(&self) -> f64 {
        self.user_bytes as f64 / self.users.max(1) as f64
    }

    pub fn per_record(&self) -> f64 {
        self.record_bytes as f64 / self.records.max(1) as f64
    }

    pub fn per_grant(&self) -> f64 {
        self.grant_bytes as f64 / self.grants.max(1) as f64
    }
}

/// One spin (with a fresh key) for each user, `concurrency` at a time, through
/// the real draw. Fails on the first store error or refusal.
pub async fn spin_each(
    store: &RedisStore,
    campaign: &CampaignId,
    users: impl Iterator<Item = UserId>,
    concurrency: usize,
) -> Result<(), StoreError> {
    let mut calls = stream::iter(users)
        .map(|user| async move {
            let key = IdempotencyKey::parse(&uuid::Uuid::new_v4().simple().to_string())
                .map_err(StoreError::Protocol)?;
            match super::spin(store, campaign, &user, &key, "").await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(r)) => Err(StoreError::Protocol(format!("spin refused: {r:?}"))),
                Err(super::DrawError::Store(e)) => Err(e),
                Err(e) => Err(StoreError::Protocol(e.to_string())),
            }
        })
        .buffer_unordered(concurrency.max(1));
    while let Some(done) = calls.next().await {
        done?;
    }
    Ok(())
}

/// One grant of one spin (no reason) for each (user, grant id), `concurrency`
/// at a time, through the real grant script. The campaign must have
/// `earned_spins`. Fails on the first store error, refusal or replay.
pub async fn grant_each(
    store: &RedisStore,
    campaign: &CampaignId,
    grants: impl Iterator<Item = (UserId, IdempotencyKey)>,
    concurrency: usize,
) -> Result<(), StoreError> {
    let mut calls = stream::iter(grants)
        .map(|(user, grant_id)| async move {
            let request = GrantRequest {
                grant_id: &grant_id,
                user: &user,
                spins: 1,
                reason: "",
            };
            match grants::grant(store, campaign, &request).await? {
                Ok(g) if !g.replayed => Ok(()),
                Ok(_) => Err(StoreError::Protocol(format!(
                    "grant `{}` replayed: a grant id used twice",
                    grant_id.as_str()
                ))),
                Err(r) => Err(StoreError::Protocol(format!("grant refused: {r:?}"))),
            }
        })
        .buffer_unordered(concurrency.max(1));
    while let Some(done) = calls.next().await {
        done?;
    }
    Ok(())
}

/// Measures the campaign's per-user, per-record and per-grant state as it is now.
pub async fn measure(store: &RedisStore, campaign: &CampaignId) -> Result<Footprint, StoreError> {
    let mut conn = store.conn();
    let keys = CampaignKeys::new(campaign);
    let prefix = keys.prefix();
    let mut f = Footprint::default();
    for (kind, pattern) in [
        ("u", format!("{prefix}u:*")),
        ("i", format!("{prefix}i:*")),
        ("g", format!("{prefix}g:*")),
    ] {
        let keys: Vec<String> = {
            let mut iter: redis::AsyncIter<String> = redis::cmd("SCAN")
                .cursor_arg(0)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .clone()
                .iter_async(&mut conn)
                .await?;
            let mut keys = Vec::new();
            while let Some(k) = iter.next_item().await {
                keys.push(k?);
            }
            keys
        };
        for k in &keys {
            let (bytes, entries): (Option<u64>, u64) = redis::pipe()
                .cmd("MEMORY")
                .arg("USAGE")
                .arg(k)
                .arg("SAMPLES")
                .arg(0)
                .hlen(k)
                .query_async(&mut conn)
                .await?;
            let bytes = bytes.unwrap_or(0);
            match kind {
                "u" => {
                    (f.user_bytes, f.users, f.user_keys) =
                        (f.user_bytes + bytes, f.users + entries, f.user_keys + 1);
                }
                "i" => {
                    (f.record_bytes, f.records, f.record_keys) = (
                        f.record_bytes + bytes,
                        f.records + entries,
                        f.record_keys + 1,
                    );
                }
                _ => {
                    (f.grant_bytes, f.grants, f.grant_keys) =
                        (f.grant_bytes + bytes, f.grants + entries, f.grant_keys + 1);
                }
            }
        }
    }
    Ok(f)
}

/// Bytes and members of a code prize's pool (`pw:{C}:codes:<prize>`) and of
/// the campaign's awarded codes (`pw:{C}:codes-awarded`), by `MEMORY USAGE`
/// (every member counted; Redis's own estimate of each set, which counts an
/// entry at its struct size, not at the allocator's size class).
#[derive(Debug, Clone, Copy, Default)]
pub struct CodeFootprint {
    pub pooled: u64,
    pub pool_bytes: u64,
    pub awarded: u64,
    pub awarded_bytes: u64,
}

impl CodeFootprint {
    pub fn per_pooled(&self) -> f64 {
        self.pool_bytes as f64 / self.pooled.max(1) as f64
    }

    pub fn per_awarded(&self) -> f64 {
        self.awarded_bytes as f64 / self.awarded.max(1) as f64
    }
}

/// Loads `codes` into `prize`'s pool through lua/codes.lua, `batch` codes a
/// call, `concurrency` calls in flight. Returns the codes added. Fails on the
/// first store error or refusal (no campaign, no such code prize).
pub async fn load_codes(
    store: &RedisStore,
    campaign: &CampaignId,
    prize: &PrizeId,
    codes: impl Iterator<Item = String>,
    batch: usize,
    concurrency: usize,
) -> Result<u64, StoreError> {
    let mut codes = codes.peekable();
    let batches = std::iter::from_fn(|| {
        codes.peek()?;
        Some(codes.by_ref().take(batch.max(1)).collect::<Vec<String>>())
    });
    let mut calls = stream::iter(batches)
        .map(|b| async move {
            match store.add_codes(campaign, prize, &b).await? {
                Ok(a) => Ok(a.added),
                Err(r) => Err(StoreError::Protocol(format!("codes refused: {r:?}"))),
            }
        })
        .buffer_unordered(concurrency.max(1));
    let mut added = 0;
    while let Some(done) = calls.next().await {
        added += done?;
    }
    Ok(added)
}

/// Measures `prize`'s pool and the campaign's awarded codes as they are now.
pub async fn measure_codes(
    store: &RedisStore,
    campaign: &CampaignId,
    prize: &PrizeId,
) -> Result<CodeFootprint, StoreError> {
    let mut conn = store.conn();
    let keys = CampaignKeys::new(campaign);
    let (pool, awarded) = (keys.code_pool(prize.as_str()), keys.codes_awarded);
    let (pool_bytes, pooled, awarded_bytes, awarded): (Option<u64>, u64, Option<u64>, u64) =
        redis::pipe()
            .cmd("MEMORY")
            .arg("USAGE")
            .arg(&pool)
            .arg("SAMPLES")
            .arg(0)
            .scard(&pool)
            .cmd("MEMORY")
            .arg("USAGE")
            .arg(&awarded)
            .arg("SAMPLES")
            .arg(0)
            .scard(&awarded)
            .query_async(&mut conn)
            .await?;
    Ok(CodeFootprint {
        pooled,
        pool_bytes: pool_bytes.unwrap_or(0),
        awarded,
        awarded_bytes: awarded_bytes.unwrap_or(0),
    })
}

/// The server's `used_memory` (`INFO memory`): what its allocator holds, the
/// figure a delta over many codes divides (on a server no one else writes to).
pub async fn used_memory(store: &RedisStore) -> Result<u64, StoreError> {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut store.conn())
        .await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| StoreError::Protocol("INFO memory: no used_memory".into()))
}
