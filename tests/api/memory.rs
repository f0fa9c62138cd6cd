//! Redis memory per user and per idempotency record: the cost that grows with
//! the sale. Deterministic for a given Redis build, so the targets are asserted.

use crate::helpers::{Spec, TestApp};
use futures::stream::{self, StreamExt};
use prizewheel::domain::{CampaignId, IdempotencyKey, UserId};
use prizewheel::draw::user_hash;
use prizewheel::store::redis::spin::SpinCall;

/// Sum of `MEMORY USAGE` over the keys matching `pattern`.
async fn bytes(conn: &mut redis::aio::MultiplexedConnection, pattern: &str) -> (u64, usize) {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(conn)
        .await
        .unwrap();
    let mut total = 0;
    for k in &keys {
        let n: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(k)
            .arg("SAMPLES")
            .arg(0)
            .query_async(conn)
            .await
            .unwrap();
        total += n.unwrap_or(0);
    }
    (total, keys.len())
}

/// One spin for each of `users`; returns (bytes per user, bytes per record).
async fn measure(app: &TestApp, prefix: &str, users: Vec<String>) -> (f64, f64) {
    let mut spec = Spec::new(prefix);
    spec.expected_users = users.len() as u64;
    spec.prizes = vec![("none", 1, None)];
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    let n = users.len();
    stream::iter(users.into_iter().enumerate())
        .for_each_concurrent(256, |(i, u)| {
            let id = &id;
            async move {
                let user = UserId::parse(&u).unwrap();
                let key = IdempotencyKey::parse(&uuid::Uuid::new_v4().to_string()).unwrap();
                let call = SpinCall {
                    campaign: id,
                    user: &user,
                    key: &key,
                    user_hash: user_hash(&user),
                    record_field: (i as u64).to_be_bytes(),
                    fingerprint: [7; 8],
                    r: prizewheel::draw::rng::next_r().unwrap(),
                    spin_id: uuid::Uuid::now_v7(),
                    context: "",
                };
                app.redis.spin(&call).await.unwrap().unwrap();
            }
        })
        .await;
    let mut conn = app.redis_conn().await;
    let (user_bytes, user_keys) = bytes(&mut conn, &format!("pw:{{{}}}:u:*", spec.id)).await;
    let (record_bytes, record_keys) = bytes(&mut conn, &format!("pw:{{{}}}:i:*", spec.id)).await;
    let per_user = user_bytes as f64 / n as f64;
    let per_record = record_bytes as f64 / n as f64;
    eprintln!(
        "{prefix}: {n} users in {user_keys} buckets: {per_user:.1} B/user; {n} records in {record_keys} buckets: {per_record:.1} B/record"
    );
    (per_user, per_record)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_per_user_and_per_idempotency_record() {
    let app = TestApp::spawn().await;
    let numeric: Vec<String> = (0..100_000u64)
        .map(|i| (900_000_000 + i * 7).to_string())
        .collect();
    let (per_user, per_record) = measure(&app, "mem-num", numeric).await;
    assert!(
        per_user <= 20.0,
        "numeric user ids: {per_user:.1} bytes per user"
    );
    assert!(
        per_record <= 64.0,
        "{per_record:.1} bytes per idempotency record"
    );

    let uuids: Vec<String> = (0..20_000)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let (per_uuid_user, per_record) = measure(&app, "mem-uuid", uuids).await;
    assert!(
        per_record <= 64.0,
        "{per_record:.1} bytes per idempotency record"
    );
    // A UUID id alone is 36 bytes; report, and keep it under a key per user (~70+).
    assert!(
        per_uuid_user <= 60.0,
        "UUID user ids: {per_uuid_user:.1} bytes per user"
    );
}
