//! `prizewheel audit CAMPAIGN`: replay the settled ledger through the model.

use super::stores::{Stores, campaign_id};
use crate::domain::CampaignId;
use crate::finance::audit::audit;
use crate::settle::stream;
use crate::store::redis::keys::CampaignKeys;
use clap::Args;
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The campaign id.
    #[arg(value_parser = campaign_id)]
    campaign: CampaignId,
    /// Print JSON instead of a summary.
    #[arg(long)]
    json: bool,
}

/// Prints the audit; `Ok(false)` (exit 1) on any mismatch.
pub async fn run(a: AuditArgs, config: &Path) -> anyhow::Result<bool> {
    let campaign = a.campaign;
    let Stores {
        redis, pg: pool, ..
    } = Stores::connect(config).await?;

    // Totals are compared with the live counters only once everything drawn is settled.
    let keys = CampaignKeys::new(&campaign);
    let mut conn = redis.conn();
    let lag = stream::lag(&mut conn, &keys.results).await?;
    let live: HashMap<String, i64> = redis::cmd("HGETALL")
        .arg(&keys.awarded)
        .query_async(&mut conn)
        .await?;
    let mut report = audit(&pool, &campaign, (lag.unsettled() == 0).then_some(&live)).await?;
    if lag.unsettled() > 0 {
        report.ok = false;
        report.problems.push(format!(
            "{} draw(s) not settled yet: totals not compared with Redis; audit again when settlement has caught up",
            lag.unsettled()
        ));
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let rate = report.rewards as f64 / (report.elapsed_ms.max(1) as f64 / 1000.0);
        println!(
            "campaign {}: {} — {} rewards, {} grants, {} revocations and {} applies replayed in {} ms ({rate:.0} rewards/s), {} mismatch(es)",
            report.campaign_id,
            if report.ok {
                "audit passed"
            } else {
                "AUDIT FAILED"
            },
            report.rewards,
            report.grants,
            report.revocations,
            report.applies,
            report.elapsed_ms,
            report.mismatches
        );
        if report.codes > 0 || report.code_pool_fallbacks > 0 {
            println!(
                "  prize codes: {} reward(s) with a code; {} draw(s) of a code prize gave the fallback (its pool empty then: not checked, the ledger does not know the codes loaded)",
                report.codes, report.code_pool_fallbacks
            );
        }
        let mut totals: Vec<_> = report.replayed_awarded.iter().collect();
        totals.sort();
        for (prize, n) in totals {
            println!("  {prize:<20} {n:>12} awarded");
        }
        for p in &report.problems {
            println!("problem: {p}");
        }
    }
    Ok(report.ok)
}
