//! Marketing's admin API.

use crate::support::helpers::{Spec, TestApp, token};
use serde_json::Value;

/// `GET /v1/admin/campaigns/{id}` with marketing's role.
async fn get(app: &TestApp, id: &str) -> reqwest::Response {
    app.client
        .get(format!("{}/v1/admin/campaigns/{id}", app.address))
        .bearer_auth(token("m", &["marketing"]))
        .send()
        .await
        .unwrap()
}

async fn put(app: &TestApp, id: &str, yaml: String, roles: &[&str]) -> reqwest::Response {
    app.client
        .put(format!("{}/v1/admin/campaigns/{id}", app.address))
        .bearer_auth(token("mallory-marketing", roles))
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn marketing_applies_plans_and_reads_a_campaign() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("admin");
    app.track(&prizewheel::domain::CampaignId::parse(&spec.id).unwrap());

    let r = put(&app, &spec.id, spec.yaml(), &["marketing"]).await;
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["version"], 1);
    assert_eq!(report["changed"], true);

    spec.prizes[0].2 = Some(25);
    let plan: Value = app
        .client
        .get(format!(
            "{}/v1/admin/campaigns/{}/plan",
            app.address, spec.id
        ))
        .bearer_auth(token("m", &["marketing"]))
        .body(spec.yaml())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(plan["live_version"], 1);
    assert_eq!(plan["changes"][0]["path"], "prizes.gold.stock");
    assert_eq!(plan["changes"][0]["from"], "10");
    assert_eq!(plan["changes"][0]["to"], "25");
    let posted: Value = app
        .client
        .post(format!(
            "{}/v1/admin/campaigns/{}/plan",
            app.address, spec.id
        ))
        .bearer_auth(token("m", &["marketing"]))
        .body(spec.yaml())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        posted, plan,
        "POST serves clients that cannot send a body with GET"
    );

    let live: Value = get(&app, &spec.id).await.json().await.unwrap();
    assert_eq!(live["version"], 1, "plan changed nothing");
    assert_eq!(live["prizes"][0]["stock"], 10);
    assert_eq!(live["prizes"][0]["remaining"], 10);
    assert_eq!(live["prizes"][1]["remaining"], Value::Null, "unlimited");

    let who: (String,) =
        sqlx::query_as("SELECT applied_by FROM campaign_versions WHERE campaign_id = $1")
            .bind(&spec.id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(
        who.0, "mallory-marketing",
        "the token's subject is recorded"
    );
}

#[tokio::test]
async fn admin_needs_the_marketing_role_and_valid_yaml() {
    let app = TestApp::spawn().await;
    let spec = Spec::new("admin-deny");
    app.track(&prizewheel::domain::CampaignId::parse(&spec.id).unwrap());

    for roles in [&[][..], &["finance"][..]] {
        let r = put(&app, &spec.id, spec.yaml(), roles).await;
        assert_eq!(r.status(), 403);
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "forbidden");
    }

    let bad = spec
        .yaml()
        .replace("weight: 1\n", "weight: 0\n")
        .replace("timezone: UTC", "timezone: Mars/Olympus");
    let r = put(&app, &spec.id, bad, &["marketing"]).await;
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "invalid_campaign");
    let errors = p["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0]["line"], 3);
    assert!(errors[0]["message"].as_str().unwrap().contains("timezone"));
    assert!(errors[1]["column"].as_u64().unwrap() > 0);

    let r = put(&app, "another-id", spec.yaml(), &["marketing"]).await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "campaign_id_mismatch"
    );

    let r = put(&app, &spec.id, "x".repeat(300 * 1024), &["marketing"]).await;
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "body_too_large");

    // Sub-pools are planned and simulated, not applied yet: refused, and
    // nothing is live afterwards.
    let pooled = spec.yaml().replacen('\n', "\npools: 3\n", 1);
    let r = put(&app, &spec.id, pooled, &["marketing"]).await;
    assert_eq!(r.status(), 409);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "apply_refused");
    assert!(p["detail"].as_str().unwrap().contains("`pools: 3`"), "{p}");
    assert_eq!(get(&app, &spec.id).await.status(), 404);
}

/// PostgreSQL vanishes while an apply records its version (the connection never
/// hears from it again): the apply answers 503 within `database.query_timeout_ms`
/// saying the version is live but not recorded, and applying the same file again
/// once PostgreSQL is back records it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_on_a_vanished_postgres_answers_503_in_time_and_a_reapply_records_it() {
    use crate::support::proxy::{
        assert_store_unavailable, lock_table, service_with_postgres_behind_proxy,
    };
    use std::time::{Duration, Instant};
    let (proxy, app) = service_with_postgres_behind_proxy(|s| {
        s.database.query_timeout_ms = std::num::NonZeroU64::new(500).unwrap()
    })
    .await;
    let spec = Spec::new("pgapply");
    app.track(&prizewheel::domain::CampaignId::parse(&spec.id).unwrap());

    // The version's INSERT waits at the server, then its connection goes silent.
    let mut lock = lock_table(&app.db.url, "campaign_versions").await;
    let started = Instant::now();
    let stranding = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        proxy.strand();
    };
    let (r, ()) = tokio::join!(put(&app, &spec.id, spec.yaml(), &["marketing"]), stranding);
    let took = started.elapsed();
    assert_store_unavailable(r).await;
    assert!(
        took < Duration::from_millis(1_500),
        "answered in {took:?} (bound 500 ms)"
    );
    sqlx::query("COMMIT").execute(&mut lock).await.unwrap();

    // Marketing applies the same file again, as the answer says. The abandoned
    // transaction holds its locks until PostgreSQL ends it (here when its
    // INSERT completes and finds the closed socket), so a retry may be needed.
    let mut again = None;
    for _ in 0..10 {
        let r = put(&app, &spec.id, spec.yaml(), &["marketing"]).await;
        if r.status() == 200 {
            again = Some(r);
            break;
        }
        assert_eq!(r.status(), 503);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        again.is_some(),
        "a re-apply recorded the version within 3 s"
    );
    let recorded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM campaign_versions WHERE campaign_id = $1")
            .bind(&spec.id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(recorded, 1, "the re-apply recorded the version once");
}

/// The admin view of a paced, budgeted campaign: per prize the units released
/// by its rule, awarded and remaining, when the next unit comes, the odds now;
/// the budget with what was spent and what is left, also after a live cut
/// below what was awarded.
#[tokio::test]
async fn the_live_view_shows_releases_odds_and_the_budget() {
    use crate::support::helpers::draw;
    use prizewheel::domain::{CampaignId, UserId};
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("admin-paced");
    // Three days in: a `per_day: 7` prize has released 4 days' worth, 28.
    let now = chrono::Utc::now();
    spec.starts_at = (now - chrono::Duration::days(3)).to_rfc3339();
    spec.prizes = vec![
        ("gold", 1, Some(100)),
        ("silver", 1, Some(10)),
        ("none", 8, None),
    ];
    spec.amounts = [("gold", "5.00"), ("silver", "1.00"), ("none", "0")]
        .into_iter()
        .map(|(p, a)| (p, a.to_owned()))
        .collect();
    spec.releases.insert("gold", "{ per_day: 7 }".into());
    spec.budget = Some("200.00".into());
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    let user = UserId::parse("ada").unwrap();
    // R mod 10: 0 draws gold, 1 silver.
    for n in 0..28 {
        assert_eq!(draw(&app, &id, &user, n, 0).await.prize_id, "gold");
    }
    for n in 28..30 {
        assert_eq!(draw(&app, &id, &user, n, 1).await.prize_id, "silver");
    }
    // The 29th gold is not released yet: the fallback.
    assert_eq!(draw(&app, &id, &user, 30, 0).await.prize_id, "none");

    let live = || async {
        let r = get(&app, &spec.id).await;
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()
    };
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let v = live().await;
    let prize = |v: &Value, id: &str| {
        v["prizes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .cloned()
            .unwrap()
    };
    let gold = prize(&v, "gold");
    assert_eq!(gold["release"], serde_json::json!({"per_day": 7}), "{v}");
    assert_eq!(
        (&gold["released"], &gold["awarded"], &gold["remaining"]),
        (&Value::from(28), &Value::from(28), &Value::from(72)),
        "{gold}"
    );
    assert_eq!(gold["available"], false);
    assert_eq!(gold["held"], "not_released");
    assert_eq!(gold["odds"], 0.0);
    assert_eq!(gold["next_release_at"], tomorrow.as_str(), "{gold}");
    let silver = prize(&v, "silver");
    assert_eq!(silver["release"], "all_at_start");
    assert_eq!(
        (
            &silver["released"],
            &silver["awarded"],
            &silver["remaining"]
        ),
        (&Value::from(10), &Value::from(2), &Value::from(8))
    );
    assert_eq!(silver["available"], true);
    assert_eq!(silver["held"], Value::Null);
    assert_eq!(silver["odds"], 0.1);
    assert!(
        silver.get("next_release_at").is_none(),
        "not paced: {silver}"
    );
    let none = prize(&v, "none");
    assert_eq!(none["released"], Value::Null, "unlimited");
    assert_eq!(none["odds"], 0.9, "the fallback takes gold's share");
    assert_eq!(
        v["budget"],
        serde_json::json!({"amount": "200.00", "currency": "INR", "spent": "142.0000", "left": "58.0000"})
    );
    assert!(
        chrono::DateTime::parse_from_rfc3339(v["as_of"].as_str().unwrap()).is_ok(),
        "{v}"
    );

    // A live cut of the budget below what silver is worth: everything with a
    // value is held back, gold for its value first; the fallback takes all.
    spec.budget = Some("142.50".into());
    app.apply(&spec.yaml()).await;
    let v = live().await;
    let (gold, silver) = (prize(&v, "gold"), prize(&v, "silver"));
    assert_eq!(
        (&gold["held"], &silver["held"]),
        (&"over_budget".into(), &"over_budget".into()),
        "{v}"
    );
    assert_eq!(
        gold["next_release_at"],
        tomorrow.as_str(),
        "its curve goes on"
    );
    assert_eq!(prize(&v, "none")["odds"], 1.0);
    assert_eq!(v["budget"]["left"], "0.5000");
    // Below what was spent: nothing left, spent unchanged.
    spec.budget = Some("100".into());
    app.apply(&spec.yaml()).await;
    let v = live().await;
    assert_eq!(
        (&v["budget"]["spent"], &v["budget"]["left"]),
        (&"142.0000".into(), &"0.0000".into())
    );
    // No budget: no `budget`.
    spec.budget = None;
    app.apply(&spec.yaml()).await;
    assert!(live().await.get("budget").is_none());
}
