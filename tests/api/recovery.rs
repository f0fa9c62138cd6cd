//! Redis crash recovery (src/recover): Redis loses writes the ledger already
//! holds, and before any new draw the campaign is rebuilt from the ledger. No
//! prize goes over its stock, no user over a quota, no key is drawn twice, and a
//! retry of a forgotten-but-settled draw replays it.
//!
//! A SIGKILL of Redis alone loses nothing (its writes are in the kernel); a
//! machine crash loses the unsynced AOF tail. The tests simulate that by putting
//! back a copy of the AOF taken earlier ([`PrivateRedis::snapshot_aof`]).

use crate::support::helpers::{Spec, TestApp, cli};
use crate::support::private_redis::PrivateRedis;
use crate::support::settling::fast;
use futures::stream::{self, StreamExt};
use prizewheel::domain::CampaignId;
use prizewheel::settle::Settler;
use prizewheel::store::redis::connection::RedisTarget;
use prizewheel::store::redis::durability::Durability;
use prizewheel::store::redis::keys::CampaignKeys;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;

const QUOTA: u32 = 6;
const GOLD: u64 = 40;

/// A small bounded prize most spins go for, and quotas that bind.
fn campaign() -> Spec {
    let mut spec = Spec::new("recover");
    spec.spins_per_user = QUOTA;
    spec.prizes = vec![("gold", 2, Some(GOLD)), ("none", 3, None)];
    spec
}

/// One answer: (user, key, status, body).
type Answer = (String, String, u16, Value);

/// `n` spins from key number `from` by `users` users round-robin, 16 at a time;
/// a request cut by the crash counts as status 0.
async fn load(app: &TestApp, campaign: &str, users: usize, from: usize, n: usize) -> Vec<Answer> {
    load_while(
        app,
        campaign,
        users,
        from..from + n,
        &AtomicBool::new(false),
    )
    .await
}

/// As [`load`] over the key numbers `keys`, until `done` turns true.
async fn load_while(
    app: &TestApp,
    campaign: &str,
    users: usize,
    keys: std::ops::Range<usize>,
    done: &AtomicBool,
) -> Vec<Answer> {
    stream::iter(keys)
        .take_while(|_| std::future::ready(!done.load(Ordering::Relaxed)))
        .map(|i| async move {
            let (user, key) = (format!("u{}", i % users), format!("k{i}"));
            let token = crate::support::helpers::token(&user, &[]);
            let sent = app
                .client
                .post(format!("{}/v1/campaigns/{campaign}/spins", app.address))
                .bearer_auth(token)
                .header("Idempotency-Key", &key)
                .send()
                .await;
            match sent {
                Ok(r) => {
                    let status = r.status().as_u16();
                    (user, key, status, r.json().await.unwrap_or(Value::Null))
                }
                Err(_) => (user, key, 0, Value::Null),
            }
        })
        .buffer_unordered(16)
        .collect()
        .await
}

fn drawn(answers: &[Answer]) -> impl Iterator<Item = &Answer> {
    answers.iter().filter(|a| a.2 == 200)
}

fn settler_on(redis: &PrivateRedis, app: &TestApp, name: &str) -> Settler {
    Settler::new(
        RedisTarget::Single(redis::Client::open(redis.url.as_str()).unwrap()),
        app.db.pool.clone(),
        fast(),
        name.into(),
    )
}

/// Runs a settler of its own until the campaign's stream is settled.
async fn settle(redis: &PrivateRedis, app: &TestApp, campaign: &str) {
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(settler_on(redis, app, "recovery-test").run(stopped));
    wait_settled(redis, campaign).await;
    stop.send(true).unwrap();
    task.await.unwrap();
}

async fn wait_settled(redis: &PrivateRedis, campaign: &str) {
    let stream = CampaignKeys::new(&CampaignId::parse(campaign).unwrap()).results;
    let mut conn = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for _ in 0..300 {
        if let Ok(l) = prizewheel::settle::stream::lag(&mut conn, &stream).await
            && l.unsettled() == 0
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{campaign}: not settled within 30 s");
}

/// The ledger's rows of the campaign: (spin id, user, key, prize).
async fn ledger(app: &TestApp, campaign: &str) -> Vec<(String, String, String, String)> {
    sqlx::query_as(
        "SELECT spin_id::text, user_id, idempotency_key, prize_id FROM rewards WHERE campaign_id = $1",
    )
    .bind(campaign)
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
}

/// What must hold whatever Redis lost: no prize over its stock, no user over
/// the quota, no (user, key) drawn twice, and Redis's counts equal to the
/// ledger's once everything is settled.
async fn assert_bounds_hold(app: &TestApp, redis: &PrivateRedis, campaign: &str) {
    let rows = ledger(app, campaign).await;
    let gold = rows.iter().filter(|r| r.3 == "gold").count() as u64;
    assert!(gold <= GOLD, "gold awarded {gold} times, stock {GOLD}");
    let mut per_user: HashMap<&str, u32> = HashMap::new();
    let mut keys = HashSet::new();
    for (_, user, key, _) in &rows {
        *per_user.entry(user).or_default() += 1;
        assert!(keys.insert((user, key)), "{user}/{key} drawn twice");
    }
    for (user, n) in per_user {
        assert!(n <= QUOTA, "{user} spun {n} times, quota {QUOTA}");
    }
    let k = CampaignKeys::new(&CampaignId::parse(campaign).unwrap());
    let mut conn = redis.conn();
    let awarded: HashMap<String, u64> = redis::cmd("HGETALL")
        .arg(&k.awarded)
        .query(&mut conn)
        .unwrap();
    let stock: HashMap<String, i64> = redis::cmd("HGETALL")
        .arg(&k.stock)
        .query(&mut conn)
        .unwrap();
    assert_eq!(
        awarded.get("gold").copied().unwrap_or(0),
        gold,
        "Redis counts the ledger's gold"
    );
    assert_eq!(
        stock["gold"],
        (GOLD - gold) as i64,
        "stock = configured - awarded"
    );
    let (ok, text) = cli(&["reconcile", campaign], &redis.url, &app.db.url);
    assert!(ok, "reconcile after recovery: {text}");
    let (ok, text) = cli(&["audit", campaign], &redis.url, &app.db.url);
    assert!(ok, "audit after recovery: {text}");
}

/// The whole story with the settler stopped at the crash, so each stage can be
/// seen: draws wait (503 `recovering`, not ready, reconcile names the loss),
/// `prizewheel recover` rebuilds, retries of forgotten draws replay, quotas and
/// stock hold through the rest of the sale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_losing_settled_draws_is_rebuilt_from_the_ledger_before_draws_resume() {
    let mut redis =
        PrivateRedis::start_with("redis-server", &["--auto-aof-rewrite-percentage", "0"]).await;
    let url = redis.url.clone();
    let app = TestApp::spawn_with(|s| {
        s.redis.url = Some(url.into());
        s.redis.response_timeout_ms = 500;
    })
    .await;
    let spec = campaign();
    app.apply(&spec.yaml()).await;

    let before = load(&app, &spec.id, 60, 0, 120).await;
    settle(&redis, &app, &spec.id).await;
    let copy = redis.snapshot_aof();
    // Drawn, answered and settled, then forgotten by Redis.
    let forgotten = load(&app, &spec.id, 60, 120, 120).await;
    settle(&redis, &app, &spec.id).await;
    let forgotten_wins: Vec<&Answer> = drawn(&forgotten).collect();
    assert!(!forgotten_wins.is_empty());
    redis.crash_and_restart(Some(&copy)).await;

    // Draws wait; a replay of a draw Redis kept still answers.
    let mut answer = Value::Null;
    for _ in 0..50 {
        let r = app.spin(&spec.id, "newcomer", "n0").await;
        answer = r.json().await.unwrap();
        if answer["code"] != "service_unavailable" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // reconnecting
    }
    assert_eq!(answer["code"], "recovering", "a new draw waits: {answer}");
    let kept = drawn(&before).next().unwrap();
    let r = app.spin(&spec.id, &kept.0, &kept.1).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["spin_id"],
        kept.3["spin_id"]
    );
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert!(
        body["checks"]["recovery"]
            .as_str()
            .unwrap()
            .contains(&spec.id),
        "{body}"
    );
    let (ok, text) = cli(&["reconcile", &spec.id], &redis.url, &app.db.url);
    assert!(!ok && text.contains("prizewheel recover"), "{text}");

    let (ok, text) = cli(&["recover", &spec.id, "--json"], &redis.url, &app.db.url);
    assert!(ok, "{text}");
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["forgotten"], forgotten_wins.len(), "{report}");
    assert_eq!(report["records"], forgotten_wins.len(), "{report}");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);

    // Every forgotten draw replays as answered: same spin, same prize.
    for (user, key, _, body) in &forgotten_wins {
        let r = app.spin(&spec.id, user, key).await;
        assert_eq!(r.status(), 200, "{user}/{key}");
        let again: Value = r.json().await.unwrap();
        assert_eq!(again["replayed"], true, "{again}");
        assert_eq!(
            (&again["spin_id"], &again["prize"]),
            (&body["spin_id"], &body["prize"])
        );
        assert_eq!(again["spins_left"], body["spins_left"]);
    }
    // The sale goes on until quotas and stock run out.
    let after = load(&app, &spec.id, 60, 240, 300).await;
    assert!(
        after.iter().any(|a| a.2 == 429),
        "quotas bind after the recovery"
    );
    settle(&redis, &app, &spec.id).await;
    assert_bounds_hold(&app, &redis, &spec.id).await;
    let total = drawn(&before).count() + forgotten_wins.len() + drawn(&after).count();
    assert_eq!(
        ledger(&app, &spec.id).await.len(),
        total,
        "every answered draw settled once"
    );
    eprintln!(
        "recovery: {} draws before, {} forgotten by Redis and recovered, {} after",
        drawn(&before).count(),
        forgotten_wins.len(),
        drawn(&after).count()
    );
}

/// Redis killed in the middle of an HTTP load, the settler inside the service:
/// recovery is automatic and the bounds hold. With `rollback`, the AOF loses
/// its last ~300 ms as after a machine crash; answered draws of that window
/// that were not settled are gone (the documented loss of `aof`), and the
/// others are recovered. Returns the answers and the crash's copy point.
async fn crash_under_load(
    mut redis: PrivateRedis,
    durability: Durability,
    rollback: bool,
) -> (TestApp, PrivateRedis, Spec, Vec<Answer>) {
    let url = redis.url.clone();
    let app = TestApp::spawn_with(|s| {
        s.redis.url = Some(url.into());
        s.redis.durability = durability;
        s.settle = fast();
        // The retries and replays below resend earlier keys of users who may
        // have used up their quota since; the replica's quota cache refuses
        // those with 429 before Redis could replay them (its documented limit,
        // src/admission/quota_cache.rs). These tests hold Redis's answers.
        s.admission.quota_cache.enabled = false;
    })
    .await;
    let spec = campaign();
    app.apply(&spec.yaml()).await;
    // Enough users that quotas leave draws to make all along.
    const USERS: usize = 400;
    let done = AtomicBool::new(false);
    let crash = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let copy = rollback.then(|| redis.snapshot_aof());
        tokio::time::sleep(Duration::from_millis(300)).await;
        redis.crash_and_restart(copy.as_ref()).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        done.store(true, Ordering::Relaxed);
    };
    let (mut answers, ()) =
        tokio::join!(load_while(&app, &spec.id, USERS, 0..20_000, &done), crash);
    assert!(
        answers.iter().any(|a| a.2 != 200 && a.2 != 429),
        "the crash hit the load"
    );
    // Until recovered, new draws answer 503 `recovering`; the client retries.
    let mut retried = Vec::new();
    for a in &answers {
        if a.2 != 200 && a.2 != 429 {
            for _ in 0..50 {
                let r = app.spin(&spec.id, &a.0, &a.1).await;
                let status = r.status().as_u16();
                if status == 200 || status == 429 {
                    retried.push((a.0.clone(), a.1.clone(), status, r.json().await.unwrap()));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    answers.retain(|a| a.2 == 200 || a.2 == 429);
    answers.extend(retried);
    answers.extend(load(&app, &spec.id, USERS, 20_000, 200).await);
    wait_settled(&redis, &spec.id).await;
    assert_bounds_hold(&app, &redis, &spec.id).await;
    (app, redis, spec, answers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_with_its_aof_tail_lost_recovers_by_itself() {
    let redis =
        PrivateRedis::start_with("redis-server", &["--auto-aof-rewrite-percentage", "0"]).await;
    let (app, _redis, spec, answers) = crash_under_load(redis, Durability::Aof, true).await;
    let settled: HashSet<String> = ledger(&app, &spec.id)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    let lost = drawn(&answers)
        .filter(|a| !settled.contains(a.3["spin_id"].as_str().unwrap()))
        .count();
    eprintln!(
        "crash under load (aof, 300 ms of AOF lost): {} answered draws, {} settled, {lost} lost with the AOF tail",
        drawn(&answers).count(),
        settled.len()
    );
}

/// Under `fsync-wins` every answered stock-bounded win survives the crash: it
/// is in the ledger, and its retry replays it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_fsync_wins_no_answered_bounded_win_is_lost_when_redis_is_killed() {
    let redis = PrivateRedis::valkey(&["--auto-aof-rewrite-percentage", "0"]).await;
    let (app, _redis, spec, answers) = crash_under_load(redis, Durability::FsyncWins, false).await;
    let settled: HashSet<String> = ledger(&app, &spec.id)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    let wins: Vec<&Answer> = drawn(&answers)
        .filter(|a| a.3["prize"]["id"] == "gold")
        .collect();
    assert!(!wins.is_empty());
    for (user, key, _, body) in &wins {
        assert!(
            settled.contains(body["spin_id"].as_str().unwrap()),
            "{user}/{key}: answered gold lost"
        );
        // A replay of a bounded win waits for its fsync too: 503 means retry.
        let mut again = Value::Null;
        for _ in 0..20 {
            again = app.spin(&spec.id, user, key).await.json().await.unwrap();
            if again["code"] != "durability_timeout" {
                break;
            }
        }
        assert_eq!(again["spin_id"], body["spin_id"], "{user}/{key}: {again}");
    }
    eprintln!(
        "crash under load (fsync-wins): {} answered gold wins, all settled and replayed",
        wins.len()
    );
}

/// LASTSAVE counts whole seconds: a Redis that dies and comes back within the
/// second it started in has the same LASTSAVE. A campaign certified in that
/// second would take the new process for the old one and draw on its rolled-back
/// counters (the crash test above did so in about half its runs before certify
/// waited). Certify waits until the process has lived past its first second, so
/// the restart is always seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_right_after_a_first_certify_is_still_seen() {
    let mut redis = PrivateRedis::start_with("redis-server", &[]).await;
    let url = redis.url.clone();
    let app = TestApp::spawn_with(|s| s.redis.url = Some(url.into())).await;
    let spec = campaign();
    app.apply(&spec.yaml()).await;
    let mut conn = app.redis_conn_to(&redis.url).await;
    let keys = CampaignKeys::new(&CampaignId::parse(&spec.id).unwrap());
    let epoch: i64 = redis::cmd("HGET")
        .arg(&keys.meta)
        .arg("epoch")
        .query_async(&mut conn)
        .await
        .unwrap();
    let (now, _): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
    assert!(
        now > epoch,
        "certified at {now}, in the first second ({epoch}) of its Redis"
    );

    redis.crash_and_restart(None).await;
    let mut answer = Value::Null;
    for _ in 0..50 {
        answer = app.spin(&spec.id, "u", "k").await.json().await.unwrap();
        if answer["code"] != "service_unavailable" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // reconnecting
    }
    assert_eq!(
        answer["code"], "recovering",
        "the restart is seen: {answer}"
    );
}

/// PostgreSQL vanishes while a recovery drains the stream into the ledger: the
/// recovery fails within its bound instead of holding the watch (and a pool
/// slot) until the kernel gives up; new draws keep waiting meanwhile, and run
/// again once PostgreSQL answers, the recovery completes and draws resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_on_a_vanished_postgres_fails_in_time_and_completes_when_run_again() {
    use crate::support::proxy::{lock_table, postgres_behind_proxy};
    use prizewheel::recover::recover_if_needed;
    use std::time::Instant;
    let mut redis =
        PrivateRedis::start_with("redis-server", &["--auto-aof-rewrite-percentage", "0"]).await;
    let url = redis.url.clone();
    let app = TestApp::spawn_with(|s| s.redis.url = Some(url.into())).await;
    let spec = campaign();
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    let drawn = drawn(&load(&app, &spec.id, 60, 0, 120).await).count();
    assert!(drawn > 0);
    // Nothing lost, nothing settled yet: the campaign awaits recovery all the same.
    redis.crash_and_restart(None).await;
    let mut answer = Value::Null;
    for _ in 0..50 {
        answer = app
            .spin(&spec.id, "newcomer", "n0")
            .await
            .json()
            .await
            .unwrap();
        if answer["code"] != "service_unavailable" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // reconnecting
    }
    assert_eq!(answer["code"], "recovering", "{answer}");

    let (proxy, pg) = postgres_behind_proxy(&app.db.url).await;
    let limit = Duration::from_millis(500);
    let mut conn = RedisTarget::Single(redis::Client::open(redis.url.as_str()).unwrap())
        .dedicated(prizewheel::store::redis::connection::Timeouts {
            connect: Duration::from_secs(2),
            response: Duration::from_secs(5),
        })
        .await
        .unwrap();
    let mut lock = lock_table(&app.db.url, "rewards").await; // the drain's INSERT waits
    let started = Instant::now();
    let stranding = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        proxy.strand();
    };
    // Bounded here too, so that a recovery that hangs fails this test, not CI.
    let recovering = tokio::time::timeout(
        Duration::from_secs(5),
        recover_if_needed(&mut conn, &pg, limit, &id),
    );
    let (first, ()) = tokio::join!(recovering, stranding);
    let first = first.expect("the recovery gave up in time, not after 5 s");
    let took = started.elapsed();
    assert!(
        matches!(first, Err(prizewheel::recover::RecoverError::Pg(_))),
        "{first:?}"
    );
    assert!(
        took < Duration::from_millis(1_500),
        "failed after {took:?} (bound 500 ms per step)"
    );
    let answer: Value = app
        .spin(&spec.id, "newcomer", "n0")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["code"], "recovering", "{answer}");
    sqlx::query("COMMIT").execute(&mut lock).await.unwrap();

    let mut report = None;
    for _ in 0..10 {
        match recover_if_needed(&mut conn, &pg, limit, &id).await {
            Ok(r) => {
                report = r;
                break;
            }
            // The abandoned INSERT holds its rows until PostgreSQL ends it.
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let report = report.expect("recovered once PostgreSQL answers");
    assert!(report.drained >= drawn as u64, "{report}");
    let r = app.spin(&spec.id, "newcomer", "n0").await;
    assert_eq!(r.status(), 200, "draws resume");
    settle(&redis, &app, &spec.id).await;
    assert_bounds_hold(&app, &redis, &spec.id).await;
}

/// A user's spins left as the ledger alone says (earned spins, campaign_end,
/// free spins never changed): free + the spins of grants still standing, less
/// the spins used that no revoked grant took with it, within the quota.
async fn spins_left_by_ledger(app: &TestApp, campaign: &str, user: &str, free: i64) -> u64 {
    let (standing, revoked_used): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(sum(spins) FILTER (WHERE revoked IS NULL), 0)::bigint,
                COALESCE(sum(already_used), 0)::bigint
         FROM grants WHERE campaign_id = $1 AND user_id = $2",
    )
    .bind(campaign)
    .bind(user)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    let used: i64 =
        sqlx::query_scalar("SELECT count(*) FROM rewards WHERE campaign_id = $1 AND user_id = $2")
            .bind(campaign)
            .bind(user)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    let balance = (free + standing - (used - revoked_used)).max(0);
    balance.min(i64::from(QUOTA) - used).max(0) as u64
}

/// Grants and revocations Redis forgot come back from the ledger with the
/// draws: every shopper has exactly the spins the ledger says, a retried grant
/// or revocation replays its first answer, and Redis holds the ledger's grants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgotten_grants_and_revocations_are_rebuilt_from_the_ledger() {
    use crate::support::helpers::{grant, revoke};
    let mut redis =
        PrivateRedis::start_with("redis-server", &["--auto-aof-rewrite-percentage", "0"]).await;
    let url = redis.url.clone();
    let app = TestApp::spawn_with(|s| {
        s.redis.url = Some(url.into());
        s.admission.quota_cache.enabled = false;
    })
    .await;
    const FREE: i64 = 1;
    let mut spec = campaign();
    spec.earned = Some((FREE as u32, "campaign_end"));
    app.apply(&spec.yaml()).await;
    let users: Vec<String> = (0..20).map(|i| format!("u{i}")).collect();
    let body = |user: &str, spins: u32| {
        serde_json::json!({"user_id": user, "spins": spins, "reason": {"order_id": user}})
            .to_string()
    };
    let spins = |from: usize| {
        let users = users.clone();
        let app = &app;
        let id = spec.id.clone();
        async move {
            for (i, u) in users.iter().enumerate() {
                for k in 0..2 {
                    let _ = app.spin(&id, u, &format!("k{}-{i}-{k}", from)).await;
                }
            }
        }
    };
    for (i, u) in users.iter().enumerate() {
        let r = grant(
            &app.client,
            &app.address,
            &spec.id,
            &format!("a{i}"),
            &body(u, 1 + i as u32 % 2),
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    spins(0).await;
    settle(&redis, &app, &spec.id).await;
    let copy = redis.snapshot_aof();

    // Granted, revoked, spent, answered and settled; then forgotten by Redis.
    let mut granted = Vec::new();
    let mut revoked = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let r = grant(
            &app.client,
            &app.address,
            &spec.id,
            &format!("b{i}"),
            &body(u, 2),
        )
        .await;
        granted.push((
            format!("b{i}"),
            body(u, 2),
            r.json::<Value>().await.unwrap(),
        ));
        if i % 2 == 0 {
            let r = revoke(&app.client, &app.address, &spec.id, &format!("a{i}")).await;
            revoked.push((format!("a{i}"), r.json::<Value>().await.unwrap()));
        }
    }
    spins(1).await;
    settle(&redis, &app, &spec.id).await;
    redis.crash_and_restart(Some(&copy)).await;

    let (ok, text) = cli(&["recover", &spec.id, "--json"], &redis.url, &app.db.url);
    assert!(ok, "{text}");
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        report["grant_records"],
        granted.len() + revoked.len(),
        "{report}"
    );

    for u in &users {
        let expected = spins_left_by_ledger(&app, &spec.id, u, FREE).await;
        // The service's connection comes back after the restart first.
        let mut view = Value::Null;
        for _ in 0..50 {
            view = app
                .client
                .get(format!("{}/v1/campaigns/{}", app.address, spec.id))
                .bearer_auth(crate::support::helpers::token(u, &[]))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if view["code"] != "service_unavailable" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(view["spins_left"], expected, "{u}: {view}");
    }
    for (id, body, first) in &granted {
        let r = grant(&app.client, &app.address, &spec.id, id, body).await;
        let again: Value = r.json().await.unwrap();
        assert_eq!(again["replayed"], true, "{again}");
        assert_eq!(again["spins_left"], first["spins_left"], "{id}");
    }
    for (id, first) in &revoked {
        let again: Value = revoke(&app.client, &app.address, &spec.id, id)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(again["replayed"], true, "{again}");
        for k in ["revoked", "already_used", "lapsed"] {
            assert_eq!(again[k], first[k], "{id} {k}");
        }
    }
    // Redis holds one record per grant of the ledger.
    let k = CampaignKeys::new(&CampaignId::parse(&spec.id).unwrap());
    let mut conn = redis.conn();
    let nb: u64 = redis::cmd("HGET")
        .arg(&k.meta)
        .arg("nb")
        .query(&mut conn)
        .unwrap();
    let mut records = 0;
    for b in 0..nb {
        let n: u64 = redis::cmd("HLEN")
            .arg(CampaignKeys::new(&CampaignId::parse(&spec.id).unwrap()).grants(b))
            .query(&mut conn)
            .unwrap();
        records += n;
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM grants WHERE campaign_id = $1")
        .bind(&spec.id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(records as i64, rows);
    settle(&redis, &app, &spec.id).await;
    assert_bounds_hold(&app, &redis, &spec.id).await;
}

/// Redis killed with grants and spins in flight, its AOF losing the last
/// 300 ms, the settler inside the service: after the recovery (by itself),
/// Redis's grants are the ledger's, every shopper has exactly the spins the
/// ledger says, and no shopper ever spent a spin they had not earned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_with_grants_and_spins_in_flight_keeps_every_shopper_to_the_ledger() {
    use crate::support::helpers::{grant, token};
    let mut redis =
        PrivateRedis::start_with("redis-server", &["--auto-aof-rewrite-percentage", "0"]).await;
    let url = redis.url.clone();
    let app = TestApp::spawn_with(|s| {
        s.redis.url = Some(url.into());
        s.settle = fast();
        s.admission.quota_cache.enabled = false;
    })
    .await;
    let mut spec = campaign();
    spec.earned = Some((0, "campaign_end"));
    app.apply(&spec.yaml()).await;
    const USERS: usize = 150;
    // (is a grant, request number): each shopper's grant, then their spin.
    let send = |grant_req: bool, i: usize| {
        let (app, id) = (&app, spec.id.clone());
        async move {
            let user = format!("u{}", i % USERS);
            let res = if grant_req {
                let body = serde_json::json!({"user_id": user, "spins": 1}).to_string();
                let url = app.address.clone();
                let req = app
                    .client
                    .post(format!("{url}/v1/campaigns/{id}/grants"))
                    .bearer_auth(token("order-service", &["grants"]))
                    .header("Idempotency-Key", format!("g{i}"))
                    .header("content-type", "application/json")
                    .body(body);
                req.send().await
            } else {
                app.client
                    .post(format!("{}/v1/campaigns/{id}/spins", app.address))
                    .bearer_auth(token(&user, &[]))
                    .header("Idempotency-Key", format!("k{i}"))
                    .send()
                    .await
            };
            let status = res.map(|r| r.status().as_u16()).unwrap_or(0);
            (grant_req, i, status)
        }
    };
    let done = AtomicBool::new(false);
    let crash = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let copy = redis.snapshot_aof();
        tokio::time::sleep(Duration::from_millis(300)).await;
        redis.crash_and_restart(Some(&copy)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        done.store(true, Ordering::Relaxed);
    };
    let load = stream::iter((0..20_000).flat_map(|i| [(true, i), (false, i)]))
        .take_while(|_| std::future::ready(!done.load(Ordering::Relaxed)))
        .map(|(g, i)| send(g, i))
        .buffered(16)
        .collect::<Vec<_>>();
    let (answers, ()) = tokio::join!(load, crash);
    assert!(
        answers.iter().any(|a| a.2 != 200 && a.2 != 429),
        "the crash hit the load"
    );
    // The order service retries a grant it got no answer for, with its id.
    for &(is_grant, i, status) in &answers {
        if is_grant && status != 200 {
            for _ in 0..50 {
                let user = format!("u{}", i % USERS);
                let body = serde_json::json!({"user_id": user, "spins": 1}).to_string();
                let r = grant(&app.client, &app.address, &spec.id, &format!("g{i}"), &body).await;
                if r.status() == 200 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let granted = answers.iter().filter(|a| a.0).count();
    wait_settled(&redis, &spec.id).await;
    assert_bounds_hold(&app, &redis, &spec.id).await;

    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM grants WHERE campaign_id = $1")
        .bind(&spec.id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    // A grant answered, unsynced and unsettled is lost with the AOF tail (the
    // documented loss of `aof`, as for draws); none is in the ledger twice.
    assert!(
        rows as usize <= granted,
        "{rows} grants settled of {granted} sent"
    );
    let k = CampaignKeys::new(&CampaignId::parse(&spec.id).unwrap());
    let made: i64 = redis::cmd("HGET")
        .arg(&k.meta)
        .arg("gv")
        .query(&mut redis.conn())
        .unwrap();
    assert_eq!(made, rows, "Redis's grants are the ledger's");
    for u in 0..USERS {
        let user = format!("u{u}");
        let expected = spins_left_by_ledger(&app, &spec.id, &user, 0).await;
        let view: Value = app
            .client
            .get(format!("{}/v1/campaigns/{}", app.address, spec.id))
            .bearer_auth(token(&user, &[]))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(view["spins_left"], expected, "{user}: {view}");
    }
    let over: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT user_id, count(*) AS used FROM rewards
                               WHERE campaign_id = $1 GROUP BY user_id) r
         LEFT JOIN (SELECT user_id, sum(spins) AS granted FROM grants
                    WHERE campaign_id = $1 GROUP BY user_id) g USING (user_id)
         WHERE r.used > COALESCE(g.granted, 0)",
    )
    .bind(&spec.id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(over, 0, "a shopper spent a spin they had not earned");
    eprintln!(
        "crash with grants in flight: {granted} grants sent, {rows} in the ledger, {} spins answered",
        answers.iter().filter(|a| !a.0 && a.2 == 200).count()
    );
}

/// Pacing and the budget survive a Redis that forgot settled draws: after the
/// recovery the paced prize is still held to what was released and the value
/// awarded to the budget, both counted from the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_keeps_releases_and_the_budget_to_the_ledger() {
    let mut redis =
        PrivateRedis::start_with("redis-server", &["--auto-aof-rewrite-percentage", "0"]).await;
    let url = redis.url.clone();
    let app = TestApp::spawn_with(|s| {
        s.redis.url = Some(url.into());
        s.redis.response_timeout_ms = 500;
    })
    .await;
    let mut spec = Spec::new("recover-paced");
    spec.spins_per_user = 1000;
    spec.prizes = vec![
        ("gold", 3, Some(100)),
        ("coupon", 3, None),
        ("none", 2, None),
    ];
    spec.releases.insert("gold", "{ per_day: 30 }".into());
    spec.start_within_today();
    spec.amounts.insert("gold", "1.00".into());
    spec.amounts.insert("coupon", "2.00".into());
    spec.amounts.insert("none", "0".into());
    spec.budget = Some("90.00".into());
    app.apply(&spec.yaml()).await;

    load(&app, &spec.id, 20, 0, 40).await;
    settle(&redis, &app, &spec.id).await;
    let copy = redis.snapshot_aof();
    let forgotten = load(&app, &spec.id, 20, 40, 60).await;
    settle(&redis, &app, &spec.id).await;
    assert!(drawn(&forgotten).count() > 0);
    redis.crash_and_restart(Some(&copy)).await;
    let (ok, text) = cli(&["recover", &spec.id], &redis.url, &app.db.url);
    assert!(ok, "{text}");

    let after = load(&app, &spec.id, 20, 100, 400).await;
    assert!(drawn(&after).count() > 0);
    settle(&redis, &app, &spec.id).await;
    let rows = ledger(&app, &spec.id).await;
    let gold = rows.iter().filter(|r| r.3 == "gold").count();
    assert!(gold <= 30, "{gold} gold units, 30 released");
    let spent: rust_decimal::Decimal =
        sqlx::query_scalar("SELECT sum(amount) FROM rewards WHERE campaign_id = $1")
            .bind(&spec.id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert!(spent <= rust_decimal::Decimal::new(90, 0), "spent {spent}");
    let keys = CampaignKeys::new(&CampaignId::parse(&spec.id).unwrap());
    let mut conn = app.redis_conn_to(&redis.url).await;
    let (awarded, bs): (Option<u64>, Option<u64>) = redis::pipe()
        .hget(&keys.awarded, "gold")
        .hget(&keys.meta, "bs")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(awarded.unwrap_or(0), gold as u64);
    assert_eq!(
        rust_decimal::Decimal::from(bs.unwrap_or(0)) / rust_decimal::Decimal::from(10_000),
        spent
    );
}

/// Codes awarded and settled, then forgotten by Redis (its AOF tail lost):
/// their draws' SPOPs are gone, so the codes are back in the pool. Recovery
/// takes every code the ledger holds out of it before draws resume: none is
/// handed out again, an upload of them adds nothing, and a retry of a forgotten
/// win returns its code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_the_ledger_awarded_are_never_drawn_again_after_redis_forgot_them() {
    let mut redis =
        PrivateRedis::start_with("redis-server", &["--auto-aof-rewrite-percentage", "0"]).await;
    let url = redis.url.clone();
    let app = TestApp::spawn_with(|s| {
        s.redis.url = Some(url.into());
        s.redis.response_timeout_ms = 500;
    })
    .await;
    let spec = crate::codes::coupons("recovercodes", 5);
    app.apply(&spec.yaml()).await;
    let loaded: Vec<String> = (0..150).map(|i| format!("RC-{i:03}")).collect();
    crate::codes::upload(&app, &spec.id, "coupon", loaded.join("\n")).await;
    let code_of = |a: &Answer| a.3["prize"]["code"].as_str().map(str::to_owned);

    let before = load(&app, &spec.id, 30, 0, 60).await;
    settle(&redis, &app, &spec.id).await;
    let copy = redis.snapshot_aof();
    let forgotten = load(&app, &spec.id, 30, 60, 60).await;
    settle(&redis, &app, &spec.id).await;
    let forgotten_codes: Vec<(&Answer, String)> = drawn(&forgotten)
        .filter_map(|a| code_of(a).map(|c| (a, c)))
        .collect();
    assert!(
        !forgotten_codes.is_empty(),
        "some forgotten wins carry codes"
    );
    redis.crash_and_restart(Some(&copy)).await;

    let k = CampaignKeys::new(&CampaignId::parse(&spec.id).unwrap());
    let pool_key = format!("pw:{{{}}}:codes:coupon", spec.id);
    let pool = |redis: &PrivateRedis| -> HashSet<String> {
        redis::cmd("SMEMBERS")
            .arg(&pool_key)
            .query(&mut redis.conn())
            .unwrap()
    };
    let back: Vec<&String> = forgotten_codes
        .iter()
        .map(|(_, c)| c)
        .filter(|c| pool(&redis).contains(*c))
        .collect();
    assert_eq!(
        back.len(),
        forgotten_codes.len(),
        "Redis forgot handing them out"
    );

    let (ok, text) = cli(&["recover", &spec.id, "--json"], &redis.url, &app.db.url);
    assert!(ok, "{text}");
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["codes_removed"], forgotten_codes.len(), "{report}");
    let ledger_codes: HashSet<String> =
        sqlx::query_scalar("SELECT code FROM rewards WHERE campaign_id = $1 AND code IS NOT NULL")
            .bind(&spec.id)
            .fetch_all(&app.db.pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let left = pool(&redis);
    assert!(
        left.is_disjoint(&ledger_codes),
        "no ledger code is in the pool"
    );
    let stock: HashMap<String, i64> = redis::cmd("HGETALL")
        .arg(&k.stock)
        .query(&mut redis.conn())
        .unwrap();
    assert_eq!(stock["coupon"], left.len() as i64, "the stock is the pool");
    assert_eq!(left.len() + ledger_codes.len(), loaded.len());

    // A retry of a forgotten win returns its code; uploading again adds nothing.
    for (a, code) in &forgotten_codes {
        let mut again = Value::Null;
        for _ in 0..50 {
            again = app.spin(&spec.id, &a.0, &a.1).await.json().await.unwrap();
            if again["code"] != "service_unavailable" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await; // reconnecting
        }
        assert_eq!(
            again["prize"]["code"].as_str(),
            Some(code.as_str()),
            "{again}"
        );
    }
    let up = crate::codes::upload(&app, &spec.id, "coupon", loaded.join("\n")).await;
    assert_eq!(up["added"], 0, "{up}");

    // The rest of the sale hands out the rest of the pool, each code once.
    let after = load(&app, &spec.id, 30, 120, 400).await;
    settle(&redis, &app, &spec.id).await;
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT code FROM rewards WHERE campaign_id = $1 AND code IS NOT NULL")
            .bind(&spec.id)
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    let distinct: HashSet<&String> = rows.iter().collect();
    assert_eq!(distinct.len(), rows.len(), "no code twice in the ledger");
    assert_eq!(rows.len(), loaded.len(), "every code handed out once");
    assert!(drawn(&before).chain(drawn(&after)).count() > 0);
    let (ok, text) = cli(&["reconcile", &spec.id], &redis.url, &app.db.url);
    assert!(ok, "reconcile after recovery: {text}");
    let (ok, text) = cli(&["audit", &spec.id], &redis.url, &app.db.url);
    assert!(ok, "audit after recovery: {text}");
}
