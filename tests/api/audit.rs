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

/// Prize codes replay with the draws: a code prize's pool is unknown to the
/// ledger, so a pool that ran dry (the fallback drawn) and was loaded again
/// passes; a reward has a code exactly when its prize was a code prize in the
/// version that drew it, and no code is in the ledger twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_replay_each_once_and_a_repeated_missing_or_stray_code_fails() {
    use crate::support::helpers::draw;
    use prizewheel::domain::UserId;
    let app = TestApp::spawn().await;
    let mut spec = crate::codes::coupons("audit-codes", 5);
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    let user = UserId::parse("ada").unwrap();
    // R = 0 falls on the coupon, R = 9 on the fallback.
    let prizes = |from: u64, to: u64, r: u64| {
        let (app, id, user) = (&app, &id, &user);
        async move {
            let mut out = Vec::new();
            for n in from..to {
                out.push(draw(app, id, user, n, r).await.prize_id);
            }
            out
        }
    };
    crate::codes::upload(&app, &spec.id, "coupon", "AC-1\nAC-2\nAC-3\n".into()).await;
    let first = prizes(0, 8, 0).await;
    assert_eq!(
        first.iter().filter(|p| *p == "coupon").count(),
        3,
        "{first:?}"
    );
    assert_eq!(prizes(8, 10, 9).await, ["none", "none"]);
    // The pool ran dry; loaded again, the coupon is drawn again.
    crate::codes::upload(&app, &spec.id, "coupon", "AC-4\nAC-5\nAC-6\nAC-7\n".into()).await;
    let second = prizes(10, 15, 0).await;
    assert_eq!(second, ["coupon", "coupon", "coupon", "coupon", "none"]);
    // Version 2: the coupon is counted stock now, its wins carry no code.
    spec.code_prizes.clear();
    spec.prizes = vec![("coupon", 5, Some(20)), ("none", 5, None)];
    app.apply(&spec.yaml()).await;
    assert_eq!(prizes(15, 18, 0).await, ["coupon", "coupon", "coupon"]);
    settle_all(&app, &spec.id, "audit-codes").await;

    let (ok, text) = audit(&app, &spec.id);
    assert!(ok, "{text}");
    assert!(
        text.contains("18 rewards")
            && text.contains(
                "prize codes: 7 reward(s) with a code; 6 draw(s) of a code prize gave the fallback"
            ),
        "{text}"
    );

    // Tamper: two rewards hand out the same code.
    let coded: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT spin_id, code FROM rewards WHERE campaign_id = $1 AND code IS NOT NULL
         ORDER BY stream_ms, stream_seq",
    )
    .bind(&spec.id)
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(coded.len(), 7);
    let set_code = |spin: uuid::Uuid, code: Option<&str>| {
        let (pool, code) = (app.db.pool.clone(), code.map(str::to_owned));
        async move {
            sqlx::query("UPDATE rewards SET code = $2 WHERE spin_id = $1")
                .bind(spin)
                .bind(code)
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    set_code(coded[5].0, Some(&coded[1].1)).await;
    let (ok, text) = audit(&app, &spec.id);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!("reward {} at ", coded[5].0))
            && text.contains(&format!(
                "code `{}` was handed out before, by reward {}",
                coded[1].1, coded[1].0
            )),
        "{text}"
    );
    set_code(coded[5].0, Some(&coded[5].1)).await;
    assert!(audit(&app, &spec.id).0);

    // Tamper: a fallback reward and a coupon of version 2 get codes, a coupon
    // of version 1 loses its own.
    let of = |prize: &'static str, version: i64| {
        let pool = app.db.pool.clone();
        let campaign = spec.id.clone();
        async move {
            sqlx::query_scalar::<_, uuid::Uuid>(
                "SELECT spin_id FROM rewards WHERE campaign_id = $1 AND prize_id = $2
                 AND config_version = $3 ORDER BY stream_ms LIMIT 1",
            )
            .bind(campaign)
            .bind(prize)
            .bind(version)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let (fallback, later) = (of("none", 1).await, of("coupon", 2).await);
    set_code(fallback, Some("AC-STRAY")).await;
    set_code(later, Some("AC-LATER")).await;
    set_code(coded[0].0, None).await;
    let (ok, text) = audit(&app, &spec.id);
    assert!(!ok, "{text}");
    for expected in [
        format!("reward {fallback} at "),
        "`none` has no codes in version 1, but the ledger gives it code `AC-STRAY`".to_owned(),
        format!("reward {later} at "),
        "`coupon` has no codes in version 2, but the ledger gives it code `AC-LATER`".to_owned(),
        format!("reward {} at ", coded[0].0),
        "`coupon` is a code prize in version 1, but the ledger has no code for it".to_owned(),
    ] {
        assert!(text.contains(&expected), "{expected}: {text}");
    }
    assert!(text.contains("3 mismatch(es)"), "{text}");
}
