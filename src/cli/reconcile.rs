//! `prizewheel reconcile CAMPAIGN`: drawn vs settled, prize by prize.

use super::stores::{Stores, campaign_id};
use crate::domain::CampaignId;
use crate::finance::reconcile::{Reconciliation, reconcile};
use crate::settle::Thresholds;
use clap::Args;
use std::path::Path;

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// The campaign id.
    #[arg(value_parser = campaign_id)]
    campaign: CampaignId,
    /// Pending entries idle longer than this count as stuck.
    #[arg(long, default_value_t = Thresholds::default().stuck_after_ms)]
    stuck_after_ms: u64,
    /// Settlement is behind (exit 1) when its oldest unsettled entry is older.
    #[arg(long, default_value_t = Thresholds::default().max_lag_ms)]
    max_lag_ms: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Prints the reconciliation; `Ok(false)` (exit 1) on any mismatch.
pub async fn run(a: ReconcileArgs, config: &Path) -> anyhow::Result<bool> {
    let campaign = a.campaign;
    let stores = Stores::connect(config).await?;
    let (redis, pool, pg_limit) = (stores.redis, stores.pg, stores.pg_limit);
    let r = reconcile(
        &redis,
        &pool,
        pg_limit,
        &campaign,
        &Thresholds {
            stuck_after_ms: a.stuck_after_ms,
            max_lag_ms: a.max_lag_ms,
        },
    )
    .await?
    .ok_or_else(|| anyhow::anyhow!("no campaign `{campaign}` in Redis"))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", table(&r));
    }
    Ok(r.ok)
}

fn table(r: &Reconciliation) -> String {
    let opt = |v: Option<i64>| v.map_or("unlimited".to_owned(), |n| n.to_string());
    let mut out = format!(
        "campaign {}: {}\n{:<20} {:>10} {:>10} {:>10} {:>10} {:>10} {:>6} {:>22}  check\n",
        r.campaign_id,
        if r.ok { "reconciled" } else { "MISMATCH" },
        "prize",
        "stock",
        "remaining",
        "awarded",
        "settled",
        "in flight",
        "dead",
        "settled value"
    );
    for p in &r.prizes {
        out += &format!(
            "{:<20} {:>10} {:>10} {:>10} {:>10} {:>10} {:>6} {:>22}  {}\n",
            p.prize_id,
            opt(p.stock),
            opt(p.remaining),
            p.awarded,
            p.settled,
            p.in_flight,
            p.dead_lettered,
            format!(
                "{} {}",
                p.settled_amount,
                p.currency.as_deref().unwrap_or("")
            ),
            if p.ok { "ok" } else { "MISMATCH" }
        );
    }
    for (what, g) in [("grants", &r.grants), ("revocations", &r.revocations)] {
        if g.made > 0 || g.settled > 0 {
            out += &format!(
                "{what:<20} {:>10} {:>10} {:>10} {:>10} {:>10} {:>6} {:>22}  {}\n",
                "",
                "",
                g.made,
                g.settled,
                g.in_flight,
                g.dead_lettered,
                "",
                if g.ok { "ok" } else { "MISMATCH" }
            );
        }
    }
    out += &codes_lines(r);
    out += &budget_line(r);
    if r.grants.made > 0 || r.spins.granted > 0 {
        out += &format!(
            "spins: {} granted, {} revoked, {} lapsed, {} used (settled)\n",
            r.spins.granted, r.spins.revoked, r.spins.lapsed, r.spins.used
        );
    }
    out += &format!(
        "settlement: {} pending ({} stuck), {} undelivered, oldest unsettled {} ms (bound {} ms); {} dead letter(s); {} duplicate(s)\n",
        r.pending,
        r.stuck,
        r.undelivered,
        r.oldest_unsettled_age_ms,
        r.max_lag_ms,
        r.dead_letters,
        r.duplicates
    );
    for p in &r.problems {
        out += &format!("problem: {p}\n");
    }
    for n in &r.notices {
        out += &format!("note: {n}\n");
    }
    out
}

/// Prize codes: per code prize its pool and the codes handed out against the
/// rewards with a code, then the campaign's total; nothing without code prizes.
fn codes_lines(r: &Reconciliation) -> String {
    let check = |ok: bool| if ok { "ok" } else { "MISMATCH" };
    let mut out = String::new();
    for p in &r.prizes {
        let Some(c) = &p.codes else { continue };
        out += &format!(
            "codes {}: {} loaded, {} withdrawn, {} available; {} awarded, {} settled, {} in flight, {} dead-lettered{}  {}\n",
            p.prize_id,
            c.loaded,
            c.withdrawn,
            c.available,
            c.awarded,
            c.settled,
            c.in_flight,
            c.dead_lettered,
            if c.without_code > 0 {
                format!("; {} reward(s) without a code", c.without_code)
            } else {
                String::new()
            },
            check(c.ok)
        );
    }
    let c = &r.codes;
    if !out.is_empty() || c.awarded > 0 || c.settled > 0 {
        out += &format!(
            "codes: {} handed out (Redis), {} settled, {} in flight, {} dead-lettered  {}\n",
            c.awarded,
            c.settled,
            c.in_flight,
            c.dead_lettered,
            check(c.ok)
        );
    }
    out
}

/// The budget against the value awarded: Redis's count and the ledger's.
fn budget_line(r: &Reconciliation) -> String {
    let b = &r.budget;
    let cur = b.currency.as_deref().unwrap_or("");
    let spent = format!(
        "value awarded {} {cur} (Redis), settled {}, in flight and dead-lettered {}",
        b.spent_redis, b.spent_ledger, b.spent_unsettled
    );
    let check = if b.ok { "ok" } else { "MISMATCH" };
    match (b.amount, b.left) {
        (Some(amount), Some(left)) => format!(
            "budget: {amount} {cur}; {spent}; left {left} {cur}{}  {check}\n",
            b.spent_when_set
                .map(|s| format!("; {s} {cur} settled when it was set"))
                .unwrap_or_default()
        ),
        _ => format!("budget: none; {spent}  {check}\n"),
    }
}
