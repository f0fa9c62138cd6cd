//! `prizewheel webhooks status|replay|enable|disable`: the outbox's deliveries
//! per endpoint (src/outbox), as operators look after them.

use crate::config::Settings;
use crate::outbox::{report, sinks};
use crate::store::pg;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use std::path::Path;

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Per endpoint: pending deliveries, the age of the oldest, delivered, failed and dead.
    Status(StatusArgs),
    /// Send again every event recorded since TIME (dead and delivered ones included).
    Replay(ReplayArgs),
    /// Resume deliveries to an endpoint disabled by a 410 Gone or by `disable`.
    Enable(EndpointArgs),
    /// Pause deliveries to an endpoint until `enable` (new events keep queuing for it).
    Disable(EndpointArgs),
    /// Forget an endpoint that left the configuration: its registration and
    /// every delivery to it, pending ones included. A process whose config
    /// still lists it registers it again when it starts.
    Remove(EndpointArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The endpoint's id.
    endpoint: String,
    /// RFC 3339 (2026-12-03T10:00:00Z) or an age: 90s, 30m, 6h, 2d.
    #[arg(long, value_parser = since)]
    since: DateTime<Utc>,
}

#[derive(Debug, Args)]
pub struct EndpointArgs {
    /// The endpoint's id.
    endpoint: String,
}

pub async fn run(c: WebhooksCommand, config: &Path) -> anyhow::Result<bool> {
    let database = Settings::load_database(config)?;
    let pool = pg::pool(&database)?;
    let limit = database.query_limit();
    let late = || anyhow::anyhow!("PostgreSQL did not answer within {limit:?}");
    match c {
        WebhooksCommand::Status(a) => {
            let status = tokio::time::timeout(limit, report::status(&pool))
                .await
                .map_err(|_| late())??;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
            Ok(true)
        }
        WebhooksCommand::Replay(a) => {
            let replayed = tokio::time::timeout(limit, report::replay(&pool, &a.endpoint, a.since))
                .await
                .map_err(|_| late())??;
            known(replayed.is_some(), &a.endpoint)?;
            let r = replayed.unwrap_or_default();
            println!(
                "endpoint {}: {} deliveries resent, {} created, since {}",
                a.endpoint,
                r.resent,
                r.created,
                a.since.to_rfc3339()
            );
            Ok(true)
        }
        WebhooksCommand::Enable(a) => {
            let found = tokio::time::timeout(limit, sinks::enable(&pool, &a.endpoint))
                .await
                .map_err(|_| late())??;
            known(found, &a.endpoint)?;
            println!("endpoint {}: enabled", a.endpoint);
            Ok(true)
        }
        WebhooksCommand::Disable(a) => {
            let found = tokio::time::timeout(
                limit,
                sinks::disable(&pool, &a.endpoint, "disabled by an operator"),
            )
            .await
            .map_err(|_| late())??;
            known(found, &a.endpoint)?;
            println!("endpoint {}: disabled", a.endpoint);
            Ok(true)
        }
        WebhooksCommand::Remove(a) => {
            let dropped = tokio::time::timeout(limit, sinks::remove(&pool, &a.endpoint))
                .await
                .map_err(|_| late())??;
            known(dropped.is_some(), &a.endpoint)?;
            println!(
                "endpoint {}: removed, with its {} deliveries",
                a.endpoint,
                dropped.unwrap_or(0)
            );
            Ok(true)
        }
    }
}

/// An error naming `endpoint` unless it was `found`.
fn known(found: bool, endpoint: &str) -> anyhow::Result<()> {
    if !found {
        anyhow::bail!("no endpoint {endpoint:?} (see `prizewheel webhooks status`)");
    }
    Ok(())
}

fn print_status(status: &[report::SinkStatus]) {
    if status.is_empty() {
        println!(
            "no webhook endpoints registered (configure webhooks: and start serve, settle or deliver)"
        );
        return;
    }
    println!(
        "{:<24} {:>9} {:>12} {:>11} {:>8} {:>9} {:>7}  state",
        "endpoint", "pending", "oldest", "delivered", "failing", "failures", "dead"
    );
    for s in status {
        let oldest = s
            .oldest_pending_secs
            .map_or_else(|| "-".to_owned(), |secs| format!("{secs:.1}s"));
        let state = match (&s.enabled, &s.disabled_reason) {
            (true, _) => "enabled".to_owned(),
            (false, Some(reason)) => format!("disabled: {reason}"),
            (false, None) => "disabled".to_owned(),
        };
        println!(
            "{:<24} {:>9} {:>12} {:>11} {:>8} {:>9} {:>7}  {state}",
            s.sink, s.pending, oldest, s.delivered, s.failing, s.failed_attempts, s.dead
        );
    }
}

/// `--since`: an RFC 3339 time, or an age before now (`90s`, `30m`, `6h`, `2d`).
fn since(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let unit = s.chars().last().unwrap_or(' ');
    let count: i64 = s[..s.len() - unit.len_utf8().min(s.len())]
        .parse()
        .map_err(|_| {
            format!("{s:?} is neither an RFC 3339 time nor an age such as 30m, 6h or 2d")
        })?;
    let age = match unit {
        's' => chrono::Duration::try_seconds(count),
        'm' => chrono::Duration::try_minutes(count),
        'h' => chrono::Duration::try_hours(count),
        'd' => chrono::Duration::try_days(count),
        _ => None,
    }
    .filter(|_| count >= 0)
    .ok_or_else(|| format!("{s:?}: an age is a count and s, m, h or d (e.g. 30m)"))?;
    Utc::now()
        .checked_sub_signed(age)
        .ok_or_else(|| format!("{s:?} is too far back"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_times_and_ages() {
        assert_eq!(
            since("2026-12-03T10:00:00Z").unwrap().to_rfc3339(),
            "2026-12-03T10:00:00+00:00"
        );
        let ago = Utc::now() - since("30m").unwrap();
        assert!((29..=30).contains(&ago.num_minutes()), "{ago}");
        for bad in ["", "m", "30x", "-3h", "yesterday", "9999999999999d"] {
            assert!(since(bad).is_err(), "{bad}");
        }
    }
}
