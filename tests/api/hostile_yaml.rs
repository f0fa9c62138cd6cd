//! Hostile campaign YAML and ids: alias bombs, huge values, many
//! problems, invisible line breaks and huge ids get a short, clear refusal, and
//! parsing them never stalls the service's other requests.

use crate::support::helpers::{Spec, TempDir, TestApp, token};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// An answer larger than this echoes input it should have shortened.
const BOUND: usize = 64 * 1024;

/// 9 anchors, each a list of 9 aliases to the one before: a few hundred bytes
/// that expand to 9^9 values.
fn alias_bomb(id: &str) -> String {
    let mut y = format!("id: {id}\na: &a [x,x,x,x,x,x,x,x,x]\n");
    for (prev, name) in "abcdefgh".chars().zip("bcdefghi".chars()) {
        let aliases = vec![format!("*{prev}"); 9].join(",");
        y.push_str(&format!("{name}: &{name} [{aliases}]\n"));
    }
    y
}

/// A campaign whose 64 prize ids are one 200,000-byte anchor and its aliases.
fn anchored_huge_ids(id: &str) -> String {
    let mut y = format!(
        "id: {id}\nname: Big\nstarts_at: 2026-11-01T00:00:00Z\nends_at: 2026-11-05T00:00:00Z\nlimits:\n  spins_per_user: 3\nfallback: none\nprizes:\n"
    );
    let prize =
        "    name: P\n    weight: 1\n    stock: 1\n    value: { amount: \"1\", currency: INR }\n";
    y.push_str(&format!("  - id: &big {}\n{prize}", "a".repeat(200_000)));
    for _ in 0..63 {
        y.push_str(&format!("  - id: *big\n{prize}"));
    }
    y
}

/// A valid campaign whose `expected_users` (line 7, column 17) is a
/// 250,000-digit number.
fn huge_number(spec: &Spec) -> String {
    spec.yaml().replace(
        "expected_users: 10000",
        &format!("expected_users: {}", "1".repeat(250_000)),
    )
}

/// A valid campaign whose 2 prizes have 640 unknown keys of 60 characters
/// each: 1,280 problems, the first at line 16, column 5.
fn many_problems(spec: &Spec) -> String {
    let unknown: String = (0..640)
        .map(|k| format!("    {}{k:03}: 1\n", "k".repeat(57)))
        .collect();
    spec.yaml()
        .replace("    value:", &format!("{unknown}    value:"))
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    roles: &[&str],
    yaml: Option<String>,
) -> (u16, String) {
    send_to(&app.client, &app.address, method, path, roles, yaml).await
}

/// [`send`] to the service at `address` (`http://host:port`).
async fn send_to(
    client: &reqwest::Client,
    address: &str,
    method: reqwest::Method,
    path: &str,
    roles: &[&str],
    yaml: Option<String>,
) -> (u16, String) {
    let mut req = client
        .request(method, format!("{address}{path}"))
        .bearer_auth(token("mallory-marketing", roles))
        .header("Idempotency-Key", "k1");
    if let Some(y) = yaml {
        req = req.header("content-type", "application/yaml").body(y);
    }
    let r = req.send().await.expect("request sent");
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn put(app: &TestApp, id: &str, yaml: String) -> (u16, String) {
    send(
        app,
        reqwest::Method::PUT,
        &format!("/v1/admin/campaigns/{id}"),
        &["marketing"],
        Some(yaml),
    )
    .await
}

/// `campaign validate` on `yaml`: (success, stderr).
fn validate(yaml: &str) -> (bool, String) {
    let dir = TempDir::new();
    let file = dir.0.join("campaign.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_prizewheel"))
        .args(["campaign", "validate", file.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        out.status.success(),
        err.replace(file.to_str().unwrap(), "FILE"),
    )
}

/// The `errors` of a 422 `invalid_campaign` answer.
fn problems(status: u16, body: &str) -> Vec<Value> {
    assert_eq!(status, 422, "{}", &body[..body.len().min(2000)]);
    let p: Value = serde_json::from_str(body).unwrap();
    assert_eq!(p["code"], "invalid_campaign", "{p}");
    p["errors"].as_array().unwrap().clone()
}

fn position(e: &Value) -> (u64, u64) {
    (e["line"].as_u64().unwrap(), e["column"].as_u64().unwrap())
}

/// The service runs in a process of its own here, so that the CPU time it
/// spends on each request can be read (`Serve::cpu_time`): that is what the
/// parser's budgets bound. The wall-clock time of a request also counts every
/// moment other processes held the cores (on a loaded 2-core machine, with
/// `alias_bombs_in_flight_stall_neither_healthz_nor_spins` parsing bombs
/// beside it, 1.07–1.19 s for the same work).
#[tokio::test]
async fn an_alias_bomb_gets_a_quick_422_naming_the_limit() {
    use crate::support::helpers::{AUDIENCE, TestDb, client, redis_url};
    let db = TestDb::new().await;
    let mut serve = crate::support::serve::Serve::start(
        &redis_url(),
        &db.url,
        &[
            ("PRIZEWHEEL__AUTH__AUDIENCE", AUDIENCE),
            ("PRIZEWHEEL__SETTLE__ENABLED", "false"),
        ],
    );
    assert!(serve.up().await, "serve came up: {}", serve.stop());
    let (client, address) = (client(), format!("http://127.0.0.1:{}", serve.port));
    let id = crate::support::helpers::unique("bomb");
    let bomb = alias_bomb(&id);
    assert!(bomb.len() < 400, "{}", bomb.len());

    for (method, path) in [
        (reqwest::Method::PUT, format!("/v1/admin/campaigns/{id}")),
        (
            reqwest::Method::GET,
            format!("/v1/admin/campaigns/{id}/plan"),
        ),
        (
            reqwest::Method::POST,
            format!("/v1/admin/campaigns/{id}/plan"),
        ),
    ] {
        let (cpu, started) = (serve.cpu_time(), Instant::now());
        let (status, body) = send_to(
            &client,
            &address,
            method.clone(),
            &path,
            &["marketing"],
            Some(bomb.clone()),
        )
        .await;
        let (spent, took) = (serve.cpu_time() - cpu, started.elapsed());
        eprintln!("{method} alias bomb: {spent:?} of the service's CPU, answered in {took:?}");
        let errors = problems(status, &body);
        assert_eq!(errors.len(), 1, "{errors:?}");
        let message = errors[0]["message"].as_str().unwrap();
        assert!(
            message.starts_with("the document exceeds a limit"),
            "{method} {message}"
        );
        assert!(position(&errors[0]).0 >= 2, "{errors:?}");
        // Expanding the bomb took seconds of CPU; refusing it takes milliseconds.
        assert!(
            spent < Duration::from_secs(1),
            "{method}: {spent:?} of CPU (answered in {took:?})"
        );
    }

    let (ok, err) = validate(&bomb);
    assert!(!ok);
    let first = err.lines().next().unwrap();
    assert!(
        first.starts_with("FILE:") && first.contains(": the document exceeds a limit"),
        "{err}"
    );
    let (line, column) = first["FILE:".len()..]
        .split_once(": ")
        .unwrap()
        .0
        .split_once(':')
        .unwrap();
    assert!(
        line.parse::<u64>().unwrap() >= 2 && column.parse::<u64>().unwrap() >= 1,
        "{first}"
    );
    assert_eq!(err.lines().count(), 2, "{err}");
}

/// 32 clients keep sending alias bombs; meanwhile `/healthz` and spins answer as
/// usual. When the bombs were parsed on the 2 HTTP workers, each answer waited
/// behind seconds of parsing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alias_bombs_in_flight_stall_neither_healthz_nor_spins() {
    let app = Arc::new(TestApp::spawn().await);
    let spec = Spec::new("bomb-live");
    app.apply(&spec.yaml()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let bombers: Vec<_> = (0..32)
        .map(|_| {
            let (app, stop, answered) = (app.clone(), stop.clone(), answered.clone());
            tokio::spawn(async move {
                let id = crate::support::helpers::unique("bomb");
                while !stop.load(Ordering::Relaxed) {
                    let (status, body) = put(&app, &id, alias_bomb(&id)).await;
                    let p: Value = serde_json::from_str(&body).unwrap();
                    let code = p["code"].as_str().unwrap().to_owned();
                    assert!(
                        (status, code.as_str()) == (422, "invalid_campaign")
                            || (status, code.as_str()) == (503, "campaign_parser_busy"),
                        "{status} {body}"
                    );
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // About 3 s of probes while the bombs keep coming.
    let limit = Duration::from_secs(1);
    let mut slowest = Duration::ZERO;
    let before = answered.load(Ordering::Relaxed);
    for n in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let health = tokio::time::timeout(Duration::from_secs(20), app.get("/healthz")).await;
        let took = started.elapsed();
        assert!(
            matches!(&health, Ok(r) if r.status() == 200),
            "healthz after {took:?}"
        );
        slowest = slowest.max(took);

        let started = Instant::now();
        let spin = tokio::time::timeout(
            Duration::from_secs(20),
            app.spin(&spec.id, "shopper", &format!("k{n}")),
        )
        .await;
        let took = started.elapsed();
        assert!(
            matches!(&spin, Ok(r) if r.status() == 200),
            "spin after {took:?}"
        );
        slowest = slowest.max(took);
    }
    let during = answered.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    eprintln!("{during} bombs answered while probing; slowest probe {slowest:?}");
    for b in bombers {
        b.await.unwrap();
    }
    assert!(
        during >= 5,
        "the bombs kept being answered while probing: {during}"
    );
    assert!(
        slowest < limit,
        "slowest healthz or spin under the bombs: {slowest:?}"
    );
}

#[tokio::test]
async fn huge_values_and_many_problems_get_a_bounded_answer_naming_the_first() {
    let app = TestApp::spawn().await;
    let spec = Spec::new("huge");
    app.track(&prizewheel::domain::CampaignId::parse(&spec.id).unwrap());

    // Expanded, the 64 ids are 12.8 MB of text: a limit, at the first alias
    // that crosses it.
    let yaml = anchored_huge_ids(&spec.id);
    let (status, body) = put(&app, &spec.id, yaml.clone()).await;
    assert!(body.len() < BOUND, "{} bytes", body.len());
    let errors = problems(status, &body);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(position(&errors[0]).0 >= 9, "{errors:?}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("the document exceeds a limit")
    );
    let (ok, err) = validate(&yaml);
    assert!(!ok && err.len() < BOUND, "{} bytes", err.len());
    assert!(
        err.starts_with("FILE:") && err.contains(": the document exceeds a limit"),
        "{err}"
    );

    let yaml = huge_number(&spec);
    let (status, body) = put(&app, &spec.id, yaml.clone()).await;
    assert!(body.len() < BOUND, "{} bytes", body.len());
    let errors = problems(status, &body);
    assert_eq!(position(&errors[0]), (7, 17), "{errors:?}");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(
        message.contains("1111111111") && message.len() < 400,
        "{message}"
    );
    let (ok, err) = validate(&yaml);
    assert!(!ok && err.len() < BOUND, "{} bytes", err.len());
    assert!(
        err.starts_with("FILE:7:17: "),
        "{}",
        &err[..err.len().min(500)]
    );

    let yaml = many_problems(&spec);
    assert!(yaml.len() < 256 * 1024);
    let (status, body) = put(&app, &spec.id, yaml.clone()).await;
    assert!(body.len() < BOUND, "{} bytes", body.len());
    let p: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        p["detail"], "the campaign file has 1280 problem(s); the first 50 are listed",
        "{p}"
    );
    let errors = problems(status, &body);
    assert_eq!(errors.len(), 50);
    assert_eq!(position(&errors[0]), (16, 5), "{:?}", errors[0]);
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("unknown key `kkkk")
    );
    let (ok, err) = validate(&yaml);
    assert!(!ok && err.len() < BOUND, "{} bytes", err.len());
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 51, "{err}");
    assert!(
        lines[0].starts_with("FILE:16:5: unknown key `kkkk"),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[50],
        "FILE: 1280 problem(s), the first 50 listed above"
    );
}

#[tokio::test]
async fn names_with_line_separators_control_characters_or_nul_are_refused() {
    let app = TestApp::spawn().await;
    // (character, line of the `name`, its column): written raw, or as an escape
    // in a double-quoted string.
    for (bad, line, column) in [
        ("\u{2028}", 2, 7),
        ("\u{2029}", 2, 7),
        ("\u{85}", 2, 7),
        ("\\u2028", 13, 11),
        ("\\0", 13, 11),
        ("\\0", 2, 7),
    ] {
        let at = (line, column);
        let spec = Spec::new("sep");
        app.track(&prizewheel::domain::CampaignId::parse(&spec.id).unwrap());
        let mut lines: Vec<String> = spec.yaml().lines().map(str::to_owned).collect();
        let old = lines[line as usize - 1].clone();
        let (key, value) = old.split_once(": ").unwrap();
        assert!(key.ends_with("name"), "{key}");
        lines[line as usize - 1] = if bad.starts_with('\\') {
            format!("{key}: \"{value}{bad}x\"")
        } else {
            format!("{key}: {value}{bad}x")
        };
        let yaml = lines.join("\n") + "\n";
        let (status, body) = put(&app, &spec.id, yaml.clone()).await;
        let errors = problems(status, &body);
        assert_eq!(errors.len(), 1, "{bad:?}: {errors:?}");
        assert_eq!(position(&errors[0]), at, "{bad:?}: {errors:?}");
        assert!(
            errors[0]["message"]
                .as_str()
                .unwrap()
                .contains("on one line"),
            "{bad:?}: {errors:?}"
        );
        let (ok, err) = validate(&yaml);
        assert!(!ok, "{bad:?}");
        assert!(
            err.starts_with(&format!("FILE:{}:{}: `name` must be", at.0, at.1)),
            "{bad:?}: {err}"
        );
        assert_eq!(err.lines().count(), 2, "{bad:?}: {err}");
    }
    let versions: i64 = sqlx::query_scalar("SELECT count(*) FROM campaign_versions")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(versions, 0, "nothing reached PostgreSQL");
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
