//! Redis memory per user and per idempotency record: the cost that grows with
//! the sale. Deterministic for a given Redis build, so the targets are asserted.

use crate::support::helpers::{Spec, TestApp};
use prizewheel::domain::{CampaignId, UserId};
use prizewheel::draw::footprint;

/// One spin for each of `users`; returns (bytes per user, bytes per record).
async fn measure(app: &TestApp, prefix: &str, users: Vec<String>) -> (f64, f64) {
    let mut spec = Spec::new(prefix);
    spec.expected_users = users.len() as u64;
    spec.prizes = vec![("none", 1, None)];
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    let n = users.len() as u64;
    let users = users.iter().map(|u| UserId::parse(u).unwrap());
    footprint::spin_each(&app.redis, &id, users, 256)
        .await
        .unwrap();
    let f = footprint::measure(&app.redis, &id).await.unwrap();
    assert_eq!(
        (f.users, f.records),
        (n, n),
        "one counter and one record each"
    );
    eprintln!(
        "{prefix}: {n} users in {} buckets: {:.1} B/user; {n} records in {} buckets: {:.1} B/record",
        f.user_keys,
        f.per_user(),
        f.record_keys,
        f.per_record()
    );
    (f.per_user(), f.per_record())
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
