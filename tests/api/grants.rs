//! Spins earned by orders over HTTP: grants made once, spent exactly, revoked
//! without going below zero, lapsing with the campaign's day, seen at once by
//! every replica's quota cache, and settled into the ledger.

use crate::support::helpers::{
    Spec, TestApp, grant, redis_url, revoke, settings, spawn_server, spin, token, unique,
};
use crate::support::settling::settle_all;
use futures::stream::{self, StreamExt};
use prizewheel::domain::CampaignId;
use prizewheel::store::redis::keys::CampaignKeys;
use serde_json::{Value, json};
use std::time::Duration;

fn earned(prefix: &str, free: u32, expire: &'static str) -> Spec {
    let mut spec = Spec::new(prefix);
    spec.earned = Some((free, expire));
    spec.spins_per_user = 1000;
    spec
}

fn body(user: &str, spins: u32) -> String {
    json!({"user_id": user, "spins": spins, "reason": {"order_id": format!("o-{user}")}})
        .to_string()
}

async fn spins_left(app: &TestApp, campaign: &str, user: &str) -> u64 {
    let res = app
        .client
        .get(format!("{}/v1/campaigns/{campaign}", app.address))
        .bearer_auth(token(user, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["spins_left"]
        .as_u64()
        .unwrap()
}

async fn code(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let v: Value = res.json().await.unwrap();
    (status, v["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_copies_of_one_grant_make_one_grant() {
    let app = TestApp::spawn().await;
    let spec = earned("grant-once", 1, "campaign_end");
    app.apply(&spec.yaml()).await;
    let b = body("alice", 3);
    let answers: Vec<Value> = stream::iter(0..50)
        .map(|_| async {
            let res = grant(&app.client, &app.address, &spec.id, "order-1", &b).await;
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()
        })
        .buffer_unordered(50)
        .collect()
        .await;
    let first: Vec<&Value> = answers.iter().filter(|a| a["replayed"] == false).collect();
    assert_eq!(first.len(), 1, "one grant made, 49 replayed: {answers:?}");
    for a in &answers {
        assert_eq!(
            a["spins_left"], 4,
            "free 1 + 3, every answer the first: {a}"
        );
        assert_eq!(a["grant_id"], "order-1");
        assert_eq!(a["user_id"], "alice");
        assert_eq!(a["spins"], 3);
    }
    assert_eq!(spins_left(&app, &spec.id, "alice").await, 4);
    let view: Value = app
        .client
        .get(format!("{}/v1/campaigns/{}", app.address, spec.id))
        .bearer_auth(token("alice", &[]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        view["earned_spins"],
        json!({"free": 1, "expire": "campaign_end"}),
        "{view}"
    );

    let other = grant(
        &app.client,
        &app.address,
        &spec.id,
        "order-1",
        &body("alice", 2),
    )
    .await;
    assert_eq!(code(other).await, (422, "idempotency_key_reused".into()));
    let other_user = grant(
        &app.client,
        &app.address,
        &spec.id,
        "order-1",
        &body("bob", 3),
    )
    .await;
    assert_eq!(
        code(other_user).await,
        (422, "idempotency_key_reused".into())
    );

    // One grant entry in the outbox, settled once into the ledger.
    settle_all(&app, &spec.id, "grants-once").await;
    let rows: Vec<(String, i32, Option<String>)> = sqlx::query_as(
        "SELECT user_id, spins, reason->>'order_id' FROM grants WHERE campaign_id = $1",
    )
    .bind(&spec.id)
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(rows, vec![("alice".into(), 3, Some("o-alice".into()))]);
}

/// Grants and spins of one shopper racing through three replicas: never more
/// spins than free + granted, and exactly that many once the grants are in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_and_spins_racing_are_counted_exactly() {
    let app = TestApp::spawn_with(|s| s.admission.quota_cache.enabled = false).await;
    let free = 2;
    let spec = earned("grant-race", free, "campaign_end");
    app.apply(&spec.yaml()).await;
    let mut addresses = vec![app.address.clone()];
    for _ in 0..2 {
        let mut s = settings(&app.db, &redis_url());
        s.admission.quota_cache.enabled = false;
        addresses.push(spawn_server(s).await);
    }
    let t = token("shopper", &[]);
    let grants = (0..20).map(|g| (true, g));
    let spins = (0..100).map(|s| (false, s));
    let mut work: Vec<(bool, usize)> = grants.chain(spins).collect();
    // Interleave: grants spread among the spins.
    work.sort_by_key(|(is_grant, i)| if *is_grant { i * 5 } else { *i });
    let outcomes: Vec<(bool, u16, String)> = stream::iter(work)
        .map(|(is_grant, i)| {
            let address = addresses[i % 3].clone();
            let (client, t, id) = (app.client.clone(), t.clone(), spec.id.clone());
            async move {
                let res = if is_grant {
                    grant(
                        &client,
                        &address,
                        &id,
                        &format!("order-{i}"),
                        &body("shopper", 1),
                    )
                    .await
                } else {
                    spin(&client, &address, &id, &t, &format!("spin-{i}"), None).await
                };
                let (status, code) = code(res).await;
                (is_grant, status, code)
            }
        })
        .buffer_unordered(120)
        .collect()
        .await;
    let granted = outcomes.iter().filter(|(g, s, _)| *g && *s == 200).count();
    assert_eq!(granted, 20, "{outcomes:?}");
    let won = outcomes.iter().filter(|(g, s, _)| !*g && *s == 200).count();
    for (is_grant, status, code) in &outcomes {
        if !is_grant && *status != 200 {
            assert_eq!((*status, code.as_str()), (429, "no_spins_left"));
        }
    }
    let allowed = free as usize + 20;
    assert!(won <= allowed, "{won} spins won, only {allowed} allowed");
    // The rest of the shopper's spins, one by one on every replica: exactly
    // free + 20 in all.
    let mut more = 0;
    for i in 0..(allowed - won + 3) {
        let res = spin(
            &app.client,
            &addresses[i % 3],
            &spec.id,
            &t,
            &format!("more-{i}"),
            None,
        )
        .await;
        match code(res).await {
            (200, _) => more += 1,
            (429, c) if c == "no_spins_left" => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won + more, allowed, "{won} in the race, {more} after");
    assert_eq!(spins_left(&app, &spec.id, "shopper").await, 0);
}

#[tokio::test]
async fn a_revocation_takes_back_what_is_left_and_never_more() {
    let app = TestApp::spawn().await;
    let spec = earned("grant-revoke", 1, "campaign_end");
    app.apply(&spec.yaml()).await;
    let t = token("bob", &[]);
    let res = grant(
        &app.client,
        &app.address,
        &spec.id,
        "order-9",
        &body("bob", 3),
    )
    .await;
    assert_eq!(res.status(), 200);
    // Free spins go first under campaign_end: of these three spins one is
    // free and two come from the grant.
    for k in 0..3 {
        let res = spin(
            &app.client,
            &app.address,
            &spec.id,
            &t,
            &format!("k{k}"),
            None,
        )
        .await;
        assert_eq!(res.status(), 200);
    }
    assert_eq!(spins_left(&app, &spec.id, "bob").await, 1);
    let res = revoke(&app.client, &app.address, &spec.id, "order-9").await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        (
            &v["revoked"],
            &v["already_used"],
            &v["lapsed"],
            &v["replayed"]
        ),
        (&json!(1), &json!(2), &json!(0), &json!(false)),
        "{v}"
    );
    assert_eq!(spins_left(&app, &spec.id, "bob").await, 0);
    let res = spin(&app.client, &app.address, &spec.id, &t, "k9", None).await;
    assert_eq!(code(res).await, (429, "no_spins_left".into()));
    // Again: the same answer, nothing more taken.
    let again: Value = revoke(&app.client, &app.address, &spec.id, "order-9")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&again["revoked"], &again["replayed"]),
        (&json!(1), &json!(true))
    );
    // A new order: the shopper's spins start from zero, not below.
    let res = grant(
        &app.client,
        &app.address,
        &spec.id,
        "order-10",
        &body("bob", 2),
    )
    .await;
    assert_eq!(res.json::<Value>().await.unwrap()["spins_left"], 2);

    let res = revoke(&app.client, &app.address, &spec.id, "no-such-order").await;
    assert_eq!(code(res).await, (404, "grant_not_found".into()));
    let res = revoke(&app.client, &app.address, &spec.id, "not%20an%20id").await;
    assert_eq!(code(res).await, (404, "grant_not_found".into()));

    // The ledger has both grants and the revocation, which add up.
    settle_all(&app, &spec.id, "grants-revoke").await;
    type Row = (String, i32, Option<i32>, Option<i32>, Option<i32>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT grant_id, spins, revoked, already_used, lapsed FROM grants
         WHERE campaign_id = $1 ORDER BY grant_id",
    )
    .bind(&spec.id)
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            ("order-10".into(), 2, None, None, None),
            ("order-9".into(), 3, Some(1), Some(2), Some(0)),
        ]
    );
}

/// Earned spins lapse when the campaign's day ends, in its time zone. Waiting
/// for a real midnight is out of the question: the test checks that the day
/// starts Redis holds are the zone's midnights, then adds one a second ahead
/// (the scripts know days only from that set) and lets it pass.
#[tokio::test]
async fn end_of_day_spins_lapse_with_the_campaign_day() {
    let app = TestApp::spawn().await;
    let mut spec = earned("grant-lapse", 1, "end_of_day");
    spec.timezone = "Asia/Kolkata";
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    let days = CampaignKeys::new(&id).days;
    let mut conn = app.redis_conn().await;
    let starts: Vec<i64> = redis::cmd("ZRANGE")
        .arg(&days)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    // Every day after the first starts at midnight in Kolkata: 18:30 UTC.
    assert!(starts.len() > 2);
    for s in &starts[1..] {
        assert_eq!(
            s.rem_euclid(86_400_000),
            (18 * 3600 + 1800) * 1000,
            "{starts:?}"
        );
    }

    let t = token("carol", &[]);
    let res = grant(
        &app.client,
        &app.address,
        &spec.id,
        "o-day1",
        &body("carol", 3),
    )
    .await;
    assert_eq!(res.json::<Value>().await.unwrap()["spins_left"], 4);
    // Earned spins go before free ones under end_of_day.
    let res = spin(&app.client, &app.address, &spec.id, &t, "s1", None).await;
    assert_eq!(res.json::<Value>().await.unwrap()["spins_left"], 3);

    let boundary = chrono::Utc::now().timestamp_millis() + 1500;
    let _: () = redis::cmd("ZADD")
        .arg(&days)
        .arg(boundary)
        .arg(boundary)
        .query_async(&mut conn)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1700)).await;
    // The two unused earned spins lapsed; the free one remains.
    assert_eq!(spins_left(&app, &spec.id, "carol").await, 1);
    let res = spin(&app.client, &app.address, &spec.id, &t, "s2", None).await;
    assert_eq!(res.json::<Value>().await.unwrap()["spins_left"], 0);
    let res = spin(&app.client, &app.address, &spec.id, &t, "s3", None).await;
    assert_eq!(code(res).await, (429, "no_spins_left".into()));
    // Revoking the lapsed grant: one used, two lapsed, nothing to take back.
    let v: Value = revoke(&app.client, &app.address, &spec.id, "o-day1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&v["revoked"], &v["already_used"], &v["lapsed"]),
        (&json!(0), &json!(1), &json!(2)),
        "{v}"
    );
    // A grant on the new day counts on the new day.
    let res = grant(
        &app.client,
        &app.address,
        &spec.id,
        "o-day2",
        &body("carol", 1),
    )
    .await;
    assert_eq!(res.json::<Value>().await.unwrap()["spins_left"], 1);
}

/// A replica that cached a shopper's `no_spins_left` lets them spin within its
/// version check once another replica granted them a spin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_on_one_replica_reopens_the_quota_cache_of_another() {
    let app = TestApp::spawn_with(|s| {
        s.admission.quota_cache.version_check_ms = 100;
        s.admission.quota_cache.max_ttl_secs = 600;
    })
    .await;
    let other = spawn_server(settings(&app.db, &redis_url())).await;
    let spec = earned("grant-cache", 0, "campaign_end");
    app.apply(&spec.yaml()).await;
    let t = token("dave", &[]);
    for k in 0..3 {
        let res = spin(
            &app.client,
            &app.address,
            &spec.id,
            &t,
            &format!("a{k}"),
            None,
        )
        .await;
        assert_eq!(code(res).await, (429, "no_spins_left".into()));
    }
    // Let the watcher read the campaign once, so the refusal is cached for good
    // (until a grant).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let res = spin(&app.client, &app.address, &spec.id, &t, "b0", None).await;
    assert_eq!(code(res).await, (429, "no_spins_left".into()));
    let res = grant(&app.client, &other, &spec.id, "order-d", &body("dave", 1)).await;
    assert_eq!(res.status(), 200);
    let granted = std::time::Instant::now();
    let mut k = 0;
    loop {
        k += 1;
        let res = spin(
            &app.client,
            &app.address,
            &spec.id,
            &t,
            &format!("c{k}"),
            None,
        )
        .await;
        let (status, code) = code(res).await;
        if status == 200 {
            break;
        }
        assert_eq!(code, "no_spins_left");
        assert!(
            granted.elapsed() < Duration::from_secs(3),
            "still refused {:?} after the grant (version check every 100 ms)",
            granted.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_1000_grants_fails_only_its_bad_items() {
    let app = TestApp::spawn().await;
    let spec = earned("grant-batch", 0, "campaign_end");
    app.apply(&spec.yaml()).await;
    let mut items = Vec::new();
    for i in 0..1000 {
        items.push(match i {
            7 => json!({"grant_id": "b-7", "user_id": "u7", "spins": 0}),
            8 => json!({"grant_id": "bad id", "user_id": "u8", "spins": 1}),
            9 => json!({"grant_id": "b-9", "user_id": "", "spins": 1}),
            10 => json!({"grant_id": "b-10", "user_id": "u10", "spins": 1, "reason": [1]}),
            11 => json!({"grant_id": "b-11", "user_id": "u11", "spins": 1, "colour": "red"}),
            12 => json!("not an object"),
            13 => json!({"grant_id": "b-0", "user_id": "someone-else", "spins": 1}),
            _ => json!({"grant_id": format!("b-{i}"), "user_id": format!("u{}", i % 300), "spins": 1 + i % 3}),
        });
    }
    let send = |items: Vec<Value>| {
        let req = app
            .client
            .post(format!(
                "{}/v1/campaigns/{}/grants/batch",
                app.address, spec.id
            ))
            .bearer_auth(token("order-service", &["grants"]))
            .json(&json!({ "grants": items }));
        crate::support::helpers::send(req)
    };
    let res = send(items.clone()).await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 1000);
    let failed: Vec<(usize, u64, &str)> = results
        .iter()
        .enumerate()
        .filter(|(i, r)| r["status"] != 200 && ![0, 13].contains(i))
        .map(|(i, r)| {
            (
                i,
                r["status"].as_u64().unwrap(),
                r["code"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        failed,
        vec![
            (7, 400, "invalid_grant"),
            (8, 400, "invalid_grant"),
            (9, 400, "invalid_grant"),
            (10, 400, "invalid_grant"),
            (11, 400, "invalid_grant"),
            (12, 400, "invalid_grant"),
        ]
    );
    // Items 0 and 13 share a grant id with different bodies: whichever Redis
    // saw first is the grant, the other a reuse.
    let mut pair = [&results[0]["status"], &results[13]["status"]];
    pair.sort_by_key(|s| s.as_u64());
    assert_eq!(pair, [&json!(200), &json!(422)], "{:?}", &results[..14]);
    assert_eq!(results[7]["grant_id"], "b-7");
    assert_eq!(results[500]["grant"]["grant_id"], "b-500");
    // u5 got the grants of items 5, 305, 605 and 905: 3 + 3 + 3 + 3 spins.
    assert_eq!(spins_left(&app, &spec.id, "u5").await, 12);

    // The same batch again: every good item replays, nothing is granted twice.
    let again: Value = send(items).await.json().await.unwrap();
    let replayed = again["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["grant"]["replayed"] == true)
        .count();
    assert_eq!(replayed, 993);
    assert_eq!(spins_left(&app, &spec.id, "u5").await, 12);

    // Not a batch at all.
    for (bad, expected) in [
        (json!({"grants": []}), "invalid_grant"),
        (json!({"grants": vec![json!({}); 1001]}), "invalid_grant"),
        (json!({"items": []}), "malformed_body"),
    ] {
        let req = app
            .client
            .post(format!(
                "{}/v1/campaigns/{}/grants/batch",
                app.address, spec.id
            ))
            .bearer_auth(token("order-service", &["grants"]))
            .json(&bad);
        let res = crate::support::helpers::send(req).await;
        assert_eq!(code(res).await, (400, expected.into()));
    }
}

#[tokio::test]
async fn grants_need_the_role_a_valid_body_and_a_campaign_that_takes_them() {
    let app = TestApp::spawn().await;
    let spec = earned("grant-checks", 1, "campaign_end");
    app.apply(&spec.yaml()).await;
    let url = format!("{}/v1/campaigns/{}/grants", app.address, spec.id);
    let post = |t: String, key: Option<&str>, body: String| {
        let mut req = app
            .client
            .post(&url)
            .bearer_auth(t)
            .header("content-type", "application/json")
            .body(body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        crate::support::helpers::send(req)
    };
    // A shopper cannot grant themselves spins, nor can marketing.
    for roles in [&[][..], &["marketing"], &["finance"]] {
        let res = post(token("mallory", roles), Some("g1"), body("mallory", 5)).await;
        assert_eq!(code(res).await, (403, "forbidden".into()));
    }
    let t = || token("order-service", &["grants"]);
    let res = post(t(), None, body("u", 1)).await;
    assert_eq!(code(res).await, (400, "idempotency_key_missing".into()));
    for (bad, expected) in [
        (
            json!({"user_id": "u", "spins": 0}).to_string(),
            "invalid_grant",
        ),
        (
            json!({"user_id": "u", "spins": 101}).to_string(),
            "invalid_grant",
        ),
        (
            json!({"user_id": "u", "spins": -1}).to_string(),
            "invalid_grant",
        ),
        (
            json!({"user_id": "a b", "spins": 1}).to_string(),
            "invalid_grant",
        ),
        (
            json!({"user_id": "u", "spins": 1, "reason": "x"}).to_string(),
            "invalid_grant",
        ),
        (
            json!({"user_id": "u", "spins": 1, "reason": {"k": "x".repeat(1100)}}).to_string(),
            "invalid_grant",
        ),
        (json!({"user_id": "u"}).to_string(), "malformed_body"),
        (
            json!({"user_id": "u", "spins": 1.5}).to_string(),
            "malformed_body",
        ),
        (
            json!({"user_id": "u", "spins": 1, "extra": 1}).to_string(),
            "malformed_body",
        ),
        ("{".to_owned(), "malformed_body"),
    ] {
        let res = post(t(), Some(&unique("g")), bad.clone()).await;
        assert_eq!(code(res).await, (400, expected.into()), "{bad}");
    }
    let res = post(t(), Some("g1"), "x".repeat(5000)).await;
    assert_eq!(res.status(), 413);

    let missing = format!("{}/v1/campaigns/no-such-campaign/grants", app.address);
    let res = crate::support::helpers::send(
        app.client
            .post(&missing)
            .bearer_auth(t())
            .header("Idempotency-Key", "g1")
            .header("content-type", "application/json")
            .body(body("u", 1)),
    )
    .await;
    assert_eq!(code(res).await, (404, "campaign_not_found".into()));

    // Without earned spins, and once ended, a campaign refuses grants.
    let plain = Spec::new("grant-plain");
    app.apply(&plain.yaml()).await;
    let res = grant(&app.client, &app.address, &plain.id, "g1", &body("u", 1)).await;
    assert_eq!(code(res).await, (409, "grants_not_enabled".into()));
    let mut ended = earned("grant-ended", 1, "campaign_end");
    ended.starts_at = (chrono::Utc::now() - chrono::Duration::days(2)).to_rfc3339();
    ended.ends_at = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    app.apply(&ended.yaml()).await;
    let res = grant(&app.client, &app.address, &ended.id, "g1", &body("u", 1)).await;
    assert_eq!(code(res).await, (409, "campaign_ended".into()));
    // Before the start, campaign_end takes grants; end_of_day has no day yet.
    let mut early = earned("grant-early", 0, "campaign_end");
    early.starts_at = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    app.apply(&early.yaml()).await;
    let res = grant(&app.client, &app.address, &early.id, "g1", &body("u", 2)).await;
    assert_eq!(res.status(), 200);
    let mut early_daily = earned("grant-early-d", 0, "end_of_day");
    early_daily.starts_at = early.starts_at.clone();
    app.apply(&early_daily.yaml()).await;
    let res = grant(
        &app.client,
        &app.address,
        &early_daily.id,
        "g1",
        &body("u", 2),
    )
    .await;
    assert_eq!(code(res).await, (409, "campaign_not_started".into()));
}

/// A live re-apply may change the free spins, never the expire rule.
#[tokio::test]
async fn the_expire_rule_is_fixed_once_applied() {
    let app = TestApp::spawn().await;
    let mut spec = earned("grant-fixed", 1, "campaign_end");
    app.apply(&spec.yaml()).await;
    spec.earned = Some((3, "end_of_day"));
    let c = prizewheel::campaign::parse_campaign(&spec.yaml()).unwrap();
    let (plan, _) = prizewheel::rollout::apply::plan_against_live(&app.redis, &c)
        .await
        .unwrap();
    let paths: Vec<(&str, Option<&str>, Option<&str>)> = plan
        .changes
        .iter()
        .map(|c| (c.path.as_str(), c.from.as_deref(), c.to.as_deref()))
        .collect();
    assert_eq!(
        paths,
        vec![
            ("earned_spins.free", Some("1"), Some("3")),
            (
                "earned_spins.expire",
                Some("campaign_end"),
                Some("end_of_day")
            ),
        ],
        "{plan:?}"
    );
    assert!(plan.changes[1].note.as_deref().unwrap().contains("refused"));
    let refused = prizewheel::rollout::apply::apply(
        &app.redis,
        &app.db.pool,
        Duration::from_secs(10),
        &c,
        &spec.yaml(),
        "tests",
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("cannot change"), "{refused}");
    spec.earned = Some((3, "campaign_end"));
    app.apply(&spec.yaml()).await;
    assert_eq!(spins_left(&app, &spec.id, "erin").await, 3);
}

/// Finance's summary counts the spins granted, revoked and used next to the
/// rewards, and reconciles grants made in Redis with the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finance_sees_spins_granted_revoked_and_used() {
    let app = TestApp::spawn().await;
    let spec = earned("grant-finance", 0, "campaign_end");
    app.apply(&spec.yaml()).await;
    for i in 0..10 {
        let user = format!("f{}", i % 4);
        let res = grant(
            &app.client,
            &app.address,
            &spec.id,
            &format!("o{i}"),
            &body(&user, 2),
        )
        .await;
        assert_eq!(res.status(), 200);
        let res = spin(
            &app.client,
            &app.address,
            &spec.id,
            &token(&user, &[]),
            &format!("s{i}"),
            None,
        )
        .await;
        assert_eq!(res.status(), 200);
    }
    for i in [1, 3] {
        let res = revoke(&app.client, &app.address, &spec.id, &format!("o{i}")).await;
        assert_eq!(res.status(), 200);
    }
    let summary = || async {
        let res = app
            .client
            .get(format!(
                "{}/v1/finance/campaigns/{}/summary",
                app.address, spec.id
            ))
            .bearer_auth(token("fin", &["finance"]))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()
    };
    // Before settlement: all of it in flight, and it adds up.
    let s = summary().await;
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(
        (&s["grants"]["made"], &s["grants"]["in_flight"]),
        (&json!(10), &json!(10))
    );
    settle_all(&app, &spec.id, "grants-finance").await;
    let s = summary().await;
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["grants"]["settled"], 10, "{s}");
    assert_eq!(s["revocations"]["settled"], 2, "{s}");
    let revoked: i64 =
        sqlx::query_scalar("SELECT sum(revoked)::bigint FROM grants WHERE campaign_id = $1")
            .bind(&spec.id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(
        (
            &s["spins"]["granted"],
            &s["spins"]["revoked"],
            &s["spins"]["used"]
        ),
        (&json!(20), &json!(revoked), &json!(10)),
        "{s}"
    );
    let view: (i64, i64, i64) = sqlx::query_as(
        "SELECT spins_granted::bigint, spins_revoked::bigint, spins_used FROM spin_totals WHERE campaign_id = $1",
    )
    .bind(&spec.id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(view, (20, revoked, 10));

    // A grant lost from the ledger is a mismatch.
    sqlx::query("DELETE FROM grants WHERE campaign_id = $1 AND grant_id = 'o0'")
        .bind(&spec.id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let s = summary().await;
    assert_eq!(s["ok"], false, "{s}");
    assert!(
        s["problems"]
            .to_string()
            .contains("grants: made 10 != settled 9"),
        "{s}"
    );
}

/// The order service has a rate of its own; a batch counts each of its grants.
#[tokio::test]
async fn grants_are_limited_per_caller_each_batch_item_counted() {
    let app = TestApp::spawn_with(|s| {
        s.admission.per_granter.enabled = true;
        s.admission.per_granter.per_second = 1;
        s.admission.per_granter.burst = 5;
    })
    .await;
    let spec = earned("grant-rate", 0, "campaign_end");
    app.apply(&spec.yaml()).await;
    for i in 0..5 {
        let res = grant(
            &app.client,
            &app.address,
            &spec.id,
            &format!("r{i}"),
            &body("u", 1),
        )
        .await;
        assert_eq!(res.status(), 200);
    }
    let res = grant(&app.client, &app.address, &spec.id, "r5", &body("u", 1)).await;
    assert_eq!(
        res.headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned()),
        Some("1".into())
    );
    assert_eq!(code(res).await, (429, "rate_limited".into()));
    // Another caller has its own budget, but not for a batch over its burst.
    let items: Vec<Value> = (0..6)
        .map(|i| json!({"grant_id": format!("b{i}"), "user_id": "u", "spins": 1}))
        .collect();
    let req = app
        .client
        .post(format!(
            "{}/v1/campaigns/{}/grants/batch",
            app.address, spec.id
        ))
        .bearer_auth(token("other-service", &["grants"]))
        .json(&json!({ "grants": items }));
    let res = crate::support::helpers::send(req).await;
    assert_eq!(code(res).await, (429, "rate_limited".into()));
}
