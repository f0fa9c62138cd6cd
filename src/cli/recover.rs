//! `prizewheel recover CAMPAIGN`: stop new draws, rebuild the campaign's Redis
//! state from the ledger, resume (src/recover). Settlers do it by themselves
//! after a Redis restart; this runs it on demand, e.g. with no settler running
//! or after restoring Redis from a backup.

use crate::config::Settings;
use crate::domain::CampaignId;
use crate::recover::{recover, recover_if_needed};
use crate::store::pg;
use crate::store::redis::RedisStore;
use clap::Args;
use std::path::Path;

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The campaign id.
    campaign: String,
    /// Only when the campaign awaits recovery (Redis restarted since its last
    /// one); without it the campaign's new draws pause while it runs.
    #[arg(long)]
    if_needed: bool,
    /// Print JSON instead of a line.
    #[arg(long)]
    json: bool,
}

pub async fn run(a: RecoverArgs, config: &Path) -> anyhow::Result<bool> {
    let campaign = CampaignId::parse(&a.campaign).map_err(anyhow::Error::msg)?;
    let (redis, database) = Settings::load_stores(config)?;
    let redis = RedisStore::connect(&redis).await?;
    let pool = pg::pool(&database)?;
    let mut conn = redis.conn();
    let report = if a.if_needed {
        recover_if_needed(&mut conn, &pool, database.query_limit(), &campaign).await?
    } else {
        Some(recover(&mut conn, &pool, database.query_limit(), &campaign).await?)
    };
    match (report, a.json) {
        (Some(r), true) => println!("{}", serde_json::to_string_pretty(&r)?),
        (Some(r), false) => println!("{r}"),
        (None, true) => println!("null"),
        (None, false) => println!("campaign {campaign}: nothing to recover"),
    }
    Ok(true)
}
