//! Grants as the service runs them: the hashes that name a grant's record and
//! tell a retry from a reuse, and the calls to lua/grant.lua and lua/revoke.lua.

use super::{digest8, user_hash};
use crate::domain::{CampaignId, IdempotencyKey, UserId};
use crate::store::redis::grant::{GrantCall, GrantRejection, Granted, RevokeRejection, Revoked};
use crate::store::redis::{RedisStore, StoreError};

/// Picks the grant record's bucket.
pub fn grant_hash(grant_id: &str) -> u32 {
    let d = digest8(&[b"grant", grant_id.as_bytes()]);
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Tells a retry of a grant (same user, spins and reason) from a reuse of its id.
pub fn grant_fingerprint(user: &str, spins: u32, reason: &str) -> [u8; 8] {
    digest8(&[
        b"grant",
        user.as_bytes(),
        &spins.to_be_bytes(),
        reason.as_bytes(),
    ])
}

/// A grant to make: what the order service asked for, validated.
pub struct GrantRequest<'a> {
    pub grant_id: &'a IdempotencyKey,
    pub user: &'a UserId,
    pub spins: u32,
    /// Canonical JSON, or empty.
    pub reason: &'a str,
}

/// Grants `r.spins` to `r.user` once under `r.grant_id` (or replays that grant).
pub async fn grant(
    redis: &RedisStore,
    campaign: &CampaignId,
    r: &GrantRequest<'_>,
) -> Result<Result<Granted, GrantRejection>, StoreError> {
    redis
        .grant(&GrantCall {
            campaign,
            user: r.user,
            grant_id: r.grant_id,
            user_hash: user_hash(r.user.as_str()),
            grant_hash: grant_hash(r.grant_id.as_str()),
            fingerprint: grant_fingerprint(r.user.as_str(), r.spins, r.reason),
            spins: r.spins,
            reason: r.reason,
        })
        .await
}

/// Revokes `grant_id`; the flag says it had been revoked before.
pub async fn revoke(
    redis: &RedisStore,
    campaign: &CampaignId,
    grant_id: &IdempotencyKey,
) -> Result<Result<(Revoked, bool), RevokeRejection>, StoreError> {
    redis
        .revoke(campaign, grant_id, grant_hash(grant_id.as_str()))
        .await
}
