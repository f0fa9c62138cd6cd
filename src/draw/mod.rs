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
