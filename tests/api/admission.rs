//! The load-absorbing layers in front of Redis: each rate limiter trips at its
//! configured rate with a correct `Retry-After` and never reaches Redis; a
//! disabled one never trips; the quota cache refuses only what Redis refused;
//! with Redis paused, spins are shed with 503 fast and nothing is drawn twice.

use crate::support::helpers::{PrivateRedis, Spec, TestApp, spin, token};
use prizewheel::admission::settings::RateSettings;
use serde_json::Value;
use std::time::{Duration, Instant};

fn rate(per_second: u32, burst: u32) -> RateSettings {
    RateSettings {
        enabled: true,
        per_second,
        burst,
        max_keys: 1_000,
    }
}

/// A service on a Redis of the test's own, so its script calls can be counted.
async fn app_on_private_redis(
    adjust: impl FnOnce(&mut prizewheel::config::Settings),
) -> (TestApp, PrivateRedis) {
    let redis = PrivateRedis::start().await;
    redis.log_every_command();
    let url = redis.url.clone();
    let app = TestApp::spawn_with(|s| {
        s.redis.url = Some(url.into());
        adjust(s);
    })
    .await;
    (app, redis)
}

/// Calls of the draw script: the replica went to Redis for a spin. Only that
/// script: the service's background loops run other scripts at any moment.
fn scripts(redis: &PrivateRedis) -> u64 {
    redis.script_calls(prizewheel::store::redis::scripts::SPIN.get_hash())
}

/// Spins of `user`, whom Redis has just refused for the first time, until the
/// replica answers from its quota cache for good. The first refusal is
/// remembered before the replica watches the campaign; its first reading of the
/// campaign's version (within one check interval) then forgets it, as it could
/// predate a re-apply the replica never saw. So Redis refuses exactly once more,
/// and from then on the cache answers. Returns the spin script's calls and the
/// Retry-After of Redis's last refusal.
async fn until_cached(
    app: &TestApp,
    redis: &PrivateRedis,
    campaign: &str,
    user: &str,
) -> (u64, Option<String>) {
    let mut calls = scripts(redis);
    let mut retry = None;
    let mut asked_again = false;
    for attempt in 0..100 {
        let (status, after, _) =
            problem(app.spin(campaign, user, &format!("w{attempt}")).await).await;
        assert_eq!(status, 429);
        let now = scripts(redis);
        match now - calls {
            0 if asked_again => return (calls, retry),
            0 => {}
            1 if !asked_again => {
                asked_again = true;
                (calls, retry) = (now, after);
            }
            n => panic!("Redis asked {n} more times for {user}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the quota cache never kept the refusal of {user}");
}

async fn problem(r: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    (status, retry, r.json().await.unwrap())
}

#[tokio::test]
async fn the_per_user_limit_trips_at_its_rate_without_redis() {
    let (app, redis) = app_on_private_redis(|s| s.admission.per_user = rate(1, 3)).await;
    let spec = Spec::new("peruser");
    app.apply(&spec.yaml()).await;
    for i in 0..3 {
        let r = app.spin(&spec.id, "ursula", &format!("k{i}")).await;
        assert_eq!(r.status(), 200, "the burst of 3 passes");
    }
    let before = scripts(&redis);
    let (status, retry, p) = problem(app.spin(&spec.id, "ursula", "k3").await).await;
    assert_eq!((status, p["code"].as_str()), (429, Some("rate_limited")));
    assert_eq!(
        retry.as_deref(),
        Some("1"),
        "one spin a second: back within 1 s"
    );
    assert_eq!(p["retry_after"], 1);
    assert!(p["detail"].as_str().unwrap().contains("per_user"), "{p}");
    assert_eq!(
        scripts(&redis),
        before,
        "a limited spin never reaches Redis"
    );
    // Another user has a budget of their own.
    assert_eq!(app.spin(&spec.id, "victor", "k0").await.status(), 200);
    // And the limited user is back after the refill.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.spin(&spec.id, "ursula", "k4").await.status(), 200);
}

#[tokio::test]
async fn the_per_ip_limit_runs_before_the_token_is_checked() {
    let (app, redis) = app_on_private_redis(|s| s.admission.per_ip = rate(1, 2)).await;
    let spec = Spec::new("perip");
    app.apply(&spec.yaml()).await;
    assert_eq!(app.spin(&spec.id, "wanda", "k0").await.status(), 200);
    assert_eq!(app.spin(&spec.id, "xavier", "k0").await.status(), 200);
    let before = scripts(&redis);
    // Over the limit even with a garbage token, and whatever address the client
    // claims: the test client is not a trusted proxy.
    let r = app
        .client
        .post(format!("{}/v1/campaigns/{}/spins", app.address, spec.id))
        .bearer_auth("garbage")
        .header("Idempotency-Key", "k1")
        .header("X-Forwarded-For", "198.51.100.77")
        .send()
        .await
        .unwrap();
    let (status, retry, p) = problem(r).await;
    assert_eq!((status, p["code"].as_str()), (429, Some("rate_limited")));
    assert_eq!(retry.as_deref(), Some("1"));
    assert!(p["detail"].as_str().unwrap().contains("per_ip"), "{p}");
    assert_eq!(scripts(&redis), before);
    // Health checks are never limited.
    let health = app.client.get(format!("{}/healthz", app.address));
    assert_eq!(health.send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let (app, _redis) = app_on_private_redis(|s| {
        s.admission.per_ip = rate(1, 1);
        s.admission.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let spec = Spec::new("proxied");
    app.apply(&spec.yaml()).await;
    let send = |client_ip: &'static str, key: &'static str| {
        app.client
            .post(format!("{}/v1/campaigns/{}/spins", app.address, spec.id))
            .bearer_auth(token("yusuf", &[]))
            .header("Idempotency-Key", key)
            // A spoofed first hop, then what our proxy saw.
            .header("X-Forwarded-For", format!("10.9.9.9, {client_ip}"))
            .send()
    };
    assert_eq!(send("198.51.100.1", "a").await.unwrap().status(), 200);
    assert_eq!(send("198.51.100.2", "b").await.unwrap().status(), 200);
    assert_eq!(send("198.51.100.1", "c").await.unwrap().status(), 429);
}

#[tokio::test]
async fn the_global_budget_caps_the_replica_across_users() {
    let (app, redis) = app_on_private_redis(|s| s.admission.global = rate(1, 2)).await;
    let spec = Spec::new("global");
    app.apply(&spec.yaml()).await;
    assert_eq!(app.spin(&spec.id, "u1", "k").await.status(), 200);
    assert_eq!(app.spin(&spec.id, "u2", "k").await.status(), 200);
    let before = scripts(&redis);
    let (status, retry, p) = problem(app.spin(&spec.id, "u3", "k").await).await;
    assert_eq!((status, p["code"].as_str()), (429, Some("rate_limited")));
    assert_eq!(retry.as_deref(), Some("1"));
    assert!(p["detail"].as_str().unwrap().contains("global"), "{p}");
    assert_eq!(scripts(&redis), before);
}

#[tokio::test]
async fn disabled_limiters_never_trip() {
    let (app, _redis) = app_on_private_redis(|s| {
        s.admission.per_ip.enabled = false;
        s.admission.per_user = RateSettings {
            enabled: false,
            ..rate(1, 1)
        };
        s.admission.global = RateSettings {
            enabled: false,
            ..rate(1, 1)
        };
    })
    .await;
    let spec = Spec::new("nolimits");
    app.apply(&spec.yaml()).await;
    let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
    let spins = keys.iter().map(|k| app.spin(&spec.id, "zoe", k));
    for r in futures::future::join_all(spins).await {
        assert_eq!(r.status(), 200);
    }
}

#[tokio::test]
async fn the_quota_cache_refuses_only_what_redis_refused() {
    let (app, redis) = app_on_private_redis(|s| {
        s.admission.quota_cache.version_check_ms = 100;
    })
    .await;
    let mut spec = Spec::new("qcache");
    spec.spins_per_user = 2;
    app.apply(&spec.yaml()).await;
    for k in ["k0", "k1"] {
        assert_eq!(app.spin(&spec.id, "amir", k).await.status(), 200);
    }
    // Redis refuses the third spin; the replica remembers it.
    let before = scripts(&redis);
    let (status, _, p) = problem(app.spin(&spec.id, "amir", "k2").await).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (429, Some("spin_quota_exhausted"))
    );
    assert_eq!(scripts(&redis), before + 1);
    // The replica's first reading of the campaign's version (within one check
    // interval) forgets what it remembered before it, which could predate a
    // re-apply it never saw; Redis refuses once more and the refusal is kept.
    let (calls, _) = until_cached(&app, &redis, &spec.id, "amir").await;
    assert_eq!(calls, before + 2);
    // The next clicks are answered the same way without Redis.
    for k in ["k3", "k4", "k5"] {
        let (status, _, p) = problem(app.spin(&spec.id, "amir", k).await).await;
        assert_eq!(
            (status, p["code"].as_str()),
            (429, Some("spin_quota_exhausted"))
        );
    }
    assert_eq!(scripts(&redis), calls, "refused from the cache");
    // Someone else is not refused.
    assert_eq!(app.spin(&spec.id, "bea", "k0").await.status(), 200);

    // Marketing raises the quota live: within a version check, the cache lets
    // the user through to Redis again, which allows the spin.
    spec.spins_per_user = 3;
    app.apply(&spec.yaml()).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = app.spin(&spec.id, "amir", "k6").await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["spins_left"], 0);
}

/// A refusal answered from the cache says what Redis said: when the
/// campaign's day resets (it said the cache entry's own time left, at most
/// `max_ttl_secs`, so a client obeying it retried every 10 minutes all day).
#[tokio::test]
async fn a_cached_daily_refusal_retries_after_the_reset_as_redis_says() {
    let (app, redis) =
        app_on_private_redis(|s| s.admission.quota_cache.version_check_ms = 100).await;
    let mut spec = Spec::new("qretry");
    spec.per_day = Some(1);
    app.apply(&spec.yaml()).await;
    assert_eq!(app.spin(&spec.id, "ines", "k0").await.status(), 200);
    let (status, from_redis, _) = problem(app.spin(&spec.id, "ines", "k1").await).await;
    assert_eq!(status, 429);
    let (calls, again) = until_cached(&app, &redis, &spec.id, "ines").await;
    let from_redis = again.or(from_redis);
    let (status, from_cache, _) = problem(app.spin(&spec.id, "ines", "k2").await).await;
    assert_eq!(status, 429);
    assert_eq!(scripts(&redis), calls, "answered from the cache");
    let secs = |v: Option<String>| v.unwrap().parse::<i64>().unwrap();
    let (redis_says, cache_says) = (secs(from_redis), secs(from_cache));
    assert!(
        (redis_says - cache_says).abs() <= 2,
        "Redis said {redis_says} s, the cache {cache_says} s"
    );
}

#[tokio::test]
async fn a_cached_daily_refusal_ends_with_the_day() {
    let (app, redis) =
        app_on_private_redis(|s| s.admission.quota_cache.version_check_ms = 100).await;
    let mut spec = Spec::new("qdaily");
    spec.per_day = Some(1);
    app.apply(&spec.yaml()).await;
    assert_eq!(app.spin(&spec.id, "cleo", "k0").await.status(), 200);
    // The next campaign day starts three seconds from now.
    let mut conn = app.redis_conn_to(&redis.url).await;
    let keys = prizewheel::store::redis::keys::CampaignKeys::new(
        &prizewheel::domain::CampaignId::parse(&spec.id).unwrap(),
    );
    let next_day = chrono::Utc::now().timestamp_millis() + 3000;
    let _: () = redis::cmd("ZADD")
        .arg(&keys.days)
        .arg(next_day)
        .arg(next_day)
        .query_async(&mut conn)
        .await
        .unwrap();
    let (_, from_redis, _) = problem(app.spin(&spec.id, "cleo", "k1").await).await;
    let (calls, again) = until_cached(&app, &redis, &spec.id, "cleo").await;
    let from_redis = again.or(from_redis);
    let (status, from_cache, p) = problem(app.spin(&spec.id, "cleo", "k2").await).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (429, Some("daily_spin_quota_exhausted"))
    );
    assert_eq!(scripts(&redis), calls, "answered from the cache");
    let secs = |v: Option<String>| v.unwrap().parse::<u64>().unwrap();
    assert!(secs(from_cache) <= secs(from_redis));
    // Past the reset, the cache no longer refuses and Redis allows the spin.
    let wait = next_day - chrono::Utc::now().timestamp_millis() + 100;
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64)).await;
    assert_eq!(app.spin(&spec.id, "cleo", "k3").await.status(), 200);
}

/// With Redis paused, spins beyond the in-flight bound are shed with 503 within
/// the configured wait, the calls in flight time out, and after Redis resumes
/// every key returns its real outcome: nothing drawn twice, nothing lost.
#[tokio::test]
async fn a_paused_redis_sheds_spins_fast_and_loses_none() {
    let (app, redis) = app_on_private_redis(|s| {
        s.redis.max_in_flight = 4;
        s.redis.in_flight_wait_ms = 100;
        s.redis.response_timeout_ms = 800;
    })
    .await;
    let spec = Spec::new("shed");
    app.apply(&spec.yaml()).await;
    let mut conn = app.redis_conn_to(&redis.url).await;
    let keys = prizewheel::store::redis::keys::CampaignKeys::new(
        &prizewheel::domain::CampaignId::parse(&spec.id).unwrap(),
    );

    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(2500)
        .arg("ALL")
        .query_async(&mut conn)
        .await
        .unwrap();
    let token = token("dora", &[]);
    let spins = (0..40).map(|i| {
        let (client, address, id, token) = (&app.client, &app.address, &spec.id, &token);
        async move {
            let started = Instant::now();
            let r = spin(client, address, id, token, &format!("k{i}"), None).await;
            let elapsed = started.elapsed();
            let (status, retry, p) = problem(r).await;
            (
                status,
                retry,
                p["code"].as_str().unwrap().to_owned(),
                elapsed,
            )
        }
    });
    let answers = futures::future::join_all(spins).await;
    let shed: Vec<_> = answers.iter().filter(|a| a.2 == "overloaded").collect();
    let timed_out: Vec<_> = answers
        .iter()
        .filter(|a| a.2 == "service_unavailable")
        .collect();
    assert_eq!(shed.len() + timed_out.len(), 40, "{answers:?}");
    assert!(
        timed_out.len() <= 4,
        "at most the in-flight bound reached Redis"
    );
    assert!(shed.len() >= 36, "the rest were shed: {answers:?}");
    for (status, retry, _, elapsed) in &answers {
        assert_eq!((*status, retry.as_deref()), (503, Some("1")));
        assert!(*elapsed < Duration::from_millis(2000), "{elapsed:?}");
    }
    for a in &shed {
        assert!(a.3 < Duration::from_millis(700), "shed after {:?}", a.3);
    }

    // Redis resumes: the calls that reached it run then (their clients had
    // given up); the retries return those draws and make the others. They go
    // one at a time: 40 at once would again exceed the in-flight bound of 4,
    // and whether a wait of 100 ms then suffices depends on the machine's load.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let drawn_while_paused: u64 = redis::cmd("XLEN")
        .arg(&keys.results)
        .query_async(&mut conn)
        .await
        .unwrap();
    let idem: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    let mut replayed = 0;
    let mut ids = std::collections::HashSet::new();
    for k in &idem {
        let r = app.spin(&spec.id, "dora", k).await;
        let status = r.status();
        let b: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{b}");
        replayed += usize::from(b["replayed"] == true);
        ids.insert(b["spin_id"].as_str().unwrap().to_owned());
    }
    let drawn: u64 = redis::cmd("XLEN")
        .arg(&keys.results)
        .query_async(&mut conn)
        .await
        .unwrap();
    // The stream holds the apply event too.
    assert!(drawn_while_paused <= 1 + 4, "{drawn_while_paused}");
    assert_eq!(replayed as u64, drawn_while_paused - 1);
    assert_eq!(ids.len(), 40);
    assert_eq!(drawn, 1 + 40, "one draw per key");
}
