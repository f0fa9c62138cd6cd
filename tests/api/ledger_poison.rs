//! No entry may stop the ledger: what PostgreSQL cannot store is refused at the
//! API, an entry the ledger refuses anyway is dead-lettered alone while the rest
//! settles, and settlement that is stuck is reported everywhere.

use crate::support::helpers::{Spec, TestApp, cli, redis_url, spin, stream_prizes, token};
use crate::support::settling::{draws, fast, lag, settle_all, settled_ids};
use prizewheel::domain::{CampaignId, IdempotencyKey, UserId};
use prizewheel::settle::SettleSettings;
use prizewheel::settle::ledger::is_data_error;
use prizewheel::store::redis::spin::SpinCall;
use proptest::strategy::{Strategy, ValueTree};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use uuid::Uuid;

/// A spin with `body` sent exactly as given.
async fn spin_raw(
    app: &TestApp,
    campaign: &str,
    user: &str,
    key: &str,
    body: &str,
) -> reqwest::Response {
    spin(
        &app.client,
        &app.address,
        campaign,
        &token(user, &[]),
        key,
        Some(body),
    )
    .await
}

async fn json(r: reqwest::Response) -> (u16, serde_json::Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// Waits (bounded) until the campaign's stream has nothing unsettled.
async fn settled_within(app: &TestApp, campaign: &str, limit: Duration) -> bool {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if lag(app, campaign).await.unsettled() == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn dead_letters(app: &TestApp, campaign: &str) -> Vec<HashMap<String, String>> {
    let mut conn = app.redis_conn().await;
    let dead: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(format!("pw:{{{campaign}}}:dead"))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    dead.into_iter().map(|(_, f)| f).collect()
}

async fn summary(app: &TestApp, campaign: &str) -> serde_json::Value {
    let r = app
        .client
        .get(format!(
            "{}/v1/finance/campaigns/{campaign}/summary",
            app.address
        ))
        .bearer_auth(token("fiona", &["finance"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_spin_body_the_ledger_cannot_store_is_refused_and_draws_nothing() {
    let app = TestApp::spawn().await;
    let spec = Spec::new("nul");
    app.apply(&spec.yaml()).await;
    for (i, body) in [
        r#"{"x":"\u0000"}"#,
        r#"{"a\u0000b":1}"#,
        r#"{"x":[1,{"y":"ok\u0000"}]}"#,
        r#"{"n":1e131072}"#,
        r#"{"n":1e-16384}"#,
        // 13 bytes that would be a 100,000-digit number in the ledger.
        r#"{"n":1e99999}"#,
    ]
    .iter()
    .enumerate()
    {
        let (status, problem) =
            json(spin_raw(&app, &spec.id, "u1", &format!("bad{i}"), body).await).await;
        assert_eq!(status, 400, "{body}: {problem}");
        assert_eq!(problem["code"], "malformed_body", "{body}");
        assert!(problem["detail"].as_str().unwrap().len() < 400, "{problem}");
    }
    let (_, problem) = json(spin_raw(&app, &spec.id, "u1", "nul", r#"{"x":"\u0000"}"#).await).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("NUL"),
        "{problem}"
    );
    // Nothing was drawn: the same key with a good body is a first spin.
    let (status, body) =
        json(spin_raw(&app, &spec.id, "u1", "bad0", r#"{"x":"fine"}"#).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["replayed"], false);
    let mut conn = app.redis_conn().await;
    assert_eq!(
        stream_prizes(&mut conn, &spec.id).await.len(),
        1,
        "one draw in all"
    );
}

#[tokio::test]
async fn numbers_are_fingerprinted_and_settled_exactly() {
    let app = TestApp::spawn_with(|s| s.settle = fast()).await;
    let spec = Spec::new("exact");
    app.apply(&spec.yaml()).await;
    let mut spins = Vec::new();
    for (key, first, other, stored) in [
        (
            "big",
            "12345678901234567890123",
            "12345678901234567890124",
            "12345678901234567890123",
        ),
        ("tenth", "0.1", "0.10000000000000001", "0.1"),
        ("scale", "1.50", "1.5", "1.50"),
        ("exp", "1e2", "100.0", "100"),
    ] {
        let body = format!(r#"{{"n":{first}}}"#);
        let (status, spun) = json(spin_raw(&app, &spec.id, "u1", key, &body).await).await;
        assert_eq!(status, 200, "{spun}");
        let (status, problem) =
            json(spin_raw(&app, &spec.id, "u1", key, &format!(r#"{{"n":{other}}}"#)).await).await;
        assert_eq!(status, 422, "{first} then {other}: {problem}");
        assert_eq!(problem["code"], "idempotency_key_reused");
        // The same number written another way is the same body.
        let (status, again) = json(
            spin_raw(
                &app,
                &spec.id,
                "u1",
                key,
                &format!(r#"{{ "n" : {stored} }}"#),
            )
            .await,
        )
        .await;
        assert_eq!(
            (status, &again["replayed"]),
            (200, &serde_json::json!(true)),
            "{first} as {stored}"
        );
        assert_eq!(again["spin_id"], spun["spin_id"]);
        spins.push((
            spun["spin_id"].as_str().unwrap().parse::<Uuid>().unwrap(),
            stored,
        ));
    }
    assert!(settled_within(&app, &spec.id, Duration::from_secs(20)).await);
    for (spin, stored) in spins {
        let context: String =
            sqlx::query_scalar("SELECT context->>'n' FROM rewards WHERE spin_id = $1")
                .bind(spin)
                .fetch_one(&app.db.pool)
                .await
                .unwrap();
        assert_eq!(context, stored);
    }
    // Finance reads the same numbers, unrounded, as JSON and as CSV.
    for accept in ["application/json", "text/csv"] {
        let listing = app
            .client
            .get(format!(
                "{}/v1/finance/campaigns/{}/rewards",
                app.address, spec.id
            ))
            .bearer_auth(token("fiona", &["finance"]))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(listing.status(), 200);
        let text = listing.text().await.unwrap();
        for exact in ["12345678901234567890123", "1.50"] {
            assert!(text.contains(exact), "{accept}: {exact} in {text}");
        }
    }
}

/// A draw the ledger refuses, made through the real script (the API would
/// refuse its body; an older replica, a bug or a hand-written entry would not).
async fn poisoned_draw(app: &TestApp, campaign: &CampaignId, n: u64) -> Uuid {
    let user = UserId::parse("poisoner").unwrap();
    let key = IdempotencyKey::parse(&format!("p{n}")).unwrap();
    let spin_id = Uuid::now_v7();
    let call = SpinCall {
        campaign,
        user: &user,
        key: &key,
        user_hash: prizewheel::draw::user_hash(user.as_str()),
        record_field: (1_000_000 + n).to_be_bytes(),
        fingerprint: [0; 8],
        r: prizewheel::draw::rng::next_r().unwrap(),
        spin_id,
        context: r#"{"x":"\u0000"}"#,
    };
    app.redis.spin(&call).await.expect("redis").expect("drawn");
    spin_id
}

#[tokio::test]
async fn an_entry_the_ledger_refuses_is_dead_lettered_alone_and_the_rest_settles() {
    let app = TestApp::spawn_with(|s| s.settle = fast()).await;
    let spec = Spec::new("refused");
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    // Written before the settler reads: the poisoned draw sits inside batches.
    let mut drawn = draws(&app, &id, 10, 150, 0).await;
    let poisoned = poisoned_draw(&app, &id, 1).await;
    drawn.extend(draws(&app, &id, 10, 150, 1000).await);
    let second = poisoned_draw(&app, &id, 2).await;
    drawn.extend(draws(&app, &id, 10, 20, 2000).await);
    assert!(
        settled_within(&app, &spec.id, Duration::from_secs(30)).await,
        "settlement stalled: {:?}",
        lag(&app, &spec.id).await
    );
    let settled: HashSet<Uuid> = settled_ids(&app.db.pool, &spec.id)
        .await
        .into_iter()
        .collect();
    assert_eq!(
        settled,
        drawn.iter().copied().collect::<HashSet<_>>(),
        "every good draw, once"
    );
    let dead = dead_letters(&app, &spec.id).await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    let dead_spins: HashSet<Uuid> = dead.iter().map(|d| d["f:spin"].parse().unwrap()).collect();
    assert_eq!(dead_spins, HashSet::from([poisoned, second]));
    for d in &dead {
        assert!(d["reason"].contains("22P05"), "the ledger's reason: {d:?}");
    }

    // A settler that crashed between dead-lettering and acking writes the
    // dead letter again when the entry is redelivered: a copy, counted once.
    let mut conn = app.redis_conn().await;
    let mut copy = redis::cmd("XADD");
    copy.arg(format!("pw:{{{}}}:dead", spec.id)).arg("*");
    for (k, v) in &dead[0] {
        copy.arg(k).arg(v);
    }
    let _: String = copy.query_async(&mut conn).await.unwrap();

    // Finance sees them: each prize adds up with the dead letters, the
    // campaign is not ok while they are there.
    let s = summary(&app, &spec.id).await;
    assert_eq!(s["dead_letters"], 3, "{s}");
    assert_eq!(s["ok"], false, "{s}");
    let dead_counted: i64 = s["prizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["dead_lettered"].as_i64().unwrap())
        .sum();
    assert_eq!(dead_counted, 2, "{s}");
    assert!(
        s["prizes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["ok"] == true),
        "{s}"
    );

    // Listed with the reason; a plain retry cannot settle them (exit 1), one
    // without the context does.
    let (redis, db) = (redis_url(), app.db.url.clone());
    let (ok, out) = cli(&["dead-letters", "list", &spec.id], &redis, &db);
    assert!(
        ok && out.contains("22P05") && out.contains(&poisoned.to_string()),
        "{out}"
    );
    let (ok, out) = cli(&["dead-letters", "retry", &spec.id], &redis, &db);
    assert!(
        !ok && out.contains("0 dead letter(s) settled, 3 remain"),
        "{out}"
    );
    let (ok, out) = cli(
        &["dead-letters", "retry", &spec.id, "--drop-context"],
        &redis,
        &db,
    );
    assert!(
        ok && out.contains("3 dead letter(s) settled, 0 remain"),
        "{out}"
    );
    let context: Option<String> =
        sqlx::query_scalar("SELECT context::text FROM rewards WHERE spin_id = $1")
            .bind(poisoned)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(context, None);
    assert!(dead_letters(&app, &spec.id).await.is_empty());
    let s = summary(&app, &spec.id).await;
    assert_eq!(s["ok"], true, "{s}");
    let (ok, out) = cli(&["reconcile", &spec.id], &redis, &db);
    assert!(ok, "{out}");
}

#[tokio::test]
async fn a_data_error_is_told_from_a_connection_error() {
    let app = TestApp::spawn().await;
    let pool = &app.db.pool;
    for data in [
        r#"SELECT '{"x":"\u0000"}'::jsonb"#,
        "SELECT 1/0",
        "SELECT 'x'::int",
        "SELECT E'a\\x00'::text",
    ] {
        let e = sqlx::query(data).execute(pool).await.unwrap_err();
        assert!(is_data_error(&e), "{data}: {e}");
    }
    let e = sqlx::query("SELECT * FROM no_such_table")
        .execute(pool)
        .await
        .unwrap_err();
    assert!(
        !is_data_error(&e),
        "a missing table fails every entry alike: {e}"
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy(&format!("postgres://postgres@127.0.0.1:{closed}/x"))
        .unwrap();
    let e = sqlx::query("SELECT 1")
        .execute(&unreachable)
        .await
        .unwrap_err();
    assert!(!is_data_error(&e), "{e}");
}

#[tokio::test]
async fn stuck_settlement_fails_the_summary_reconcile_and_the_readiness_check() {
    // No settler runs: settlement is stuck from the first spin on.
    let app = TestApp::spawn_with(|s| {
        s.settle = SettleSettings {
            enabled: false,
            max_lag_ms: 500,
            ..fast()
        }
    })
    .await;
    let spec = Spec::new("stuck");
    app.apply(&spec.yaml()).await;
    assert_eq!(app.spin(&spec.id, "u1", "k1").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let s = summary(&app, &spec.id).await;
    assert_eq!(
        (&s["ok"], &s["settlement_behind"]),
        (&serde_json::json!(false), &serde_json::json!(true)),
        "{s}"
    );
    assert!(s["problems"].to_string().contains("ms old"), "{s}");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200, "spins do not need the ledger");
    let ready: serde_json::Value = ready.json().await.unwrap();
    let check = ready["checks"]["settlement"].as_str().unwrap().to_owned();
    assert!(
        check.contains(&spec.id) && check.contains("behind"),
        "{ready}"
    );
    let (ok, out) = cli(
        &["reconcile", &spec.id, "--max-lag-ms", "500"],
        &redis_url(),
        &app.db.url,
    );
    assert!(!ok && out.contains("oldest unsettled entry is"), "{out}");

    settle_all(&app, &spec.id, "unstuck").await;
    assert_eq!(summary(&app, &spec.id).await["ok"], true);
    let ready: serde_json::Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["checks"]["settlement"], "ok", "{ready}");
    let (ok, out) = cli(
        &["reconcile", &spec.id, "--max-lag-ms", "500"],
        &redis_url(),
        &app.db.url,
    );
    assert!(ok, "{out}");
}

/// Raw JSON text: every escape JSON has (and some it refuses), numbers of every
/// shape and size, nesting past the limit. Not all of it is valid JSON.
fn json_text() -> impl Strategy<Value = String> {
    use proptest::prelude::*;
    let string = prop::collection::vec(
        prop_oneof![
            "[a-z ]{0,4}",
            Just("\\u0000".to_owned()),
            Just("\\ud83d\\ude00".to_owned()),
            Just("\\ud800".to_owned()),
            Just("\\udc00x".to_owned()),
            Just("\\u2028\\u0085\\u001f".to_owned()),
            Just("\\\"\\\\\\/\\b\\f\\n\\r\\t".to_owned()),
            Just("é\u{2028}😀".to_owned()),
            Just("\\x".to_owned()),
        ],
        0..4,
    )
    .prop_map(|parts| format!("\"{}\"", parts.concat()));
    let number = "-?(0|[1-9][0-9]{0,25})(\\.[0-9]{1,25})?([eE][+-]?[0-9]{1,6})?";
    let leaf = prop_oneof![
        string.clone(),
        number.prop_map(|n| n),
        Just("true".to_owned()),
        Just("null".to_owned()),
    ];
    leaf.prop_recursive(40, 200, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((string.clone(), inner), 0..4).prop_map(|v| {
                let members: Vec<String> = v.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
    .prop_map(|v| format!("{{\"v\":{v}}}"))
}

#[tokio::test]
async fn random_spin_bodies_are_settled_or_refused_and_settlement_never_stalls() {
    let app = TestApp::spawn_with(|s| s.settle = fast()).await;
    let spec = Spec::new("anybody");
    app.apply(&spec.yaml()).await;
    let mut runner = proptest::test_runner::TestRunner::default();
    let strategy = json_text();
    let bodies: Vec<String> = (0..300)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect();
    let mut answered: Vec<(Uuid, String)> = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let (status, answer) = json(
            spin_raw(
                &app,
                &spec.id,
                &format!("u{}", i % 50),
                &format!("r{i}"),
                body,
            )
            .await,
        )
        .await;
        match status {
            200 => answered.push((
                answer["spin_id"].as_str().unwrap().parse().unwrap(),
                body.clone(),
            )),
            400 | 413 => assert!(
                answer["detail"].as_str().is_some_and(|d| d.len() < 1000),
                "{body}: {answer}"
            ),
            _ => panic!("{status} for {body}: {answer}"),
        }
    }
    assert!(
        answered.len() > 30,
        "the strategy makes mostly valid bodies: {} of 300",
        answered.len()
    );
    assert!(
        settled_within(&app, &spec.id, Duration::from_secs(30)).await,
        "settlement stalled: {:?}",
        lag(&app, &spec.id).await
    );
    let dead = dead_letters(&app, &spec.id).await;
    assert!(
        dead.is_empty(),
        "the API let through what the ledger refuses: {dead:?}"
    );
    let settled: HashMap<Uuid, Option<String>> = sqlx::query_as::<_, (Uuid, Option<String>)>(
        "SELECT spin_id, context::text FROM rewards WHERE campaign_id = $1",
    )
    .bind(&spec.id)
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    for (spin, body) in &answered {
        let stored = settled
            .get(spin)
            .unwrap_or_else(|| panic!("{spin} ({body}) not settled"))
            .as_deref();
        // The ledger's text is the same context: recovery restores the
        // fingerprint from it.
        let canonical =
            |t: &str| prizewheel::domain::context::canonical(t.as_bytes(), usize::MAX).unwrap();
        assert_eq!(
            canonical(stored.expect("a context")),
            canonical(body),
            "{body}"
        );
    }
}
