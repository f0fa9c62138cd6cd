//! Network faults between the service and its stores (docs/reliability.md, "Network faults"): a
//! fault-injecting proxy (proxy.rs) between the service and Redis, and between a
//! settler and PostgreSQL.
//!
//! What must hold: a spin is answered within the configured waits (503 with a
//! problem document, never a hang or a 500) while Redis is slow, black-holed or
//! cut off; a retry with the same key afterwards returns the original outcome;
//! nothing is drawn twice and nothing is lost; the service reconnects and the
//! settler resumes by themselves. Each test prints its figures (`faults:`).

use crate::support::helpers::{Spec, TestApp, redis_url};
use crate::support::proxy::Proxy;
use crate::support::settling::{assert_exactly, draws, fast, lag, settled_ids};
use futures::stream::{self, StreamExt};
use prizewheel::config::Settings;
use prizewheel::domain::CampaignId;
use prizewheel::settle::{SettleSettings, Settler};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;

/// Slack for scheduling on a loaded test machine, on top of the configured waits.
const MARGIN: Duration = Duration::from_secs(1);

/// The service with its Redis behind a fault proxy, and the longest a spin may
/// take to be answered: one Redis call's timeout plus the wait for an in-flight
/// slot, plus [`MARGIN`].
struct Faulty {
    app: TestApp,
    proxy: Proxy,
    bound: Duration,
    spec: Spec,
}

impl Faulty {
    async fn start(prefix: &str) -> Self {
        let proxy = Proxy::start(redis_url().trim_start_matches("redis://").to_owned()).await;
        let url = format!("redis://127.0.0.1:{}", proxy.port);
        let mut waits = Duration::ZERO;
        let app = TestApp::spawn_with(|s: &mut Settings| {
            s.redis.url = Some(url.into());
            s.redis.response_timeout_ms = 300;
            // As in the shipped config, connecting may take longer than a
            // reply: a spin must still not wait for a reconnection beyond its
            // own timeout.
            s.redis.connect_timeout_ms = 1000;
            s.redis.max_in_flight = 64;
            s.redis.in_flight_wait_ms = 100;
            waits = Duration::from_millis(s.redis.response_timeout_ms + s.redis.in_flight_wait_ms);
        })
        .await;
        let mut spec = Spec::new(prefix);
        spec.prizes = vec![
            ("gold", 1, Some(15)),
            ("silver", 4, Some(60)),
            ("none", 5, None),
        ];
        app.apply(&spec.yaml()).await;
        Faulty {
            app,
            proxy,
            bound: waits + MARGIN,
            spec,
        }
    }

    /// Spins `requests` (user, key) with at most `parallel` in flight, and calls
    /// `on_answer` with the number of answers so far as each comes (so faults
    /// strike at a chosen point of the load, whatever the machine's speed).
    async fn load(
        &self,
        requests: Vec<(String, String)>,
        parallel: usize,
        on_answer: &(dyn Fn(usize) + Sync),
    ) -> Vec<Answer> {
        let answered = AtomicUsize::new(0);
        let answered = &answered;
        stream::iter(requests)
            .map(|(user, key)| async move {
                let a = self.spin(&user, &key).await;
                on_answer(answered.fetch_add(1, Ordering::SeqCst) + 1);
                a
            })
            .buffer_unordered(parallel)
            .collect()
            .await
    }

    async fn spin(&self, user: &str, key: &str) -> Answer {
        let started = Instant::now();
        let r = self.app.spin(&self.spec.id, user, key).await;
        let status = r.status().as_u16();
        let problem = r
            .headers()
            .get("content-type")
            .is_some_and(|v| v == "application/problem+json");
        let retry_after = r.headers().contains_key("retry-after");
        let body: Value = r.json().await.unwrap_or(Value::Null);
        Answer {
            user: user.to_owned(),
            key: key.to_owned(),
            status,
            elapsed: started.elapsed(),
            problem,
            retry_after,
            body,
        }
    }

    /// Every answer given while a fault was in force: 200, or 503 with a
    /// problem document, a stable code and Retry-After; all within the bound.
    fn check_under_fault(&self, answers: &[Answer], figures: &mut Figures) {
        for a in answers {
            figures.requests += 1;
            figures.slowest = figures.slowest.max(a.elapsed);
            let fine = match a.status {
                200 => true,
                503 => {
                    figures.unavailable += 1;
                    a.problem
                        && a.retry_after
                        && matches!(
                            a.body["code"].as_str(),
                            Some("service_unavailable" | "overloaded")
                        )
                }
                _ => false,
            };
            if !fine || a.elapsed > self.bound {
                figures.failures += 1;
            }
            assert!(
                fine,
                "{} {}: {} {} (want 200, or 503 service_unavailable|overloaded as problem+json with Retry-After)",
                a.user, a.key, a.status, a.body
            );
            assert!(
                a.elapsed <= self.bound,
                "{} {}: answered {} after {:?}, over the bound {:?} (response timeout + in-flight wait + {MARGIN:?})",
                a.user,
                a.key,
                a.status,
                a.elapsed,
                self.bound
            );
        }
    }

    /// Retries every key once the fault is healed (16 at a time): each is
    /// answered 200 (a 503 is retried after a pause, at most for `RECOVERY`);
    /// a key first answered 200 replays the same spin and prize. Returns the
    /// final answer of each (user, key).
    async fn retry_all(
        &self,
        first: &[Answer],
        figures: &mut Figures,
    ) -> BTreeMap<(String, String), Value> {
        const RECOVERY: Duration = Duration::from_secs(5);
        let healed = Instant::now();
        let retried: Vec<(&Answer, Answer, usize)> = stream::iter(first)
            .map(|a| async move {
                let mut tries = 1;
                loop {
                    let r = self.spin(&a.user, &a.key).await;
                    if r.status == 503 && healed.elapsed() < RECOVERY {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    return (a, r, tries);
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut finals = BTreeMap::new();
        for (a, answer, tries) in retried {
            figures.requests += tries;
            figures.retries_after_heal += tries - 1;
            assert_eq!(
                answer.status, 200,
                "{} {}: the retry after healing is answered: {}",
                a.user, a.key, answer.body
            );
            if a.status == 200 {
                assert_eq!(answer.body["replayed"], true, "{}", answer.body);
                assert_eq!(
                    answer.body["spin_id"], a.body["spin_id"],
                    "the original spin"
                );
                assert_eq!(answer.body["prize"], a.body["prize"], "the original prize");
            }
            finals.insert((a.user.clone(), a.key.clone()), answer.body);
        }
        finals
    }

    /// Redis drew exactly once per key that was ever answered 200, the spin the
    /// answers name; and stock + awarded = initial for every bounded prize.
    async fn assert_drawn_once(&self, finals: &BTreeMap<(String, String), Value>) {
        let mut conn = self.app.redis_conn().await;
        let c = &self.spec.id;
        let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
            .arg(format!("pw:{{{c}}}:results"))
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        let mut drawn: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for (_, f) in entries.iter().filter(|(_, f)| f["type"] == "spin") {
            drawn
                .entry((f["user"].clone(), f["key"].clone()))
                .or_default()
                .push(f["spin"].clone());
        }
        for (k, spins) in &drawn {
            assert_eq!(spins.len(), 1, "{k:?} drawn {} times", spins.len());
        }
        assert_eq!(
            drawn.keys().collect::<Vec<_>>(),
            finals.keys().collect::<Vec<_>>(),
            "a draw for every key answered 200, and for no other"
        );
        for (k, body) in finals {
            assert_eq!(
                body["spin_id"].as_str(),
                Some(drawn[k][0].as_str()),
                "{k:?}"
            );
        }
        let counts = |key: &str| {
            let mut conn = conn.clone();
            let key = format!("pw:{{{c}}}:{key}");
            async move { crate::support::helpers::hash_counts(&mut conn, &key).await }
        };
        let (initial, stock, awarded) = (
            counts("initial").await,
            counts("stock").await,
            counts("awarded").await,
        );
        for (prize, units) in &initial {
            if *units >= 0 {
                let left = stock.get(prize).copied().unwrap_or(0);
                let won = awarded.get(prize).copied().unwrap_or(0);
                assert_eq!(*units, left + won, "{prize}: initial = stock + awarded");
            }
        }
        assert_eq!(
            awarded.values().sum::<i64>() as usize,
            finals.len(),
            "awarded counts every draw once"
        );
    }
}

#[derive(Debug)]
struct Answer {
    user: String,
    key: String,
    status: u16,
    elapsed: Duration,
    problem: bool,
    retry_after: bool,
    body: Value,
}

/// What a test injected and saw, printed for docs/reliability.md ("Network faults").
#[derive(Debug, Default)]
struct Figures {
    faults: usize,
    requests: usize,
    unavailable: usize,
    slowest: Duration,
    retries_after_heal: usize,
    failures: usize,
}

impl Figures {
    fn print(&self, test: &str, bound: Duration) {
        eprintln!(
            "faults: {test}: {} faults injected, {} requests, {} answered 503 under fault, slowest answer under fault {} ms (bound {} ms), {} 503s retried after healing, {} failures",
            self.faults,
            self.requests,
            self.unavailable,
            self.slowest.as_millis(),
            bound.as_millis(),
            self.retries_after_heal,
            self.failures
        );
    }
}

/// `users` users with `keys` keys each: (user, key).
fn requests(prefix: &str, users: usize, keys: usize) -> Vec<(String, String)> {
    (0..keys)
        .flat_map(|k| (0..users).map(move |u| (format!("{prefix}-u{u}"), format!("{prefix}-k{k}"))))
        .collect()
}

/// No fault to inject along the load.
fn nothing(_: usize) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_redis_answers_503_within_the_wait_and_retries_replay() {
    let f = Faulty::start("hole").await;
    let mut figures = Figures::default();

    let healthy = f.load(requests("a", 30, 1), 16, &nothing).await;
    assert!(healthy.iter().all(|a| a.status == 200), "{healthy:?}");

    // Concurrent spins; Redis drops out of reach at the 40th answer.
    let during = f
        .load(requests("b", 40, 6), 96, &|n| {
            if n == 40 {
                f.proxy.black_hole();
            }
        })
        .await;
    figures.faults += 1;
    f.check_under_fault(&during, &mut figures);
    assert!(figures.unavailable >= 100, "the hole was felt: {figures:?}");

    f.proxy.heal();
    let first: Vec<Answer> = healthy.into_iter().chain(during).collect();
    let finals = f.retry_all(&first, &mut figures).await;
    f.assert_drawn_once(&finals).await;
    figures.print("black hole", f.bound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_over_the_timeout_answers_503_in_time_and_under_it_only_slows_spins() {
    let f = Faulty::start("slow").await;
    let mut figures = Figures::default();
    let timeout = Duration::from_millis(300);

    // A quarter of the timeout each way: spins succeed, one round trip slower.
    let small = timeout / 4;
    f.proxy.latency(small);
    figures.faults += 1;
    let slow = f.load(requests("a", 20, 1), 4, &nothing).await;
    for a in &slow {
        assert_eq!(a.status, 200, "{a:?}");
        assert!(a.elapsed >= 2 * small, "the latency was there: {a:?}");
    }

    // More than the timeout: every spin is answered 503 within the bound.
    f.proxy.latency(timeout + Duration::from_millis(200));
    figures.faults += 1;
    let late = f.load(requests("b", 30, 2), 32, &nothing).await;
    f.check_under_fault(&late, &mut figures);
    assert!(late.iter().all(|a| a.status == 503), "{late:?}");

    f.proxy.heal();
    let first: Vec<Answer> = slow.into_iter().chain(late).collect();
    let finals = f.retry_all(&first, &mut figures).await;
    f.assert_drawn_once(&finals).await;
    figures.print("latency", f.bound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_under_load_answer_200_or_503_and_the_service_reconnects() {
    let f = Faulty::start("cuts").await;
    let mut figures = Figures::default();
    let opened = f.proxy.connections();

    // 600 spins, 32 in flight: every open connection is reset at every 70th
    // answer, and Redis refuses connections from the 450th answer to the 500th.
    let during = f
        .load(requests("a", 100, 6), 32, &|n| match n {
            450 => f.proxy.down(),
            500 => f.proxy.up(),
            n if n % 70 == 0 && n < 450 => f.proxy.cut(),
            _ => {}
        })
        .await;
    figures.faults += 7;
    f.check_under_fault(&during, &mut figures);
    assert!(
        f.proxy.connections() > opened,
        "the service opened new connections by itself"
    );

    let finals = f.retry_all(&during, &mut figures).await;
    f.assert_drawn_once(&finals).await;
    figures.print("cuts", f.bound);
}

/// A reset followed at once by a black hole: the service's reconnection hangs
/// (the proxy accepts, Redis never answers). Spins must still be answered
/// within their own timeout, not after the connection attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_then_a_black_hole_answers_503_within_the_wait() {
    let f = Faulty::start("cuthole").await;
    let mut figures = Figures::default();
    let healthy = f.load(requests("a", 20, 1), 8, &nothing).await;
    assert!(healthy.iter().all(|a| a.status == 200), "{healthy:?}");

    f.proxy.black_hole();
    f.proxy.cut();
    figures.faults += 2;
    let during = f.load(requests("b", 20, 3), 32, &nothing).await;
    f.check_under_fault(&during, &mut figures);
    assert!(during.iter().all(|a| a.status == 503), "{during:?}");

    f.proxy.heal();
    let first: Vec<Answer> = healthy.into_iter().chain(during).collect();
    let finals = f.retry_all(&first, &mut figures).await;
    f.assert_drawn_once(&finals).await;
    figures.print("cut then black hole", f.bound);
}

/// Redis vanishes without a reset (its host died, or a NAT forgot the
/// connections): the service's connections never hear from it again, and no
/// error tells it so. It must replace them by itself once they stay silent,
/// rather than answer 503 until the kernel gives up on them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_vanishes_silently_is_reconnected_to() {
    let f = Faulty::start("vanish").await;
    let mut figures = Figures::default();
    let healthy = f.load(requests("a", 20, 1), 8, &nothing).await;
    assert!(healthy.iter().all(|a| a.status == 200), "{healthy:?}");

    let opened = f.proxy.connections();
    f.proxy.strand();
    figures.faults += 1;
    // Spin on until spins are drawn again: within a few response timeouts.
    let timeout = Duration::from_millis(300);
    let limit = timeout * (prizewheel::store::redis::connection::SILENCE + 2)
        + Duration::from_millis(1000) // connect timeout
        + MARGIN;
    let stranded = Instant::now();
    let mut during = Vec::new();
    let recovered = loop {
        let batch = f
            .load(requests(&format!("b{}", during.len()), 8, 1), 8, &nothing)
            .await;
        let ok = batch.iter().any(|a| a.status == 200);
        during.extend(batch);
        if ok {
            break stranded.elapsed();
        }
        assert!(
            stranded.elapsed() < limit,
            "spins drawn again within {limit:?} of Redis vanishing"
        );
    };
    f.check_under_fault(&during, &mut figures);
    assert!(figures.unavailable > 0, "the silence was felt: {figures:?}");
    assert!(
        f.proxy.connections() > opened,
        "new connections were opened"
    );

    let first: Vec<Answer> = healthy.into_iter().chain(during).collect();
    let finals = f.retry_all(&first, &mut figures).await;
    f.assert_drawn_once(&finals).await;
    figures.print("redis vanished", f.bound);
    eprintln!(
        "faults: redis vanished: spins drawn again {} ms after (limit {} ms)",
        recovered.as_millis(),
        limit.as_millis()
    );
}

/// A settler whose PostgreSQL is behind a fault proxy; the service (and Redis)
/// are not.
struct SlowLedger {
    app: TestApp,
    proxy: Proxy,
    spec: Spec,
    id: CampaignId,
    settings: SettleSettings,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl SlowLedger {
    async fn start(prefix: &str) -> Self {
        let app = TestApp::spawn().await;
        let spec = Spec::new(prefix);
        app.apply(&spec.yaml()).await;
        let id = CampaignId::parse(&spec.id).unwrap();
        let (proxy, pg) = crate::support::proxy::postgres_behind_proxy(&app.db.url).await;
        let settings = SettleSettings {
            write_timeout_ms: 1000,
            ..fast()
        };
        let settler = Settler::new(
            crate::support::helpers::redis_target(),
            pg,
            settings.clone(),
            "faulty".into(),
        );
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(settler.run(stopped));
        SlowLedger {
            app,
            proxy,
            spec,
            id,
            settings,
            stop,
            task,
        }
    }

    /// Spins over HTTP, each answered 200; returns their spin ids.
    async fn http_spins(&self, prefix: &str, n: usize) -> Vec<Uuid> {
        let mut ids = Vec::new();
        for i in 0..n {
            let r = self
                .app
                .spin(&self.spec.id, prefix, &format!("{prefix}-{i}"))
                .await;
            assert_eq!(r.status(), 200, "spins never wait for PostgreSQL");
            let body: Value = r.json().await.unwrap();
            ids.push(body["spin_id"].as_str().unwrap().parse().unwrap());
        }
        ids
    }

    /// Waits (at most `limit`) until nothing is left to settle; returns how long.
    async fn settled_within(&self, limit: Duration) -> Duration {
        let started = Instant::now();
        while lag(&self.app, &self.spec.id).await.unsettled() > 0 {
            assert!(
                started.elapsed() < limit,
                "settlement resumed within {limit:?}: {:?}",
                lag(&self.app, &self.spec.id).await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        started.elapsed()
    }

    async fn stop(self, drawn: &[Uuid]) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the settler stops when told, whatever its connections do")
            .unwrap();
        assert_exactly(drawn, &settled_ids(&self.app.db.pool, &self.spec.id).await);
    }
}

/// A black hole, then added latency, between a settler and PostgreSQL: spins
/// go on, settlement pauses and resumes by itself, the ledger holds each draw once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_or_slow_postgres_pauses_settlement_and_never_spins() {
    let s = SlowLedger::start("pghole").await;
    let mut drawn = draws(&s.app, &s.id, 50, 300, 0).await;
    s.settled_within(Duration::from_secs(10)).await;

    s.proxy.black_hole();
    let at_hole = settled_ids(&s.app.db.pool, &s.spec.id).await.len();
    drawn.extend(s.http_spins("during-hole", 20).await);
    drawn.extend(draws(&s.app, &s.id, 50, 300, 1_000).await);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        lag(&s.app, &s.spec.id).await.unsettled() > 0,
        "settlement is paused"
    );
    assert_eq!(
        settled_ids(&s.app.db.pool, &s.spec.id).await.len(),
        at_hole,
        "nothing reached PostgreSQL through the hole"
    );
    s.proxy.heal();
    let hole = s.settled_within(Duration::from_secs(10)).await;

    // 50 ms each way on every chunk: slower, but settling.
    s.proxy.latency(Duration::from_millis(50));
    drawn.extend(s.http_spins("during-latency", 20).await);
    drawn.extend(draws(&s.app, &s.id, 50, 300, 2_000).await);
    let slow = s.settled_within(Duration::from_secs(15)).await;
    s.proxy.heal();
    eprintln!(
        "faults: postgres hole and latency: 2 faults injected, {} draws (40 over HTTP), settled {} ms after healing the hole, {} ms under 50 ms latency, 0 failures",
        drawn.len(),
        hole.as_millis(),
        slow.as_millis()
    );
    s.stop(&drawn).await;
}

/// PostgreSQL vanishes without a reset while the settler waits for its answer
/// (its host died, its address moved to a replacement): the connections open
/// then never hear from it again. The settler must give them up and go on with
/// new ones; before `settle.write_timeout_ms` it waited forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_that_vanishes_silently_does_not_stall_the_settler() {
    use sqlx::Connection;
    let s = SlowLedger::start("pgstrand").await;
    let mut drawn = draws(&s.app, &s.id, 50, 200, 0).await;
    s.settled_within(Duration::from_secs(10)).await;

    // Hold the settler's next write at the server (its COPY, or its INSERT
    // after a refused COPY): sent, waiting for its answer.
    let mut lock = sqlx::PgConnection::connect(&s.app.db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut lock).await.unwrap();
    sqlx::query("LOCK TABLE rewards IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut lock)
        .await
        .unwrap();
    drawn.extend(draws(&s.app, &s.id, 50, 300, 1_000).await);
    let started = Instant::now();
    // Polled from the pool, not from `lock`: inside a transaction
    // pg_stat_activity is a snapshot taken at its first read, so a poll that
    // came before the INSERT would never see it.
    let insert: i32 = loop {
        let waiting: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()
               AND wait_event_type = 'Lock'
               AND (query LIKE 'INSERT INTO rewards%' OR query LIKE 'COPY rewards%')",
        )
        .fetch_optional(&s.app.db.pool)
        .await
        .unwrap();
        if let Some(pid) = waiting {
            break pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the settler writes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // Gone: the open connections never hear from PostgreSQL again, new ones
    // reach the replacement; and the server's end of the waiting session is
    // gone too (as its keepalive or idle_in_transaction_session_timeout
    // would end it), so its locks are released.
    s.proxy.strand();
    let _: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(insert)
        .fetch_one(&mut lock)
        .await
        .unwrap();
    sqlx::query("COMMIT").execute(&mut lock).await.unwrap();
    drawn.extend(s.http_spins("after-strand", 20).await);

    let limit = Duration::from_millis(s.settings.write_timeout_ms + 500) * 2 + MARGIN * 5;
    let took = s.settled_within(limit).await;
    eprintln!(
        "faults: postgres stranded: 1 fault injected (2 connections stranded), {} draws, settled {} ms after the strand (limit {} ms), 0 failures",
        drawn.len(),
        took.as_millis(),
        limit.as_millis()
    );
    s.stop(&drawn).await;
}
