//! The `prizewheel` command: one binary, a subcommand per job.

mod audit;
mod campaign;
mod codes;
mod dead_letters;
mod healthcheck;
mod reconcile;
mod recover;
mod serve;
mod stores;
mod token;
mod webhooks;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "prizewheel",
    version,
    about = "Flash-sale spin-the-wheel backend"
)]
pub struct Cli {
    /// Service config file.
    #[arg(long, global = true, env = "PRIZEWHEEL_CONFIG", default_value = crate::config::DEFAULT_FILE)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (and settle, unless `settle.enabled` is false).
    Serve,
    /// Settle results streams into PostgreSQL, without serving the API.
    Settle,
    /// Deliver webhooks (the `webhooks:` of the config), without serving the API or settling.
    Deliver,
    /// Apply the database migrations.
    Migrate,
    /// Check, plan and apply campaign files.
    #[command(subcommand)]
    Campaign(campaign::CampaignCommand),
    /// Replay a campaign's settled ledger through the model of the draw; exit 1 on any mismatch.
    Audit(audit::AuditArgs),
    /// Check drawn against settled rewards of a campaign; exit 1 on any mismatch.
    Reconcile(reconcile::ReconcileArgs),
    /// Show the entries settlement could not settle, or settle them again once the cause is fixed.
    #[command(subcommand)]
    DeadLetters(dead_letters::DeadLettersCommand),
    /// Rebuild a campaign's Redis state from the ledger (after Redis lost writes); new draws pause meanwhile.
    Recover(recover::RecoverArgs),
    /// Show webhook deliveries per endpoint, resend them, or enable an endpoint again.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    /// Mint an HS256 token with PRIZEWHEEL_JWT_SECRET (development and load tests).
    Token(token::TokenArgs),
    /// Probe a running service's GET /healthz: exit 0 on a 200, 1 otherwise (container health checks).
    Healthcheck(healthcheck::HealthcheckArgs),
}

/// Runs the command. `Ok(false)` means it ran and found problems it has already
/// printed (e.g. an invalid campaign file): exit non-zero without more output.
pub async fn run(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Command::Serve => serve::serve(&cli.config).await.map(|()| true),
        Command::Settle => serve::settle(&cli.config).await.map(|()| true),
        Command::Deliver => serve::deliver(&cli.config).await.map(|()| true),
        Command::Migrate => serve::migrate(&cli.config).await.map(|()| true),
        Command::Webhooks(w) => webhooks::run(w, &cli.config).await,
        Command::Campaign(c) => campaign::run(c, &cli.config).await,
        Command::Audit(a) => audit::run(a, &cli.config).await,
        Command::Reconcile(r) => reconcile::run(r, &cli.config).await,
        Command::Recover(r) => recover::run(r, &cli.config).await,
        Command::DeadLetters(d) => dead_letters::run(d, &cli.config).await,
        Command::Token(t) => token::run(t, &cli.config).map(|()| true),
        Command::Healthcheck(h) => healthcheck::run(h, &cli.config).map(|()| true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }
}
