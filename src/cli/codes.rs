//! `prizewheel campaign codes add|withdraw|status CAMPAIGN PRIZE [FILE]`: a
//! code prize's pool, straight in Redis (as `campaign apply`), streamed from
//! the file or standard input in batches (`rollout::codes::Upload`).

use super::stores::{Stores, campaign_id};
use crate::domain::{CampaignId, PrizeId};
use crate::rollout::codes::{Op, Upload, UploadError};
use crate::store::redis::codes::CodesRejection;
use clap::Subcommand;
use std::path::{Path, PathBuf};
use tokio::io::AsyncReadExt;

#[derive(Debug, Subcommand)]
pub enum CodesCommand {
    /// Add the codes of FILE (`-`: standard input) to the prize's pool: one
    /// code per line, or a CSV whose first column is the code. Prints the codes
    /// added, the duplicates and every invalid line as FILE:LINE: message;
    /// exits non-zero when a line was invalid.
    Add {
        #[arg(value_parser = campaign_id)]
        campaign: CampaignId,
        #[arg(value_parser = PrizeId::parse)]
        prize: PrizeId,
        file: PathBuf,
    },
    /// Withdraw the codes of FILE from the pool (a leaked batch); codes
    /// already handed out stay with their winners.
    Withdraw {
        #[arg(value_parser = campaign_id)]
        campaign: CampaignId,
        #[arg(value_parser = PrizeId::parse)]
        prize: PrizeId,
        file: PathBuf,
    },
    /// The prize's codes loaded, awarded, withdrawn and available.
    Status {
        #[arg(value_parser = campaign_id)]
        campaign: CampaignId,
        #[arg(value_parser = PrizeId::parse)]
        prize: PrizeId,
    },
}

/// Runs the command; `Ok(false)` when some line of the file was invalid.
pub async fn run(cmd: CodesCommand, config: &Path) -> anyhow::Result<bool> {
    let (op, campaign, prize, file) = match cmd {
        CodesCommand::Status { campaign, prize } => {
            let s = Stores::connect(config).await?;
            let c = s
                .redis
                .count_codes(&campaign, &prize)
                .await?
                .map_err(|r| rejected(r, &campaign, &prize))?;
            println!(
                "{campaign}/{prize}: {} loaded, {} awarded, {} withdrawn, {} available",
                c.loaded, c.awarded, c.withdrawn, c.available
            );
            return Ok(true);
        }
        CodesCommand::Add {
            campaign,
            prize,
            file,
        } => (Op::Add, campaign, prize, file),
        CodesCommand::Withdraw {
            campaign,
            prize,
            file,
        } => (Op::Withdraw, campaign, prize, file),
    };
    let mut input: Box<dyn tokio::io::AsyncRead + Unpin> = if file.as_os_str() == "-" {
        Box::new(tokio::io::stdin())
    } else {
        Box::new(
            tokio::fs::File::open(&file)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?,
        )
    };
    let name = if file.as_os_str() == "-" {
        "-".to_owned()
    } else {
        file.display().to_string()
    };
    let s = Stores::connect(config).await?;
    let mut up = Upload::new(&s.redis, &campaign, &prize, op, usize::MAX);
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = input
            .read(&mut buf)
            .await
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        if n == 0 {
            break;
        }
        up.feed(&buf[..n])
            .await
            .map_err(|e| failed(e, &campaign, &prize))?;
    }
    let r = up
        .finish()
        .await
        .map_err(|e| failed(e, &campaign, &prize))?;
    for i in &r.invalid {
        eprintln!("{name}:{}: {}", i.line, i.message);
    }
    match op {
        Op::Add => println!(
            "{campaign}/{prize}: {} added, {} duplicates, {} invalid; {} available",
            r.added, r.duplicates, r.invalid_count, r.available
        ),
        Op::Withdraw => println!(
            "{campaign}/{prize}: {} withdrawn, {} already awarded, {} unknown, {} invalid; {} available",
            r.withdrawn, r.already_awarded, r.unknown, r.invalid_count, r.available
        ),
    }
    Ok(r.invalid_count == 0)
}

fn failed(e: UploadError, campaign: &CampaignId, prize: &PrizeId) -> anyhow::Error {
    match e {
        UploadError::Store(s) => s.into(),
        UploadError::Rejected(r) => rejected(r, campaign, prize),
    }
}

fn rejected(r: CodesRejection, campaign: &CampaignId, prize: &PrizeId) -> anyhow::Error {
    match r {
        CodesRejection::NoCampaign => anyhow::anyhow!("no campaign `{campaign}` in Redis"),
        CodesRejection::NoPrize => anyhow::anyhow!("campaign `{campaign}` has no prize `{prize}`"),
        CodesRejection::NotCodePrize => anyhow::anyhow!(
            "prize `{prize}` of campaign `{campaign}` does not take codes: its stock is not `codes`"
        ),
    }
}
