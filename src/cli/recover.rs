//! `prizewheel recover CAMPAIGN`: stop new draws, rebuild the campaign's Redis
//! state from the ledger, resume (src/recover). Settlers do it by themselves
//! after a Redis restart; this runs it on demand, e.g. with no settler running
//! or after restoring Redis from a backup.

use super::stores::{Stores, campaign_id};
use crate::domain::CampaignId;
use crate::recover::{recover, recover_if_needed};
use clap::Args;
use std::path::Path;

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The campaign id.
    #[arg(value_parser = campaign_id)]
    campaign: CampaignId,
    /// Only when the campaign awaits recovery (Redis restarted since its last
    /// one); without it the campaign's new draws pause while it runs.
    #[arg(long)]
    if_needed: bool,
    /// Print JSON instead of a line.
    #[arg(long)]
    json: bool,
}

pub async fn run(a: RecoverArgs, config: &Path) -> anyhow::Result<bool> {
    let campaign = a.campaign;
    let stores = Stores::connect(config).await?;
    let (redis, pool, pg_limit) = (stores.redis, stores.pg, stores.pg_limit);
    let mut conn = redis.conn();
    let report = if a.if_needed {
        recover_if_needed(&mut conn, &pool, pg_limit, &campaign).await?
    } else {
        Some(recover(&mut conn, &pool, pg_limit, &campaign).await?)
    };
    match (report, a.json) {
        (Some(r), true) => println!("{}", serde_json::to_string_pretty(&r)?),
        (Some(r), false) => println!("{r}"),
        (None, true) => println!("null"),
        (None, false) => println!("campaign {campaign}: nothing to recover"),
    }
    Ok(true)
}
