//! The draw as the service runs it: request identity, randomness and the call
//! to the draw script. The rule that maps `R` to a prize lives in lua/spin.lua
//! and is documented in docs/campaigns.md ("The draw rule").

pub mod footprint;
pub mod grants;
pub mod model;
pub mod release;
pub mod rng;

use crate::domain::{CampaignId, IdempotencyKey, UserId};
use crate::store::redis::spin::{Drawn, Rejection, SpinCall};
use crate::store::redis::{RedisStore, StoreError};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum DrawError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Seed(#[from] rng::SeedError),
}

/// The first 8 bytes of SHA-256 over `parts`, each prefixed by its length so
/// that ("ab", "c") and ("a", "bc") differ.
fn digest8(parts: &[&[u8]]) -> [u8; 8] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    let out = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&out[..8]);
    first
}

/// Picks the user's bucket in every per-user hash of a campaign.
pub fn user_hash(user: &str) -> u32 {
    let d = digest8(&[b"user", user.as_bytes()]);
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Picks the user's pool in a campaign of several (`domain::Pool::of_hash`):
/// other bits than [`user_hash`]'s, so that the users of one pool still
/// spread over all of its buckets.
pub fn pool_hash(user: &str) -> u64 {
    u64::from_be_bytes(digest8(&[b"pool", user.as_bytes()]))
}

/// Names the idempotency record of (`user`, `key`) in its bucket hash.
pub fn record_field(user: &str, key: &str) -> [u8; 8] {
    digest8(&[b"record", user.as_bytes(), key.as_bytes()])
}

/// Tells a retry of the same request (same canonical body) from a reuse of its key.
pub fn fingerprint(context: &str) -> [u8; 8] {
    digest8(&[b"body", context.as_bytes()])
}

/// Draws once for `user` (or replays the draw of `key`). `context` is the
/// request body as canonical JSON, or empty.
pub async fn spin(
    redis: &RedisStore,
    campaign: &CampaignId,
    user: &UserId,
    key: &IdempotencyKey,
    context: &str,
) -> Result<Result<Drawn, Rejection>, DrawError> {
    let call = SpinCall {
        campaign,
        user,
        key,
        user_hash: user_hash(user.as_str()),
        record_field: record_field(user.as_str(), key.as_str()),
        fingerprint: fingerprint(context),
        r: rng::next_r()?,
        spin_id: rng::spin_id()?,
        context,
    };
    Ok(redis.spin(&call).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Pool;

    /// Users of one pool still fill every bucket of it evenly: the pool and
    /// the bucket come from independent hashes.
    #[test]
    fn a_pools_users_spread_over_all_its_buckets() {
        let (pools, buckets) = (3u32, 8u64);
        let mut seen = vec![vec![0u32; buckets as usize]; pools as usize];
        for i in 0..24_000 {
            let user = format!("user-{i}");
            let pool = Pool::of_hash(pool_hash(&user), pools).unwrap();
            let bucket = u64::from(user_hash(&user)) % buckets;
            seen[pool.index() as usize][bucket as usize] += 1;
        }
        // 1,000 expected per cell; 6 standard deviations is about ±190.
        for row in &seen {
            for &n in row {
                assert!((800..1200).contains(&n), "{seen:?}");
            }
        }
    }
}
