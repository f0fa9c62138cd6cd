//! Paced stock and the budget through the service: no unit is awarded before
//! its release (read back from the ledger), per-day releases carry over, a
//! held-back prize's share goes to the fallback and nowhere else, and a budget
//! is never exceeded under concurrent spins.

use crate::support::helpers::{Spec, TestApp, draw, hash_counts};
use crate::support::settling::settle_all;
use futures::stream::{self, StreamExt};
use prizewheel::domain::{CampaignId, UserId};
use prizewheel::store::redis::keys::CampaignKeys;
use rand::{RngExt, SeedableRng};
use serde_json::Value;
use std::time::Duration;

fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

/// Spins from `loops` concurrent clients, each its own shopper, until `until_ms`;
/// returns the answers' statuses.
async fn spin_until(app: &TestApp, campaign: &str, loops: usize, until_ms: i64) -> Vec<u16> {
    let clients = (0..loops).map(|c| async move {
        let mut statuses = Vec::new();
        let mut n = 0;
        while chrono::Utc::now().timestamp_millis() < until_ms && n < 20_000 {
            let r = app.spin(campaign, &format!("c{c}"), &format!("k{n}")).await;
            statuses.push(r.status().as_u16());
            n += 1;
        }
        statuses
    });
    futures::future::join_all(clients)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// The instants (ms) of the settled awards of `prize`, in draw order.
async fn award_times(app: &TestApp, campaign: &str, prize: &str) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT (extract(epoch FROM spun_at) * 1000)::bigint FROM rewards
         WHERE campaign_id = $1 AND prize_id = $2 ORDER BY stream_ms, stream_seq",
    )
    .bind(campaign)
    .bind(prize)
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
}

/// `even` and `schedule` on a window of a few seconds, under 8 concurrent
/// clients: from the ledger, the k-th award of each prize is at or after the
/// release instant of unit k, and every unit released in time is awarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_unit_is_awarded_before_its_release_under_load() {
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now();
    let mut spec = Spec::new("paced");
    spec.spins_per_user = 1_000_000;
    spec.starts_at = (now + chrono::Duration::milliseconds(1500)).to_rfc3339();
    spec.ends_at = (now + chrono::Duration::milliseconds(9500)).to_rfc3339();
    spec.prizes = vec![
        ("phone", 500, Some(4)),
        ("tv", 500, Some(3)),
        ("none", 100, None),
    ];
    let start = ms(&spec.starts_at);
    let window = ms(&spec.ends_at) - start;
    let (tv1, tv2) = (start + 1000, start + 3000);
    let at = |t: i64| {
        chrono::DateTime::from_timestamp_millis(t)
            .unwrap()
            .to_rfc3339()
    };
    spec.releases.insert("phone", "even".into());
    spec.releases.insert(
        "tv",
        format!(
            "{{ schedule: [{{ at: \"{}\", units: 1 }}, {{ at: \"{}\", units: 2 }}] }}",
            at(tv1),
            at(tv2)
        ),
    );
    app.apply(&spec.yaml()).await;
    // Before the start: nothing is released.
    let before = view(&app, &spec.id, "c0").await;
    assert_eq!(before["status"], "scheduled", "{before}");

    let statuses = spin_until(&app, &spec.id, 8, start + window).await;
    let drawn = statuses.iter().filter(|&&s| s == 200).count();
    assert!(drawn > 100, "{drawn} spins drawn");
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 409),
        "only draws, and not_started/ended around the window: {statuses:?}"
    );
    settle_all(&app, &spec.id, "paced").await;

    let phone = award_times(&app, &spec.id, "phone").await;
    assert_eq!(phone.len(), 4, "every unit of the even phone: {phone:?}");
    for (k, t) in phone.iter().enumerate() {
        // Unit k+1 of 4 is released at start + floor(k * window / 4).
        let release = start + k as i64 * window / 4;
        assert!(
            *t >= release,
            "phone unit {} at {t}, released at {release}",
            k + 1
        );
    }
    let tv = award_times(&app, &spec.id, "tv").await;
    assert_eq!(tv.len(), 3, "{tv:?}");
    assert!(
        tv[0] >= tv1 && tv[1] >= tv2 && tv[2] >= tv2,
        "{tv:?} vs {tv1}, {tv2}"
    );
    // Nothing of a prize is awarded before its first release, though both
    // weigh five times the fallback: their turns went to it meanwhile.
    let fallback_before_tv: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rewards WHERE campaign_id = $1 AND prize_id = 'none'
         AND spun_at < to_timestamp($2 / 1000.0)",
    )
    .bind(&spec.id)
    .bind(tv1 as f64)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert!(fallback_before_tv > 0);
}

/// Moves the start of the campaign's next day to `in_ms` from now (the days
/// sorted set is what the script counts days by).
async fn next_day_in(app: &TestApp, campaign: &str, in_ms: i64) -> i64 {
    let keys = CampaignKeys::new(&CampaignId::parse(campaign).unwrap());
    let at = chrono::Utc::now().timestamp_millis() + in_ms;
    let _: () = redis::cmd("ZADD")
        .arg(&keys.days)
        .arg(at)
        .arg(at)
        .query_async(&mut app.redis_conn().await)
        .await
        .unwrap();
    at
}

async fn awarded(app: &TestApp, campaign: &str, prize: &str) -> i64 {
    let keys = CampaignKeys::new(&CampaignId::parse(campaign).unwrap());
    let counts = hash_counts(&mut app.redis_conn().await, &keys.awarded).await;
    counts.get(prize).copied().unwrap_or(0)
}

async fn view(app: &TestApp, campaign: &str, user: &str) -> Value {
    app.client
        .get(format!("{}/v1/campaigns/{campaign}", app.address))
        .bearer_auth(crate::support::helpers::token(user, &[]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn prize<'a>(view: &'a Value, id: &str) -> &'a Value {
    view["prizes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap()
}

/// `per_day: 2`: two more units each campaign day; what a day does not award
/// carries over to the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_day_releases_carry_over() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("perday");
    spec.prizes = vec![("mug", 1_000_000, Some(10)), ("none", 1, None)];
    spec.releases.insert("mug", "{ per_day: 2 }".into());
    spec.start_within_today();
    app.apply(&spec.yaml()).await;
    let spin = |n: u64| {
        let app = &app;
        let id = spec.id.clone();
        async move {
            let r = app.spin(&id, "dora", &format!("k{n}")).await;
            assert_eq!(r.status(), 200);
            let body: Value = r.json().await.unwrap();
            body["prize"]["id"].as_str().unwrap().to_owned()
        }
    };
    // Day 1: two mugs, then the fallback.
    let day1: Vec<String> = stream::iter(0..5).then(&spin).collect().await;
    assert_eq!(day1.iter().filter(|p| *p == "mug").count(), 2, "{day1:?}");
    let v = view(&app, &spec.id, "dora").await;
    assert_eq!(prize(&v, "mug")["available"], false, "{v}");
    assert_eq!(prize(&v, "mug")["odds"], 0.0, "{v}");
    assert_eq!(prize(&v, "none")["odds"], 1.0, "{v}");
    // Day 2 starts: one mug only is won that day.
    let day2 = next_day_in(&app, &spec.id, 1000).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(spin(10).await, "mug");
    assert_eq!(awarded(&app, &spec.id, "mug").await, 3);
    // Day 3: 6 released, 3 awarded: three mugs, the one of day 2 carried over.
    next_day_in(&app, &spec.id, 1000).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let day3: Vec<String> = stream::iter(20..26).then(&spin).collect().await;
    assert_eq!(day3.iter().filter(|p| *p == "mug").count(), 3, "{day3:?}");
    assert_eq!(awarded(&app, &spec.id, "mug").await, 6);
    assert!(day2 > 0);
}

/// Days follow the campaign's time zone: a per-day prize waiting for its next
/// unit says it comes at the next local midnight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_day_releases_follow_the_time_zone() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("perday-tz");
    spec.timezone = "Asia/Kolkata";
    spec.prizes = vec![("mug", 1_000_000, Some(10)), ("none", 1, None)];
    spec.releases.insert("mug", "{ per_day: 1 }".into());
    spec.start_within_today();
    app.apply(&spec.yaml()).await;
    for n in 0..3 {
        assert_eq!(
            app.spin(&spec.id, "ila", &format!("k{n}")).await.status(),
            200
        );
    }
    assert_eq!(awarded(&app, &spec.id, "mug").await, 1);
    let v = view(&app, &spec.id, "ila").await;
    let next = prize(&v, "mug")["next_release_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let tz: chrono_tz::Tz = "Asia/Kolkata".parse().unwrap();
    let local_tomorrow = chrono::Utc::now()
        .with_timezone(&tz)
        .date_naive()
        .succ_opt()
        .unwrap();
    let midnight = local_tomorrow
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_local_timezone(tz)
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert_eq!(ms(&next), midnight.timestamp_millis(), "{v}");
}

/// While a paced prize is held back, the other prizes are drawn at their
/// configured odds and the fallback takes the held-back share (chi-square over
/// 20,000 draws with a fixed seed; 0.1 % critical value for 2 degrees of freedom).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_back_prize_gives_its_share_to_the_fallback_only() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("odds");
    spec.spins_per_user = 1_000_000;
    spec.prizes = vec![
        ("tv", 30, Some(5)),
        ("mug", 20, None),
        ("pen", 10, None),
        ("none", 40, None),
    ];
    let later = chrono::Utc::now() + chrono::Duration::hours(2);
    spec.releases.insert(
        "tv",
        format!(
            "{{ schedule: [{{ at: \"{}\", units: 5 }}] }}",
            later.to_rfc3339()
        ),
    );
    app.apply(&spec.yaml()).await;
    let v = view(&app, &spec.id, "olga").await;
    let odds = |id: &str| prize(&v, id)["odds"].as_f64().unwrap();
    assert_eq!(
        (odds("tv"), odds("mug"), odds("pen")),
        (0.0, 0.2, 0.1),
        "{v}"
    );
    assert!((odds("none") - 0.7).abs() < 1e-12, "{v}");
    assert_eq!(
        ms(prize(&v, "tv")["next_release_at"].as_str().unwrap()),
        ms(&later.to_rfc3339())
    );

    let id = CampaignId::parse(&spec.id).unwrap();
    let user = UserId::parse("olga").unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(18);
    let rs: Vec<u64> = (0..20_000)
        .map(|_| rng.random_range(0..1u64 << 53))
        .collect();
    let prizes: Vec<String> = stream::iter(rs.into_iter().enumerate())
        .map(|(n, r)| {
            let (app, id, user) = (&app, &id, &user);
            async move { draw(app, id, user, n as u64, r).await.prize_id }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let count = |p: &str| prizes.iter().filter(|x| *x == p).count() as f64;
    assert_eq!(count("tv"), 0.0);
    let n = prizes.len() as f64;
    let chi2: f64 = [("mug", 0.2), ("pen", 0.1), ("none", 0.7)]
        .iter()
        .map(|(p, share)| (count(p) - n * share).powi(2) / (n * share))
        .sum();
    assert!(
        chi2 < 13.82,
        "chi-square {chi2}: mug {}, pen {}, none {}",
        count("mug"),
        count("pen"),
        count("none")
    );
}

/// 5,000 concurrent spins against a budget that pays for exactly 37 coupons
/// (and a little more, not enough for a 38th) award exactly 37, then the fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_pays_for_exactly_what_it_can() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("budget");
    spec.prizes = vec![("coupon", 9, None), ("none", 1, None)];
    spec.amounts.insert("coupon", "100.00".into());
    spec.amounts.insert("none", "0".into());
    spec.budget = Some("3750.00".into());
    app.apply(&spec.yaml()).await;
    let statuses_and_prizes: Vec<(u16, String)> = stream::iter(0..5000)
        .map(|i| {
            let app = &app;
            let id = spec.id.clone();
            async move {
                let r = app
                    .spin(&id, &format!("b{}", i % 500), &format!("k{i}"))
                    .await;
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or_default();
                (
                    status,
                    body["prize"]["id"].as_str().unwrap_or("").to_owned(),
                )
            }
        })
        .buffer_unordered(100)
        .collect()
        .await;
    assert!(
        statuses_and_prizes.iter().all(|(s, _)| *s == 200),
        "every spin answered"
    );
    let coupons = statuses_and_prizes
        .iter()
        .filter(|(_, p)| p == "coupon")
        .count();
    assert_eq!(coupons, 37);
    assert_eq!(awarded(&app, &spec.id, "coupon").await, 37);
    let keys = CampaignKeys::new(&CampaignId::parse(&spec.id).unwrap());
    let spent: u64 = redis::cmd("HGET")
        .arg(&keys.meta)
        .arg("bs")
        .query_async(&mut app.redis_conn().await)
        .await
        .unwrap();
    assert_eq!(spent, 37 * 100 * 10_000);
    let v = view(&app, &spec.id, "b0").await;
    assert_eq!(prize(&v, "coupon")["available"], false, "{v}");
    assert_eq!(prize(&v, "none")["odds"], 1.0, "{v}");
    // The ledger agrees.
    settle_all(&app, &spec.id, "budget").await;
    let total: rust_decimal::Decimal =
        sqlx::query_scalar("SELECT sum(amount) FROM rewards WHERE campaign_id = $1")
            .bind(&spec.id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(total, rust_decimal::Decimal::new(370_000, 2));
}

/// A fallback worth something: once the budget cannot pay for it, spins are
/// refused with 409 `budget_exhausted`; a re-apply with a bigger budget reopens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_refuses_spins_until_it_is_raised() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("budget-out");
    spec.prizes = vec![("points", 1, None)];
    spec.amounts.insert("points", "1.00".into());
    spec.budget = Some("3.00".into());
    app.apply(&spec.yaml()).await;
    for n in 0..3 {
        assert_eq!(
            app.spin(&spec.id, "pia", &format!("k{n}")).await.status(),
            200
        );
    }
    let r = app.spin(&spec.id, "pia", "k3").await;
    assert_eq!(r.status(), 409);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "budget_exhausted", "{p}");
    let v = view(&app, &spec.id, "pia").await;
    assert_eq!(prize(&v, "points")["available"], false, "{v}");
    assert_eq!(prize(&v, "points")["odds"], 0.0, "{v}");
    // Marketing raises the budget live: two more spins, then refused again.
    spec.budget = Some("5.00".into());
    app.apply(&spec.yaml()).await;
    for n in 4..6 {
        assert_eq!(
            app.spin(&spec.id, "pia", &format!("k{n}")).await.status(),
            200
        );
    }
    let r = app.spin(&spec.id, "pia", "k6").await;
    assert_eq!(r.status(), 409);
    // A retry of an answered spin still replays.
    let r = app.spin(&spec.id, "pia", "k0").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
}

/// A live re-apply of the release curve while spins run: the prize never gives
/// more than the new curve has released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_release_change_mid_load_holds() {
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now();
    let mut spec = Spec::new("paced-live");
    spec.spins_per_user = 1_000_000;
    spec.prizes = vec![("tv", 1_000, Some(20)), ("none", 1, None)];
    let past = (now - chrono::Duration::minutes(30)).to_rfc3339();
    let later = (now + chrono::Duration::hours(2)).to_rfc3339();
    let schedule = |out_now: u64| {
        format!(
            "{{ schedule: [{{ at: \"{past}\", units: {out_now} }}, {{ at: \"{later}\", units: {} }}] }}",
            20 - out_now
        )
    };
    spec.releases.insert("tv", schedule(5));
    app.apply(&spec.yaml()).await;
    let load = spin_until(
        &app,
        &spec.id,
        6,
        chrono::Utc::now().timestamp_millis() + 3000,
    );
    let change = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            awarded(&app, &spec.id, "tv").await,
            5,
            "the first 5, then held"
        );
        let mut live = spec.yaml();
        live = live.replace(&schedule(5), &schedule(12));
        app.apply(&live).await;
    };
    let (statuses, ()) = futures::join!(load, change);
    assert!(statuses.iter().all(|&s| s == 200));
    assert_eq!(awarded(&app, &spec.id, "tv").await, 12);
}

/// The audit replays pacing and the budget: a paced, budgeted sale passes; a
/// reward moved before its prize's release fails it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_checks_releases_and_the_budget() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("audit-paced");
    spec.spins_per_user = 1_000_000;
    spec.prizes = vec![
        ("mug", 50, Some(30)),
        ("coupon", 100, None),
        ("none", 850, None),
    ];
    let now = chrono::Utc::now();
    let (first, second) = (
        now - chrono::Duration::minutes(50),
        now - chrono::Duration::minutes(10),
    );
    spec.releases.insert(
        "mug",
        format!(
            "{{ schedule: [{{ at: \"{}\", units: 5 }}, {{ at: \"{}\", units: 5 }}, {{ at: \"{}\", units: 20 }}] }}",
            first.to_rfc3339(),
            second.to_rfc3339(),
            (now + chrono::Duration::hours(3)).to_rfc3339()
        ),
    );
    spec.amounts.insert("mug", "0".into());
    spec.amounts.insert("coupon", "2.00".into());
    spec.amounts.insert("none", "0".into());
    spec.budget = Some("60.00".into());
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    crate::support::settling::draws(&app, &id, 50, 1500, 0).await;
    assert_eq!(awarded(&app, &spec.id, "mug").await, 10);
    assert_eq!(awarded(&app, &spec.id, "coupon").await, 30);
    settle_all(&app, &spec.id, "audit-paced").await;
    let audit = || {
        crate::support::helpers::cli(
            &["audit", &spec.id],
            &crate::support::helpers::redis_url(),
            &app.db.url,
        )
    };
    let (ok, text) = audit();
    assert!(ok, "{text}");
    // Tamper: the sixth mug moved to between the two releases, when only five were out.
    let spin_id: uuid::Uuid = sqlx::query_scalar(
        "SELECT spin_id FROM rewards WHERE campaign_id = $1 AND prize_id = 'mug'
         ORDER BY stream_ms, stream_seq LIMIT 1 OFFSET 5",
    )
    .bind(&spec.id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE rewards SET spun_at = $2 WHERE spin_id = $1")
        .bind(spin_id)
        .bind(now - chrono::Duration::minutes(30))
        .execute(&app.db.pool)
        .await
        .unwrap();
    let (ok, text) = audit();
    assert!(!ok, "{text}");
    assert!(
        text.contains(&spin_id.to_string()) && text.contains("had no unit released"),
        "{text}"
    );
}

/// `even` is exact where the products pass 2^53: a stock of 10^12 over 365
/// days. With the awarded count set just below `released(now)` the next unit
/// is drawn; set to `released` of two seconds later it is held back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn even_pacing_is_exact_at_a_trillion_units_over_a_year() {
    use prizewheel::campaign::model::Release;
    use prizewheel::draw::release::{Window, released};
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now();
    let mut spec = Spec::new("paced-big");
    spec.spins_per_user = 1_000_000;
    spec.starts_at = (now - chrono::Duration::days(100)).to_rfc3339();
    spec.ends_at = (now + chrono::Duration::days(265)).to_rfc3339();
    let stock = 1_000_000_000_000u64;
    spec.prizes = vec![("big", 1_000_000, Some(stock)), ("none", 1, None)];
    spec.releases.insert("big", "even".into());
    app.apply(&spec.yaml()).await;
    let w = Window {
        start_ms: ms(&spec.starts_at),
        end_ms: ms(&spec.ends_at),
        day_starts: &[],
    };
    let id = CampaignId::parse(&spec.id).unwrap();
    let keys = CampaignKeys::new(&id);
    let user = UserId::parse("tara").unwrap();
    let set_awarded = |a: u64| {
        let keys = keys.clone();
        let app = &app;
        async move {
            let _: () = redis::pipe()
                .hset(&keys.awarded, "big", a)
                .hset(&keys.stock, "big", stock - a)
                .query_async(&mut app.redis_conn().await)
                .await
                .unwrap();
        }
    };
    for n in 0..10u64 {
        let t0 = chrono::Utc::now().timestamp_millis();
        let out_now = released(&Release::Even, stock, w, t0);
        // a × W passes 2^53 by far (2^37 × 2^34).
        assert!(out_now > 1 << 37, "{out_now}");
        set_awarded(out_now - 1).await;
        assert_eq!(draw(&app, &id, &user, 2 * n, 0).await.prize_id, "big");
        set_awarded(released(&Release::Even, stock, w, t0 + 2000)).await;
        assert_eq!(draw(&app, &id, &user, 2 * n + 1, 0).await.prize_id, "none");
    }
}

/// A campaign first applied before the value awarded was counted (no `bs`)
/// starts the count, at its next apply, from its awarded units at the new
/// version's values, so a budget added then counts what came before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_from_before_value_counting_starts_from_its_awarded_units() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("budget-old");
    spec.prizes = vec![("coupon", 1, None)];
    spec.amounts.insert("coupon", "2.50".into());
    app.apply(&spec.yaml()).await;
    for n in 0..4 {
        assert_eq!(
            app.spin(&spec.id, "olu", &format!("k{n}")).await.status(),
            200
        );
    }
    let keys = CampaignKeys::new(&CampaignId::parse(&spec.id).unwrap());
    let mut conn = app.redis_conn().await;
    let bs: u64 = redis::cmd("HGET")
        .arg(&keys.meta)
        .arg("bs")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(bs, 4 * 25_000);
    // As a campaign applied by a build that did not count it.
    let _: () = redis::cmd("HDEL")
        .arg(&keys.meta)
        .arg("bs")
        .query_async(&mut conn)
        .await
        .unwrap();
    spec.budget = Some("12.00".into());
    app.apply(&spec.yaml()).await;
    let bs: u64 = redis::cmd("HGET")
        .arg(&keys.meta)
        .arg("bs")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(bs, 4 * 25_000, "4 coupons at 2.50");
    // 2.00 left cannot pay for the coupon, which is the fallback: refused.
    let r = app.spin(&spec.id, "olu", "k9").await;
    assert_eq!(r.status(), 409);
}
