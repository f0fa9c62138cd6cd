//! Settling in tests: fast settler settings, a settler run until a campaign's
//! stream is drained, draws straight through `draw::spin`, and the checks that
//! every draw is in the ledger exactly once.

use super::helpers::{TestApp, draw};
use prizewheel::domain::{CampaignId, UserId};
use prizewheel::settle::stream::{self, Lag};
use prizewheel::settle::{SettleSettings, Settler};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

pub fn settler(pg: &sqlx::PgPool, consumer: &str) -> Settler {
    Settler::new(
        super::helpers::redis_target(),
        pg.clone(),
        fast(),
        consumer.into(),
    )
}

pub fn fast() -> SettleSettings {
    SettleSettings {
        enabled: true,
        batch_size: 200,
        batch_wait_ms: 50,
        claim_idle_ms: 300,
        refresh_ms: 100,
        trim_every_ms: 200,
        max_backoff_ms: 300,
        recovery_check_ms: 100,
        write_timeout_ms: 10_000,
        max_lag_ms: 60_000,
    }
}

/// Runs `n` draws over `users` users; returns their spin ids.
pub async fn draws(
    app: &TestApp,
    campaign: &CampaignId,
    users: u64,
    n: u64,
    offset: u64,
) -> Vec<Uuid> {
    use futures::stream::{self, StreamExt};
    let ids: Vec<UserId> = (0..users)
        .map(|u| UserId::parse(&format!("s{u}")).unwrap())
        .collect();
    stream::iter(offset..offset + n)
        .map(|i| {
            let user = &ids[(i % users) as usize];
            async move {
                draw(
                    app,
                    campaign,
                    user,
                    i,
                    prizewheel::draw::rng::next_r().unwrap(),
                )
                .await
                .spin_id
            }
        })
        .buffer_unordered(128)
        .collect()
        .await
}

pub async fn lag(app: &TestApp, campaign: &str) -> Lag {
    let mut conn = app.redis.conn();
    stream::lag(&mut conn, &format!("pw:{{{campaign}}}:results"))
        .await
        .unwrap()
}

pub async fn settled_ids(pg: &sqlx::PgPool, campaign: &str) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT spin_id FROM rewards WHERE campaign_id = $1")
        .bind(campaign)
        .fetch_all(pg)
        .await
        .unwrap()
}

/// Runs a settler until the campaign has nothing unsettled (bounded wait).
pub async fn settle_all(app: &TestApp, campaign: &str, consumer: &str) {
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(settler(&app.db.pool, consumer).run(stopped));
    // Up to 60 s: a debug build on a busy 2-core machine settles ~3,000
    // entries a second, and the chaos test leaves ~100,000 behind.
    for _ in 0..600 {
        if lag(app, campaign).await.unsettled() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(true).unwrap();
    task.await.unwrap();
}

pub fn assert_exactly(drawn: &[Uuid], settled: &[Uuid]) {
    let drawn: HashSet<&Uuid> = drawn.iter().collect();
    let settled_set: HashSet<&Uuid> = settled.iter().collect();
    assert_eq!(settled.len(), settled_set.len(), "no spin twice");
    assert_eq!(settled_set.len(), drawn.len(), "every spin settled");
    assert!(drawn == settled_set);
}
