//! What an operator sees: `/metrics` series and their bounded labels, traces
//! reaching an OTLP receiver with the caller's `traceparent`, one JSON log line
//! per request carrying the trace id and never the token, and readiness
//! following Redis.

use crate::support::helpers::{Spec, TestApp, client, redis_url, token};
use crate::support::proxy::Proxy;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

async fn metrics_text(app: &TestApp) -> String {
    app.client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Series lines (not comments) of `name` that contain every one of `labels`.
fn series<'a>(text: &'a str, name: &str, labels: &[&str]) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|want| l.contains(want)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_the_sale_with_bounded_labels() {
    let app = TestApp::spawn_with(|s| {
        s.settle = crate::support::settling::fast();
        s.admission.per_user.enabled = true;
        s.admission.per_user.per_second = 1;
        s.admission.per_user.burst = 3;
    })
    .await;
    let mut spec = Spec::new("metrics");
    spec.prizes = vec![("gold", 1, Some(1)), ("none", 1, None)];
    app.apply(&spec.yaml()).await;
    for (i, user) in ["ann", "bob", "cat"].iter().enumerate() {
        assert_eq!(
            app.spin(&spec.id, user, &format!("k{i}")).await.status(),
            200
        );
    }
    assert_eq!(
        app.spin(&spec.id, "ann", "k0").await.status(),
        200,
        "a replay"
    );
    // Four more from one user: over the per-user burst of 3.
    let mut drawn_for_dan = 0;
    for i in 0..4 {
        if app.spin(&spec.id, "dan", &format!("d{i}")).await.status() == 200 {
            drawn_for_dan += 1;
        }
    }
    assert!(drawn_for_dan < 4, "the per-user limiter refused some");

    let id = format!("campaign=\"{}\"", spec.id);
    let mut text = String::new();
    // Gauges are sampled every 5 s and batches settle within a second.
    for _ in 0..100 {
        text = metrics_text(&app).await;
        if !series(&text, "prizewheel_stock_remaining", &[&id]).is_empty()
            && !series(&text, "prizewheel_settlement_lag_entries", &[&id]).is_empty()
            && !series(&text, "prizewheel_settlement_batch_size_count", &[]).is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (name, labels) in [
        (
            "http_server_request_duration_seconds_bucket",
            vec![
                "http_route=\"/v1/campaigns/{id}/spins\"",
                "http_request_method=\"POST\"",
                "http_response_status_code=\"200\"",
            ],
        ),
        ("prizewheel_spins_total", vec![&id[..], "outcome=\"drawn\""]),
        (
            "prizewheel_spins_total",
            vec![&id[..], "outcome=\"replayed\""],
        ),
        ("prizewheel_prizes_awarded_total", vec![&id[..]]),
        (
            "prizewheel_stock_remaining",
            vec![&id[..], "prize=\"none\""],
        ),
        (
            "prizewheel_admission_rejections_total",
            vec!["layer=\"per_user\""],
        ),
        ("prizewheel_redis_in_flight", vec![]),
        (
            "prizewheel_redis_script_duration_seconds_bucket",
            vec!["script=\"spin\""],
        ),
        ("prizewheel_settlement_lag_entries", vec![&id[..]]),
        ("prizewheel_settlement_lag_age_seconds", vec![&id[..]]),
        ("prizewheel_settlement_dead_letters", vec![&id[..]]),
        ("prizewheel_campaign_awaiting_recovery", vec![&id[..]]),
        ("prizewheel_settlement_batch_size_count", vec![]),
        ("prizewheel_settlement_batch_duration_seconds_count", vec![]),
    ] {
        assert!(
            !series(&text, name, &labels).is_empty(),
            "no {name} with {labels:?} in\n{text}"
        );
    }
    // Every first answer was drawn, the replay was not: the counter says so.
    let drawn = series(&text, "prizewheel_spins_total", &[&id, "outcome=\"drawn\""]);
    assert!(
        drawn[0].ends_with(&format!(" {}", 3 + drawn_for_dan)),
        "{drawn:?}"
    );

    // Made-up campaign ids in paths never become label values.
    for i in 0..200 {
        let r = app
            .spin(&format!("made-up-{i}"), &format!("eve-{i}"), "m")
            .await;
        assert_eq!(r.status(), 404);
    }
    let text = metrics_text(&app).await;
    assert!(!text.contains("made-up"), "a client's id became a label");
    let target = text
        .lines()
        .find(|l| l.starts_with("target_info{"))
        .expect("target_info is exposed");
    assert!(
        target.contains("service_name=\"prizewheel\""),
        "the metrics name the service: {target}"
    );
    assert_eq!(
        series(
            &text,
            "prizewheel_spins_total",
            &["outcome=\"unknown_campaign\""]
        )
        .len(),
        1
    );
}

/// The sampler's pacing and budget gauges: units released by each prize's
/// rule, the value awarded and what the budget has left; -1 for an unlimited
/// prize and for a campaign without a budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_units_and_the_budget_are_sampled() {
    use crate::support::helpers::draw;
    use prizewheel::domain::{CampaignId, UserId};
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("metrics-paced");
    // Three days in: `per_day: 2` has released 8 units.
    spec.starts_at = (chrono::Utc::now() - chrono::Duration::days(3)).to_rfc3339();
    spec.prizes = vec![("gold", 1, Some(100)), ("none", 1, None)];
    spec.releases.insert("gold", "{ per_day: 2 }".into());
    spec.amounts = [("gold", "5.25"), ("none", "0")]
        .into_iter()
        .map(|(p, a)| (p, a.to_owned()))
        .collect();
    spec.budget = Some("100.00".into());
    app.apply(&spec.yaml()).await;
    let plain = Spec::new("metrics-plain");
    app.apply(&plain.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    let user = UserId::parse("gus").unwrap();
    for n in 0..3 {
        assert_eq!(draw(&app, &id, &user, n, 0).await.prize_id, "gold");
    }

    let (paced, unpaced) = (
        format!("campaign=\"{}\"", spec.id),
        format!("campaign=\"{}\"", plain.id),
    );
    let value = |text: &str, name: &str, labels: &[&str]| {
        series(text, &format!("{name}{{"), labels)
            .first()
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let mut text = String::new();
    // Sampled every 5 s.
    for _ in 0..150 {
        text = metrics_text(&app).await;
        if value(&text, "prizewheel_budget_spent", &[&paced]) == Some(15.75)
            && value(&text, "prizewheel_budget_left", &[&unpaced]).is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let gold = [&paced[..], "prize=\"gold\""];
    assert_eq!(
        value(&text, "prizewheel_stock_released", &gold),
        Some(8.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "prizewheel_stock_remaining", &gold),
        Some(97.0)
    );
    assert_eq!(
        value(
            &text,
            "prizewheel_stock_released",
            &[&paced, "prize=\"none\""]
        ),
        Some(-1.0),
        "unlimited"
    );
    assert_eq!(
        value(&text, "prizewheel_budget_spent", &[&paced]),
        Some(15.75)
    );
    assert_eq!(
        value(&text, "prizewheel_budget_left", &[&paced]),
        Some(84.25)
    );
    // Without a budget or pacing: the whole stock released, -1 left.
    assert_eq!(
        value(
            &text,
            "prizewheel_stock_released",
            &[&unpaced, "prize=\"gold\""]
        ),
        Some(10.0)
    );
    assert_eq!(
        value(&text, "prizewheel_budget_left", &[&unpaced]),
        Some(-1.0)
    );
    assert_eq!(
        value(&text, "prizewheel_budget_spent", &[&unpaced]),
        Some(0.0)
    );
}

/// The sampler's code gauges: per code prize the codes in its pool and the
/// codes ever loaded (a withdrawal lowers the first, not the second); a code
/// prize without codes reads 0 available, one retired -1; no code series for
/// other prizes; and whether each campaign is live (a paused one is not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_pools_and_live_campaigns_are_sampled() {
    use crate::codes::{codes_call, coupons, upload};
    use crate::support::helpers::draw;
    use prizewheel::domain::{CampaignId, UserId};
    let app = TestApp::spawn().await;
    let mut spec = coupons("metrics-codes", 5);
    spec.prizes.insert(1, ("voucher", 1, None));
    spec.prizes.insert(2, ("gift", 1, None));
    spec.code_prizes.extend(["voucher", "gift"]);
    app.apply(&spec.yaml()).await;
    let loaded: Vec<String> = (0..30).map(|i| format!("MC-{i:03}")).collect();
    let up = upload(&app, &spec.id, "coupon", loaded.join("\n")).await;
    assert_eq!(up["added"], 30, "{up}");
    let up = upload(&app, &spec.id, "gift", "G-1\nG-2".into()).await;
    assert_eq!(up["added"], 2, "{up}");
    // The gift is dropped from the campaign: retired.
    spec.prizes.retain(|p| p.0 != "gift");
    spec.code_prizes.retain(|p| *p != "gift");
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    let user = UserId::parse("cody").unwrap();
    // r = 0 lands on the first prize of the table: the coupon.
    for n in 0..4 {
        let won = draw(&app, &id, &user, n, 0).await;
        assert_eq!(won.prize_id, "coupon");
    }
    let (status, w) = codes_call(
        &app,
        reqwest::Method::DELETE,
        &spec.id,
        "coupon",
        "MC-028\nMC-029".into(),
    )
    .await;
    assert_eq!(status, 200, "{w}");
    // Either code may have been awarded: what was withdrawn is counted.
    let withdrawn = w["withdrawn"].as_i64().unwrap();
    let available = 30 - 4 - withdrawn;
    let mut paused = Spec::new("metrics-paused");
    paused.paused = true;
    app.apply(&paused.yaml()).await;

    let (codes, stopped) = (
        format!("campaign=\"{}\"", spec.id),
        format!("campaign=\"{}\"", paused.id),
    );
    let value = |text: &str, name: &str, labels: &[&str]| {
        series(text, &format!("{name}{{"), labels)
            .first()
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let coupon = [&codes[..], "prize=\"coupon\""];
    let mut text = String::new();
    // Sampled every 5 s.
    for _ in 0..150 {
        text = metrics_text(&app).await;
        if value(&text, "prizewheel_codes_available", &coupon) == Some(available as f64)
            && value(&text, "prizewheel_campaign_live", &[&stopped]).is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        value(&text, "prizewheel_codes_available", &coupon),
        Some(available as f64),
        "{text}"
    );
    assert_eq!(
        value(&text, "prizewheel_codes_loaded", &coupon),
        Some(30.0),
        "loaded counts every code ever added"
    );
    let voucher = [&codes[..], "prize=\"voucher\""];
    assert_eq!(
        value(&text, "prizewheel_codes_available", &voucher),
        Some(0.0),
        "a code prize without codes"
    );
    assert_eq!(value(&text, "prizewheel_codes_loaded", &voucher), Some(0.0));
    let gift = [&codes[..], "prize=\"gift\""];
    assert_eq!(
        value(&text, "prizewheel_codes_available", &gift),
        Some(-1.0),
        "a retired code prize"
    );
    assert_eq!(value(&text, "prizewheel_codes_loaded", &gift), Some(2.0));
    assert!(
        series(&text, "prizewheel_codes_", &[&codes, "prize=\"none\""]).is_empty(),
        "no code series for a prize that takes no codes"
    );
    assert!(
        series(&text, "prizewheel_codes_", &[&stopped]).is_empty(),
        "nor for a campaign without code prizes"
    );
    assert_eq!(
        value(&text, "prizewheel_campaign_live", &[&codes]),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "prizewheel_campaign_live", &[&stopped]),
        Some(0.0),
        "a paused campaign is not live"
    );
}

/// What the receiver got: (path, body) of each request.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A tiny OTLP/HTTP receiver: answers 200 to every POST and keeps (path, body).
fn otlp_receiver() -> (u16, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received: Received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64).flatten() {
            let sink = sink.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                // Requests on one keep-alive connection, one after another.
                for _ in 0..1000 {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 {
                            return;
                        }
                        let header = header.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = header.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length.min(16 << 20)];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    sink.lock().unwrap().push((path, body));
                    let _ = writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                }
            });
        }
    });
    (port, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_reach_otlp_and_each_request_logs_one_line_with_its_trace_id_and_no_token() {
    let app = TestApp::spawn().await;
    let spec = Spec::new("traced");
    let (receiver, received) = otlp_receiver();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let logs = crate::support::helpers::TempDir::new();
    let log_path = logs.0.join("stdout.log");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_prizewheel"))
        .arg("serve")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PRIZEWHEEL_LISTEN", format!("127.0.0.1:{port}"))
        .env("REDIS_URL", redis_url())
        .env("DATABASE_URL", &app.db.url)
        .env("PRIZEWHEEL_JWT_SECRET", crate::support::helpers::SECRET)
        .env(
            "PRIZEWHEEL__AUTH__AUDIENCE",
            crate::support::helpers::AUDIENCE,
        )
        .env("PRIZEWHEEL__SETTLE__ENABLED", "false")
        .env("PRIZEWHEEL__LOG__FORMAT", "json")
        .env("PRIZEWHEEL__LOG__FILTER", "info")
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{receiver}"),
        )
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env_remove("RUST_LOG")
        .stdout(std::fs::File::create(&log_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let address = format!("http://127.0.0.1:{port}");
    let c = client();
    let mut up = false;
    for _ in 0..200 {
        if c.get(format!("{address}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "serve came up");
    app.apply(&spec.yaml()).await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let user_token = token("tracy", &[]);
    let r = c
        .post(format!("{address}/v1/campaigns/{}/spins", spec.id))
        .bearer_auth(&user_token)
        .header("Idempotency-Key", "t-1")
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bad_token = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.not-a-signature";
    let r = c
        .post(format!("{address}/v1/campaigns/{}/spins", spec.id))
        .bearer_auth(bad_token)
        .header("Idempotency-Key", "t-2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // SIGTERM: the service stops and flushes its spans.
    let _ = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    let mut stopped = false;
    for _ in 0..200 {
        if serve.try_wait().unwrap().is_some() {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !stopped {
        let _ = serve.kill();
    }
    assert!(stopped, "serve stopped on SIGTERM");

    let raw_trace_id: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let exported = received.lock().unwrap().clone();
    assert!(
        exported.iter().any(|(path, body)| path == "/v1/traces"
            && body.windows(16).any(|w| w == raw_trace_id.as_slice())
            && body.windows(12).any(|w| w == b"redis.script")),
        "the spin's trace (with its Redis script span) reached the receiver: {:?}",
        exported
            .iter()
            .map(|(p, b)| (p, b.len()))
            .collect::<Vec<_>>()
    );

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        !log.contains(&user_token) && !log.contains(bad_token),
        "a token was logged"
    );
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let traced: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l.to_string().contains(trace_id))
        .collect();
    assert_eq!(traced.len(), 1, "one line for the spin: {traced:?}");
    let line = traced[0].to_string();
    assert!(
        line.contains("/v1/campaigns/{id}/spins")
            && line.contains("\"drawn\"")
            && line.contains(&spec.id),
        "{line}"
    );
    let spins = lines
        .iter()
        .filter(|l| l["target"] == "prizewheel::access" && l.to_string().contains("/spins"))
        .count();
    assert_eq!(spins, 2, "one access line per spin request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_redis() {
    let target = redis_url().trim_start_matches("redis://").to_owned();
    let proxy = Proxy::start(target).await;
    let url = format!("redis://127.0.0.1:{}", proxy.port);
    let app = TestApp::spawn_with(|s| {
        s.redis.url = Some(url.into());
        s.redis.response_timeout_ms = 300;
        s.redis.connect_timeout_ms = 300;
    })
    .await;
    let ready = || async {
        let r = app.get("/readyz").await;
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().await.unwrap())
    };
    let (status, body) = ready().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["redis"], "ok");

    proxy.down();
    let (status, body) = ready().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "not_ready");
    assert_ne!(body["checks"]["redis"], "ok");

    proxy.up();
    assert!(
        ready_within(&app, Duration::from_secs(5)).await,
        "ready again once Redis is reachable"
    );
}

/// Polls `/readyz` until it answers 200 (true) or `limit` has passed (false).
async fn ready_within(app: &TestApp, limit: Duration) -> bool {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if app.get("/readyz").await.status() == 200 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A PostgreSQL that stops answering without closing anything (a black hole)
/// makes readiness fail in time, naming `postgres`, instead of hanging the probe
/// (orchestrators give up on a probe after about a second and learn nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_answers_in_time_when_postgres_is_a_black_hole() {
    let (proxy, app) =
        crate::support::proxy::service_with_postgres_behind_proxy(|s| s.settle.enabled = true)
            .await;
    let probe = || async {
        let started = std::time::Instant::now();
        let r = app.get("/readyz").await;
        let status = r.status().as_u16();
        let body = r.json::<serde_json::Value>().await.unwrap();
        (status, body, started.elapsed())
    };
    let (status, body, _) = probe().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["postgres"], "ok");

    proxy.black_hole();
    for _ in 0..3 {
        let (status, body, took) = probe().await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["code"], "not_ready");
        let pg = body["checks"]["postgres"].as_str().unwrap_or_default();
        assert!(pg.contains("did not answer in time"), "{body}");
        assert!(
            took < Duration::from_millis(2_500),
            "readiness answered in {took:?} (two PostgreSQL queries of at most 800 ms)"
        );
    }

    proxy.heal();
    assert!(
        ready_within(&app, Duration::from_secs(5)).await,
        "ready again once PostgreSQL answers"
    );
}
