//! Bad requests get a documented 4xx problem, never a 500.

use crate::support::helpers::{Spec, TestApp, token};
use serde_json::Value;

async fn problem(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["status"], status);
    (status, p["code"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn bad_keys_and_bodies_are_4xx_problems() {
    let app = TestApp::spawn().await;
    let spec = Spec::new("bodies");
    app.apply(&spec.yaml()).await;
    let url = format!("{}/v1/campaigns/{}/spins", app.address, spec.id);
    let t = token("nina", &[]);
    let post = || app.client.post(&url).bearer_auth(&t);

    assert_eq!(
        problem(post().send().await.unwrap()).await,
        (400, "idempotency_key_missing".into())
    );
    for bad in [
        "k".repeat(65),
        "has space".into(),
        "semi;colon".into(),
        String::new(),
    ] {
        let r = post()
            .header("Idempotency-Key", bad.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(
            problem(r).await,
            (400, "idempotency_key_invalid".into()),
            "{bad:?}"
        );
    }
    let json = |body: String| {
        post()
            .header("Idempotency-Key", "k1")
            .header("content-type", "application/json")
            .body(body)
    };
    assert_eq!(
        problem(json("{\"order_id\":".into()).send().await.unwrap()).await,
        (400, "malformed_body".into())
    );
    assert_eq!(
        problem(json("[1,2]".into()).send().await.unwrap()).await,
        (400, "malformed_body".into())
    );
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(5000));
    assert_eq!(
        problem(json(big).send().await.unwrap()).await,
        (413, "body_too_large".into())
    );
    let r = post()
        .header("Idempotency-Key", "k1")
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await, (415, "unsupported_media_type".into()));

    // None of these drew anything; a good request still works.
    let ok = json("{\"order_id\":\"o-9\"}".into()).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["spins_left"], 999);
}

#[tokio::test]
async fn unknown_routes_health_and_openapi() {
    let app = TestApp::spawn().await;
    let r = app.get("/nope").await;
    assert_eq!(problem(r).await, (404, "not_found".into()));

    // A known path with a method it does not serve: 405 and what it does serve.
    for (method, path, allow) in [
        ("TRACE", "/healthz", "GET"),
        ("DELETE", "/v1/campaigns/some-sale/spins", "POST"),
        ("PATCH", "/v1/admin/campaigns/some-sale/plan", "GET, POST"),
        ("POST", "/metrics", "GET"),
    ] {
        let r = app
            .client
            .request(method.parse().unwrap(), format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["allow"], allow, "{method} {path}");
        assert_eq!(problem(r).await, (405, "method_not_allowed".into()));
    }

    let r = app.get("/healthz").await;
    assert_eq!(r.status(), 200);
    let r = app.get("/readyz").await;
    assert_eq!(r.status(), 200);

    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_valid_openapi(&doc);
    let spin = &doc["paths"]["/v1/campaigns/{id}/spins"]["post"];
    for status in [
        "200", "400", "401", "404", "409", "413", "422", "429", "503",
    ] {
        assert!(
            spin["responses"].get(status).is_some(),
            "spin documents {status}"
        );
    }
    assert!(doc["paths"]["/v1/admin/campaigns/{id}"]["put"].is_object());
    for method in ["get", "post"] {
        let plan = &doc["paths"]["/v1/admin/campaigns/{id}/plan"][method];
        assert!(
            plan["responses"]["403"].is_object(),
            "plan {method} documents 403"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

/// Runs openapi-spec-validator (PyPI; scripts/test.sh installs it and names
/// its python3 in PRIZEWHEEL_TEST_OPENAPI_PYTHON) on `doc`: (success, output).
fn validate_openapi(doc: &Value) -> (bool, String) {
    let python = std::env::var("PRIZEWHEEL_TEST_OPENAPI_PYTHON").expect(
        "PRIZEWHEEL_TEST_OPENAPI_PYTHON must name a python3 with openapi-spec-validator: run bash scripts/test.sh",
    );
    let dir = crate::support::helpers::TempDir::new();
    let file = dir.0.join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(doc).unwrap()).unwrap();
    let out = std::process::Command::new(python)
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The served document is valid OpenAPI 3.1 to a real validator (client
/// generators reject an invalid one), and every operation has its own id.
fn assert_valid_openapi(doc: &Value) {
    let (valid, out) = validate_openapi(doc);
    assert!(valid, "the OpenAPI document is invalid: {out}");
    let mut ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "operationIds are unique: {ids:?}");
    // The validator does refuse: the same document less one response's description.
    let mut broken = doc.clone();
    broken["paths"]["/v1/campaigns/{id}/spins"]["post"]["responses"]["200"]
        .as_object_mut()
        .unwrap()
        .remove("description");
    let (valid, out) = validate_openapi(&broken);
    assert!(!valid, "a response without a description passed: {out}");
}
