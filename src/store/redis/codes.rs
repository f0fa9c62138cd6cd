//! Calling lua/codes.lua: a prize's pool of codes, loaded, withdrawn and
//! counted one batch per round trip. Under durability `fsync-wins` a batch is
//! reported only once `WAITAOF` confirms it is on disk.

use super::durability::Durability;
use super::keys::CampaignKeys;
use super::reply::Reply;
use super::scripts::CODES;
use super::{RedisStore, StoreError};
use crate::domain::{CampaignId, PrizeId};

/// What one `add` batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Added {
    pub added: u64,
    /// Codes the campaign had seen: in a pool, awarded or withdrawn, or twice in the batch.
    pub duplicates: u64,
    /// The prize's pool after the batch.
    pub available: u64,
}

/// What one `withdraw` batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Withdrawn {
    pub withdrawn: u64,
    /// Handed out before: they stay with their winners.
    pub already_awarded: u64,
    /// Not in the prize's pool: never loaded for it, or withdrawn before.
    pub unknown: u64,
    pub available: u64,
}

/// A prize's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CodeCounts {
    /// Codes ever added to the prize's pool.
    pub loaded: u64,
    /// Handed out by wins.
    pub awarded: u64,
    pub withdrawn: u64,
    /// In the pool: what the next wins hand out.
    pub available: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodesRejection {
    NoCampaign,
    /// The live prize table has no such prize.
    NoPrize,
    /// The prize is not (or, for counts and withdrawals, never was) a live code prize.
    NotCodePrize,
}

impl RedisStore {
    /// Adds a batch of well-formed codes to `prize`'s pool.
    pub async fn add_codes(
        &self,
        campaign: &CampaignId,
        prize: &PrizeId,
        codes: &[String],
    ) -> Result<Result<Added, CodesRejection>, StoreError> {
        let r = self.codes_call(campaign, prize, "add", codes).await?;
        Ok(r.map(|r| Added {
            added: r[0],
            duplicates: r[1],
            available: r[2],
        }))
    }

    /// Withdraws a batch of codes from `prize`'s pool.
    pub async fn withdraw_codes(
        &self,
        campaign: &CampaignId,
        prize: &PrizeId,
        codes: &[String],
    ) -> Result<Result<Withdrawn, CodesRejection>, StoreError> {
        let r = self.codes_call(campaign, prize, "withdraw", codes).await?;
        Ok(r.map(|r| Withdrawn {
            withdrawn: r[0],
            already_awarded: r[1],
            unknown: r[2],
            available: r[3],
        }))
    }

    /// The prize's codes loaded, awarded, withdrawn and available.
    pub async fn count_codes(
        &self,
        campaign: &CampaignId,
        prize: &PrizeId,
    ) -> Result<Result<CodeCounts, CodesRejection>, StoreError> {
        let r = self.codes_call(campaign, prize, "count", &[]).await?;
        Ok(r.map(|r| CodeCounts {
            loaded: r[0],
            awarded: r[1],
            withdrawn: r[2],
            available: r[3],
        }))
    }

    async fn codes_call(
        &self,
        campaign: &CampaignId,
        prize: &PrizeId,
        op: &'static str,
        codes: &[String],
    ) -> Result<Result<Vec<u64>, CodesRejection>, StoreError> {
        let k = CampaignKeys::new(campaign);
        let _slot = self.slot().await?;
        let mut conn = self.conn();
        let mut inv = CODES.prepare_invoke();
        inv.key(&k.meta)
            .key(&k.stock)
            .key(&k.initial)
            .arg(op)
            .arg(prize.as_str());
        for c in codes {
            inv.arg(c);
        }
        let reply: Vec<redis::Value> = self.run_script("codes", &inv, &mut conn).await?;
        let r = Reply(reply);
        match r.str(0)? {
            "no_campaign" => return Ok(Err(CodesRejection::NoCampaign)),
            "no_prize" => return Ok(Err(CodesRejection::NoPrize)),
            "not_code_prize" => return Ok(Err(CodesRejection::NotCodePrize)),
            _ => {}
        }
        let counts = (1..r.len())
            .map(|i| r.int(i).map(|n| u64::try_from(n).unwrap_or(0)))
            .collect::<Result<Vec<_>, _>>()?;
        if op != "count" && self.durability == Durability::FsyncWins {
            self.await_fsync(&mut conn, &k.meta).await?;
        }
        Ok(Ok(counts))
    }
}
