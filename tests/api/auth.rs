//! Bearer tokens: every bad token is 401 before any Redis call.

use crate::support::helpers::{AUDIENCE, PrivateRedis, SECRET, Spec, TestApp, now_secs, spin};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use prizewheel::http::auth::Claims;
use serde_json::{Value, json};

fn claims(sub: &str, exp: u64, aud: &str) -> Claims {
    Claims {
        sub: sub.into(),
        exp,
        roles: vec![],
        iss: None,
        aud: Some(json!(aud)),
    }
}

fn sign(alg: Algorithm, secret: &str, c: &Claims) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        c,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[tokio::test]
async fn bad_tokens_are_401_and_never_reach_redis() {
    let redis = PrivateRedis::start().await;
    redis.log_every_command();
    let url = redis.url.clone();
    let app = TestApp::spawn_with(|s| s.redis.url = Some(url.into())).await;
    let spec = Spec::new("auth");
    app.apply(&spec.yaml()).await;
    // Only the draw script: the service's background loops run other scripts.
    let draws = || redis.script_calls(prizewheel::store::redis::scripts::SPIN.get_hash());
    let scripts_before = draws();

    let now = now_secs();
    let good = claims("user-1", now + 600, AUDIENCE);
    let payload = b64(&serde_json::to_string(&good).unwrap());
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        (
            "expired",
            Some(sign(
                Algorithm::HS256,
                SECRET,
                &claims("user-1", now - 3600, AUDIENCE),
            )),
        ),
        ("wrong alg", Some(sign(Algorithm::HS384, SECRET, &good))),
        (
            "alg none",
            Some(format!(
                "{}.{payload}.",
                b64(r#"{"alg":"none","typ":"JWT"}"#)
            )),
        ),
        (
            "wrong signature",
            Some(sign(
                Algorithm::HS256,
                "another-secret-another-secret-0000",
                &good,
            )),
        ),
        (
            "wrong audience",
            Some(sign(
                Algorithm::HS256,
                SECRET,
                &claims("user-1", now + 600, "someone-else"),
            )),
        ),
        ("garbage", Some("not.a.token".into())),
        (
            "empty subject",
            Some(sign(
                Algorithm::HS256,
                SECRET,
                &claims("", now + 600, AUDIENCE),
            )),
        ),
        ("100 KB", Some("a".repeat(100 * 1024))),
    ];
    for (name, token) in cases {
        let mut req = app
            .client
            .post(format!("{}/v1/campaigns/{}/spins", app.address, spec.id))
            .header("Idempotency-Key", "k1");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{name}");
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer"),
            "{name}"
        );
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{name}"
        );
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["code"], "invalid_token", "{name}");
    }

    // Past 128 KiB of headers, actix-web refuses the request itself (431) and
    // closes the connection before any handler runs (a client of its own, so the
    // closed connection is not reused).
    let r = crate::support::helpers::client()
        .post(format!("{}/v1/campaigns/{}/spins", app.address, spec.id))
        .bearer_auth("a".repeat(200 * 1024))
        .header("Idempotency-Key", "k1")
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status(), 431);
    }

    assert_eq!(draws(), scripts_before, "no draw was attempted");
    // A good token does reach Redis, so the counter above can move.
    let ok = spin(
        &app.client,
        &app.address,
        &spec.id,
        &sign(Algorithm::HS256, SECRET, &good),
        "k1",
        None,
    )
    .await;
    assert_eq!(ok.status(), 200);
    assert!(draws() > scripts_before);
}

#[tokio::test]
async fn a_token_without_the_audience_claim_is_refused_when_one_is_configured() {
    let app = TestApp::spawn().await;
    let mut c = claims("user-1", now_secs() + 600, AUDIENCE);
    c.aud = None;
    let r = spin(
        &app.client,
        &app.address,
        "any",
        &sign(Algorithm::HS256, SECRET, &c),
        "k",
        None,
    )
    .await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn es256_is_accepted_when_pinned_and_hs256_then_refused() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let app = TestApp::spawn_with(|s| {
        s.auth.algorithm = prizewheel::http::auth::JwtAlgorithm::ES256;
        s.auth.secret = None;
        s.auth.public_key_file = Some(format!("{fixtures}/es256-public.pem").into());
    })
    .await;
    let spec = Spec::new("es256");
    app.apply(&spec.yaml()).await;
    let pem = std::fs::read(format!("{fixtures}/es256-private-pkcs8.pem")).unwrap();
    let c = claims("user-es", now_secs() + 600, AUDIENCE);
    let es = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &c,
        &EncodingKey::from_ec_pem(&pem).unwrap(),
    )
    .unwrap();
    let r = spin(&app.client, &app.address, &spec.id, &es, "k1", None).await;
    assert_eq!(r.status(), 200);
    let r = spin(
        &app.client,
        &app.address,
        &spec.id,
        &sign(Algorithm::HS256, SECRET, &c),
        "k2",
        None,
    )
    .await;
    assert_eq!(
        r.status(),
        401,
        "an HS256 token is refused when ES256 is pinned"
    );
}
