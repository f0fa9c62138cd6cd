//! Reading a campaign's live state in one atomic snapshot (for plan and admin).

use super::keys::CampaignKeys;
use super::table::TableEntry;
use super::{RedisStore, StoreError};
use crate::domain::CampaignId;
use std::collections::HashMap;

/// What Redis holds for a campaign right now.
#[derive(Debug, Clone)]
pub struct LiveState {
    pub version: u64,
    /// Hash of the canonical config last applied.
    pub hash: String,
    /// The YAML text last applied.
    pub yaml: String,
    pub table: Vec<TableEntry>,
    pub buckets: u64,
    /// Remaining units per prize id; -1 = unlimited.
    pub stock: HashMap<String, i64>,
    /// Configured units per prize id; -1 = unlimited.
    pub initial: HashMap<String, i64>,
    pub awarded: HashMap<String, i64>,
}

impl RedisStore {
    /// The live state of `id`, or `None` if it was never applied.
    pub async fn live_state(&self, id: &CampaignId) -> Result<Option<LiveState>, StoreError> {
        let k = CampaignKeys::new(id);
        type Maps = (
            HashMap<String, String>,
            HashMap<String, i64>,
            HashMap<String, i64>,
            HashMap<String, i64>,
        );
        let (meta, stock, initial, awarded): Maps = redis::pipe()
            .atomic()
            .hgetall(&k.meta)
            .hgetall(&k.stock)
            .hgetall(&k.initial)
            .hgetall(&k.awarded)
            .query_async(&mut self.conn())
            .await?;
        if meta.is_empty() {
            return Ok(None);
        }
        let field = |name: &str| {
            meta.get(name)
                .cloned()
                .ok_or_else(|| StoreError::Protocol(format!("{}: no field `{name}`", k.meta)))
        };
        let number = |name: &str| {
            field(name)?
                .parse::<u64>()
                .map_err(|_| StoreError::Protocol(format!("{}: `{name}` is not a number", k.meta)))
        };
        let table = serde_json::from_str(&field("tbl")?)
            .map_err(|_| StoreError::Protocol(format!("{}: `tbl` is not JSON", k.meta)))?;
        Ok(Some(LiveState {
            version: number("ver")?,
            hash: field("hash")?,
            yaml: field("yaml")?,
            table,
            buckets: number("nb")?,
            stock,
            initial,
            awarded,
        }))
    }

    /// The applied version of each campaign and its grants counter (`None`
    /// where there is none). One read per campaign, all in flight at once:
    /// campaigns live on different cluster slots, so they cannot share a pipeline.
    pub async fn versions(
        &self,
        ids: &[CampaignId],
    ) -> Result<Vec<(Option<i64>, Option<i64>)>, StoreError> {
        let reads = ids.iter().map(|id| {
            let mut conn = self.conn();
            let meta = CampaignKeys::new(id).meta;
            async move {
                redis::cmd("HMGET")
                    .arg(meta)
                    .arg("ver")
                    .arg("gv")
                    .query_async::<(Option<i64>, Option<i64>)>(&mut conn)
                    .await
            }
        });
        Ok(futures_util::future::try_join_all(reads).await?)
    }
}
