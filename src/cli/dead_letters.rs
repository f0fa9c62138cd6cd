//! `prizewheel dead-letters list|retry CAMPAIGN`: the entries settlement could
//! not settle (src/settle/dead.rs), and settling them again once their cause is
//! fixed.

use super::stores::{Stores, campaign_id};
use crate::domain::CampaignId;
use crate::settle::dead;
use crate::store::redis::keys::CampaignKeys;
use clap::{Args, Subcommand};
use std::path::Path;

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// Show each dead letter: its entry, why it was not settled, its fields.
    List(ListArgs),
    /// Settle the dead letters the ledger now takes; exit 1 if any remain.
    Retry(RetryArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The campaign id.
    #[arg(value_parser = campaign_id)]
    campaign: CampaignId,
    /// Show at most this many.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Print JSON instead of lines.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The campaign id.
    #[arg(value_parser = campaign_id)]
    campaign: CampaignId,
    /// Settle spins without their client context (for a context the ledger
    /// will never take); the reward itself is kept.
    #[arg(long)]
    drop_context: bool,
    /// Print JSON instead of lines.
    #[arg(long)]
    json: bool,
}

pub async fn run(c: DeadLettersCommand, config: &Path) -> anyhow::Result<bool> {
    let Stores {
        redis,
        pg: pool,
        pg_limit,
    } = Stores::connect(config).await?;
    let mut conn = redis.conn();
    match c {
        DeadLettersCommand::List(a) => {
            let campaign = a.campaign;
            let keys = CampaignKeys::new(&campaign);
            let letters = dead::list(&mut conn, &keys.dead, None, a.limit.max(1)).await?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&letters)?);
            } else if letters.is_empty() {
                println!("campaign {campaign}: no dead letters");
            }
            for d in letters.iter().filter(|_| !a.json) {
                let fields: Vec<String> =
                    d.fields.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                println!(
                    "{} (entry {}): {}\n    {}",
                    d.id,
                    d.source_id,
                    d.reason,
                    fields.join(" ")
                );
            }
            Ok(true)
        }
        DeadLettersCommand::Retry(a) => {
            let campaign = a.campaign;
            let keys = CampaignKeys::new(&campaign);
            let report = dead::retry(
                &mut conn,
                &pool,
                pg_limit,
                campaign.as_str(),
                &keys.dead,
                a.drop_context,
            )
            .await?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "campaign {campaign}: {} dead letter(s) settled, {} remain",
                    report.settled,
                    report.remaining.len()
                );
                for r in &report.remaining {
                    println!("{} (entry {}): {}", r.id, r.source_id, r.reason);
                }
            }
            Ok(report.remaining.is_empty())
        }
    }
}
