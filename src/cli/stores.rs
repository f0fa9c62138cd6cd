//! What the commands that work on the stores share: connecting to Redis and
//! PostgreSQL from the config file and the environment, and a campaign id
//! argument checked by clap (an invalid id is one line and exit 2).

use crate::config::Settings;
use crate::domain::CampaignId;
use crate::store::pg;
use crate::store::redis::RedisStore;
use sqlx::PgPool;
use std::path::Path;
use std::time::Duration;

pub struct Stores {
    pub redis: RedisStore,
    /// Connected lazily: a command that never queries it never waits for it.
    pub pg: PgPool,
    /// `database.query_timeout_ms`: the bound of each PostgreSQL step.
    pub pg_limit: Duration,
}

impl Stores {
    /// Redis connected (its eviction policy checked), the PostgreSQL pool made.
    pub async fn connect(config: &Path) -> anyhow::Result<Self> {
        let (redis, database) = Settings::load_stores(config)?;
        Ok(Stores {
            redis: RedisStore::connect(&redis).await?,
            pg: pg::pool(&database)?,
            pg_limit: database.query_limit(),
        })
    }
}

/// clap's parser of a `CAMPAIGN` argument.
pub fn campaign_id(s: &str) -> Result<CampaignId, String> {
    CampaignId::parse(s)
}
