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
