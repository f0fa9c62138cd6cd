//! Durability modes (`redis.durability`): the service refuses a Redis that
//! cannot give the chosen mode; `none` starts without AOF; under `fsync-wins` a
//! stock-bounded win (and its replay) is answered only after WAITAOF, on
//! Valkey, alone and as a cluster, and a win whose fsync is not confirmed is
//! 503 `durability_timeout` until a retry with the same key can answer it.

use crate::support::helpers::{PrivateRedis, Spec, TestApp, TestDb};
use crate::support::private_redis::PrivateCluster;
use crate::support::serve::Serve;
use prizewheel::domain::CampaignId;
use prizewheel::store::redis::durability::Durability;
use prizewheel::store::redis::keys::CampaignKeys;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

/// A bounded prize, an unlimited one and the fallback, equally likely.
fn mixed(prefix: &str) -> Spec {
    let mut spec = Spec::new(prefix);
    spec.prizes = vec![
        ("gold", 1, Some(1000)),
        ("coupon", 1, None),
        ("none", 1, None),
    ];
    spec
}

/// Nearly every spin wins the bounded prize.
fn mostly_gold(prefix: &str) -> Spec {
    let mut spec = Spec::new(prefix);
    spec.prizes = vec![("gold", 1000, Some(1000)), ("none", 1, None)];
    spec
}

async fn fsync_wins_app(redis: &PrivateRedis) -> TestApp {
    let url = redis.url.clone();
    TestApp::spawn_with(|s| {
        s.redis.url = Some(url.into());
        s.redis.durability = Durability::FsyncWins;
    })
    .await
}

/// Status, prize id and body of one spin.
async fn spin(app: &TestApp, campaign: &str, user: &str, key: &str) -> (u16, String, Value) {
    let r = app.spin(campaign, user, key).await;
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    let prize = body["prize"]["id"].as_str().unwrap_or_default().to_owned();
    (status, prize, body)
}

/// The spin entries of the campaign's results stream drawn with Idempotency-Key
/// `key`, as (spin id, prize).
fn drawn_with_key(redis: &PrivateRedis, campaign: &str, key: &str) -> Vec<(String, String)> {
    let keys = CampaignKeys::new(&CampaignId::parse(campaign).unwrap());
    let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(&keys.results)
        .arg("-")
        .arg("+")
        .query(&mut redis.conn())
        .unwrap();
    entries
        .into_iter()
        .filter(|(_, f)| f.get("type").map(String::as_str) == Some("spin"))
        .filter(|(_, f)| f.get("key").map(String::as_str) == Some(key))
        .map(|(_, f)| (f["spin"].clone(), f["prize"].clone()))
        .collect()
}

#[tokio::test]
async fn aof_durability_refuses_a_redis_without_aof() {
    let db = TestDb::new().await;
    let redis = PrivateRedis::start_with("redis-server", &["--appendonly", "no"]).await;
    let err = Serve::start(&redis.url, &db.url, &[]).refusal().await;
    assert!(err.contains("appendonly no"), "{err}");
    assert!(err.contains("redis.durability is `aof`"), "{err}");
}

#[tokio::test]
async fn none_durability_starts_without_aof_and_warns() {
    let db = TestDb::new().await;
    let redis = PrivateRedis::start_with("redis-server", &["--appendonly", "no"]).await;
    let env = [("PRIZEWHEEL__REDIS__DURABILITY", "none")];
    let mut serve = Serve::start(&redis.url, &db.url, &env);
    assert!(serve.up().await, "serve starts: {}", serve.stop());
    let err = serve.stop();
    assert!(
        err.lines()
            .any(|l| l.contains("WARN") && l.contains("loses every draw since the last snapshot")),
        "{err}"
    );
}

/// `fsync-wins` (set from the environment, as an operator would) needs WAITAOF,
/// a fsync policy that confirms fsyncs, and a WAITAOF timeout below the
/// response timeout.
#[tokio::test]
async fn fsync_wins_refuses_what_cannot_confirm_a_fsync() {
    let db = TestDb::new().await;
    let fsync_wins = ("PRIZEWHEEL__REDIS__DURABILITY", "fsync-wins");

    let redis_7_0 = PrivateRedis::start().await;
    let info: Vec<redis::Value> = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("WAITAOF")
        .query(&mut redis_7_0.conn())
        .unwrap();
    assert_eq!(
        info,
        vec![redis::Value::Nil],
        "this test needs Debian's redis-server without WAITAOF (Redis 7.0)"
    );
    let err = Serve::start(&redis_7_0.url, &db.url, &[fsync_wins])
        .refusal()
        .await;
    assert!(err.contains("no WAITAOF command"), "{err}");
    assert!(err.contains("Valkey"), "{err}");

    let valkey = PrivateRedis::valkey(&["--appendfsync", "no"]).await;
    let err = Serve::start(&valkey.url, &db.url, &[fsync_wins])
        .refusal()
        .await;
    assert!(err.contains("appendfsync no"), "{err}");

    valkey.config_set("appendfsync", "everysec");
    let slow = [
        fsync_wins,
        ("PRIZEWHEEL__REDIS__WAITAOF_TIMEOUT_MS", "1000"),
        ("PRIZEWHEEL__REDIS__RESPONSE_TIMEOUT_MS", "1000"),
    ];
    let err = Serve::start(&valkey.url, &db.url, &slow).refusal().await;
    assert!(err.contains("redis.waitaof_timeout_ms"), "{err}");

    let unknown = [("PRIZEWHEEL__REDIS__DURABILITY", "fsync")];
    let err = Serve::start(&valkey.url, &db.url, &unknown).refusal().await;
    assert!(err.contains("fsync-wins"), "names the modes: {err}");

    let mut serve = Serve::start(&valkey.url, &db.url, &[fsync_wins]);
    assert!(
        serve.up().await,
        "Valkey with AOF everysec: {}",
        serve.stop()
    );
}

#[tokio::test]
async fn fsync_wins_waits_for_the_aof_on_bounded_wins_only() {
    let valkey = PrivateRedis::valkey(&["--appendonly", "yes", "--appendfsync", "everysec"]).await;
    let app = fsync_wins_app(&valkey).await;
    let spec = mixed("fsyncwins");
    app.apply(&spec.yaml()).await;

    let mut answers = Vec::new();
    for i in 0..45 {
        let key = format!("k{i}");
        let (status, prize, _) = spin(&app, &spec.id, "fay", &key).await;
        assert_eq!(status, 200);
        answers.push((key, prize));
    }
    let gold = answers.iter().filter(|(_, p)| p == "gold").count() as u64;
    let others = answers.len() as u64 - gold;
    assert!(gold > 0 && others > 0, "both kinds drawn: {answers:?}");
    assert!(answers.iter().any(|(_, p)| p == "coupon"), "{answers:?}");
    assert_eq!(
        valkey.calls("waitaof"),
        gold,
        "one WAITAOF per bounded win, none for the fallback or unlimited prizes"
    );

    // Replays wait again for a bounded win, and only for one.
    for (key, prize) in &answers {
        let (status, replayed, body) = spin(&app, &spec.id, "fay", key).await;
        assert_eq!((status, &replayed), (200, prize));
        assert_eq!(body["replayed"], true);
    }
    assert_eq!(valkey.calls("waitaof"), 2 * gold);
}

/// With the AOF off, WAITAOF fails: a bounded win is answered 503 (its retry
/// too) until the AOF is back; then the retry returns the one draw made.
#[tokio::test]
async fn a_win_whose_fsync_fails_is_503_and_its_retry_returns_it() {
    let valkey = PrivateRedis::valkey(&["--appendonly", "yes", "--appendfsync", "everysec"]).await;
    let app = fsync_wins_app(&valkey).await;
    let spec = mostly_gold("fsyncfail");
    app.apply(&spec.yaml()).await;

    valkey.config_set("appendonly", "no");
    let mut refused = None;
    for i in 0..20 {
        let key = format!("k{i}");
        let r = app.spin(&spec.id, "gil", &key).await;
        if r.status() == 503 {
            assert_eq!(r.headers()["content-type"], "application/problem+json");
            assert_eq!(r.headers()["retry-after"], "1");
            let p: Value = r.json().await.unwrap();
            assert_eq!(p["code"], "durability_timeout", "{p}");
            refused = Some(key);
            break;
        }
        assert_eq!(r.status(), 200, "only the fallback answers at once");
    }
    let key = refused.expect("a bounded win within 20 spins");
    let (status, _, p) = spin(&app, &spec.id, "gil", &key).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (503, Some("durability_timeout"))
    );

    valkey.config_set("appendonly", "yes");
    let mut rewritten = false;
    for _ in 0..200 {
        if valkey
            .info_field("persistence", "aof_rewrite_in_progress")
            .as_deref()
            == Some("0")
            && valkey
                .info_field("persistence", "aof_rewrite_scheduled")
                .as_deref()
                == Some("0")
        {
            rewritten = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rewritten, "the AOF rewrite finishes within 10 s");

    let r = app.spin(&spec.id, "gil", &key).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["replayed"], true);
    let drawn = drawn_with_key(&valkey, &spec.id, &key);
    assert_eq!(drawn.len(), 1, "exactly one draw for the key: {drawn:?}");
    assert_eq!(body["spin_id"], drawn[0].0.as_str());
    assert_eq!(body["prize"]["id"], drawn[0].1.as_str());
    assert_eq!(body["prize"]["id"], "gold");
}

/// A replay reaches a replica whose connections never carried the draw: it
/// still waits for the draw's fsync (while no fsync can be confirmed it is
/// 503), and a replayed fallback answers at once.
#[tokio::test]
async fn a_replay_on_another_replica_waits_for_the_draw_s_fsync() {
    let valkey = PrivateRedis::valkey(&["--appendonly", "yes", "--appendfsync", "everysec"]).await;
    let first = fsync_wins_app(&valkey).await;
    let mut spec = Spec::new("fsyncreplay");
    spec.prizes = vec![("gold", 1, Some(1000)), ("none", 1, None)];
    first.apply(&spec.yaml()).await;
    let mut keys: HashMap<String, String> = HashMap::new();
    for i in 0..60 {
        let key = format!("k{i}");
        let (status, prize, _) = spin(&first, &spec.id, "hal", &key).await;
        assert_eq!(status, 200);
        keys.entry(prize).or_insert(key);
        if keys.len() == 2 {
            break;
        }
    }
    assert_eq!(
        keys.len(),
        2,
        "drew both a bounded win and the fallback: {keys:?}"
    );

    // Another replica; from now on Redis confirms no fsync.
    let second = fsync_wins_app(&valkey).await;
    valkey.config_set("appendfsync", "no");
    let (status, _, p) = spin(&second, &spec.id, "hal", &keys["gold"]).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (503, Some("durability_timeout"))
    );
    let (status, prize, body) = spin(&second, &spec.id, "hal", &keys["none"]).await;
    assert_eq!(
        (status, prize.as_str(), &body["replayed"]),
        (200, "none", &Value::Bool(true))
    );

    valkey.config_set("appendfsync", "everysec");
    let (status, prize, body) = spin(&second, &spec.id, "hal", &keys["gold"]).await;
    assert_eq!(
        (status, prize.as_str(), &body["replayed"]),
        (200, "gold", &Value::Bool(true))
    );
}

/// On a cluster, WAITAOF goes to the primary that holds the campaign (the
/// command has no key) and to no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_wins_on_a_cluster_waits_on_the_campaign_s_primary() {
    let cluster = PrivateCluster::valkey().await;
    let seeds = cluster.seeds();
    let app = TestApp::spawn_with(|s| {
        s.redis.cluster_nodes = seeds.iter().map(|u| u.clone().into()).collect();
        s.redis.durability = Durability::FsyncWins;
    })
    .await;
    let spec = mixed("fsynccluster");
    app.apply(&spec.yaml()).await;
    let owner = crate::support::cluster::owner(&seeds, &spec.id);

    let mut gold = 0;
    for i in 0..30 {
        let (status, prize, _) = spin(&app, &spec.id, "ida", &format!("k{i}")).await;
        assert_eq!(status, 200);
        gold += u64::from(prize == "gold");
    }
    assert!(gold > 0, "some bounded wins");
    for node in &cluster.nodes {
        let expected = if node.url == owner { gold } else { 0 };
        assert_eq!(
            node.calls("waitaof"),
            expected,
            "{} (owner {owner})",
            node.url
        );
    }
}

/// Under `fsync-wins` a grant and a revocation are answered only once on disk:
/// with the AOF off they are 503 `durability_timeout` (the grant stands), and
/// once it is back their retries replay the one grant and the one revocation.
#[tokio::test]
async fn fsync_wins_confirms_grants_and_revocations_on_disk() {
    use crate::support::helpers::{grant, revoke};
    let valkey = PrivateRedis::valkey(&["--appendonly", "yes", "--appendfsync", "everysec"]).await;
    let app = fsync_wins_app(&valkey).await;
    let mut spec = mostly_gold("fsyncgrant");
    spec.earned = Some((0, "campaign_end"));
    app.apply(&spec.yaml()).await;
    let body = serde_json::json!({"user_id": "gina", "spins": 2}).to_string();
    let r = grant(&app.client, &app.address, &spec.id, "o-1", &body).await;
    assert_eq!(r.status(), 200, "confirmed while the AOF is on");

    valkey.config_set("appendonly", "no");
    let r = grant(&app.client, &app.address, &spec.id, "o-2", &body).await;
    assert_eq!(r.status(), 503);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "durability_timeout", "{p}");
    let r = revoke(&app.client, &app.address, &spec.id, "o-1").await;
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "durability_timeout", "{p}");

    valkey.config_set("appendonly", "yes");
    let mut answered = None;
    for _ in 0..200 {
        let r = grant(&app.client, &app.address, &spec.id, "o-2", &body).await;
        if r.status() == 200 {
            answered = Some(r.json::<Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = answered.expect("the grant is confirmed once the AOF is back");
    assert_eq!(
        again["replayed"], true,
        "the grant made during the outage: {again}"
    );
    assert_eq!(again["spins_left"], 4);
    let r: Value = revoke(&app.client, &app.address, &spec.id, "o-1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&r["replayed"], &r["revoked"]),
        (&json!(true), &json!(2)),
        "{r}"
    );
}
