//! `prizewheel audit`: the settled ledger replayed through the model passes, and
//! fails loudly when a row is tampered with.

use crate::support::helpers::{Spec, TestApp};
use crate::support::settling::{draws, settle_all};
use prizewheel::domain::CampaignId;

fn audit(app: &TestApp, campaign: &str) -> (bool, String) {
    crate::support::helpers::cli(
        &["audit", campaign],
        &crate::support::helpers::redis_url(),
        &app.db.url,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_replays_through_the_model_and_tampering_fails() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("audit");
    spec.prizes = vec![
        ("phone", 1, Some(3)),
        ("coupon", 300, Some(200)),
        ("none", 700, None),
    ];
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    draws(&app, &id, 100, 1500, 0).await;
    // A live change between draws: the audit must switch odds and stock there.
    spec.prizes = vec![
        ("phone", 50, Some(10)),
        ("mug", 100, Some(50)),
        ("none", 700, None),
    ];
    app.apply(&spec.yaml()).await;
    draws(&app, &id, 100, 1500, 10_000).await;
    settle_all(&app, &spec.id, "audit").await;

    let (ok, text) = audit(&app, &spec.id);
    assert!(ok, "{text}");
    assert!(
        text.contains("audit passed") && text.contains("3000 rewards and 2 applies"),
        "{text}"
    );

    // Tamper: one reward's prize is changed in the ledger.
    let (spin_id, prize): (uuid::Uuid, String) = sqlx::query_as(
        "SELECT spin_id, prize_id FROM rewards WHERE campaign_id = $1 AND prize_id = 'none' ORDER BY stream_ms, stream_seq LIMIT 1 OFFSET 700",
    )
    .bind(&spec.id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(prize, "none");
    sqlx::query("UPDATE rewards SET prize_id = 'coupon' WHERE spin_id = $1")
        .bind(spin_id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let (ok, text) = audit(&app, &spec.id);
    assert!(!ok, "{text}");
    assert!(
        text.contains("AUDIT FAILED") && text.contains(&spin_id.to_string()),
        "{text}"
    );
    assert!(text.contains("the ledger says `coupon`"), "{text}");
}
