//! Calling lua/status.lua: a campaign as a client sees it before spinning.

use super::keys::CampaignKeys;
use super::live::DrawState;
use super::reply::Reply;
use super::scripts::STATUS;
use super::table::TableEntry;
use super::{RedisStore, StoreError};
use crate::domain::{CampaignId, UserId};

pub struct ClientView {
    /// The campaign as the draw sees it now (config, prizes with stock and
    /// awarded units, budget, value awarded, day starts).
    pub draw: DrawState,
    pub spins_left: u64,
}

impl RedisStore {
    pub async fn client_view(
        &self,
        campaign: &CampaignId,
        user: &UserId,
        user_hash: u32,
    ) -> Result<Option<ClientView>, StoreError> {
        let k = CampaignKeys::new(campaign);
        let _slot = self.slot().await?;
        let mut inv = STATUS.prepare_invoke();
        inv.key(&k.meta)
            .key(&k.stock)
            .key(&k.days)
            .key(&k.awarded)
            .arg(user.as_str())
            .arg(user_hash);
        let reply: Vec<redis::Value> = self.run_script("status", &inv, &mut self.conn()).await?;
        let r = Reply(reply);
        if r.is_empty() {
            return Ok(None);
        }
        let bad = |what: &str| StoreError::Protocol(format!("status.lua: {what}"));
        let config = serde_json::from_str(r.str(1)?).map_err(|_| bad("config is not JSON"))?;
        let table: Vec<TableEntry> =
            serde_json::from_str(r.str(2)?).map_err(|_| bad("prize table is not JSON"))?;
        const FIRST: usize = 7;
        let n = table.len();
        if r.int(6)? != n as i64 || r.len() < FIRST + 2 * n {
            return Err(bad("stock list does not match the prize table"));
        }
        let mut prizes = Vec::with_capacity(n);
        for (i, entry) in table.into_iter().enumerate() {
            let awarded = u64::try_from(r.int(FIRST + 2 * i + 1)?).unwrap_or(0);
            prizes.push((entry, r.int(FIRST + 2 * i)?, awarded));
        }
        let day_starts = (FIRST + 2 * n..r.len())
            .map(|i| r.int(i))
            .collect::<Result<_, _>>()?;
        Ok(Some(ClientView {
            draw: DrawState {
                now_ms: r.int(0)?,
                config,
                prizes,
                budget: u64::try_from(r.int(4)?).ok(),
                spent: u64::try_from(r.int(5)?).unwrap_or(0),
                day_starts,
            },
            spins_left: u64::try_from(r.int(3)?).unwrap_or(0),
        }))
    }
}
