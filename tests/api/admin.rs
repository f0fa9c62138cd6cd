//! Marketing's admin API.

use crate::support::helpers::{Spec, TestApp, token};
use serde_json::Value;

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

    let live: Value = app
        .client
        .get(format!("{}/v1/admin/campaigns/{}", app.address, spec.id))
        .bearer_auth(token("m", &["marketing"]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
