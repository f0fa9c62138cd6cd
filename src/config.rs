//! Service configuration: `config/prizewheel.yaml` (or the file named by
//! `--config` / `PRIZEWHEEL_CONFIG`), overridden by the environment.
//!
//! Environment variables, strongest last:
//! - `PRIZEWHEEL__<SECTION>__<KEY>` sets any field, e.g. `PRIZEWHEEL__REDIS__CONNECTIONS=8`;
//! - the contract variables, which always win:
//!   `PRIZEWHEEL_LISTEN` (address:port), `REDIS_URL`, `REDIS_CLUSTER_NODES`
//!   (comma-separated seed URLs; when set, Redis is a cluster), `DATABASE_URL`,
//!   `PRIZEWHEEL_JWT_SECRET` (the HS256 secret; never put it in a file).

use crate::http::HttpSettings;
use crate::http::auth::AuthSettings;
use crate::store::pg::PgSettings;
use crate::store::redis::RedisSettings;
use crate::telemetry::LogSettings;
use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format};
use serde::Deserialize;
use std::num::NonZeroU64;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address the API listens on, `host:port`.
    pub listen: String,
    pub redis: RedisSettings,
    pub database: PgSettings,
    pub auth: AuthSettings,
    #[serde(default)]
    pub http: HttpSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub settle: crate::settle::SettleSettings,
    #[serde(default)]
    pub admission: crate::admission::AdmissionSettings,
    /// Endpoints that receive the ledger's events (src/deliver).
    #[serde(default)]
    pub webhooks: Vec<crate::deliver::settings::WebhookSettings>,
    #[serde(default)]
    pub deliver: crate::deliver::settings::DeliverSettings,
}

/// The default config file, relative to the working directory.
pub const DEFAULT_FILE: &str = "config/prizewheel.yaml";

impl Settings {
    /// Loads `file` (which must exist) and the environment.
    pub fn load(file: &Path) -> anyhow::Result<Self> {
        if !file.exists() {
            anyhow::bail!(
                "config file {} not found (run from the project folder or pass --config FILE)",
                file.display()
            );
        }
        Self::figment(serde_saphyr::figment::Yaml::file_exact(file))
            .extract()
            .map_err(|e| anyhow::anyhow!("{}: {}", file.display(), one_line(&e)))
    }

    fn figment(file: impl figment::Provider) -> Figment {
        let contract = |var: &'static str, path: &'static str| {
            Env::raw().only(&[var]).map(move |_| path.into())
        };
        Figment::new()
            .merge(file)
            .merge(Env::prefixed("PRIZEWHEEL__").split("__"))
            .merge(contract("PRIZEWHEEL_LISTEN", "listen"))
            .merge(contract("REDIS_URL", "redis.url"))
            .merge(contract("REDIS_CLUSTER_NODES", "redis.cluster_nodes"))
            .merge(contract("DATABASE_URL", "database.url"))
            .merge(contract("PRIZEWHEEL_JWT_SECRET", "auth.secret"))
    }

    /// Only the Redis and Postgres sections, for CLI commands that need no more.
    pub fn load_stores(file: &Path) -> anyhow::Result<(RedisSettings, PgSettings)> {
        #[derive(Deserialize)]
        struct Stores {
            redis: RedisSettings,
            database: PgSettings,
        }
        let s: Stores = Self::load_part(file).context("set REDIS_URL (or REDIS_CLUSTER_NODES) and DATABASE_URL, or run from the project folder")?;
        Ok((s.redis, s.database))
    }
}

impl Settings {
    /// The PostgreSQL section alone, for commands that need no more.
    pub fn load_database(file: &Path) -> anyhow::Result<PgSettings> {
        #[derive(Deserialize)]
        struct Database {
            database: PgSettings,
        }
        let d: Database =
            Self::load_part(file).context("set DATABASE_URL, or run from the project folder")?;
        Ok(d.database)
    }

    /// `auth.max_token_lifetime_secs` alone (`prizewheel token` mints within
    /// it): from `file` when it exists, and the environment.
    pub fn load_max_token_lifetime(file: &Path) -> anyhow::Result<u64> {
        #[derive(Deserialize)]
        struct Auth {
            #[serde(default = "crate::http::auth::default_max_token_lifetime")]
            max_token_lifetime_secs: NonZeroU64,
        }
        #[derive(Deserialize)]
        struct Only {
            auth: Option<Auth>,
        }
        let only: Only = Self::load_part(file)?;
        Ok(only
            .auth
            .map_or_else(crate::http::auth::default_max_token_lifetime, |a| {
                a.max_token_lifetime_secs
            })
            .get())
    }
}

impl Settings {
    /// The sections `T` names, from `file` when it exists (a command that needs
    /// only a part of the settings also runs on the environment alone) and the
    /// environment.
    fn load_part<T: serde::de::DeserializeOwned>(file: &Path) -> anyhow::Result<T> {
        let figment = if file.exists() {
            Self::figment(serde_saphyr::figment::Yaml::file_exact(file))
        } else {
            // No file: the environment alone (an empty provider in its place).
            Self::figment(Env::raw().only(&[]))
        };
        figment
            .extract()
            .map_err(|e| anyhow::anyhow!("{}: {}", file.display(), one_line(&e)))
    }
}

fn one_line(e: &figment::Error) -> String {
    e.to_string()
        .lines()
        .next()
        .unwrap_or("invalid configuration")
        .to_owned()
}
