//! Webhooks (src/outbox, src/deliver): every settled reward, grant and apply
//! reaches a real receiver that verifies each signature with the
//! `standardwebhooks` crate, at least once, with a stable `webhook-id`, never
//! in flight twice at once, through failures, outages and crashes.

use crate::support::helpers::{Spec, TestApp};
use crate::support::receiver::{Receiver, SECRET};
use crate::support::settling::{draws, settle_all};
use prizewheel::deliver::dispatcher::Dispatcher;
use prizewheel::deliver::settings::{WebhookSettings, sinks};
use prizewheel::deliver::webhook::Endpoint;
use prizewheel::domain::CampaignId;
use prizewheel::outbox::report::{self, SinkStatus};
use std::num::{NonZeroU64, NonZeroUsize};
use std::time::{Duration, Instant};

fn webhook(id: &str, receiver: &Receiver, events: &[&str]) -> WebhookSettings {
    WebhookSettings {
        id: id.into(),
        url: receiver.url(),
        secret_env: "PW_TEST_WEBHOOK_SECRET".into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        campaigns: Vec::new(),
        timeout_ms: NonZeroU64::new(2_000).unwrap(),
        retry_for_secs: NonZeroU64::new(3_600).unwrap(),
        concurrency: NonZeroUsize::new(16).unwrap(),
        backoff_initial_ms: NonZeroU64::new(20).unwrap(),
        backoff_max_ms: NonZeroU64::new(500).unwrap(),
    }
}

/// Registers the sinks of `hooks` (as serve, settle and deliver do at start)
/// and starts a dispatcher for them, signing with the receiver's secret.
async fn dispatcher(pg: &sqlx::PgPool, hooks: &[WebhookSettings]) -> Dispatcher {
    let specs = sinks(hooks).unwrap();
    prizewheel::outbox::sinks::register(pg, &specs)
        .await
        .unwrap();
    let endpoints = hooks
        .iter()
        .map(|h| Endpoint::with_secret(h, h.secret_from(SECRET).unwrap()).unwrap())
        .collect();
    Dispatcher::start(pg.clone(), endpoints, specs, Duration::from_millis(50))
}

async fn status(pg: &sqlx::PgPool, sink: &str) -> SinkStatus {
    report::status(pg)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.sink == sink)
        .unwrap()
}

/// Waits (up to `limit`) until `sink` has `n` deliveries delivered and none pending.
async fn delivered(pg: &sqlx::PgPool, sink: &str, n: i64, limit: Duration) -> SinkStatus {
    let deadline = Instant::now() + limit;
    loop {
        let s = status(pg, sink).await;
        if s.delivered == n && s.pending == 0 {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "not all delivered within {limit:?}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_settled_reward_reaches_a_flaky_receiver_signed_with_a_stable_id() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    receiver.fail(300);
    let hook = webhook("wallet", &receiver, &["reward.settled", "campaign.applied"]);
    let dispatcher = dispatcher(&app.db.pool, &[hook]).await;
    let spec = Spec::new("hooks");
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();

    let drawn = draws(&app, &id, 1000, 10_000, 0).await;
    settle_all(&app, &spec.id, "settler").await;
    // 10,000 rewards and the apply.
    let end = delivered(&app.db.pool, "wallet", 10_001, Duration::from_secs(240)).await;
    dispatcher.stop().await;

    receiver.assert_clean();
    assert_eq!(end.dead, 0, "{end:?}");
    assert!(
        end.failed_attempts > 2_000,
        "30 % of attempts failed: {end:?}"
    );
    let accepted = receiver.accepted_ids();
    for spin in &drawn {
        assert!(
            accepted.contains(&spin.to_string()),
            "reward {spin} not delivered"
        );
    }
    let repeated = {
        let seen = receiver.seen.lock().unwrap();
        seen.received.values().filter(|n| **n > 1).count()
    };
    assert!(repeated > 2_000, "retries repeat the id: {repeated}");
    let applied = receiver.of_type("campaign.applied");
    assert_eq!(applied.len(), 1, "{applied:?}");
    assert_eq!(applied[0]["data"]["campaign_id"], spec.id.as_str());

    // A reward's body is its ledger row.
    let (user, prize, amount, stream): (String, String, String, String) = sqlx::query_as(
        "SELECT user_id, prize_id, amount::text, stream_id FROM rewards WHERE spin_id = $1",
    )
    .bind(drawn[0])
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    let body = receiver.body(&drawn[0].to_string()).unwrap();
    assert_eq!(body["type"], "reward.settled");
    let data = &body["data"];
    assert_eq!(data["spin_id"], drawn[0].to_string());
    assert_eq!(data["campaign_id"], spec.id.as_str());
    assert_eq!(data["user_id"], user.as_str());
    assert_eq!(data["prize"]["id"], prize.as_str());
    assert_eq!(data["prize"]["name"], format!("Prize {prize}").as_str());
    assert_eq!(data["prize"]["value"]["amount"], amount.as_str());
    assert_eq!(data["prize"]["value"]["currency"], "INR");
    assert_eq!(data["stream_id"], stream.as_str());
    assert!(
        chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).is_ok(),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dispatchers_deliver_everything_and_never_the_same_event_at_once() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    receiver.fail(200);
    receiver.delay(5_000);
    let hook = webhook("wallet", &receiver, &["reward.settled"]);
    let a = dispatcher(&app.db.pool, std::slice::from_ref(&hook)).await;
    let b = dispatcher(&app.db.pool, &[hook]).await;
    let spec = Spec::new("hooks2");
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    let drawn = draws(&app, &id, 500, 3_000, 0).await;
    settle_all(&app, &spec.id, "settler").await;
    delivered(&app.db.pool, "wallet", 3_000, Duration::from_secs(120)).await;
    a.stop().await;
    b.stop().await;
    receiver.assert_clean();
    let accepted = receiver.accepted_ids();
    assert!(drawn.iter().all(|s| accepted.contains(&s.to_string())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_ten_seconds_catches_up_and_spins_and_settlement_go_on() {
    let receiver = Receiver::start().await;
    let mut hook = webhook("wallet", &receiver, &["reward.settled"]);
    hook.timeout_ms = NonZeroU64::new(1_000).unwrap();
    hook.backoff_max_ms = NonZeroU64::new(1_000).unwrap();
    let app = TestApp::spawn_with(|s| {
        s.settle = crate::support::settling::fast();
        s.webhooks = vec![hook.clone()];
        s.deliver.enabled = false;
    })
    .await;
    let dispatcher = dispatcher(&app.db.pool, &[hook]).await;
    let spec = Spec::new("hooks-down");
    app.apply(&spec.yaml()).await;

    receiver.down().await;
    let down_at = Instant::now();
    let mut spins = Vec::new();
    for i in 0..200 {
        let res = app
            .spin(&spec.id, &format!("u{}", i % 20), &format!("k{i}"))
            .await;
        assert_eq!(res.status(), 200, "spins go on while the receiver is down");
        let v: serde_json::Value = res.json().await.unwrap();
        spins.push(v["spin_id"].as_str().unwrap().to_owned());
    }
    // Settlement goes on too: every spin is in the ledger before the receiver returns.
    loop {
        let settled: i64 =
            sqlx::query_scalar("SELECT count(*) FROM rewards WHERE campaign_id = $1")
                .bind(&spec.id)
                .fetch_one(&app.db.pool)
                .await
                .unwrap();
        if settled == 200 {
            break;
        }
        assert!(
            down_at.elapsed() < Duration::from_secs(9),
            "settled {settled} of 200 while the receiver was down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let waiting = status(&app.db.pool, "wallet").await;
    assert_eq!(
        (waiting.pending, waiting.delivered),
        (200, 0),
        "{waiting:?}"
    );
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(down_at.elapsed())).await;
    let before = status(&app.db.pool, "wallet").await;
    assert!(
        before.failed_attempts > 0,
        "refused connections were retried: {before:?}"
    );
    receiver.up().await;
    let end = delivered(&app.db.pool, "wallet", 200, Duration::from_secs(30)).await;
    dispatcher.stop().await;
    assert_eq!(end.dead, 0);
    receiver.assert_clean();
    let accepted = receiver.accepted_ids();
    assert!(spins.iter().all(|s| accepted.contains(s)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_disables_the_endpoint_until_it_is_enabled_again() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    receiver.gone(true);
    let hook = webhook("coupons", &receiver, &["reward.settled"]);
    let dispatcher = dispatcher(&app.db.pool, &[hook]).await;
    let spec = Spec::new("hooks-gone");
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    draws(&app, &id, 10, 10, 0).await;
    settle_all(&app, &spec.id, "settler").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let disabled = loop {
        let s = status(&app.db.pool, "coupons").await;
        if !s.enabled {
            break s;
        }
        assert!(Instant::now() < deadline, "not disabled: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        disabled
            .disabled_reason
            .as_deref()
            .unwrap_or_default()
            .contains("410"),
        "{disabled:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = status(&app.db.pool, "coupons").await;
    assert_eq!(
        (held.pending, held.delivered, held.dead),
        (10, 0, 0),
        "kept, not sent: {held:?}"
    );
    let tried = receiver.seen.lock().unwrap().received.values().sum::<u32>();
    assert!(
        tried <= 16,
        "no more attempts once disabled (one batch at most): {tried}"
    );

    receiver.gone(false);
    let (ok, out) = crate::support::helpers::cli(
        &["webhooks", "enable", "coupons"],
        &crate::support::helpers::redis_url(),
        &app.db.url,
    );
    assert!(ok, "{out}");
    delivered(&app.db.pool, "coupons", 10, Duration::from_secs(20)).await;
    dispatcher.stop().await;
    receiver.assert_clean();
}
