//! Spins over HTTP: the stock bound under concurrency, replays and key scoping.

use crate::support::helpers::{Spec, TestApp, spawn_server, spin, stream_prizes, token, unique};
use crate::support::rush::{assert_no_oversell, burst, gold_rush};
use futures::stream::{self, StreamExt};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_oversell_with_5000_concurrent_spins() {
    let app = TestApp::spawn().await;
    let spec = gold_rush("oversell");
    app.apply(&spec.yaml()).await;
    let results = burst(
        std::slice::from_ref(&app.address),
        &spec.id,
        2000,
        5000,
        256,
    )
    .await;
    assert_no_oversell(&app, &spec, &results).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_oversell_across_three_instances() {
    let app = TestApp::spawn().await;
    let spec = gold_rush("oversell3");
    app.apply(&spec.yaml()).await;
    let mut addresses = vec![app.address.clone()];
    for _ in 0..2 {
        addresses.push(
            spawn_server(crate::support::helpers::settings(
                &app.db,
                &crate::support::helpers::redis_url(),
            ))
            .await,
        );
    }
    let results = burst(&addresses, &spec.id, 2000, 5000, 256).await;
    assert_no_oversell(&app, &spec, &results).await;
}

#[tokio::test]
async fn a_retry_replays_the_original_outcome() {
    let app = TestApp::spawn().await;
    let spec = Spec::new("replay");
    app.apply(&spec.yaml()).await;
    let t = token("alice", &[]);
    let body = r#"{"order_id": "o-1"}"#;
    let first = spin(&app.client, &app.address, &spec.id, &t, "k-1", Some(body)).await;
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["replayed"], false);

    let again = spin(&app.client, &app.address, &spec.id, &t, "k-1", Some(body)).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let mut again: Value = again.json().await.unwrap();
    assert_eq!(again["replayed"], true);
    again["replayed"] = json!(false);
    assert_eq!(again, first, "same spin id, prize and spins left");

    let other_body = spin(
        &app.client,
        &app.address,
        &spec.id,
        &t,
        "k-1",
        Some(r#"{"order_id": "o-2"}"#),
    )
    .await;
    assert_eq!(other_body.status(), 422);
    let problem: Value = other_body.json().await.unwrap();
    assert_eq!(problem["code"], "idempotency_key_reused");

    // The same key from another user is another spin.
    let bob = spin(
        &app.client,
        &app.address,
        &spec.id,
        &token("bob", &[]),
        "k-1",
        Some(r#"{"order_id": "o-1"}"#),
    )
    .await;
    assert_eq!(bob.status(), 200);
    let bob: Value = bob.json().await.unwrap();
    assert_eq!(bob["replayed"], false);
    assert_ne!(bob["spin_id"], first["spin_id"]);

    let mut conn = app.redis_conn().await;
    assert_eq!(
        stream_prizes(&mut conn, &spec.id).await.len(),
        2,
        "two draws, not four"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_copies_of_one_key_make_one_draw() {
    let app = TestApp::spawn().await;
    let spec = Spec::new("copies");
    app.apply(&spec.yaml()).await;
    let t = token("carol", &[]);
    let results: Vec<(u16, Value)> = stream::iter(0..50)
        .map(|_| {
            let (client, address, id, t) = (
                app.client.clone(),
                app.address.clone(),
                spec.id.clone(),
                t.clone(),
            );
            async move {
                let r = spin(&client, &address, &id, &t, "same-key", Some(r#"{"a": 1}"#)).await;
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    assert!(results.iter().all(|(s, _)| *s == 200));
    let fresh = results
        .iter()
        .filter(|(_, b)| b["replayed"] == false)
        .count();
    assert_eq!(fresh, 1, "exactly one draw");
    let ids: std::collections::HashSet<&Value> =
        results.iter().map(|(_, b)| &b["spin_id"]).collect();
    assert_eq!(ids.len(), 1);
    let mut conn = app.redis_conn().await;
    assert_eq!(stream_prizes(&mut conn, &spec.id).await.len(), 1);
}

#[tokio::test]
async fn the_draw_script_reloads_after_script_flush() {
    let app = TestApp::spawn().await;
    let spec = Spec::new("noscript");
    app.apply(&spec.yaml()).await;
    assert_eq!(app.spin(&spec.id, "dave", "k1").await.status(), 200);
    let mut conn = app.redis_conn().await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(app.spin(&spec.id, "dave", "k2").await.status(), 200);
    assert_eq!(stream_prizes(&mut conn, &spec.id).await.len(), 2);
}

#[tokio::test]
async fn unknown_campaigns_are_404() {
    let app = TestApp::spawn().await;
    for id in [unique("missing"), "Not_A_Valid_Id".to_owned()] {
        let r = app.spin(&id, "erin", "k").await;
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["code"], "campaign_not_found");
    }
}

/// With Redis gone, a spin answers 503 with Retry-After, fast, and readiness
/// fails; liveness does not.
#[tokio::test]
async fn redis_down_is_503_with_retry_after() {
    let mut redis = crate::support::helpers::PrivateRedis::start().await;
    let url = redis.url.clone();
    let app = TestApp::spawn_with(|s| {
        s.redis.url = Some(url.into());
        s.redis.response_timeout_ms = 300;
        s.redis.connect_timeout_ms = 300;
    })
    .await;
    let spec = Spec::new("down");
    app.apply(&spec.yaml()).await;
    assert_eq!(app.spin(&spec.id, "olga", "k1").await.status(), 200);

    redis.stop();
    let started = std::time::Instant::now();
    let r = app.spin(&spec.id, "olga", "k2").await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "service_unavailable");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let live = app.get("/healthz").await;
    assert_eq!(live.status(), 200);
}
