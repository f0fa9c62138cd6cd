//! Changing a live campaign: stock deltas, weights, idempotent re-apply, versions.

use crate::support::helpers::{Spec, TestApp, client, hash_counts, spin, stream_prizes, token};
use futures::stream::{self, StreamExt};
use prizewheel::domain::CampaignId;
use prizewheel::store::redis::keys::CampaignKeys;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_top_up_and_weight_change_mid_load_loses_nothing() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("live");
    spec.spins_per_user = 100;
    spec.prizes = vec![("gold", 50, Some(100)), ("none", 50, None)];
    app.apply(&spec.yaml()).await;

    let load = {
        let (address, id) = (app.address.clone(), spec.id.clone());
        tokio::spawn(async move {
            let client = client();
            let tokens: Vec<String> = (0..300).map(|u| token(&format!("live-{u}"), &[])).collect();
            stream::iter(0..3000usize)
                .map(|i| {
                    let (client, address, id, t) = (
                        client.clone(),
                        address.clone(),
                        id.clone(),
                        tokens[i % 300].clone(),
                    );
                    async move {
                        let r = spin(&client, &address, &id, &t, &format!("k{i}"), None).await;
                        (r.status().as_u16(), r.json::<Value>().await.unwrap())
                    }
                })
                .buffer_unordered(64)
                .collect::<Vec<_>>()
                .await
        })
    };
    // Mid-load: top gold up to 150 and make it likelier.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    spec.prizes = vec![("gold", 80, Some(150)), ("none", 20, None)];
    let report = app.apply(&spec.yaml()).await;
    assert!(report.changed);
    assert_eq!(report.version, 2);
    let results = load.await.unwrap();

    assert!(results.iter().all(|(s, _)| *s == 200));
    let won = results
        .iter()
        .filter(|(_, b)| b["prize"]["id"] == "gold")
        .count() as i64;
    let mut conn = app.redis_conn().await;
    let keys = CampaignKeys::new(&CampaignId::parse(&spec.id).unwrap());
    let awarded = hash_counts(&mut conn, &keys.awarded).await;
    let stock = hash_counts(&mut conn, &keys.stock).await;
    assert!(
        awarded["gold"] <= 150,
        "never more than the configured stock"
    );
    assert_eq!(
        awarded["gold"] + stock["gold"],
        150,
        "remaining = configured - awarded"
    );
    assert_eq!(won, awarded["gold"], "every announced win is counted");
    let drawn = stream_prizes(&mut conn, &spec.id).await;
    assert_eq!(drawn.len(), 3000);
    assert_eq!(
        drawn.iter().filter(|(_, p)| p == "gold").count() as i64,
        won
    );
}

#[tokio::test]
async fn stock_changes_act_on_what_remains_and_reapply_is_a_no_op() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("delta");
    spec.prizes = vec![("gold", 1_000_000, Some(10)), ("none", 1, None)];
    app.apply(&spec.yaml()).await;
    for i in 0..6 {
        assert_eq!(
            app.spin(&spec.id, "lena", &format!("k{i}")).await.status(),
            200
        );
    }
    let keys = CampaignKeys::new(&CampaignId::parse(&spec.id).unwrap());
    let mut conn = app.redis_conn().await;
    let state = |conn: &mut redis::aio::MultiplexedConnection| {
        let keys = keys.clone();
        let mut conn = conn.clone();
        async move {
            (
                hash_counts(&mut conn, &keys.stock).await["gold"],
                hash_counts(&mut conn, &keys.awarded).await["gold"],
            )
        }
    };
    assert_eq!(state(&mut conn).await, (4, 6));

    // Cut below what was awarded: nothing remains, nothing is un-awarded.
    spec.prizes[0].2 = Some(3);
    app.apply(&spec.yaml()).await;
    assert_eq!(state(&mut conn).await, (0, 6));
    // Top up to 20: 20 - 6 remain (awarded units are never resurrected).
    spec.prizes[0].2 = Some(20);
    let v3 = app.apply(&spec.yaml()).await;
    assert_eq!(state(&mut conn).await, (14, 6));
    assert_eq!(v3.version, 3);

    // The same file again changes nothing, not even the version.
    let again = app.apply(&spec.yaml()).await;
    assert!(!again.changed);
    assert!(again.plan.unchanged);
    assert_eq!(again.version, 3);
    assert_eq!(state(&mut conn).await, (14, 6));

    // Every version is recorded once in PostgreSQL, with who and what.
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT version, applied_by, config_hash FROM campaign_versions WHERE campaign_id = $1 ORDER BY version",
    )
    .bind(&spec.id)
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(rows.iter().all(|r| r.1 == "tests" && r.2.len() == 64));
}

#[tokio::test]
async fn a_dropped_prize_is_retired_and_new_prizes_are_appended() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("retire");
    spec.prizes = vec![
        ("gold", 1, Some(5)),
        ("silver", 1, Some(5)),
        ("none", 1, None),
    ];
    app.apply(&spec.yaml()).await;
    spec.prizes = vec![
        ("bronze", 1, Some(5)),
        ("gold", 1, Some(5)),
        ("none", 1, None),
    ];
    let report = app.apply(&spec.yaml()).await;
    let actions: Vec<(&str, &str)> = report
        .plan
        .changes
        .iter()
        .map(|c| (c.action, c.path.as_str()))
        .collect();
    assert!(
        actions.contains(&("retire", "prizes.silver")),
        "{actions:?}"
    );
    assert!(actions.contains(&("add", "prizes.bronze")), "{actions:?}");

    let live = app
        .redis
        .live_state(&CampaignId::parse(&spec.id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let order: Vec<(&str, u64)> = live.table.iter().map(|e| (e.id.as_str(), e.w)).collect();
    assert_eq!(
        order,
        vec![("gold", 1), ("silver", 0), ("none", 1), ("bronze", 1)]
    );
    assert_eq!(live.stock["silver"], 0);
}

/// `campaign plan` against a live campaign: a release rule changed, a stock
/// top-up, a budget set below what was already awarded, each with what it
/// means now (units released before and after, what was spent); the plan's
/// hash semantics hold (the same file again is unchanged).
#[tokio::test]
async fn plan_shows_release_and_budget_changes_against_what_was_awarded() {
    use crate::support::helpers::{TempDir, cli, draw, redis_url};
    use prizewheel::domain::UserId;
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("plan-paced");
    // Three days in: `per_day: 7` has released 4 days' worth, 28 units.
    spec.starts_at = (chrono::Utc::now() - chrono::Duration::days(3)).to_rfc3339();
    spec.prizes = vec![("gold", 1, Some(100)), ("none", 1, None)];
    spec.amounts = [("gold", "5.00"), ("none", "0")]
        .into_iter()
        .map(|(p, a)| (p, a.to_owned()))
        .collect();
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    let user = UserId::parse("ivy").unwrap();
    for n in 0..12 {
        assert_eq!(draw(&app, &id, &user, n, 0).await.prize_id, "gold");
    }

    spec.prizes[0].2 = Some(150);
    spec.releases.insert("gold", "{ per_day: 7 }".into());
    spec.budget = Some("50.00".into());
    let dir = TempDir::new();
    let file = dir.0.join("paced.yaml");
    std::fs::write(&file, spec.yaml()).unwrap();
    let path = file.to_str().unwrap();
    let (ok, out) = cli(&["campaign", "plan", path], &redis_url(), &app.db.url);
    assert!(ok, "{out}");
    println!("{out}");
    for line in [
        "  + budget: none -> 50.00 INR (60.0000 INR awarded so far (every award counted): the budget is below it, so no prize with a value is drawn any more)",
        "  ~ prizes.gold.stock: 100 -> 150 (12 awarded; remaining 88 -> 138)",
        "  ~ prizes.gold.release: all_at_start -> per_day 7 (released now 100 -> 28)",
    ] {
        assert!(out.lines().any(|l| l == line), "no line\n{line}\nin\n{out}");
    }

    // Applied, then a top-up of the paced prize redraws nothing of a per-day
    // curve below its stock, and an even one is redrawn over the new stock.
    let report = app.apply(&spec.yaml()).await;
    assert!(report.changed);
    assert!(
        app.apply(&spec.yaml()).await.plan.unchanged,
        "same file, same hash"
    );
    spec.releases.insert("gold", "even".into());
    app.apply(&spec.yaml()).await;
    spec.prizes[0].2 = Some(300);
    std::fs::write(&file, spec.yaml()).unwrap();
    let (ok, out) = cli(&["campaign", "plan", path], &redis_url(), &app.db.url);
    assert!(ok, "{out}");
    println!("{out}");
    let stock = out
        .lines()
        .find(|l| l.starts_with("  ~ prizes.gold.stock: 150 -> 300"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        stock.contains("the even curve is redrawn over the new stock: released now "),
        "{stock}"
    );
    // The recorded plan of each version says the same.
    let changes: Vec<Value> = sqlx::query_scalar(
        "SELECT changes FROM campaign_versions WHERE campaign_id = $1 AND version = 2",
    )
    .bind(&spec.id)
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert!(
        changes[0]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["path"] == "prizes.gold.release" && c["note"] == "released now 100 -> 28"),
        "{changes:?}"
    );
}
