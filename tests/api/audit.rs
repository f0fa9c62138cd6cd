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
        text.contains("audit passed")
            && text.contains("3000 rewards, 0 grants, 0 revocations and 2 applies"),
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

/// Grants and revocations replay with the draws: every draw had a spin, every
/// revocation splits as the model does; a grant cut down in the ledger, or a
/// revocation's split changed, fails the audit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_replay_with_the_draws_and_tampering_fails() {
    use crate::support::helpers::{grant, revoke, token};
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("audit-grants");
    spec.earned = Some((1, "campaign_end"));
    spec.spins_per_user = 5;
    app.apply(&spec.yaml()).await;
    for i in 0..30 {
        let user = format!("u{}", i % 10);
        let body = serde_json::json!({"user_id": user, "spins": 1 + i % 3}).to_string();
        let r = grant(&app.client, &app.address, &spec.id, &format!("g{i}"), &body).await;
        assert_eq!(r.status(), 200);
        for k in 0..2 {
            let _ = crate::support::helpers::spin(
                &app.client,
                &app.address,
                &spec.id,
                &token(&user, &[]),
                &format!("k{i}-{k}"),
                None,
            )
            .await;
        }
        if i % 4 == 0 {
            let r = revoke(&app.client, &app.address, &spec.id, &format!("g{i}")).await;
            assert_eq!(r.status(), 200);
        }
    }
    // A live change of the free spins between them.
    spec.earned = Some((2, "campaign_end"));
    app.apply(&spec.yaml()).await;
    for i in 0..10 {
        let _ = app.spin(&spec.id, &format!("u{i}"), "after").await;
    }
    settle_all(&app, &spec.id, "audit-grants").await;
    let (ok, text) = audit(&app, &spec.id);
    assert!(ok, "{text}");
    assert!(text.contains("30 grants, 8 revocations"), "{text}");

    // A grant cut down after the fact: a draw it paid for had no spin.
    let (grant_id, user): (String, String) = sqlx::query_as(
        "SELECT g.grant_id, g.user_id FROM grants g
         WHERE g.campaign_id = $1 AND g.revoked IS NULL AND g.spins = 3
           AND (SELECT count(*) FROM rewards r WHERE r.campaign_id = g.campaign_id
                AND r.user_id = g.user_id) >= 4
         ORDER BY g.stream_ms LIMIT 1",
    )
    .bind(&spec.id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE grants SET spins = 1 WHERE campaign_id = $1 AND user_id = $2 AND revoked IS NULL",
    )
    .bind(&spec.id)
    .bind(&user)
    .execute(&app.db.pool)
    .await
    .unwrap();
    let (ok, text) = audit(&app, &spec.id);
    assert!(
        !ok && text.contains("had no spin to make"),
        "{grant_id}: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_split_changed_in_the_ledger_fails_the_audit() {
    use crate::support::helpers::{grant, revoke};
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("audit-revoke");
    spec.earned = Some((0, "campaign_end"));
    app.apply(&spec.yaml()).await;
    let body = serde_json::json!({"user_id": "ann", "spins": 3}).to_string();
    assert_eq!(
        grant(&app.client, &app.address, &spec.id, "g1", &body)
            .await
            .status(),
        200
    );
    assert_eq!(app.spin(&spec.id, "ann", "k1").await.status(), 200);
    assert_eq!(
        revoke(&app.client, &app.address, &spec.id, "g1")
            .await
            .status(),
        200
    );
    settle_all(&app, &spec.id, "audit-revoke").await;
    assert!(audit(&app, &spec.id).0);
    sqlx::query(
        "UPDATE grant_revocations SET revoked = 3, already_used = 0 WHERE campaign_id = $1",
    )
    .bind(&spec.id)
    .execute(&app.db.pool)
    .await
    .unwrap();
    let (ok, text) = audit(&app, &spec.id);
    assert!(!ok && text.contains("revocation of g1"), "{text}");
    assert!(text.contains("(3, 0, 0), the model (2, 1, 0)"), "{text}");
}
