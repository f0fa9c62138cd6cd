//! Finance: listing, exporting and reconciling the ledger.

use crate::support::helpers::{Spec, TestApp, token};
use crate::support::proxy::{
    assert_store_unavailable, lock_table, service_with_postgres_behind_proxy,
};
use crate::support::settling::{draws, settle_all, settled_ids};
use prizewheel::domain::CampaignId;
use serde_json::Value;
use std::collections::HashSet;
use std::time::{Duration, Instant};

async fn get(app: &TestApp, path: &str, roles: &[&str]) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.address))
        .bearer_auth(token("fiona-finance", roles))
        .send()
        .await
        .unwrap()
}

/// A settled campaign: 300 draws, a bounded prize that runs out.
async fn settled_campaign(app: &TestApp) -> (Spec, CampaignId) {
    let mut spec = Spec::new("fin");
    spec.prizes = vec![("gold", 1000, Some(40)), ("none", 1000, None)];
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    draws(app, &id, 30, 300, 0).await;
    settle_all(app, &spec.id, "fin").await;
    (spec, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewards_pages_filters_and_csv() {
    let app = TestApp::spawn().await;
    let (spec, _) = settled_campaign(&app).await;
    let base = format!("/v1/finance/campaigns/{}/rewards", spec.id);

    // All pages of 7: every row once, in order.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..100 {
        let q = after
            .as_ref()
            .map_or(String::new(), |a| format!("&after={a}"));
        let page: Value = get(&app, &format!("{base}?limit=7{q}"), &["finance"])
            .await
            .json()
            .await
            .unwrap();
        for r in page["rewards"].as_array().unwrap() {
            seen.push((
                r["spun_at"].as_str().unwrap().to_owned(),
                r["spin_id"].as_str().unwrap().to_owned(),
            ));
        }
        match page["next_after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 300);
    let unique: HashSet<&String> = seen.iter().map(|(_, id)| id).collect();
    assert_eq!(unique.len(), 300);
    // Compare instants, not strings: RFC 3339 drops a zero fraction
    // ("…:30Z" sorts after "…:30.001Z" as text).
    let instants: Vec<_> = seen
        .iter()
        .map(|(t, id)| (chrono::DateTime::parse_from_rfc3339(t).unwrap(), id))
        .collect();
    let mut sorted = instants.clone();
    sorted.sort();
    assert_eq!(instants, sorted, "ordered by (spun_at, spin_id)");

    let gold: Value = get(&app, &format!("{base}?prize=gold&limit=1000"), &["finance"])
        .await
        .json()
        .await
        .unwrap();
    let gold = gold["rewards"].as_array().unwrap();
    assert_eq!(gold.len(), 40, "the whole stock, settled");
    assert!(gold.iter().all(|r| r["prize_id"] == "gold"
        && r["prize_name"] == "Prize gold"
        && r["amount"] == "1.5000"));
    let user: Value = get(&app, &format!("{base}?user=s3&limit=1000"), &["finance"])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(user["rewards"].as_array().unwrap().len(), 10);
    let future: Value = get(
        &app,
        &format!("{base}?from=2999-01-01T00:00:00Z"),
        &["finance"],
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(future["rewards"].as_array().unwrap().is_empty());

    let csv = app
        .client
        .get(format!("{}{base}", app.address))
        .bearer_auth(token("f", &["finance"]))
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert_eq!(
        csv.headers()["content-disposition"],
        format!("attachment; filename=\"rewards-{}.csv\"", spec.id),
        "named after the campaign"
    );
    let text = csv.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header[..8],
        [
            "spin_id",
            "spun_at",
            "user_id",
            "prize_id",
            "prize_name",
            "amount",
            "currency",
            "context"
        ],
        "what finance reads first; the draw's internals last"
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 300);
    let csv_ids: HashSet<String> = rows.iter().map(|r| r[0].to_owned()).collect();
    assert_eq!(csv_ids.len(), 300);
}

#[tokio::test]
async fn finance_needs_its_role_and_valid_parameters() {
    let app = TestApp::spawn().await;
    let base = "/v1/finance/campaigns/any/rewards";
    assert_eq!(get(&app, base, &["marketing"]).await.status(), 403);
    let r = app
        .client
        .get(format!("{}{base}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    for q in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "from=yesterday",
        "after=garbage",
        "prize=Gold",
        "colour=red",
        "from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
    ] {
        let r = get(&app, &format!("{base}?{q}"), &["finance"]).await;
        assert_eq!(r.status(), 400, "{q}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["code"], "invalid_query", "{q}");
    }
    assert_eq!(
        get(&app, "/v1/finance/campaigns/nope/summary", &["finance"])
            .await
            .status(),
        404
    );
}

/// Pages read while new rewards settle never repeat a row and miss none of the
/// rows that existed when the listing started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_is_stable_under_concurrent_inserts() {
    let app = TestApp::spawn().await;
    let (spec, id) = settled_campaign(&app).await;
    let before: HashSet<String> = settled_ids(&app.db.pool, &spec.id)
        .await
        .iter()
        .map(|u| u.to_string())
        .collect();
    let writer = {
        let pg = app.db.pool.clone();
        let campaign = spec.id.clone();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let settler = prizewheel::settle::Settler::new(
            crate::support::helpers::redis_target(),
            pg,
            crate::support::settling::fast(),
            "pager".into(),
        );
        (tokio::spawn(settler.run(stopped)), stop, campaign)
    };
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut offset = 10_000;
    for _ in 0..200 {
        draws(&app, &id, 30, 20, offset).await; // more rows arrive between pages
        offset += 20;
        let q = after
            .as_ref()
            .map_or(String::new(), |a| format!("&after={a}"));
        let page: Value = get(
            &app,
            &format!("/v1/finance/campaigns/{}/rewards?limit=25{q}", spec.id),
            &["finance"],
        )
        .await
        .json()
        .await
        .unwrap();
        seen.extend(
            page["rewards"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["spin_id"].as_str().unwrap().to_owned()),
        );
        match page["next_after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => break,
        }
    }
    let (task, stop, _) = writer;
    stop.send(true).unwrap();
    task.await.unwrap();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no row twice");
    assert!(
        before.iter().all(|id| unique.contains(id)),
        "every row that existed is listed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_and_reconcile_agree_and_catch_tampering() {
    let app = TestApp::spawn().await;
    let (spec, id) = settled_campaign(&app).await;
    // Some draws not settled yet: in flight, still consistent.
    draws(&app, &id, 30, 50, 50_000).await;
    let s: Value = get(
        &app,
        &format!("/v1/finance/campaigns/{}/summary", spec.id),
        &["finance"],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(s["ok"], true, "{s}");
    let total = |field: &str| {
        s["prizes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[field].as_i64().unwrap())
            .sum::<i64>()
    };
    assert_eq!(total("awarded"), 350);
    assert_eq!(total("settled"), 300);
    assert_eq!(total("in_flight"), 50);
    let gold = s["prizes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["prize_id"] == "gold")
        .unwrap();
    assert_eq!(gold["stock"], 40);
    assert_eq!(gold["remaining"], 0);
    assert_eq!(gold["settled_amount"], "60.0000");

    let reconcile = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_prizewheel"))
            .args(["reconcile", &spec.id])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("REDIS_URL", crate::support::helpers::redis_url())
            .env("DATABASE_URL", &app.db.url)
            .output()
            .unwrap()
    };
    settle_all(&app, &spec.id, "fin").await;
    let out = reconcile();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("reconciled"), "{text}");

    // Tamper: a settled reward disappears from the ledger.
    sqlx::query("DELETE FROM rewards WHERE spin_id = (SELECT spin_id FROM rewards WHERE campaign_id = $1 LIMIT 1)")
        .bind(&spec.id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let out = reconcile();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("MISMATCH") && text.contains("problem:"),
        "{text}"
    );
}

/// Finance queries in flight when PostgreSQL vanishes (their connections never
/// hear from it again: a dead host, a moved address) get a 503 within
/// `database.query_timeout_ms`, and their connections are closed, not handed
/// back to the pool, where a check on a silent peer would hold the slot for
/// good: with a pool of 2 and both lost, the requests after are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finance_queries_on_a_vanished_postgres_answer_503_in_time_and_keep_no_slot() {
    let (proxy, app) = service_with_postgres_behind_proxy(|s| {
        s.database.max_connections = 2;
        s.database.query_timeout_ms = std::num::NonZeroU64::new(500).unwrap();
    })
    .await;
    let (spec, _) = settled_campaign(&app).await;
    let rewards = format!("/v1/finance/campaigns/{}/rewards?limit=10", spec.id);
    let summary = format!("/v1/finance/campaigns/{}/summary", spec.id);
    for path in [&rewards, &summary] {
        assert_eq!(get(&app, path, &["finance"]).await.status(), 200, "{path}");
    }

    // Two listings wait at the server (the table is locked), then their
    // connections go silent for good.
    let mut lock = lock_table(&app.db.url, "rewards").await;
    let started = Instant::now();
    let stranding = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        proxy.strand();
    };
    let (a, b, ()) = tokio::join!(
        get(&app, &rewards, &["finance"]),
        get(&app, &rewards, &["finance"]),
        stranding
    );
    let took = started.elapsed();
    for r in [a, b] {
        assert_store_unavailable(r).await;
    }
    assert!(
        took < Duration::from_millis(1_500),
        "answered in {took:?} (bound 500 ms)"
    );
    sqlx::query("COMMIT").execute(&mut lock).await.unwrap();

    // New connections work; both old slots must be free again.
    for path in [&rewards, &summary, &rewards, &summary] {
        assert_eq!(
            get(&app, path, &["finance"]).await.status(),
            200,
            "{path} after the strand (a pool slot kept by a silent connection?)"
        );
    }
}

/// A prize with nothing settled yet still has its currency in the summary.
#[tokio::test]
async fn the_summary_names_every_prize_currency_before_anything_settles() {
    let app = TestApp::spawn().await;
    let spec = Spec::new("fresh");
    app.apply(&spec.yaml()).await;
    let s: Value = get(
        &app,
        &format!("/v1/finance/campaigns/{}/summary", spec.id),
        &["finance"],
    )
    .await
    .json()
    .await
    .unwrap();
    let prizes = s["prizes"].as_array().unwrap();
    assert_eq!(prizes.len(), 2, "{s}");
    assert!(prizes.iter().all(|p| p["currency"] == "INR"), "{s}");
}

/// The summary and `reconcile` hold the budget against the value awarded:
/// Redis's count (meta `bs`) against the ledger's; a budget lowered below
/// what was already awarded is a notice, not a failure; a ledger spend above
/// the budget that the draw could not have made fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_is_reconciled_and_a_budget_set_below_the_spend_is_a_notice() {
    use crate::support::helpers::{cli, draw, redis_url};
    use prizewheel::domain::UserId;
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("fin-budget");
    spec.prizes = vec![("gold", 1, Some(100)), ("none", 1, None)];
    spec.amounts = [("gold", "5.00"), ("none", "0")]
        .into_iter()
        .map(|(p, a)| (p, a.to_owned()))
        .collect();
    spec.budget = Some("100.00".into());
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    let user = UserId::parse("bea").unwrap();
    let mut n = 0;
    // R = 0 draws gold (R mod 2), 1 the fallback.
    let mut draws_of = |count: u64, r: u64| {
        let (app, id, user) = (&app, &id, &user);
        let from = n;
        n += count;
        async move {
            let mut prizes = Vec::new();
            for k in from..from + count {
                prizes.push(draw(app, id, user, k, r).await.prize_id);
            }
            prizes
        }
    };
    assert!(draws_of(8, 0).await.iter().all(|p| p == "gold"));
    settle_all(&app, &spec.id, "fin-budget").await;
    let summary = || async {
        get(
            &app,
            &format!("/v1/finance/campaigns/{}/summary", spec.id),
            &["finance"],
        )
        .await
        .json::<Value>()
        .await
        .unwrap()
    };
    let dec = |v: &Value| {
        v.as_str()
            .unwrap()
            .parse::<rust_decimal::Decimal>()
            .unwrap()
    };
    let s = summary().await;
    let b = &s["budget"];
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(
        (&b["amount"], &b["currency"]),
        (&"100.00".into(), &"INR".into())
    );
    assert_eq!(dec(&b["spent_ledger"]), 40.into(), "{b}");
    assert_eq!(dec(&b["spent_redis"]), 40.into());
    assert_eq!(dec(&b["spent_unsettled"]), 0.into());
    assert_eq!(dec(&b["left"]), 60.into());
    assert_eq!(
        dec(&b["spent_when_set"]),
        0.into(),
        "set at the first apply"
    );
    assert_eq!(b["set_below_spent"], false);

    // Drawn, not yet settled: in flight, still adding up.
    assert!(draws_of(2, 0).await.iter().all(|p| p == "gold"));
    let s = summary().await;
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(dec(&s["budget"]["spent_unsettled"]), 10.into());
    assert_eq!(dec(&s["budget"]["spent_redis"]), 50.into());

    // Lowered below the 50.00 awarded: legal. Nothing with a value is drawn
    // since; reported, not failed.
    spec.budget = Some("30.00".into());
    app.apply(&spec.yaml()).await;
    assert!(draws_of(3, 0).await.iter().all(|p| p == "none"));
    settle_all(&app, &spec.id, "fin-budget").await;
    let s = summary().await;
    let b = &s["budget"];
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(b["set_below_spent"], true, "{b}");
    assert_eq!(dec(&b["spent_when_set"]), 50.into());
    assert_eq!(dec(&b["left"]), 0.into());
    assert!(
        s["notices"][0].as_str().unwrap().contains("was set below"),
        "{s}"
    );
    let (ok, out) = cli(&["reconcile", &spec.id], &redis_url(), &app.db.url);
    assert!(ok, "{out}");
    assert!(
        out.contains("budget: 30.00 INR; value awarded 50.0000 INR (Redis), settled 50.0000")
            && out
                .contains("note: budget: 30.00 INR was set below the 50.0000 INR already awarded"),
        "{out}"
    );

    // Raised to 60.00 on 50.00 awarded: two more golds, then the fallback.
    spec.budget = Some("60.00".into());
    app.apply(&spec.yaml()).await;
    let drawn = draws_of(4, 0).await;
    assert_eq!(drawn, ["gold", "gold", "none", "none"]);
    settle_all(&app, &spec.id, "fin-budget").await;
    let s = summary().await;
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["budget"]["set_below_spent"], false);
    assert_eq!(dec(&s["budget"]["spent_ledger"]), 60.into());
    assert_eq!(dec(&s["budget"]["spent_when_set"]), 50.into());

    // Tamper: a gold drawn after the raise is worth 50.00 in the ledger.
    sqlx::query(
        "UPDATE rewards SET amount = 50 WHERE spin_id = (SELECT spin_id FROM rewards
         WHERE campaign_id = $1 AND prize_id = 'gold' ORDER BY stream_ms DESC, stream_seq DESC LIMIT 1)",
    )
    .bind(&spec.id)
    .execute(&app.db.pool)
    .await
    .unwrap();
    let s = summary().await;
    assert_eq!(s["ok"], false, "{s}");
    assert_eq!(s["budget"]["ok"], false);
    let problems = s["problems"].to_string();
    assert!(
        problems.contains("above the budget of 60.00 INR")
            && problems.contains("Redis counted 60.0000 INR awarded"),
        "{problems}"
    );
    let (ok, out) = cli(&["reconcile", &spec.id], &redis_url(), &app.db.url);
    assert!(!ok, "{out}");
    assert!(
        out.contains("problem: budget: the ledger's rewards add up to 105.0000 INR"),
        "{out}"
    );
}

/// A settled code-prize campaign through HTTP: its spins' answers, by spin id,
/// with the code each win carried.
async fn settled_codes(app: &TestApp, prefix: &str) -> (Spec, Vec<(String, Value)>) {
    let spec = crate::codes::coupons(prefix, 5);
    app.apply(&spec.yaml()).await;
    let codes: Vec<String> = (0..20).map(|i| format!("FC-{i:02}")).collect();
    crate::codes::upload(app, &spec.id, "coupon", codes.join("\n")).await;
    let mut answers = Vec::new();
    for k in 0..16 {
        let res = app
            .spin(&spec.id, &format!("shopper{}", k % 4), &format!("k{k}"))
            .await;
        assert_eq!(res.status(), 200);
        let v: Value = res.json().await.unwrap();
        answers.push((v["spin_id"].as_str().unwrap().to_owned(), v));
    }
    settle_all(app, &spec.id, prefix).await;
    (spec, answers)
}

/// The listing and the CSV export show each reward's code, the one its spin
/// answered (null / empty for the fallback); `code=` finds the reward that
/// handed one out; the summary counts each code prize's pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewards_show_their_codes_and_the_summary_counts_the_pools() {
    let app = TestApp::spawn().await;
    let (spec, answers) = settled_codes(&app, "fin-codes").await;
    let wins: Vec<&(String, Value)> = answers
        .iter()
        .filter(|(_, v)| v["prize"]["id"] == "coupon")
        .collect();
    // 16 spins at 5 in 10: no win at all has a chance of 1.5e-5.
    assert!(!wins.is_empty(), "{answers:?}");
    let base = format!("/v1/finance/campaigns/{}/rewards", spec.id);

    let page: Value = get(&app, &format!("{base}?limit=1000"), &["finance"])
        .await
        .json()
        .await
        .unwrap();
    let rows = page["rewards"].as_array().unwrap();
    assert_eq!(rows.len(), 16);
    for (spin_id, answer) in &answers {
        let row = rows
            .iter()
            .find(|r| r["spin_id"] == spin_id.as_str())
            .unwrap();
        assert_eq!(row["prize_id"], answer["prize"]["id"]);
        // The fallback has no code: null in the listing, absent in the answer.
        let code = answer["prize"].get("code").cloned().unwrap_or(Value::Null);
        assert_eq!(row["code"], code, "{row}");
    }
    // Filters still apply, and `code` finds its one reward.
    let coupons: Value = get(
        &app,
        &format!("{base}?prize=coupon&limit=1000"),
        &["finance"],
    )
    .await
    .json()
    .await
    .unwrap();
    let coupons = coupons["rewards"].as_array().unwrap();
    assert_eq!(coupons.len(), wins.len());
    assert!(coupons.iter().all(|r| r["code"].is_string()));
    let (spin_id, answer) = wins[0];
    let code = answer["prize"]["code"].as_str().unwrap();
    let found: Value = get(&app, &format!("{base}?code={code}"), &["finance"])
        .await
        .json()
        .await
        .unwrap();
    let found = found["rewards"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["spin_id"], spin_id.as_str());
    let none: Value = get(&app, &format!("{base}?code=NOT-LOADED"), &["finance"])
        .await
        .json()
        .await
        .unwrap();
    assert!(none["rewards"].as_array().unwrap().is_empty());
    for bad in ["a%20b", "%C3%A9", &"X".repeat(65)] {
        let r = get(&app, &format!("{base}?code={bad}"), &["finance"]).await;
        assert_eq!(r.status(), 400, "{bad}");
    }

    let csv = app
        .client
        .get(format!("{}{base}", app.address))
        .bearer_auth(token("f", &["finance"]))
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header[7..9], ["context", "code"], "{header:?}");
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(records.len(), 16);
    for (spin_id, answer) in &answers {
        let rec = records.iter().find(|r| &r[0] == spin_id).unwrap();
        assert_eq!(&rec[8], answer["prize"]["code"].as_str().unwrap_or(""));
    }
    // An export of one code is named after it.
    let one = app
        .client
        .get(format!("{}{base}?code={code}", app.address))
        .bearer_auth(token("f", &["finance"]))
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(
        one.headers()["content-disposition"],
        format!(
            "attachment; filename=\"rewards-{}-code-{code}.csv\"",
            spec.id
        )
    );
    assert_eq!(one.text().await.unwrap().lines().count(), 2);

    // The summary: the pool per code prize, nothing for the fallback.
    let summary = || async {
        get(
            &app,
            &format!("/v1/finance/campaigns/{}/summary", spec.id),
            &["finance"],
        )
        .await
        .json::<Value>()
        .await
        .unwrap()
    };
    let prize = |s: &Value, id: &str| {
        s["prizes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["prize_id"] == id)
            .cloned()
            .unwrap()
    };
    let s = summary().await;
    assert_eq!(s["ok"], true, "{s}");
    let n = wins.len() as i64;
    let c = &prize(&s, "coupon")["codes"];
    assert_eq!(
        (
            &c["loaded"],
            &c["withdrawn"],
            &c["available"],
            &c["awarded"],
            &c["settled"],
            &c["ok"]
        ),
        (
            &20.into(),
            &0.into(),
            &(20 - n).into(),
            &n.into(),
            &n.into(),
            &true.into()
        ),
        "{s}"
    );
    assert_eq!(prize(&s, "none")["codes"], Value::Null, "{s}");
    assert_eq!(
        (&s["codes"]["awarded"], &s["codes"]["settled"]),
        (&n.into(), &n.into())
    );
    // A withdrawal leaves the pool; the codes handed out are still its rewards'.
    let (status, _) = crate::codes::codes_call(
        &app,
        reqwest::Method::DELETE,
        &spec.id,
        "coupon",
        "FC-19\nFC-18\n".into(),
    )
    .await;
    assert_eq!(status, 200);
    let s = summary().await;
    let c = &prize(&s, "coupon")["codes"];
    let available = c["available"].as_i64().unwrap();
    let withdrawn = c["withdrawn"].as_i64().unwrap();
    assert!(withdrawn <= 2 && available == 20 - n - withdrawn, "{c}");
    assert_eq!((&c["awarded"], &s["ok"]), (&n.into(), &true.into()), "{s}");
}

/// `reconcile` counts codes as it counts units: handed out in Redis = the
/// ledger's rewards with a code + in flight + dead-lettered; a code prize's
/// settled rewards each have a code. Tampering with either side fails it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_counts_codes_like_units_and_catches_tampering() {
    use crate::support::helpers::{cli, draw, redis_url};
    use prizewheel::domain::UserId;
    let app = TestApp::spawn().await;
    let spec = crate::codes::coupons("fin-rec-codes", 5);
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    let codes: Vec<String> = (0..30).map(|i| format!("RC-{i:02}")).collect();
    crate::codes::upload(&app, &spec.id, "coupon", codes.join("\n")).await;
    let user = UserId::parse("rita").unwrap();
    // R mod 10 below 5 draws the coupon, the rest the fallback.
    for n in 0..12 {
        let d = draw(&app, &id, &user, n, if n % 3 < 2 { n % 3 } else { 9 }).await;
        assert_eq!(d.prize_id, if n % 3 < 2 { "coupon" } else { "none" });
        assert_eq!(d.code.is_some(), d.prize_id == "coupon");
    }
    settle_all(&app, &spec.id, "fin-rec-codes").await;
    let reconcile = || cli(&["reconcile", &spec.id], &redis_url(), &app.db.url);
    let summary = || async {
        get(
            &app,
            &format!("/v1/finance/campaigns/{}/summary", spec.id),
            &["finance"],
        )
        .await
        .json::<Value>()
        .await
        .unwrap()
    };
    let (ok, out) = reconcile();
    assert!(ok, "{out}");
    assert!(
        out.contains("codes coupon: 30 loaded, 0 withdrawn, 22 available; 8 awarded, 8 settled, 0 in flight, 0 dead-lettered  ok")
            && out.contains("codes: 8 handed out (Redis), 8 settled, 0 in flight, 0 dead-lettered  ok"),
        "{out}"
    );

    // Drawn, not settled yet: in flight, still adding up.
    for n in 12..15 {
        assert_eq!(draw(&app, &id, &user, n, 0).await.prize_id, "coupon");
    }
    let s = summary().await;
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(
        (
            &s["codes"]["awarded"],
            &s["codes"]["settled"],
            &s["codes"]["in_flight"]
        ),
        (&11.into(), &8.into(), &3.into()),
        "{s}"
    );
    settle_all(&app, &spec.id, "fin-rec-codes").await;
    assert!(reconcile().0);

    // Tamper: a coupon reward loses its code in the ledger.
    let (spin_id, code): (uuid::Uuid, String) = sqlx::query_as(
        "SELECT spin_id, code FROM rewards WHERE campaign_id = $1 AND code IS NOT NULL
         ORDER BY stream_ms, stream_seq LIMIT 1",
    )
    .bind(&spec.id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    let set_code = |code: Option<String>| {
        let pool = app.db.pool.clone();
        async move {
            sqlx::query("UPDATE rewards SET code = $2 WHERE spin_id = $1")
                .bind(spin_id)
                .bind(code)
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    set_code(None).await;
    let (ok, out) = reconcile();
    assert!(!ok, "{out}");
    assert!(
        out.contains("problem: coupon: codes awarded 11 (loaded 30 - withdrawn 0 - available 19) != rewards with a code: settled 10")
            && out.contains("problem: coupon: 1 settled reward(s) drawn while it was a code prize carry no code")
            && out.contains("problem: codes: 11 handed out in Redis")
            && out.contains("MISMATCH"),
        "{out}"
    );
    set_code(Some(code.clone())).await;
    assert!(reconcile().0);

    // Tamper: Redis counts a code no reward has.
    let mut conn = app.redis_conn().await;
    let awarded = format!("pw:{{{}}}:codes-awarded", spec.id);
    let _: i64 = redis::cmd("SADD")
        .arg(&awarded)
        .arg("RC-STRAY")
        .query_async(&mut conn)
        .await
        .unwrap();
    let s = summary().await;
    assert_eq!(
        (&s["ok"], &s["codes"]["ok"]),
        (&false.into(), &false.into()),
        "{s}"
    );
    assert!(
        s["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("codes: 12 handed out in Redis"),
        "{s}"
    );
    let _: i64 = redis::cmd("SREM")
        .arg(&awarded)
        .arg("RC-STRAY")
        .query_async(&mut conn)
        .await
        .unwrap();

    // Tamper: a fallback reward is given a code.
    let none: uuid::Uuid = sqlx::query_scalar(
        "SELECT spin_id FROM rewards WHERE campaign_id = $1 AND prize_id = 'none' LIMIT 1",
    )
    .bind(&spec.id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE rewards SET code = 'RC-EXTRA' WHERE spin_id = $1")
        .bind(none)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let (ok, out) = reconcile();
    assert!(!ok, "{out}");
    assert!(
        out.contains("problem: none: codes awarded 0")
            && out.contains("problem: codes: 11 handed out in Redis (pw:{")
            && out.contains("settled 12 + in flight 0 + dead-lettered 0"),
        "{out}"
    );
    sqlx::query("UPDATE rewards SET code = NULL WHERE spin_id = $1")
        .bind(none)
        .execute(&app.db.pool)
        .await
        .unwrap();
    assert!(reconcile().0);

    // A draw the ledger refused keeps its code in the dead-letter stream
    // (`f:code`): counted there, as its unit is.
    let (stream_id, amount): (String, rust_decimal::Decimal) =
        sqlx::query_as("SELECT stream_id, amount FROM rewards WHERE spin_id = $1")
            .bind(spin_id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    sqlx::query("DELETE FROM rewards WHERE spin_id = $1")
        .bind(spin_id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(format!("pw:{{{}}}:dead", spec.id))
        .arg("*")
        .arg(&[
            ("source_id", stream_id.as_str()),
            ("reason", "refused by the ledger (test)"),
            ("f:type", "spin"),
            ("f:spin", &spin_id.to_string()),
            ("f:user", "rita"),
            ("f:prize", "coupon"),
            ("f:amount", &amount.to_string()),
            ("f:currency", "INR"),
            ("f:code", &code),
        ])
        .query_async(&mut conn)
        .await
        .unwrap();
    let s = summary().await;
    let coupon = s["prizes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["prize_id"] == "coupon")
        .unwrap();
    assert_eq!(coupon["ok"], true, "{s}");
    assert_eq!(
        (
            &coupon["codes"]["dead_lettered"],
            &coupon["codes"]["settled"]
        ),
        (&1.into(), &10.into())
    );
    assert_eq!(
        (&s["codes"]["ok"], &s["codes"]["dead_lettered"]),
        (&true.into(), &1.into()),
        "{s}"
    );
    // Failed only for the dead letter itself, waiting for a retry.
    assert_eq!(s["ok"], false);
    assert_eq!(s["problems"].as_array().unwrap().len(), 1, "{s}");
}
