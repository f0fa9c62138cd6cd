//! Redis memory per participating user, per idempotency record and per grant
//! record of a campaign, through the real scripts (bench/run.sh).
//!
//!   cargo run --release --example redis_footprint -- CAMPAIGN USERS [MODE]
//!
//! MODE `spins` (the default): one spin for each of USERS users; prints
//! `FOOTPRINT users=… per_user=… … records=… per_record=…`.
//! MODE `spins-grants`: the same, then one grant of one spin for each of these
//! users (13-digit numeric order ids as grant ids), which turns each user's
//! state into its granted form; prints `GRANTED users=… per_user=… …
//! grants=… per_grant=…` too.
//! MODE `grant-uuids`: one grant for each of USERS users, the grant ids
//! 36-character UUIDs, no spins; prints `GRANTED …`.
//! MODE `codes` (then `12` or `36`, the default 12): loads USERS prize codes
//! into the pool of the campaign's code prize `coupon` (`stock: codes`)
//! through lua/codes.lua, in batches of 1000, 4 in flight: 12 characters (a
//! letter and 11 digits) or 36 (UUIDs); prints `CODES codes=… chars=…
//! used_per_code=… pool_per_code=…`: the `used_memory` delta of the load (on a
//! Redis no one else writes to) and the pool's `MEMORY USAGE`, per code.
//!
//! Reads REDIS_URL; the campaign must be applied, open, and let each user spin
//! (the grant modes: with `earned_spins`). User ids are numeric, as most
//! platforms' are.

use prizewheel::domain::{CampaignId, IdempotencyKey, PrizeId, UserId};
use prizewheel::draw::footprint::{self, Footprint};
use prizewheel::store::redis::{RedisSettings, RedisStore};

fn line(tag: &str, f: &Footprint) -> String {
    format!(
        "{tag} users={} per_user={:.1} user_buckets={} records={} per_record={:.1} record_buckets={} grants={} per_grant={:.1} grant_buckets={}",
        f.users,
        f.per_user(),
        f.user_keys,
        f.records,
        f.per_record(),
        f.record_keys,
        f.grants,
        f.per_grant(),
        f.grant_keys
    )
}

/// One grant to each user, with these grant ids; prints the GRANTED line.
async fn grant(
    store: &RedisStore,
    campaign: &CampaignId,
    users: Vec<UserId>,
    grant_ids: impl Iterator<Item = String>,
) -> anyhow::Result<()> {
    let n = users.len() as u64;
    let grant_ids: Vec<IdempotencyKey> = grant_ids
        .map(|id| IdempotencyKey::parse(&id))
        .collect::<Result<_, _>>()
        .map_err(anyhow::Error::msg)?;
    footprint::grant_each(store, campaign, users.into_iter().zip(grant_ids), 256).await?;
    let f = footprint::measure(store, campaign).await?;
    anyhow::ensure!(
        (f.users, f.grants) == (n, n),
        "one state and one grant record each: {}",
        line("GRANTED", &f)
    );
    println!("{}", line("GRANTED", &f));
    Ok(())
}

/// Loads `n` codes of `chars` characters into the pool of `coupon`; prints
/// the CODES line.
async fn codes(
    store: &RedisStore,
    campaign: &CampaignId,
    n: u64,
    chars: usize,
) -> anyhow::Result<()> {
    let prize = PrizeId::parse("coupon").map_err(anyhow::Error::msg)?;
    let codes: Box<dyn Iterator<Item = String>> = match chars {
        12 => Box::new((0..n).map(|i| format!("K{:011}", (i * 7919 + 13) % 100_000_000_000))),
        36 => Box::new((0..n).map(|_| uuid::Uuid::new_v4().to_string())),
        other => anyhow::bail!("codes of {other} characters: 12 or 36"),
    };
    let before = footprint::used_memory(store).await?;
    let added = footprint::load_codes(store, campaign, &prize, codes, 1000, 4).await?;
    let after = footprint::used_memory(store).await?;
    let f = footprint::measure_codes(store, campaign, &prize).await?;
    anyhow::ensure!(
        added == n && f.pooled == n,
        "{added} of {n} codes added, {} in the pool: load into a fresh campaign",
        f.pooled
    );
    println!(
        "CODES codes={n} chars={chars} used_per_code={:.1} pool_per_code={:.1}",
        (after as f64 - before as f64) / n as f64,
        f.per_pooled()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage =
        "usage: redis_footprint CAMPAIGN USERS [spins|spins-grants|grant-uuids|codes [12|36]]";
    let campaign = CampaignId::parse(&args.next().ok_or(anyhow::anyhow!(usage))?)
        .map_err(anyhow::Error::msg)?;
    let users: u64 = args.next().ok_or(anyhow::anyhow!(usage))?.parse()?;
    let mode = args.next().unwrap_or_else(|| "spins".into());
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
    if mode == "codes" {
        let chars: usize = args.next().map_or(Ok(12), |c| c.parse())?;
        return codes(&store, &campaign, users, chars).await;
    }
    let ids = (0..users).map(|i| UserId::parse(&(900_000_000 + i * 7).to_string()));
    let ids: Vec<UserId> = ids.collect::<Result<_, _>>().map_err(anyhow::Error::msg)?;
    match mode.as_str() {
        "spins" | "spins-grants" => {
            footprint::spin_each(&store, &campaign, ids.iter().cloned(), 256).await?;
            let f = footprint::measure(&store, &campaign).await?;
            println!("{}", line("FOOTPRINT", &f));
            if mode == "spins-grants" {
                // Order ids as order services number them: 13 digits.
                let grant_ids = (0..users).map(|i| (4_000_000_000_000 + i * 13).to_string());
                grant(&store, &campaign, ids, grant_ids).await?;
            }
        }
        "grant-uuids" => {
            let grant_ids = (0..users).map(|_| uuid::Uuid::new_v4().to_string());
            grant(&store, &campaign, ids, grant_ids).await?;
        }
        other => anyhow::bail!("unknown mode `{other}`; {usage}"),
    }
    Ok(())
}
