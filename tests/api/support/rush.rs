//! A rush on a small stock: many concurrent spins over HTTP, and the check that
//! nothing was oversold or drawn twice.

use super::helpers::{Spec, TestApp, client, spin, stream_prizes, token};
use futures::stream::{self, StreamExt};
use serde_json::Value;

/// Fires `total` spins from `users` users over `addresses` round-robin, at most
/// `parallel` in flight; spin `i` is user `user-{i % users}` with key `key-{i}`.
/// Returns (status, body) of each.
pub async fn burst(
    addresses: &[String],
    campaign: &str,
    users: usize,
    total: usize,
    parallel: usize,
) -> Vec<(u16, Value)> {
    let client = client();
    let tokens: Vec<String> = (0..users)
        .map(|u| token(&format!("user-{u}"), &[]))
        .collect();
    stream::iter(0..total)
        .map(|i| {
            let client = client.clone();
            let address = addresses[i % addresses.len()].clone();
            let token = tokens[i % users].clone();
            let campaign = campaign.to_owned();
            async move {
                let res = spin(
                    &client,
                    &address,
                    &campaign,
                    &token,
                    &format!("key-{i}"),
                    None,
                )
                .await;
                let status = res.status().as_u16();
                (status, res.json::<Value>().await.unwrap_or(Value::Null))
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await
}

/// Every spin answered, exactly the `gold` stock (100) awarded, and Redis's
/// counters and outbox agree with the answers.
pub async fn assert_no_oversell(app: &TestApp, spec: &Spec, results: &[(u16, Value)]) {
    assert!(
        results.iter().all(|(s, _)| *s == 200),
        "every spin is answered 200"
    );
    let gold = results
        .iter()
        .filter(|(_, b)| b["prize"]["id"] == "gold")
        .count();
    assert_eq!(gold, 100, "exactly the stock is awarded");

    // Through the service's own store: a single Redis or a cluster alike.
    let mut conn = app.redis.conn();
    let keys = prizewheel::store::redis::keys::CampaignKeys::new(
        &prizewheel::domain::CampaignId::parse(&spec.id).unwrap(),
    );
    let stock = crate::support::helpers::hash_counts(&mut conn, &keys.stock).await;
    let awarded = crate::support::helpers::hash_counts(&mut conn, &keys.awarded).await;
    assert_eq!(stock["gold"], 0);
    assert_eq!(awarded["gold"], 100);
    assert_eq!(awarded["gold"] + awarded["none"], results.len() as i64);
    let drawn = stream_prizes(&mut conn, &spec.id).await;
    assert_eq!(drawn.len(), results.len(), "one outbox entry per spin");
    assert_eq!(drawn.iter().filter(|(_, p)| p == "gold").count(), 100);
    let mut ids: Vec<&String> = drawn.iter().map(|(id, _)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), results.len(), "spin ids are unique");
}

/// 100 gold units that go in the first spins, then the fallback.
pub fn gold_rush(prefix: &str) -> Spec {
    let mut spec = Spec::new(prefix);
    spec.prizes = vec![("gold", 1_000_000, Some(100)), ("none", 1, None)];
    spec.spins_per_user = 10;
    spec
}
