//! Calling lua/grant.lua and lua/revoke.lua: spins earned by an order, and taken
//! back when it is cancelled. One Redis round trip each, followed under
//! durability `fsync-wins` by the `WAITAOF` that confirms it is on disk (the
//! order service is told once and does not ask again).

use super::durability::Durability;
use super::keys::CampaignKeys;
use super::reply::Reply;
use super::scripts::{GRANT, REVOKE};
use super::{RedisStore, StoreError};
use crate::domain::{CampaignId, IdempotencyKey, UserId};

/// Everything the grant script needs, computed before the call.
pub struct GrantCall<'a> {
    pub campaign: &'a CampaignId,
    pub user: &'a UserId,
    /// The grant's id: the Idempotency-Key, e.g. the order id.
    pub grant_id: &'a IdempotencyKey,
    /// Selects the user's bucket.
    pub user_hash: u32,
    /// Selects the grant record's bucket.
    pub grant_hash: u32,
    /// Tells a retry of the same grant from a reuse of its id.
    pub fingerprint: [u8; 8],
    pub spins: u32,
    /// Canonical JSON, or empty.
    pub reason: &'a str,
}

/// A grant made (or replayed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    /// The user's spins after the grant, within the limits.
    pub spins_left: u64,
    pub replayed: bool,
}

/// Why the grant script granted nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantRejection {
    NoCampaign,
    /// The campaign has no `earned_spins`.
    NotEnabled,
    /// Under `expire: end_of_day`, before the first campaign day.
    NotStarted,
    Ended,
    /// The grant id was used before with another body.
    KeyReused,
    Recovering,
}

/// What a revocation did with a grant's spins: the three add up to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Revoked {
    /// Taken back: the user no longer has them.
    pub revoked: u32,
    /// Spent before the revocation.
    pub already_used: u32,
    /// Lapsed unused with the day they were earned on (`expire: end_of_day`).
    pub lapsed: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeRejection {
    NoCampaign,
    UnknownGrant,
    Recovering,
}

impl RedisStore {
    /// Runs one grant. Under `fsync-wins`, a grant (made or replayed) is
    /// returned only once its fsync is confirmed, else
    /// [`StoreError::NotDurable`]: the grant stands and a retry replays it.
    pub async fn grant(
        &self,
        call: &GrantCall<'_>,
    ) -> Result<Result<Granted, GrantRejection>, StoreError> {
        let k = CampaignKeys::new(call.campaign);
        let fsync = self.durability == Durability::FsyncWins;
        let _slot = self.slot().await?;
        // One connection for the script and the WAITAOF after it.
        let mut conn = self.conn();
        let mut inv = GRANT.prepare_invoke();
        inv.key(&k.meta)
            .key(&k.days)
            .key(&k.results)
            .arg(call.user.as_str())
            .arg(call.user_hash)
            .arg(call.grant_id.as_str())
            .arg(call.grant_hash)
            .arg(&call.fingerprint[..])
            .arg(call.spins)
            .arg(call.reason)
            .arg(if fsync { "1" } else { "0" });
        let reply: Vec<redis::Value> = self.run_script("grant", &inv, &mut conn).await?;
        let r = Reply(reply);
        let rejection = match r.str(0)? {
            status @ ("ok" | "replay") => {
                if fsync {
                    self.await_fsync(&mut conn, &k.meta).await?;
                }
                return Ok(Ok(Granted {
                    spins_left: u64::try_from(r.int(1)?).unwrap_or(0),
                    replayed: status == "replay",
                }));
            }
            "no_campaign" => GrantRejection::NoCampaign,
            "not_enabled" => GrantRejection::NotEnabled,
            "not_started" => GrantRejection::NotStarted,
            "ended" => GrantRejection::Ended,
            "key_reused" => GrantRejection::KeyReused,
            "recovering" => GrantRejection::Recovering,
            other => {
                return Err(StoreError::Protocol(format!(
                    "unknown grant status `{other}`"
                )));
            }
        };
        Ok(Err(rejection))
    }

    /// Revokes the grant `grant_id` (hashed to `grant_hash`). The flag is true
    /// when it had been revoked before (the first answer is repeated). Under
    /// `fsync-wins`, as [`RedisStore::grant`].
    pub async fn revoke(
        &self,
        campaign: &CampaignId,
        grant_id: &IdempotencyKey,
        grant_hash: u32,
    ) -> Result<Result<(Revoked, bool), RevokeRejection>, StoreError> {
        let k = CampaignKeys::new(campaign);
        let fsync = self.durability == Durability::FsyncWins;
        let _slot = self.slot().await?;
        let mut conn = self.conn();
        let mut inv = REVOKE.prepare_invoke();
        inv.key(&k.meta)
            .key(&k.days)
            .key(&k.results)
            .arg(grant_id.as_str())
            .arg(grant_hash)
            .arg(if fsync { "1" } else { "0" });
        let reply: Vec<redis::Value> = self.run_script("revoke", &inv, &mut conn).await?;
        let r = Reply(reply);
        if fsync && matches!(r.str(0)?, "ok" | "replay") {
            self.await_fsync(&mut conn, &k.meta).await?;
        }
        let count = |i: usize| -> Result<u32, StoreError> {
            u32::try_from(r.int(i)?)
                .map_err(|_| StoreError::Protocol(format!("revoke item {i}: out of range")))
        };
        Ok(match r.str(0)? {
            status @ ("ok" | "replay") => Ok((
                Revoked {
                    revoked: count(1)?,
                    already_used: count(2)?,
                    lapsed: count(3)?,
                },
                status == "replay",
            )),
            "no_campaign" => Err(RevokeRejection::NoCampaign),
            "unknown_grant" => Err(RevokeRejection::UnknownGrant),
            "recovering" => Err(RevokeRejection::Recovering),
            other => {
                return Err(StoreError::Protocol(format!(
                    "unknown revoke status `{other}`"
                )));
            }
        })
    }
}
