//! The campaign window and pause.

use crate::support::helpers::{Spec, TestApp};
use serde_json::Value;

async fn code_of(app: &TestApp, spec: &Spec) -> (u16, String) {
    let r = app.spin(&spec.id, "ivan", "k1").await;
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn before_start_after_end_and_paused_are_409() {
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now();

    let mut early = Spec::new("early");
    early.starts_at = (now + chrono::Duration::days(1)).to_rfc3339();
    early.ends_at = (now + chrono::Duration::days(2)).to_rfc3339();
    app.apply(&early.yaml()).await;
    assert_eq!(
        code_of(&app, &early).await,
        (409, "campaign_not_started".into())
    );

    let mut late = Spec::new("late");
    late.starts_at = (now - chrono::Duration::days(2)).to_rfc3339();
    late.ends_at = (now - chrono::Duration::days(1)).to_rfc3339();
    app.apply(&late.yaml()).await;
    assert_eq!(code_of(&app, &late).await, (409, "campaign_ended".into()));

    let mut paused = Spec::new("paused");
    paused.paused = true;
    app.apply(&paused.yaml()).await;
    assert_eq!(
        code_of(&app, &paused).await,
        (409, "campaign_paused".into())
    );
    paused.paused = false;
    app.apply(&paused.yaml()).await;
    assert_eq!(
        code_of(&app, &paused).await.0,
        200,
        "resumes after un-pausing"
    );
}

#[tokio::test]
async fn the_client_view_shows_status_availability_and_spins_left() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("view");
    spec.spins_per_user = 3;
    spec.prizes = vec![("gold", 1_000_000, Some(1)), ("none", 1, None)];
    app.apply(&spec.yaml()).await;
    let view = |user: &'static str| {
        let (c, a, id) = (app.client.clone(), app.address.clone(), spec.id.clone());
        async move {
            c.get(format!("{a}/v1/campaigns/{id}"))
                .bearer_auth(crate::support::helpers::token(user, &[]))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let before = view("judy").await;
    assert_eq!(before["status"], "live");
    assert_eq!(before["spins_left"], 3);
    assert_eq!(before["prizes"][0]["available"], true);
    assert!(
        before["prizes"][0].get("stock").is_none(),
        "stock counts are not shown to clients"
    );

    assert_eq!(app.spin(&spec.id, "judy", "k1").await.status(), 200);
    let after = view("judy").await;
    assert_eq!(after["spins_left"], 2);
    assert_eq!(
        after["prizes"][0]["available"], false,
        "the single gold unit is gone"
    );
    assert_eq!(view("karl").await["spins_left"], 3, "counts are per user");
}
