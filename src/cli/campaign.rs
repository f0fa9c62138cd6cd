//! `prizewheel campaign validate|plan|apply FILE`.

use crate::campaign::apply::{apply, plan_against_live};
use crate::campaign::{Campaign, parse_campaign};
use crate::config::Settings;
use crate::store::pg;
use crate::store::redis::RedisStore;
use anyhow::Context;
use clap::Subcommand;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// Check a campaign file; print every problem as FILE:LINE:COLUMN: message.
    Validate { file: PathBuf },
    /// Show what applying the file would change against what is live; change nothing.
    Plan { file: PathBuf },
    /// Apply the file atomically (also while live) and record the version.
    Apply {
        file: PathBuf,
        /// Who applies it, recorded with the version (default: $USER).
        #[arg(long, env = "USER", default_value = "unknown")]
        by: String,
    },
}

pub async fn run(cmd: CampaignCommand, config: &Path) -> anyhow::Result<bool> {
    match cmd {
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
            let (redis, _) = Settings::load_stores(config)?;
            let redis = RedisStore::connect(&redis).await?;
            let (plan, _) = plan_against_live(&redis, &campaign).await?;
            print!("{plan}");
            Ok(true)
        }
        CampaignCommand::Apply { file, by } => {
            let Some(campaign) = load(&file)? else {
                return Ok(false);
            };
            let yaml = read(&file)?;
            let (redis, database) = Settings::load_stores(config)?;
            let redis = RedisStore::connect(&redis).await?;
            let pool = pg::pool(&database)?;
            let report = apply(&redis, &pool, &campaign, &yaml, &by).await?;
            if report.changed {
                print!("{}", report.plan);
                println!(
                    "applied: campaign {} is now at version {}",
                    campaign.id, report.version
                );
            } else {
                println!(
                    "unchanged: campaign {} stays at version {}",
                    campaign.id, report.version
                );
            }
            Ok(true)
        }
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
            for d in &problems {
                eprintln!("{}:{}:{}: {}", file.display(), d.line, d.column, d.message);
            }
            eprintln!("{}: {} problem(s)", file.display(), problems.len());
            Ok(None)
        }
    }
}
