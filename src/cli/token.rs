//! `prizewheel token`: mint an HS256 token for development and load tests.

use crate::config::Settings;
use crate::http::auth::{Claims, sign_hs256};
use anyhow::Context;
use clap::Args;
use std::path::Path;

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user (`sub` claim).
    #[arg(long)]
    sub: String,
    /// A role to give (`marketing`, `finance`, `grants`); repeat for several.
    #[arg(long = "role")]
    roles: Vec<String>,
    /// Lifetime in seconds; at most the service's `auth.max_token_lifetime_secs`.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
    /// `iss` claim, if the service checks one.
    #[arg(long)]
    issuer: Option<String>,
    /// `aud` claim, if the service checks one.
    #[arg(long)]
    audience: Option<String>,
    /// Print this many tokens, one per line, for users `<sub>-0` … `<sub>-<count-1>`
    /// (load tests).
    #[arg(long)]
    count: Option<u32>,
}

pub fn run(a: TokenArgs, config: &Path) -> anyhow::Result<()> {
    let max = Settings::load_max_token_lifetime(config)?;
    if a.ttl > max {
        anyhow::bail!(
            "--ttl {} is longer than auth.max_token_lifetime_secs ({max} s): the service would refuse the token",
            a.ttl
        );
    }
    let secret =
        std::env::var("PRIZEWHEEL_JWT_SECRET").context("PRIZEWHEEL_JWT_SECRET is not set")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("system clock before 1970")?
        .as_secs();
    let claims = |sub: String| Claims {
        sub,
        exp: now + a.ttl,
        roles: a.roles.clone(),
        iss: a.issuer.clone(),
        aud: a.audience.clone().map(serde_json::Value::String),
    };
    match a.count {
        None => println!("{}", sign_hs256(&secret, &claims(a.sub.clone()))?),
        Some(n) => {
            use std::io::Write;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for i in 0..n {
                writeln!(
                    out,
                    "{}",
                    sign_hs256(&secret, &claims(format!("{}-{i}", a.sub)))?
                )?;
            }
            out.flush()?;
        }
    }
    Ok(())
}
