//! `prizewheel campaign validate|plan|apply|simulate FILE`, and `campaign codes`.

use super::codes::CodesCommand;
use super::stores::Stores;
use crate::campaign::model::{EarnedSpins, Expiry};
use crate::campaign::tree::MAX_LISTED;
use crate::campaign::{Campaign, parse_campaign};
use crate::domain::Pool;
use crate::rollout::apply::{apply, plan_against_live};
use crate::simulate::plot::burn_down_svg;
use crate::simulate::progress::Progress;
use crate::simulate::{
    Arrival, Options, Report, codes_for, duration_text, parse_codes_arg, simulate_with_progress,
};
use anyhow::Context;
use clap::Subcommand;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// Check a campaign file; print every problem as FILE:LINE:COLUMN: message.
    Validate { file: PathBuf },
    /// Show what applying the file would change against what is live; change nothing.
    Plan { file: PathBuf },
    /// Monte Carlo of the whole sale on the model of the draw: when prizes are
    /// released and run out, when the budget runs out, what it costs, how many
    /// shoppers win.
    Simulate(SimulateArgs),
    /// Apply the file atomically (also while live) and record the version.
    Apply {
        file: PathBuf,
        /// Who applies it, recorded with the version (default: $USER).
        #[arg(long, env = "USER", default_value = "unknown")]
        by: String,
    },
    /// A code prize's pool of codes (`stock: codes`): add, withdraw, status.
    #[command(subcommand)]
    Codes(CodesCommand),
}

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    file: PathBuf,
    /// Shoppers taking part (default: the campaign's expected_users).
    #[arg(long)]
    users: Option<u64>,
    /// Spin attempts per shopper on average (default: the campaign's spins_per_user).
    #[arg(long)]
    spins_per_user: Option<u64>,
    #[arg(long, value_enum, default_value_t = Arrival::Uniform)]
    arrival: Arrival,
    /// Orders per shopper on average (fractions allowed; default 1), each
    /// granting --spins-per-grant spins to a random shopper; they arrive over
    /// the window like the spin attempts, independently of them. Only for a
    /// campaign with earned_spins: an error otherwise.
    #[arg(long, alias = "grants-per-shopper", value_parser = grants_per_user)]
    grants_per_user: Option<f64>,
    /// Spins each grant gives, 1..100 (default 1); only with earned_spins.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(EarnedSpins::MAX_PER_GRANT)))]
    spins_per_grant: Option<u32>,
    /// Independent runs, for the cost percentiles.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The codes a code prize (`stock: codes`) has, as PRIZE=N: its stock,
    /// which the file cannot say (`campaign codes status` tells a live
    /// campaign's). Repeat it for each code prize; one without it is
    /// simulated with 0 codes. Naming a prize that is not a code prize is an error.
    #[arg(long = "codes", value_name = "PRIZE=N")]
    codes: Vec<String>,
    /// Simulate the campaign split into this many sub-pools, 1..64, instead
    /// of the file's `pools` (to compare the run-out gap of a few counts).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(Pool::MAX_COUNT)))]
    pools: Option<u32>,
    /// Print JSON for tools instead of a table.
    #[arg(long)]
    json: bool,
    /// Also draw the chart into this SVG file: per prize the share of its stock
    /// awarded over the sale (and released, for a paced prize), the budget
    /// spent, against dates and times of the campaign's time zone.
    #[arg(long)]
    plot: Option<PathBuf>,
}

pub async fn run(cmd: CampaignCommand, config: &Path) -> anyhow::Result<bool> {
    match cmd {
        CampaignCommand::Codes(c) => super::codes::run(c, config).await,
        CampaignCommand::Simulate(a) => {
            let Some(mut campaign) = load(&a.file)? else {
                return Ok(false);
            };
            campaign.pools = a.pools.unwrap_or(campaign.pools);
            if campaign.earned_spins.is_none()
                && (a.grants_per_user.is_some() || a.spins_per_grant.is_some())
            {
                anyhow::bail!(
                    "{}: campaign {} has no earned_spins, so it takes no grants: \
                     --grants-per-user and --spins-per-grant apply only with earned_spins",
                    a.file.display(),
                    campaign.id
                );
            }
            let codes = a
                .codes
                .iter()
                .map(|s| parse_codes_arg(s))
                .collect::<Result<Vec<_>, _>>()
                .and_then(|given| codes_for(&campaign, &given))
                .map_err(|e| anyhow::anyhow!("{}: {e}", a.file.display()))?;
            let options = Options {
                users: a
                    .users
                    .unwrap_or(campaign.expected_users)
                    .clamp(1, 100_000_000),
                spins_per_user: a
                    .spins_per_user
                    .unwrap_or(u64::from(campaign.limits.spins_per_user))
                    .clamp(1, 10_000),
                arrival: a.arrival,
                runs: a.runs,
                seed: a.seed,
                samples: 500,
                grants_per_user: a.grants_per_user.unwrap_or(1.0),
                spins_per_grant: a.spins_per_grant.unwrap_or(1),
                codes,
            };
            // A run of more than 2 s shows where it is on stderr.
            let mut progress = Progress::stderr();
            let report = simulate_with_progress(&campaign, &options, &mut |t| progress.tick(t));
            progress.finish();
            if let Some(path) = &a.plot {
                burn_down_svg(&report, path)?;
            }
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", table(&report));
                if let Some(path) = &a.plot {
                    println!("chart: {}", path.display());
                }
            }
            Ok(true)
        }
        CampaignCommand::Validate { file } => Ok(load(&file)?
            .inspect(|c| {
                println!(
                    "{}: campaign {} is valid ({} prizes)",
                    file.display(),
                    c.id,
                    c.prizes.len()
                )
            })
            .is_some()),
        CampaignCommand::Plan { file } => {
            let Some(campaign) = load(&file)? else {
                return Ok(false);
            };
            let stores = Stores::connect(config).await?;
            let (plan, _) = plan_against_live(&stores.redis, &campaign).await?;
            print!("{plan}");
            Ok(true)
        }
        CampaignCommand::Apply { file, by } => {
            let Some(campaign) = load(&file)? else {
                return Ok(false);
            };
            let yaml = read(&file)?;
            let s = Stores::connect(config).await?;
            let report = apply(&s.redis, &s.pg, s.pg_limit, &campaign, &yaml, &by).await?;
            if report.changed {
                print!("{}", report.plan);
                println!(
                    "applied: campaign {} is now at version {}",
                    campaign.id, report.version
                );
            } else {
                for w in &report.plan.warnings {
                    println!("  warning: {w}");
                }
                println!(
                    "unchanged: campaign {} stays at version {}",
                    campaign.id, report.version
                );
            }
            Ok(true)
        }
    }
}

fn table(r: &Report) -> String {
    let local = |ms: i64| r.local(ms).format("%Y-%m-%d %H:%M:%S").to_string();
    let window_ms = (r.window_secs * 1000.0) as i64;
    let mut out = format!(
        "campaign {} ({}): {} users x {} spin attempts each, {} arrival, {} run(s), seed {}\n\
         window: {} to {} {} ({})\n",
        r.campaign_id,
        r.campaign_name,
        r.users,
        r.attempts_per_run / r.users.max(1),
        r.arrival.as_str(),
        r.runs,
        r.seed,
        local(0),
        local(window_ms),
        r.timezone,
        duration_text(r.window_secs),
    );
    if let Some(e) = &r.earned_spins {
        out += &format!(
            "earned spins: {} free, expire {}; {} grant(s) per user of {} spin(s), \
             arriving like the spin attempts\n",
            e.free,
            e.expire.as_str(),
            e.grants_per_user,
            e.spins_per_grant
        );
    }
    out += &format!(
        "{:<20} {:>14} {:>20} {:>14} {:>14} {:>9} {:>14}  {}\n",
        "prize",
        "stock",
        "release",
        "released (end)",
        "awarded (med)",
        "runs out",
        "at spin (med)",
        "at (med)"
    );
    for p in &r.prizes {
        let at = p.ran_out_at_secs.map_or("-".into(), |s| {
            format!("{} (+{})", local((s * 1000.0) as i64), duration_text(s))
        });
        out += &format!(
            "{:<20} {:>14} {:>20} {:>14} {:>14} {:>8.0}% {:>14}  {at}\n",
            p.id,
            p.stock_text(),
            p.release.as_deref().unwrap_or("-"),
            p.released_at_end.map_or("-".into(), |n| n.to_string()),
            p.awarded_median,
            p.ran_out_share * 100.0,
            p.ran_out_at_spin.map_or("-".into(), |s| s.to_string()),
        );
    }
    if r.pools > 1 {
        out += &format!(
            "pools: {}, each with its share of every prize; a pool that has given out its share falls back \
             while others still have units (no mover is simulated)\n",
            r.pools
        );
        for p in &r.prizes {
            if let (Some(s), Some(left)) = (p.first_pool_out_at_secs, p.left_in_other_pools) {
                out += &format!(
                    "  {}: the first pool runs out (med) at {} (+{}), {left} unit(s) left in the others\n",
                    p.id,
                    local((s * 1000.0) as i64),
                    duration_text(s)
                );
            }
        }
    }
    for id in &r.codes_not_given {
        out += &format!(
            "warning: code prize {id} simulated with 0 codes, so it awards nothing: \
             give its codes with --codes {id}=N\n"
        );
    }
    for c in &r.costs {
        out += &format!(
            "cost ({}): expected {}, p5 {}, median {}, p95 {}\n",
            c.currency, c.expected, c.p5, c.p50, c.p95
        );
    }
    if let Some(b) = &r.budget {
        let runs_out = match (&b.ran_out_at, b.ran_out_at_secs, b.ran_out_at_spin) {
            (Some(at), Some(secs), Some(spin)) => format!(
                "runs out (med) {at} (+{}) at spin {spin}, in {:.0}% of runs",
                duration_text(secs),
                b.ran_out_share * 100.0
            ),
            _ => "runs out: never".into(),
        };
        out += &format!(
            "budget ({}): {}; value awarded (med) {}; {runs_out}\n",
            b.currency, b.amount, b.awarded_median
        );
        if b.budget_exhausted_median > 0 {
            out += &format!(
                "attempts refused as budget_exhausted (med): {} of {}\n",
                b.budget_exhausted_median, r.attempts_per_run
            );
        }
    }
    if let Some(e) = &r.earned_spins {
        let unused = match e.expire {
            Expiry::EndOfDay => "lapsed unused with their day",
            Expiry::CampaignEnd => "left unused at the end",
        };
        out += &format!(
            "grants: {} per run, {} spins granted\n\
             spins drawn (med): {} of {} attempts; refused as no_spins_left (med): {}\n\
             earned spins {unused} (med): {}\n",
            e.grants,
            e.spins_granted,
            e.spins_drawn_median,
            r.attempts_per_run,
            e.no_spins_left_median,
            e.earned_unused_median
        );
    }
    out += &format!(
        "shoppers who win something: {:.2}%\nsimulated at {:.1} million spins/s\n",
        r.winners_share * 100.0,
        r.spins_per_second / 1e6
    );
    out
}

/// `--grants-per-user`: a finite number from 0 to 1,000.
fn grants_per_user(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.0..=1000.0).contains(&x) => Ok(x),
        _ => Err(format!("`{s}` is not a number from 0 to 1000")),
    }
}

fn read(file: &Path) -> anyhow::Result<String> {
    let meta =
        std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?;
    if meta.len() > crate::campaign::tree::MAX_FILE_BYTES as u64 {
        anyhow::bail!(
            "{} is larger than {} bytes",
            file.display(),
            crate::campaign::tree::MAX_FILE_BYTES
        );
    }
    std::fs::read_to_string(file)
        .with_context(|| format!("cannot read {} as UTF-8 text", file.display()))
}

/// The campaign of `file`, or `None` after printing its problems.
fn load(file: &Path) -> anyhow::Result<Option<Campaign>> {
    let text = read(file)?;
    match parse_campaign(&text) {
        Ok(c) => Ok(Some(c)),
        Err(problems) => {
            for d in problems.iter().take(MAX_LISTED) {
                eprintln!("{}:{}:{}: {}", file.display(), d.line, d.column, d.message);
            }
            let more = if problems.len() > MAX_LISTED {
                format!(", the first {MAX_LISTED} listed above")
            } else {
                String::new()
            };
            eprintln!("{}: {} problem(s){more}", file.display(), problems.len());
            Ok(None)
        }
    }
}
