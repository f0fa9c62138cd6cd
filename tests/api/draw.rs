//! The draw script driven directly (no HTTP), for volume and exactness.

use crate::support::helpers::{Spec, TestApp, draw, stream_prizes};
use futures::stream::{self, StreamExt};
use prizewheel::domain::{CampaignId, UserId};

/// `R mod W` walks the prize table in order; an exhausted prize's share goes to
/// the fallback; values up to 2^53 - 1 map exactly.
#[tokio::test]
async fn r_maps_to_a_prize_by_the_documented_rule() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("rule");
    spec.prizes = vec![("a", 3, Some(1)), ("b", 5, None), ("c", 2, None)];
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    let user = UserId::parse("rule-user").unwrap();
    let cases = [
        (2, "a"),
        (0, "c"), // a has no stock left: its share goes to the fallback
        (3, "b"),
        (7, "b"),
        (8, "c"),
        (9, "c"),
        (13, "b"),
        ((1 << 53) - 1, "c"), // 9007199254740991 mod 10 = 1 → a, exhausted → c
        ((1 << 53) - 4, "c"), // 9007199254740988 mod 10 = 8 → c
        ((1 << 53) - 6, "b"), // 9007199254740986 mod 10 = 6 → b
    ];
    for (n, (r, expected)) in cases.iter().enumerate() {
        let d = draw(&app, &id, &user, n as u64, *r).await;
        assert_eq!(d.prize_id, *expected, "R = {r}");
    }
}

/// Runs `n` draws with random `R` from `users` users, `parallel` in flight.
async fn many_draws(app: &TestApp, campaign: &CampaignId, users: u64, n: u64, parallel: usize) {
    let user_ids: Vec<UserId> = (0..users)
        .map(|u| UserId::parse(&format!("{}", 10_000_000 + u)).unwrap())
        .collect();
    stream::iter(0..n)
        .for_each_concurrent(parallel, |i| {
            let user = &user_ids[(i % users) as usize];
            async move {
                let r = prizewheel::draw::rng::next_r().unwrap();
                draw(app, campaign, user, i, r).await;
            }
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_draws_follow_the_weights() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("chisq");
    spec.prizes = vec![
        ("p1", 1, None),
        ("p10", 10, None),
        ("p100", 100, None),
        ("p1000", 1000, None),
        ("rest", 8889, None),
    ];
    spec.expected_users = 10_000;
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    const N: u64 = 1_000_000;
    many_draws(&app, &id, 10_000, N, 512).await;

    let mut conn = app.redis_conn().await;
    let keys = prizewheel::store::redis::keys::CampaignKeys::new(&id);
    let awarded = crate::support::helpers::hash_counts(&mut conn, &keys.awarded).await;
    let total_weight: u64 = spec.prizes.iter().map(|p| p.1).sum();
    let mut chi2 = 0.0;
    for (prize, w, _) in &spec.prizes {
        let expected = N as f64 * *w as f64 / total_weight as f64;
        let observed = awarded.get(*prize).copied().unwrap_or(0) as f64;
        chi2 += (observed - expected).powi(2) / expected;
    }
    assert_eq!(awarded.values().sum::<i64>(), N as i64);
    // 4 degrees of freedom: P(chi2 > 23.51) = 1e-4.
    assert!(chi2 < 23.51, "chi-square {chi2:.2} for {awarded:?}");
    eprintln!("chi-square over {N} draws: {chi2:.2} (4 df)");
}

/// Once a prize runs out, the odds of the prizes still in stock stay as
/// configured: the exhausted share goes to the fallback, not to everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_weight_goes_to_the_fallback() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("fallback");
    spec.prizes = vec![("a", 1000, Some(300)), ("b", 1000, None), ("f", 2000, None)];
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    many_draws(&app, &id, 1000, 40_000, 256).await;

    let mut conn = app.redis_conn().await;
    let order = stream_prizes(&mut conn, &spec.id).await;
    assert_eq!(order.iter().filter(|(_, p)| p == "a").count(), 300);
    let last_a = order.iter().rposition(|(_, p)| p == "a").unwrap();
    let after = &order[last_a + 1..];
    let b_share = after.iter().filter(|(_, p)| p == "b").count() as f64 / after.len() as f64;
    // Configured: b = 1000/4000 = 0.25. Renormalising over b and f would give 1/3.
    assert!(
        (b_share - 0.25).abs() < 0.015,
        "b's share after a ran out: {b_share:.4} over {}",
        after.len()
    );
}
