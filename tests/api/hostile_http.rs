//! A hostile client at the HTTP layer: bodies that trickle in,
//! tokens and `Authorization` headers that bend the rules, media types that only
//! look like JSON, and malformed requests that must not flood the error log.

use crate::support::helpers::{AUDIENCE, SECRET, Spec, TestApp, now_secs, spin, token};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What the server wrote on a connection, and how long after the request head
/// it closed the connection (`None`: still open after `patience`).
struct Trickled {
    answer: String,
    closed_after: Option<Duration>,
}

/// Sends `head` on a new connection, then `piece` every 200 ms (a client that
/// keeps a body coming a byte at a time) until the server closes the
/// connection or `patience` runs out.
fn trickle(port: u16, head: String, piece: &'static [u8], patience: Duration) -> Trickled {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_nodelay(true).unwrap();
    let mut writer = stream.try_clone().unwrap();
    writer.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let dripping = {
        let done = done.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) && started.elapsed() < patience {
                if writer.write_all(piece).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let mut reader = stream;
    reader
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let closed_after = loop {
        if started.elapsed() > patience {
            break None;
        }
        match reader.read(&mut buf) {
            Ok(0) => break Some(started.elapsed()),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            // A reset also ends the connection.
            Err(_) => break Some(started.elapsed()),
        }
    };
    done.store(true, Ordering::Relaxed);
    let _ = dripping.join();
    Trickled {
        answer: String::from_utf8_lossy(&answer).into_owned(),
        closed_after,
    }
}

fn port_of(app: &TestApp) -> u16 {
    app.address.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_in_is_cut_at_the_body_timeout() {
    let timeout = Duration::from_millis(500);
    let app = TestApp::spawn_with(|s| {
        s.http.body_timeout_ms = std::num::NonZeroU64::new(timeout.as_millis() as u64).unwrap()
    })
    .await;
    let spec = Spec::new("trickle");
    app.apply(&spec.yaml()).await;
    let port = port_of(&app);
    let user = token("trickler", &[]);
    let marketing = token("mallory", &["marketing"]);
    let spin_head = |token: &str, framing: &str| {
        format!(
            "POST /v1/campaigns/{}/spins HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nIdempotency-Key: k1\r\nContent-Type: application/json\r\n{framing}\r\n\r\n",
            spec.id
        )
    };
    let chunk: &'static [u8] = b"1\r\n \r\n";
    // (case, request head, what it trickles, the answer expected)
    let cases: Vec<(&str, String, &'static [u8], &str)> = vec![
        (
            "spin, Content-Length",
            spin_head(&user, "Content-Length: 4000"),
            b" ",
            "HTTP/1.1 408",
        ),
        (
            "spin, chunked",
            spin_head(&user, "Transfer-Encoding: chunked"),
            chunk,
            "HTTP/1.1 408",
        ),
        (
            "admin PUT",
            format!(
                "PUT /v1/admin/campaigns/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {marketing}\r\nContent-Type: application/yaml\r\nContent-Length: 4000\r\n\r\n",
                spec.id
            ),
            b"#",
            "HTTP/1.1 408",
        ),
        // Answered before the body is read: the connection closes all the same
        // (actix would drain a chunked body for as long as it kept coming).
        (
            "spin with a bad token, chunked",
            spin_head("not-a-token", "Transfer-Encoding: chunked"),
            chunk,
            "HTTP/1.1 401",
        ),
        (
            "GET /healthz with a chunked body",
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
            chunk,
            "HTTP/1.1 200",
        ),
    ];
    // Several of each at once, as an attacker would; each gets its own answer.
    let patience = Duration::from_secs(15);
    let mut running = Vec::new();
    for (name, head, piece, expected) in &cases {
        for _ in 0..4 {
            let head = head.clone();
            let piece = *piece;
            running.push((
                *name,
                *expected,
                tokio::task::spawn_blocking(move || trickle(port, head, piece, patience)),
            ));
        }
    }
    // Generous against the 500 ms timeout: a busy 2-core machine must not fail it,
    // and a body that is not bounded never closes at all.
    let bound = Duration::from_secs(5);
    for (name, expected, task) in running {
        let t = task.await.unwrap();
        let closed = t.closed_after.unwrap_or_else(|| {
            panic!(
                "{name}: the connection was still open after {patience:?}: {:?}",
                t.answer
            )
        });
        assert!(closed < bound, "{name}: closed after {closed:?}");
        assert!(t.answer.starts_with(expected), "{name}: {:?}", t.answer);
        if expected.ends_with("408") {
            assert!(t.answer.contains("\"code\":\"body_timeout\""), "{name}");
        }
        assert!(
            t.answer.to_ascii_lowercase().contains("connection: close"),
            "{name}: {:?}",
            t.answer
        );
    }

    // Nothing was drawn, and the service still serves.
    let ok = app.spin(&spec.id, "trickler", "k1").await;
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["replayed"], false, "the trickled spin drew nothing");
}

/// Bodies read to their end keep the connection open for the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_bodies_were_read_stays_open() {
    let app = TestApp::spawn().await;
    let spec = Spec::new("keepalive");
    app.apply(&spec.yaml()).await;
    let port = port_of(&app);
    let t = token("kept", &[]);
    let id = spec.id.clone();
    let answers = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut answers = Vec::new();
        for (i, framing) in ["Content-Length: 2\r\n\r\n{}", "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"]
            .iter()
            .enumerate()
        {
            let request = format!(
                "POST /v1/campaigns/{id}/spins HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {t}\r\nIdempotency-Key: k{i}\r\nContent-Type: application/json\r\n{framing}"
            );
            s.write_all(request.as_bytes()).unwrap();
            // One answer: its head, then its Content-Length of body.
            let mut got = Vec::new();
            let mut byte = [0u8; 1];
            while !got.ends_with(b"\r\n\r\n") {
                assert_eq!(s.read(&mut byte).unwrap(), 1, "closed after {got:?}");
                got.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let mut body = vec![0; length];
            s.read_exact(&mut body).unwrap();
            answers.push(head);
        }
        answers
    })
    .await
    .unwrap();
    for head in answers {
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(!head.contains("connection: close"), "{head}");
    }
}

/// `GET /openapi.json`.
async fn openapi(app: &TestApp) -> Value {
    app.get("/openapi.json").await.json().await.unwrap()
}

#[tokio::test]
async fn the_openapi_document_lists_the_body_timeout() {
    let app = TestApp::spawn().await;
    let doc = openapi(&app).await;
    for (path, method) in [
        ("/v1/campaigns/{id}/spins", "post"),
        ("/v1/admin/campaigns/{id}", "put"),
        ("/v1/admin/campaigns/{id}/plan", "get"),
        ("/v1/admin/campaigns/{id}/plan", "post"),
    ] {
        assert!(
            doc["paths"][path][method]["responses"]["408"].is_object(),
            "{method} {path} documents 408"
        );
    }
}

fn sign(header: &Header, claims: &Value) -> String {
    jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
}

fn hs256(claims: &Value) -> String {
    sign(&Header::new(Algorithm::HS256), claims)
}

fn claims_for(sub: &str) -> Value {
    json!({"sub": sub, "exp": now_secs() + 600, "aud": AUDIENCE})
}

/// A spin with `Authorization: <value>` (each of `values`, in order).
async fn spin_with_authorization(
    app: &TestApp,
    campaign: &str,
    key: &str,
    values: &[&str],
) -> reqwest::Response {
    let mut req = app
        .client
        .post(format!("{}/v1/campaigns/{campaign}/spins", app.address))
        .header("Idempotency-Key", key);
    for v in values {
        // `header` appends: two values make two `Authorization` lines.
        req = req.header("Authorization", *v);
    }
    req.send().await.unwrap()
}

/// Status, code and detail of a problem answer.
async fn problem(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let p: Value = r.json().await.unwrap();
    (
        status,
        p["code"].as_str().unwrap_or_default().to_owned(),
        p["detail"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn a_token_with_a_crit_header_is_refused() {
    let app = TestApp::spawn().await;
    let spec = Spec::new("crit");
    app.apply(&spec.yaml()).await;
    let mut header = Header::new(Algorithm::HS256);
    header.crit = Some(vec!["https://example.com/unknown-extension".into()]);
    header
        .extras
        .insert("https://example.com/unknown-extension", true);
    let t = sign(&header, &claims_for("critic"));
    let r = spin(&app.client, &app.address, &spec.id, &t, "k1", None).await;
    let (status, code, detail) = problem(r).await;
    assert_eq!((status, code.as_str()), (401, "invalid_token"), "{detail}");
    assert!(detail.contains("crit"), "{detail}");
    assert!(!detail.contains(&t), "the token is not echoed");
    // The same claims without `crit` are fine.
    let t = hs256(&claims_for("critic"));
    let r = spin(&app.client, &app.address, &spec.id, &t, "k1", None).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn the_openapi_document_lists_the_400_for_two_authorization_headers() {
    let app = TestApp::spawn().await;
    let doc = openapi(&app).await;
    for (path, method) in [
        ("/v1/campaigns/{id}/spins", "post"),
        ("/v1/campaigns/{id}", "get"),
        ("/v1/admin/campaigns/{id}", "get"),
        ("/v1/finance/campaigns/{id}/summary", "get"),
    ] {
        let description = doc["paths"][path][method]["responses"]["400"]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(
            description.contains("invalid_authorization"),
            "{method} {path}: {description:?}"
        );
    }
}

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let app = TestApp::spawn().await;
    let spec = Spec::new("twoauth");
    app.apply(&spec.yaml()).await;
    let alice = format!("Bearer {}", token("alice", &[]));
    let bob = format!("Bearer {}", token("bob", &[]));
    for values in [[&alice, &bob], [&alice, &alice]] {
        let r = spin_with_authorization(&app, &spec.id, "k1", &[values[0], values[1]]).await;
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_request"),
            "RFC 6750 §3.1"
        );
        let (status, code, detail) = problem(r).await;
        assert_eq!(status, 400, "{detail}");
        assert_eq!(code, "invalid_authorization");
        assert!(detail.contains("one Authorization header"), "{detail}");
    }
    // Role-gated endpoints refuse it the same way.
    let finance = format!("Bearer {}", token("fiona", &["finance"]));
    let r = app
        .client
        .get(format!(
            "{}/v1/finance/campaigns/{}/summary",
            app.address, spec.id
        ))
        .header("Authorization", &finance)
        .header("Authorization", &finance)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Nothing was drawn for either user.
    let r = spin_with_authorization(&app, &spec.id, "k1", &[&alice]).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["replayed"], false);
}

#[tokio::test]
async fn the_auth_scheme_is_case_insensitive_and_only_spaces_separate_it() {
    let app = TestApp::spawn().await;
    let spec = Spec::new("scheme");
    app.apply(&spec.yaml()).await;
    let t = token("casey", &[]);
    for (i, ok) in [
        format!("Bearer {t}"),
        format!("bearer {t}"),
        format!("BEARER {t}"),
        format!("bEaReR {t}"),
        format!("Bearer   {t}"),
    ]
    .iter()
    .enumerate()
    {
        let r = spin_with_authorization(&app, &spec.id, &format!("ok{i}"), &[ok]).await;
        assert_eq!(r.status(), 200, "{:?}", ok.replace(&t, "<token>"));
    }
    for bad in [
        format!("Bearer\t{t}"),
        format!("Bearer{t}"),
        format!("Bearer {t} extra"),
        format!("Bearer {t}\tx"),
        format!("Bearer, {t}"),
        format!("Basic {t}"),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
    ] {
        let r = spin_with_authorization(&app, &spec.id, "bad", &[&bad]).await;
        let (status, code, detail) = problem(r).await;
        assert_eq!(
            (status, code.as_str()),
            (401, "invalid_token"),
            "{:?}",
            bad.replace(&t, "<token>")
        );
        assert!(!detail.contains(&t), "the token is not echoed: {detail}");
    }
}

#[tokio::test]
async fn tokens_that_live_too_long_are_refused() {
    let app = TestApp::spawn().await;
    let spec = Spec::new("lifetime");
    app.apply(&spec.yaml()).await;
    let now = now_secs();
    let day = 24 * 3600;
    let cases = [
        ("exp = u64::MAX", json!({"exp": u64::MAX})),
        ("exp in a year", json!({"exp": now + 365 * day})),
        (
            "issued 90 days ago, valid one more minute",
            json!({"iat": now - 90 * day, "exp": now + 60}),
        ),
    ];
    for (name, extra) in cases {
        let mut c = claims_for("eternal");
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let t = hs256(&c);
        let r = spin(&app.client, &app.address, &spec.id, &t, "k1", None).await;
        let (status, code, detail) = problem(r).await;
        assert_eq!((status, code.as_str()), (401, "invalid_token"), "{name}");
        assert!(detail.contains("lifetime"), "{name}: {detail}");
        assert!(!detail.contains(&t), "{name}: the token is not echoed");
    }
    // An ordinary token, with or without `iat`, is fine.
    for (i, extra) in [json!({}), json!({"iat": now})].iter().enumerate() {
        let mut c = claims_for("brief");
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let r = spin(
            &app.client,
            &app.address,
            &spec.id,
            &hs256(&c),
            &format!("k{i}"),
            None,
        )
        .await;
        assert_eq!(r.status(), 200, "{extra}");
    }
}

#[tokio::test]
async fn prizewheel_token_mints_only_within_the_maximum_lifetime() {
    let run = |ttl: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_prizewheel"))
            .args(["token", "--sub", "ops", "--ttl", ttl])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("PRIZEWHEEL_JWT_SECRET", SECRET)
            .output()
            .unwrap()
    };
    let refused = run("31536000");
    assert!(!refused.status.success(), "a token for a year is refused");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("max_token_lifetime_secs"), "{err}");
    let minted = run("3600");
    assert!(minted.status.success());
}

#[tokio::test]
async fn a_subject_with_control_characters_is_refused() {
    let app = TestApp::spawn().await;
    let spec = Spec::new("ctlsub");
    app.apply(&spec.yaml()).await;
    for sub in ["nul\u{0}byte", "new\nline", "tab\tbed", "del\u{7f}", "ünï"] {
        let t = hs256(&claims_for(sub));
        let r = spin(&app.client, &app.address, &spec.id, &t, "k1", None).await;
        let (status, code, detail) = problem(r).await;
        assert_eq!((status, code.as_str()), (401, "invalid_token"), "{sub:?}");
        assert!(detail.contains("printable ASCII"), "{sub:?}: {detail}");
    }
}

#[tokio::test]
async fn only_json_media_types_are_taken_as_json() {
    let app = TestApp::spawn().await;
    let spec = Spec::new("mediatype");
    app.apply(&spec.yaml()).await;
    let t = token("medea", &[]);
    let post = |key: &str, content_type: &str| {
        app.client
            .post(format!("{}/v1/campaigns/{}/spins", app.address, spec.id))
            .bearer_auth(&t)
            .header("Idempotency-Key", key)
            .header("Content-Type", content_type)
            .body(r#"{"order_id":"o-1"}"#)
            .send()
    };
    for bad in [
        "application/jsonfoo",
        "application/json-seq",
        "application/x-json+xml",
        "text/json",
        "application/+json",
        "application/json/x",
    ] {
        let (status, code, _) = problem(post("bad", bad).await.unwrap()).await;
        assert_eq!(
            (status, code.as_str()),
            (415, "unsupported_media_type"),
            "{bad}"
        );
    }
    for (i, ok) in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/json;charset=UTF-8",
        "application/vnd.shop.spin+json",
    ]
    .iter()
    .enumerate()
    {
        let r = post(&format!("ok{i}"), ok).await.unwrap();
        assert_eq!(r.status(), 200, "{ok}");
    }
}

/// Requests actix refuses before any handler runs (each answered 400, or the
/// connection closed).
const MALFORMED: &[&[u8]] = &[
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nBad\x01Header: 1\r\n\r\n",
    b"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
];

/// Sends `request` on a connection of its own and reads until the server closes it.
fn send_raw(port: u16, request: &[u8]) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(request);
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
}

/// The value of the series `name{labels}` in Prometheus text.
fn sample(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_counted_not_logged_as_errors() {
    use prizewheel::telemetry::connection_errors::{LINES_PER_SECOND, TARGET};
    let db = crate::support::helpers::TestDb::new().await;
    // The lines of the connection target on, to count that they are bounded.
    let filter = format!("info,{TARGET}=debug");
    let mut serve = crate::support::serve::Serve::start(
        &crate::support::helpers::redis_url(),
        &db.url,
        &[
            ("PRIZEWHEEL__SETTLE__ENABLED", "false"),
            ("PRIZEWHEEL__LOG__FILTER", &filter),
            ("RUST_LOG", &filter),
        ],
    );
    assert!(serve.up().await, "serve came up: {}", serve.stop());
    let port = serve.port;
    let started = Instant::now();
    let sent = 100;
    tokio::task::spawn_blocking(move || {
        for i in 0..sent {
            send_raw(port, MALFORMED[i % MALFORMED.len()]);
        }
    })
    .await
    .unwrap();
    let took = started.elapsed();
    let metrics = crate::support::helpers::client()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let log = serve.stop();

    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "error lines: {errors:#?}");
    let counted = sample(
        &metrics,
        "prizewheel_http_connection_errors_total",
        "kind=\"malformed\"",
    );
    assert!(
        counted >= sent as f64,
        "{counted} counted of {sent}:\n{metrics}"
    );
    // At most LINES_PER_SECOND in each second the requests took (and the one
    // they straddle into), whatever the machine's speed.
    let seconds = took.as_secs() + 2;
    let passed = log.lines().filter(|l| l.contains(TARGET)).count() as u64;
    assert!(
        passed <= u64::from(LINES_PER_SECOND) * seconds,
        "{passed} lines in {took:?}:\n{log}"
    );
    assert!(passed > 0, "the lines are passed on at DEBUG:\n{log}");
    // Nothing else was logged for them: actix's own events are not printed.
    let actix: Vec<&str> = log.lines().filter(|l| l.contains("actix_http")).collect();
    assert!(actix.is_empty(), "actix's lines: {actix:#?}");
}
