//! Hostile campaign YAML and ids (issue 15): alias bombs, huge values, many
//! problems, invisible line breaks and huge ids get a short, clear refusal, and
//! parsing them never stalls the service's other requests.

use crate::helpers::{Spec, TestApp, token};
use serde_json::Value;

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    roles: &[&str],
    yaml: Option<String>,
) -> (u16, String) {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(token("mallory-marketing", roles))
        .header("Idempotency-Key", "k1");
    if let Some(y) = yaml {
        req = req.header("content-type", "application/yaml").body(y);
    }
    let r = req.send().await.expect("request sent");
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn a_10_kb_campaign_id_is_not_echoed_in_full() {
    let app = TestApp::spawn().await;
    let id = "a".repeat(10 * 1024);
    let spec = Spec::new("short");
    let get = reqwest::Method::GET;
    for (method, path, roles, yaml, code) in [
        (
            get.clone(),
            format!("/v1/campaigns/{id}"),
            &[][..],
            None,
            "campaign_not_found",
        ),
        (
            reqwest::Method::POST,
            format!("/v1/campaigns/{id}/spins"),
            &[],
            None,
            "campaign_not_found",
        ),
        (
            get.clone(),
            format!("/v1/admin/campaigns/{id}"),
            &["marketing"],
            None,
            "campaign_not_found",
        ),
        (
            get.clone(),
            format!("/v1/finance/campaigns/{id}/rewards"),
            &["finance"],
            None,
            "campaign_not_found",
        ),
        (
            get.clone(),
            format!("/v1/finance/campaigns/{id}/summary"),
            &["finance"],
            None,
            "campaign_not_found",
        ),
        (
            reqwest::Method::PUT,
            format!("/v1/admin/campaigns/{id}"),
            &["marketing"],
            Some(spec.yaml()),
            "campaign_id_mismatch",
        ),
        (
            get.clone(),
            format!("/v1/admin/campaigns/{id}/plan"),
            &["marketing"],
            Some(spec.yaml()),
            "campaign_id_mismatch",
        ),
    ] {
        let (status, body) = send(&app, method.clone(), &path, roles, yaml).await;
        assert!(
            body.len() < 1024,
            "{method} {}…: {} bytes",
            &path[..30],
            body.len()
        );
        let p: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(p["code"], code, "{p}");
        assert_eq!(
            status,
            if code == "campaign_not_found" {
                404
            } else {
                422
            }
        );
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("`{}…`", "a".repeat(40))),
            "{detail}"
        );
    }
}
