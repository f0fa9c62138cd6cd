//! Redis memory per participating user and per idempotency record of a campaign,
//! after one spin for each of N users through the real draw (bench/run.sh).
//!
//!   cargo run --release --example redis_footprint -- CAMPAIGN USERS
//!
//! Reads REDIS_URL; the campaign must be applied, open, and let each user spin.

use prizewheel::domain::{CampaignId, UserId};
use prizewheel::draw::footprint;
use prizewheel::store::redis::{RedisSettings, RedisStore};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: redis_footprint CAMPAIGN USERS";
    let campaign = CampaignId::parse(&args.next().ok_or(anyhow::anyhow!(usage))?)
        .map_err(anyhow::Error::msg)?;
    let users: u64 = args.next().ok_or(anyhow::anyhow!(usage))?.parse()?;
    let settings = RedisSettings {
        url: Some(std::env::var("REDIS_URL")?.into()),
        cluster_nodes: Vec::new(),
        connections: 4,
        response_timeout_ms: 10_000,
        connect_timeout_ms: 2_000,
        max_in_flight: 512,
        in_flight_wait_ms: 10_000,
        durability: Default::default(),
        waitaof_timeout_ms: 500,
    };
    let store = RedisStore::connect(&settings).await?;
    // Numeric ids, as most platforms' user ids are.
    let ids = (0..users).map(|i| UserId::parse(&(900_000_000 + i * 7).to_string()));
    let ids: Vec<UserId> = ids.collect::<Result<_, _>>().map_err(anyhow::Error::msg)?;
    footprint::spin_each(&store, &campaign, ids.into_iter(), 256).await?;
    let f = footprint::measure(&store, &campaign).await?;
    println!(
        "FOOTPRINT users={} per_user={:.1} user_buckets={} records={} per_record={:.1} record_buckets={}",
        f.users,
        f.per_user(),
        f.user_keys,
        f.records,
        f.per_record(),
        f.record_keys
    );
    Ok(())
}
