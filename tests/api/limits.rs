//! Per-user quotas: exact under concurrency, and the day follows the campaign's
//! time zone.

use crate::support::helpers::{Spec, TestApp, spin, token};
use futures::stream::{self, StreamExt};
use prizewheel::domain::CampaignId;
use prizewheel::store::redis::keys::CampaignKeys;
use serde_json::Value;

async fn concurrent_spins(
    app: &TestApp,
    campaign: &str,
    user: &str,
    n: usize,
) -> Vec<(u16, Value, Option<String>)> {
    let t = token(user, &[]);
    stream::iter(0..n)
        .map(|i| {
            let (client, address, id, t) = (
                app.client.clone(),
                app.address.clone(),
                campaign.to_owned(),
                t.clone(),
            );
            async move {
                let r = spin(&client, &address, &id, &t, &format!("k{i}"), None).await;
                let retry = r
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned());
                (r.status().as_u16(), r.json::<Value>().await.unwrap(), retry)
            }
        })
        .buffer_unordered(40)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_total_quota_is_exact_under_concurrency() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("total");
    spec.spins_per_user = 5;
    app.apply(&spec.yaml()).await;
    let results = concurrent_spins(&app, &spec.id, "frank", 40).await;
    let ok: Vec<_> = results.iter().filter(|r| r.0 == 200).collect();
    assert_eq!(ok.len(), 5);
    let mut left: Vec<u64> = ok
        .iter()
        .map(|r| r.1["spins_left"].as_u64().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, vec![0, 1, 2, 3, 4]);
    for (status, body, retry) in results.iter().filter(|r| r.0 != 200) {
        assert_eq!(*status, 429);
        assert_eq!(body["code"], "spin_quota_exhausted");
        assert!(retry.is_none(), "no reset to wait for");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_quota_is_exact_under_concurrency() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("daily");
    spec.spins_per_user = 10;
    spec.per_day = Some(3);
    app.apply(&spec.yaml()).await;
    let results = concurrent_spins(&app, &spec.id, "grace", 30).await;
    assert_eq!(results.iter().filter(|r| r.0 == 200).count(), 3);
    for (status, body, retry) in results.iter().filter(|r| r.0 != 200) {
        assert_eq!(*status, 429);
        assert_eq!(body["code"], "daily_spin_quota_exhausted");
        let secs: u64 = retry.as_ref().expect("Retry-After").parse().unwrap();
        assert!(secs > 0 && secs <= 86_400 + 3_600, "{secs}");
        assert_eq!(body["retry_after"].as_u64(), Some(secs));
    }
}

/// Day starts stored at apply are the local midnights of the campaign's zone.
#[tokio::test]
async fn day_starts_are_local_midnights_of_the_time_zone() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("kolkata");
    spec.timezone = "Asia/Kolkata";
    spec.starts_at = "2026-11-01T00:00:00+05:30".into();
    spec.ends_at = "2026-11-04T00:00:00+05:30".into();
    app.apply(&spec.yaml()).await;
    let mut conn = app.redis_conn().await;
    let keys = CampaignKeys::new(&CampaignId::parse(&spec.id).unwrap());
    let days: Vec<i64> = redis::cmd("ZRANGE")
        .arg(&keys.days)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let utc = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    };
    // Midnight in Kolkata (UTC+05:30) is 18:30 UTC the evening before.
    assert_eq!(
        days,
        vec![
            utc("2026-10-31T18:30:00Z"),
            utc("2026-11-01T18:30:00Z"),
            utc("2026-11-02T18:30:00Z")
        ]
    );
}

/// The script counts days by the stored day starts: when the next one passes,
/// the daily quota resets, and `Retry-After` said when.
#[tokio::test]
async fn the_daily_quota_resets_when_the_next_day_starts() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("reset");
    spec.per_day = Some(1);
    app.apply(&spec.yaml()).await;
    assert_eq!(app.spin(&spec.id, "heidi", "k1").await.status(), 200);

    // Bring the next day start to two seconds from now (what a local midnight
    // of the campaign's zone would be).
    let mut conn = app.redis_conn().await;
    let keys = CampaignKeys::new(&CampaignId::parse(&spec.id).unwrap());
    let now_ms = chrono::Utc::now().timestamp_millis();
    let _: () = redis::cmd("ZADD")
        .arg(&keys.days)
        .arg(now_ms + 2000)
        .arg(now_ms + 2000)
        .query_async(&mut conn)
        .await
        .unwrap();

    let refused = app.spin(&spec.id, "heidi", "k2").await;
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3).contains(&retry), "{retry}");
    tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
    let next_day = app.spin(&spec.id, "heidi", "k3").await;
    assert_eq!(next_day.status(), 200);
    let body: Value = next_day.json().await.unwrap();
    assert_eq!(body["spins_left"], 0, "one per day; today's is used");
}
