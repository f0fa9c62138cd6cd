//! Webhooks (src/outbox, src/deliver): every settled reward, grant and apply
//! reaches a real receiver that verifies each signature with the
//! `standardwebhooks` crate, at least once, with a stable `webhook-id`, never
//! in flight twice at once, through failures, outages and crashes.

use crate::support::helpers::{Spec, TestApp};
use crate::support::receiver::{Receiver, SECRET};
use crate::support::settling::{draws, settle_all};
use prizewheel::deliver::dispatcher::{Dispatcher, Options};
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
    let options = Options {
        poll: Duration::from_millis(50),
        retention: None,
    };
    Dispatcher::start(pg.clone(), endpoints, specs, options)
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
    eprintln!(
        "flaky receiver: {} delivered, {} failed attempts, {repeated} ids received more than once, {} dead",
        end.delivered, end.failed_attempts, end.dead
    );
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

    // Paused, not forgotten: rewards settled meanwhile queue for it.
    draws(&app, &id, 10, 5, 10).await;
    settle_all(&app, &spec.id, "settler").await;
    assert_eq!(status(&app.db.pool, "coupons").await.pending, 15);

    receiver.gone(false);
    let (ok, out) = crate::support::helpers::cli(
        &["webhooks", "enable", "coupons"],
        &crate::support::helpers::redis_url(),
        &app.db.url,
    );
    assert!(ok, "{out}");
    delivered(&app.db.pool, "coupons", 15, Duration::from_secs(20)).await;
    dispatcher.stop().await;
    receiver.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_never_answered_2xx_goes_dead_and_replay_resends_it() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    receiver.fail(1000);
    let mut hook = webhook("wallet", &receiver, &["reward.settled"]);
    hook.retry_for_secs = NonZeroU64::new(1).unwrap();
    hook.backoff_initial_ms = NonZeroU64::new(100).unwrap();
    hook.backoff_max_ms = NonZeroU64::new(200).unwrap();
    let dispatcher = dispatcher(&app.db.pool, &[hook]).await;
    let spec = Spec::new("hooks-dead");
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    let drawn = draws(&app, &id, 5, 5, 0).await;
    settle_all(&app, &spec.id, "settler").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let s = status(&app.db.pool, "wallet").await;
        if s.dead == 5 {
            break s;
        }
        assert!(Instant::now() < deadline, "not dead: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((dead.pending, dead.delivered), (0, 0), "{dead:?}");
    assert!(dead.failed_attempts >= 5, "{dead:?}");
    assert!(receiver.accepted_ids().is_empty());

    // The operator's view.
    let redis = crate::support::helpers::redis_url();
    let (ok, out) = crate::support::helpers::cli(&["webhooks", "status"], &redis, &app.db.url);
    assert!(ok, "{out}");
    let row = out
        .lines()
        .find(|l| l.contains("wallet"))
        .unwrap_or_default();
    assert!(row.split_whitespace().any(|w| w == "5"), "5 dead: {out}");
    let (ok, out) =
        crate::support::helpers::cli(&["webhooks", "status", "--json"], &redis, &app.db.url);
    assert!(ok, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let wallet = json
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sink"] == "wallet")
        .unwrap();
    assert_eq!(wallet["dead"], 5, "{json}");

    receiver.fail(0);
    let (ok, out) = crate::support::helpers::cli(
        &["webhooks", "replay", "wallet", "--since", "1h"],
        &redis,
        &app.db.url,
    );
    assert!(ok, "{out}");
    assert!(out.contains("5 deliveries resent"), "{out}");
    delivered(&app.db.pool, "wallet", 5, Duration::from_secs(20)).await;
    let accepted = receiver.accepted_ids();
    assert!(drawn.iter().all(|s| accepted.contains(&s.to_string())));

    // Bad input: one line, a non-zero exit.
    for (args, says) in [
        (
            vec!["webhooks", "replay", "nobody", "--since", "1h"],
            "no endpoint",
        ),
        (
            vec!["webhooks", "replay", "wallet", "--since", "yesterday"],
            "since",
        ),
        (vec!["webhooks", "enable", "nobody"], "no endpoint"),
        (vec!["webhooks", "remove", "nobody"], "no endpoint"),
    ] {
        let (ok, out) = crate::support::helpers::cli(&args, &redis, &app.db.url);
        assert!(!ok && out.contains(says), "{args:?}: {out}");
        assert!(!out.contains("panicked"), "{out}");
    }
    dispatcher.stop().await;
    receiver.assert_clean();

    // An endpoint that left the configuration is forgotten on request.
    let (ok, out) =
        crate::support::helpers::cli(&["webhooks", "remove", "wallet"], &redis, &app.db.url);
    assert!(ok && out.contains("with its 5 deliveries"), "{out}");
    assert!(report::status(&app.db.pool).await.unwrap().is_empty());
}

/// An earned-spins campaign: free spins none, so spins come from grants.
fn earned(prefix: &str) -> Spec {
    let mut spec = Spec::new(prefix);
    spec.earned = Some((0, "campaign_end"));
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_revocations_and_a_prize_running_out_reach_the_campaigns_subscribed() {
    use crate::support::helpers::{grant, revoke};
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let mut watched = earned("hooks-grants");
    watched.prizes = vec![("gold", 9, Some(3)), ("none", 1, None)];
    let other = earned("hooks-other");
    let mut hook = webhook(
        "notify",
        &receiver,
        &["grant.recorded", "grant.revoked", "prize.exhausted"],
    );
    hook.campaigns = vec![watched.id.clone()];
    let dispatcher = dispatcher(&app.db.pool, &[hook]).await;
    app.apply(&watched.yaml()).await;
    app.apply(&other.yaml()).await;

    let body = serde_json::json!({"user_id": "alice", "spins": 20, "reason": {"order_id": "o-1"}})
        .to_string();
    for campaign in [&watched.id, &other.id] {
        let res = grant(&app.client, &app.address, campaign, "order-1", &body).await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    }
    for i in 0..12 {
        let res = app.spin(&watched.id, "alice", &format!("k{i}")).await;
        assert_eq!(res.status(), 200);
    }
    let res = revoke(&app.client, &app.address, &watched.id, "order-1").await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    settle_all(&app, &watched.id, "settler").await;
    settle_all(&app, &other.id, "settler").await;
    // A grant, its revocation, gold running out: only the watched campaign's.
    let end = delivered(&app.db.pool, "notify", 3, Duration::from_secs(30)).await;
    dispatcher.stop().await;
    receiver.assert_clean();
    assert_eq!(end.dead, 0);

    let grants = receiver.of_type("grant.recorded");
    assert_eq!(grants.len(), 1, "{grants:?}");
    let g = &grants[0]["data"];
    assert_eq!(g["campaign_id"], watched.id.as_str());
    assert_eq!(
        (&g["grant_id"], &g["user_id"], &g["spins"]),
        (&"order-1".into(), &"alice".into(), &20.into())
    );
    assert_eq!(g["reason"]["order_id"], "o-1");
    assert!(
        receiver
            .accepted_ids()
            .contains(&format!("grant:{}:order-1", watched.id))
    );

    let revoked = receiver.of_type("grant.revoked");
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    let v = &revoked[0]["data"];
    assert_eq!(
        (&v["revoked"], &v["already_used"], &v["spins"]),
        (&8.into(), &12.into(), &20.into()),
        "{v}"
    );

    // The reward that took gold's third and last unit announced it.
    let last_gold: (uuid::Uuid, String) = sqlx::query_as(
        "SELECT spin_id, stream_id FROM rewards WHERE campaign_id = $1 AND prize_id = 'gold'
         ORDER BY stream_ms DESC, stream_seq DESC LIMIT 1",
    )
    .bind(&watched.id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    let gold: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rewards WHERE campaign_id = $1 AND prize_id = 'gold'",
    )
    .bind(&watched.id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(gold, 3, "12 spins at 90 % odds take the 3 units");
    let exhausted = receiver.of_type("prize.exhausted");
    assert_eq!(exhausted.len(), 1, "{exhausted:?}");
    let e = &exhausted[0]["data"];
    assert_eq!(e["campaign_id"], watched.id.as_str());
    assert_eq!(e["prize_id"], "gold");
    assert_eq!(e["spin_id"], last_gold.0.to_string());
    assert_eq!(e["stream_id"], last_gold.1.as_str());
    assert_eq!(e["codes"], false);

    // The audit holds the announcement to the replay of the ledger.
    let report = prizewheel::finance::audit::audit(
        &app.db.pool,
        &CampaignId::parse(&watched.id).unwrap(),
        None,
    )
    .await
    .unwrap();
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!((report.exhausted, report.exhausted_announced), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_does_not_hold_up_another() {
    let app = TestApp::spawn().await;
    let slow = Receiver::start().await;
    slow.delay(3_000_000);
    let fast = Receiver::start().await;
    let mut stuck = webhook("slow", &slow, &["reward.settled"]);
    stuck.timeout_ms = NonZeroU64::new(500).unwrap();
    stuck.concurrency = NonZeroUsize::new(2).unwrap();
    let quick = webhook("fast", &fast, &["reward.settled"]);
    let dispatcher = dispatcher(&app.db.pool, &[stuck, quick]).await;
    let spec = Spec::new("hooks-slow");
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    let started = Instant::now();
    draws(&app, &id, 50, 300, 0).await;
    settle_all(&app, &spec.id, "settler").await;
    delivered(&app.db.pool, "fast", 300, Duration::from_secs(30)).await;
    let took = started.elapsed();
    let behind = status(&app.db.pool, "slow").await;
    dispatcher.stop().await;
    // Two attempts at a time, most of them timing out after 500 ms: the slow
    // endpoint has done a fraction of its 300 while the fast one did them all.
    assert!(
        behind.delivered < 150 && behind.pending > 150,
        "the slow endpoint after {took:?}: {behind:?}"
    );
    fast.assert_clean();
    assert!(slow.seen.lock().unwrap().invalid.is_empty());
}

/// config/prizewheel.yaml with `webhooks:` set to `hooks` (YAML flow text).
fn config_with(dir: &crate::support::helpers::TempDir, hooks: &str) -> String {
    let base = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/prizewheel.yaml"),
    )
    .unwrap();
    assert!(base.contains("\nwebhooks: []\n"));
    let text = base.replace("\nwebhooks: []\n", &format!("\nwebhooks: {hooks}\n"));
    let path = dir.0.join("prizewheel.yaml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prizewheel_deliver_killed_mid_batch_and_restarted_loses_nothing() {
    use crate::support::serve::Serve;
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    receiver.delay(300_000);
    receiver.fail(100);
    let dir = crate::support::helpers::TempDir::new();
    let config = config_with(
        &dir,
        &format!(
            "[{{id: wallet, url: \"{}\", secret_env: PW_KILL_TEST_SECRET, events: [reward.settled], timeout_ms: 1000, concurrency: 16, backoff_initial_ms: 50, backoff_max_ms: 500}}]",
            receiver.url()
        ),
    );
    let redis = crate::support::helpers::redis_url();
    let env = [
        ("PW_KILL_TEST_SECRET", SECRET),
        ("PRIZEWHEEL__LOG__FILTER", "info"),
        ("PRIZEWHEEL__DELIVER__POLL_MS", "50"),
    ];
    let args = ["deliver", "--config", config.as_str()];
    let spec = Spec::new("hooks-kill");
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    let mut first = Serve::command(&args, &redis, &app.db.url, &env);
    // It registers the sink; the settler writes deliveries for it from then on.
    let deadline = Instant::now() + Duration::from_secs(20);
    while report::status(&app.db.pool).await.unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "deliver never registered its sink"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drawn = draws(&app, &id, 100, 1_000, 0).await;
    settle_all(&app, &spec.id, "settler").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(&app.db.pool, "wallet").await;
        if s.delivered >= 100 {
            assert!(s.pending > 0, "killed mid-way, not at the end: {s:?}");
            break;
        }
        assert!(Instant::now() < deadline, "deliver delivers nothing: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.signal("KILL");
    assert!(first.exited_within(Duration::from_secs(5)).await.is_some());
    let logs = first.stop();
    let in_flight = receiver.seen.lock().unwrap().received.values().sum::<u32>();
    let mut second = Serve::command(&args, &redis, &app.db.url, &env);
    let end = delivered(&app.db.pool, "wallet", 1_000, Duration::from_secs(120)).await;
    let more_logs = second.stop();
    assert_eq!(end.dead, 0);
    let accepted = receiver.accepted_ids();
    assert!(
        drawn.iter().all(|s| accepted.contains(&s.to_string())),
        "every reward delivered after the restart ({in_flight} requests before the kill)"
    );
    receiver.assert_clean();
    let secret_body = SECRET.trim_start_matches("whsec_");
    for out in [&logs, &more_logs] {
        assert!(
            !out.contains(secret_body),
            "the secret is in the output:\n{out}"
        );
    }
    assert!(logs.contains("delivering"), "it logged at info:\n{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_webhook_config_is_one_clear_line_at_start() {
    let db = crate::support::helpers::TestDb::new().await;
    let redis = crate::support::helpers::redis_url();
    let dir = crate::support::helpers::TempDir::new();
    let cases = [
        (
            "[{id: wallet, url: \"ftp://x/y\", secret_env: PW_BAD_TEST_SECRET, events: [reward.settled]}]",
            "http:// or https://",
        ),
        (
            "[{id: wallet, url: \"http://x/y\", secret_env: PW_NO_SUCH_SECRET_SET, events: [reward.settled]}]",
            "PW_NO_SUCH_SECRET_SET",
        ),
        (
            "[{id: wallet, url: \"http://x/y\", secret_env: PW_BAD_TEST_SECRET, events: [reward.paid]}]",
            "unknown event type",
        ),
    ];
    for (hooks, says) in cases {
        let config = config_with(&dir, hooks);
        for command in ["deliver", "serve"] {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_prizewheel"))
                .args([command, "--config", config.as_str()])
                .env("REDIS_URL", &redis)
                .env("DATABASE_URL", &db.url)
                .env("PRIZEWHEEL_JWT_SECRET", crate::support::helpers::SECRET)
                .env("PRIZEWHEEL_LISTEN", "127.0.0.1:0")
                .env("PW_BAD_TEST_SECRET", "whsec_c2hvcnQ=")
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{command} {hooks}: started");
            let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
            assert_eq!(lines.len(), 1, "{command} {hooks}: {err}");
            assert!(lines[0].contains(says), "{command} {hooks}: {err}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_settles_and_delivers_by_itself_when_webhooks_are_configured() {
    use crate::support::serve::Serve;
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let dir = crate::support::helpers::TempDir::new();
    let config = config_with(
        &dir,
        &format!(
            "[{{id: wallet, url: \"{}\", secret_env: PW_SERVE_TEST_SECRET, events: [reward.settled]}}]",
            receiver.url()
        ),
    );
    let spec = Spec::new("hooks-serve");
    app.apply(&spec.yaml()).await;
    let mut serve = Serve::command(
        &["serve", "--config", config.as_str()],
        &crate::support::helpers::redis_url(),
        &app.db.url,
        &[
            ("PW_SERVE_TEST_SECRET", SECRET),
            (
                "PRIZEWHEEL__AUTH__AUDIENCE",
                crate::support::helpers::AUDIENCE,
            ),
        ],
    );
    assert!(serve.up().await, "serve came up");
    let mut spins = Vec::new();
    for i in 0..50 {
        let res = crate::support::helpers::spin(
            &app.client,
            &format!("http://127.0.0.1:{}", serve.port),
            &spec.id,
            &crate::support::helpers::token(&format!("u{}", i % 5), &[]),
            &format!("k{i}"),
            None,
        )
        .await;
        assert_eq!(res.status(), 200);
        let v: serde_json::Value = res.json().await.unwrap();
        spins.push(v["spin_id"].as_str().unwrap().to_owned());
    }
    delivered(&app.db.pool, "wallet", 50, Duration::from_secs(30)).await;
    serve.signal("TERM");
    let exit = serve.exited_within(Duration::from_secs(20)).await;
    assert!(
        exit.is_some_and(|s| s.success()),
        "{exit:?}: {}",
        serve.stop()
    );
    receiver.assert_clean();
    let accepted = receiver.accepted_ids();
    assert!(spins.iter().all(|s| accepted.contains(s)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_events_are_pruned_after_the_retention_and_pending_ones_kept() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let sent = webhook("sent", &receiver, &["reward.settled"]);
    // No dispatcher serves it: its delivery of the apply stays pending.
    let waiting = webhook("waiting", &receiver, &["campaign.applied"]);
    prizewheel::outbox::sinks::register(&app.db.pool, &sinks(&[sent.clone(), waiting]).unwrap())
        .await
        .unwrap();
    let dispatcher = dispatcher(&app.db.pool, &[sent]).await;
    let spec = Spec::new("hooks-prune");
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    draws(&app, &id, 10, 20, 0).await;
    settle_all(&app, &spec.id, "settler").await;
    delivered(&app.db.pool, "sent", 20, Duration::from_secs(20)).await;
    dispatcher.stop().await;
    let count = |sql: &'static str| {
        let pg = app.db.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pg)
                .await
                .unwrap()
        }
    };
    assert_eq!(count("SELECT count(*) FROM outbox_events").await, 21);

    let mut conn = app.db.pool.acquire().await.unwrap();
    let prune = prizewheel::outbox::prune::prune;
    assert_eq!(
        prune(&mut conn, Duration::from_secs(3600), 100)
            .await
            .unwrap(),
        0
    );
    // Two batches: the limit holds.
    assert_eq!(prune(&mut conn, Duration::ZERO, 15).await.unwrap(), 15);
    assert_eq!(prune(&mut conn, Duration::ZERO, 15).await.unwrap(), 5);
    assert_eq!(prune(&mut conn, Duration::ZERO, 15).await.unwrap(), 0);
    let left: Vec<String> = sqlx::query_scalar("SELECT type FROM outbox_events")
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(left, ["campaign.applied"], "the pending one is kept");
    assert_eq!(
        count("SELECT count(*) FROM outbox_deliveries").await,
        1,
        "the pruned events' deliveries went with them"
    );
    let rewards = count("SELECT count(*) FROM rewards").await;
    assert_eq!(rewards, 20, "the ledger keeps everything");
}
