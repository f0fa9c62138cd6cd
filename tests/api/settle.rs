//! Settlement: every draw lands in PostgreSQL exactly once, whatever crashes.

use crate::support::helpers::{Spec, TestApp};
use crate::support::settling::{
    assert_exactly, draws, fast, lag, settle_all, settled_ids, settler,
};
use prizewheel::domain::CampaignId;
use prizewheel::settle::Settler;
use prizewheel::settle::stream::{self};
use rand::RngExt;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settlers_killed_at_random_points_lose_and_double_nothing() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("crash");
    spec.expected_users = 5000;
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();

    let chaos = {
        let pg = app.db.pool.clone();
        let campaign = spec.id.clone();
        async move {
            let mut kills = 0;
            let mut rng = rand::rng();
            while kills < 60 {
                // Three process names: a restart reuses one (re-reads its own
                // pending entries) or takes another (claims the dead one's).
                let consumer = format!("crashy-{}", kills % 3);
                let s = Settler::new(
                    crate::support::helpers::redis_target(),
                    pg.clone(),
                    fast(),
                    consumer,
                );
                let (_stop, stopped) = watch::channel(false);
                let task = tokio::spawn(s.run(stopped));
                tokio::time::sleep(Duration::from_millis(rng.random_range(5..150))).await;
                task.abort(); // not graceful: whatever was in flight is cut
                let _ = task.await;
                kills += 1;
            }
            campaign
        }
    };
    let (drawn, _) = tokio::join!(draws(&app, &id, 5000, 100_000, 0), chaos);
    settle_all(&app, &spec.id, "survivor").await;

    assert_exactly(&drawn, &settled_ids(&app.db.pool, &spec.id).await);
    let end = lag(&app, &spec.id).await;
    assert_eq!(
        end.unsettled(),
        0,
        "nothing pending or undelivered: {end:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_settlers_at_once_settle_everything_once() {
    let app = TestApp::spawn().await;
    let spec = Spec::new("two");
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    let (stop, stopped) = watch::channel(false);
    let a = tokio::spawn(settler(&app.db.pool, "a").run(stopped.clone()));
    let b = tokio::spawn(settler(&app.db.pool, "b").run(stopped));
    let drawn = draws(&app, &id, 500, 20_000, 0).await;
    for _ in 0..300 {
        if settled_ids(&app.db.pool, &spec.id).await.len() >= drawn.len()
            && lag(&app, &spec.id).await.unsettled() == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(true).unwrap();
    a.await.unwrap();
    b.await.unwrap();
    assert_exactly(&drawn, &settled_ids(&app.db.pool, &spec.id).await);
    // The apply event is in the ledger, in draw order.
    let applies: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ledger_applies WHERE campaign_id = $1")
            .bind(&spec.id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(applies, 1);
}

#[tokio::test]
async fn a_poison_entry_goes_to_the_dead_letter_stream_and_the_rest_settles() {
    let app = TestApp::spawn().await;
    let spec = Spec::new("poison");
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    let mut drawn = draws(&app, &id, 10, 50, 0).await;
    let mut conn = app.redis_conn().await;
    let results = format!("pw:{{{}}}:results", spec.id);
    let _: String = redis::cmd("XADD")
        .arg(&results)
        .arg("*")
        .arg("type")
        .arg("spin")
        .arg("spin")
        .arg("not-a-uuid")
        .query_async(&mut conn)
        .await
        .unwrap();
    drawn.extend(draws(&app, &id, 10, 50, 1000).await);
    settle_all(&app, &spec.id, "p").await;

    assert_exactly(&drawn, &settled_ids(&app.db.pool, &spec.id).await);
    let dead: Vec<(String, std::collections::HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(format!("pw:{{{}}}:dead", spec.id))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].1["reason"].contains("missing field"),
        "{:?}",
        dead[0].1
    );
    assert_eq!(dead[0].1["f:spin"], "not-a-uuid");
}

/// XTRIM MINID deletes pending entries too (Redis before 8.2), so trimming must
/// stop at the oldest pending entry; `trim_settled` does.
#[tokio::test]
async fn trimming_never_removes_a_pending_entry() {
    let app = TestApp::spawn().await;
    let mut conn = app.redis_conn().await;
    let key = format!("pw:{{{}}}:results", crate::support::helpers::unique("trim"));
    let add = |n: u32| {
        let key = key.clone();
        let mut conn = conn.clone();
        async move {
            let mut ids = Vec::new();
            for i in 0..n {
                let id: String = redis::cmd("XADD")
                    .arg(&key)
                    .arg("*")
                    .arg("i")
                    .arg(i)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                ids.push(id);
            }
            ids
        }
    };
    let ids = add(10).await;
    stream::ensure_group(&mut conn, &key).await.unwrap();
    // Deliver the first 6 to "a"; ack 0, 1, 2 and 4; 3 and 5 stay pending.
    let delivered = stream::read(&mut conn, &key, "a", ">", 6, None)
        .await
        .unwrap();
    assert_eq!(delivered.len(), 6);
    let acked: Vec<String> = [0, 1, 2, 4].iter().map(|&i| ids[i].clone()).collect();
    stream::ack(&mut conn, &key, &acked).await.unwrap();

    let trimmed = stream::trim_settled(&mut conn, &key).await.unwrap();
    assert_eq!(
        trimmed, 3,
        "0, 1 and 2 are settled and before every pending entry"
    );
    let left: Vec<(String, std::collections::HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let left: Vec<&String> = left.iter().map(|(id, _)| id).collect();
    assert_eq!(
        left,
        ids[3..].iter().collect::<Vec<_>>(),
        "pending 3 and 5, and undelivered 6..9, stay"
    );

    // What a naive trim would do: MINID past a pending entry deletes it.
    let _: u64 = redis::cmd("XTRIM")
        .arg(&key)
        .arg("MINID")
        .arg(&ids[6])
        .query_async(&mut conn)
        .await
        .unwrap();
    let pending: Vec<(String, std::collections::HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(&key)
        .arg(&ids[3])
        .arg(&ids[3])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        pending.is_empty(),
        "XTRIM removed a pending entry: the reason for trim_settled"
    );
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// PostgreSQL unreachable: spins go on, settlement pauses, then drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_pauses_settlement_and_never_spins() {
    let app = TestApp::spawn().await;
    let spec = Spec::new("pgdown");
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();

    let (proxy, pg) = crate::support::proxy::postgres_behind_proxy(&app.db.url).await;
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(settler(&pg, "outage").run(stopped));

    let mut drawn = draws(&app, &id, 100, 500, 0).await;
    proxy.down();
    // Spins over HTTP keep succeeding while PostgreSQL is unreachable.
    for i in 0..20 {
        let r = app.spin(&spec.id, "during-outage", &format!("k{i}")).await;
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.unwrap();
        drawn.push(body["spin_id"].as_str().unwrap().parse().unwrap());
    }
    drawn.extend(draws(&app, &id, 100, 500, 10_000).await);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        lag(&app, &spec.id).await.unsettled() > 0,
        "settlement is paused"
    );

    proxy.up();
    for _ in 0..300 {
        if lag(&app, &spec.id).await.unsettled() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(true).unwrap();
    task.await.unwrap();
    assert_exactly(&drawn, &settled_ids(&app.db.pool, &spec.id).await);
}

/// `serve` settles by itself: a spin is in the ledger within seconds.
#[tokio::test]
async fn the_service_settles_its_spins() {
    let app = TestApp::spawn_with(|s| s.settle = fast()).await;
    let spec = Spec::new("inproc");
    app.apply(&spec.yaml()).await;
    let r = app.spin(&spec.id, "pat", "k1").await;
    let body: serde_json::Value = r.json().await.unwrap();
    let spin_id: Uuid = body["spin_id"].as_str().unwrap().parse().unwrap();
    let mut found = None;
    for _ in 0..100 {
        found = sqlx::query_as::<_, (String, String, String)>(
            "SELECT user_id, prize_id, amount::text FROM rewards WHERE spin_id = $1",
        )
        .bind(spin_id)
        .fetch_optional(&app.db.pool)
        .await
        .unwrap();
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (user, prize, amount) = found.expect("settled within 5 s");
    assert_eq!(user, "pat");
    assert_eq!(prize, body["prize"]["id"].as_str().unwrap());
    assert_eq!(amount, "1.5000");
}
