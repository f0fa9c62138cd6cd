//! `prizewheel token`: mint an HS256 token for development and load tests.

use crate::http::auth::{Claims, sign_hs256};
use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user (`sub` claim).
    #[arg(long)]
    sub: String,
    /// A role to grant (`marketing`, `finance`); repeat for several.
    #[arg(long = "role")]
    roles: Vec<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
    /// `iss` claim, if the service checks one.
    #[arg(long)]
    issuer: Option<String>,
    /// `aud` claim, if the service checks one.
    #[arg(long)]
    audience: Option<String>,
}

pub fn run(a: TokenArgs) -> anyhow::Result<()> {
    let secret =
        std::env::var("PRIZEWHEEL_JWT_SECRET").context("PRIZEWHEEL_JWT_SECRET is not set")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("system clock before 1970")?
        .as_secs();
    let claims = Claims {
        sub: a.sub,
        exp: now + a.ttl,
        roles: a.roles,
        iss: a.issuer,
        aud: a.audience.map(serde_json::Value::String),
    };
    println!("{}", sign_hs256(&secret, &claims)?);
    Ok(())
}
