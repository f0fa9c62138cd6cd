//! The `prizewheel` command: campaign files report every problem with its
//! position; a missing file is one line.

use crate::support::serve::Serve;
use std::process::Command;
use std::time::Duration;

fn prizewheel(args: &[&str]) -> (i32, String, String) {
    prizewheel_with(args, &[])
}

/// `prizewheel ARGS` from the repository's root with `env` set: its exit
/// code, stdout and stderr.
fn prizewheel_with(args: &[&str], env: &[(&str, String)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_prizewheel"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_accepts_the_examples() {
    for file in [
        "config/campaigns/diwali-2026.yaml",
        "config/campaigns/mega-sale.yaml",
        "config/campaigns/order-spins.yaml",
    ] {
        let (code, out, err) = prizewheel(&["campaign", "validate", file]);
        assert_eq!(code, 0, "{file}: {err}");
        assert!(out.contains("is valid"));
    }
}

#[test]
fn validate_prints_every_problem_with_file_line_and_column() {
    let dir = crate::support::helpers::TempDir::new();
    let file = dir.0.join("bad.yaml");
    std::fs::write(
        &file,
        "id: Bad_Id\nname: Bad\nstarts_at: 2026-11-05T00:00:00+05:30\nends_at: 2026-11-01T00:00:00+05:30\nlimits: {spins_per_user: 3}\nfallback: phone\ncolor: red\nprizes:\n  - {id: phone, name: Phone, weight: 1, stock: 10, value: {amount: 1.5, currency: INR}}\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (code, out, err) = prizewheel(&["campaign", "validate", path]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    let lines: Vec<&str> = err.lines().collect();
    let expected = [
        format!("{path}:1:5: campaign id"),
        format!("{path}:4:10: `ends_at` must be after `starts_at`"),
        format!("{path}:6:11: the fallback prize `phone` must have `stock: unlimited`"),
        format!("{path}:7:1: unknown key `color`"),
        format!("{path}:9:68: `amount` must be a quoted decimal string"),
    ];
    for (line, want) in lines.iter().zip(&expected) {
        assert!(
            line.starts_with(want.as_str()),
            "{line}\n  should start with\n{want}"
        );
    }
    assert_eq!(lines.len(), expected.len() + 1, "{err}");
}

#[test]
fn a_missing_file_is_one_clear_line() {
    let (code, out, err) = prizewheel(&["campaign", "validate", "/no/such/campaign.yaml"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/no/such/campaign.yaml"), "{err}");
}

/// `serve` takes the contract variables PRIZEWHEEL_LISTEN, REDIS_URL,
/// DATABASE_URL and PRIZEWHEEL_JWT_SECRET, and refuses a Redis that may evict.
#[tokio::test]
async fn serve_reads_the_environment_and_refuses_an_evicting_redis() {
    let db = crate::support::helpers::TestDb::new().await;
    let mut serve = Serve::start(&crate::support::helpers::redis_url(), &db.url, &[]);
    assert!(serve.up().await, "serve listens on PRIZEWHEEL_LISTEN");
    serve.stop();

    let evicting = crate::support::helpers::PrivateRedis::start().await;
    evicting.config_set("maxmemory-policy", "allkeys-lru");
    let err = Serve::start(&evicting.url, &db.url, &[]).refusal().await;
    assert!(err.contains("noeviction"), "{err}");
}

#[test]
fn simulate_reports_run_outs_costs_and_draws_the_burn_down() {
    let dir = crate::support::helpers::TempDir::new();
    let svg = dir.0.join("burn.svg");
    // The example without its pacing and budget: everything at the start, so
    // a burst runs the phones out.
    let unpaced: String = std::fs::read_to_string("config/campaigns/diwali-2026.yaml")
        .unwrap()
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with("budget:")
                || t.starts_with("release:")
                || t.starts_with("schedule:")
                || t.starts_with("- { at:"))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!unpaced.contains("release"), "{unpaced}");
    let file = dir.0.join("diwali-unpaced.yaml");
    std::fs::write(&file, unpaced).unwrap();
    let args = [
        "campaign",
        "simulate",
        file.to_str().unwrap(),
        "--users",
        "200000",
        "--runs",
        "3",
        "--arrival",
        "burst",
        "--json",
        "--plot",
        svg.to_str().unwrap(),
    ];
    let (code, out, err) = prizewheel(&args);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let phone = report["prizes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "phone")
        .unwrap();
    assert_eq!(phone["stock"], 10);
    assert_eq!(
        phone["awarded_median"], 10,
        "hundreds of thousands of draws at 1 in 10,000 exhaust 10 phones"
    );
    assert_eq!(phone["ran_out_share"], 1.0);
    assert!(phone["ran_out_at_secs"].as_f64().unwrap() > 0.0);
    let cost = &report["costs"][0];
    assert_eq!(cost["currency"], "INR");
    assert!(
        cost["p5"].as_str().unwrap().parse::<f64>().unwrap()
            <= cost["p95"].as_str().unwrap().parse::<f64>().unwrap()
    );
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));

    // The same seed gives the same sale.
    let (_, again, _) = prizewheel(&args);
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["prizes"], report["prizes"]);
    assert_eq!(again["costs"], report["costs"]);

    let (code, out, _) = prizewheel(&[
        "campaign",
        "simulate",
        "config/campaigns/diwali-2026.yaml",
        "--users",
        "1000",
        "--runs",
        "1",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("runs out") && out.contains("cost (INR)") && out.contains("million spins/s"),
        "{out}"
    );
}

/// Ctrl-C is an ordinary stop, as clean as SIGTERM: the listener closes, and a
/// request whose body is still arriving is answered before the process exits
/// with success (it used to be cut: actix stops at once on SIGINT).
#[tokio::test]
async fn ctrl_c_drains_a_request_in_flight_like_sigterm() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = crate::support::helpers::TestDb::new().await;
    for signal in ["INT", "TERM"] {
        let mut serve = Serve::start(
            &crate::support::helpers::redis_url(),
            &db.url,
            &[(
                "PRIZEWHEEL__AUTH__AUDIENCE",
                crate::support::helpers::AUDIENCE,
            )],
        );
        assert!(serve.up().await, "serve came up");
        let body = br#"{"order_id": "o-1"}"#;
        let head = format!(
            "POST /v1/campaigns/no-such-sale/spins HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
             Authorization: Bearer {}\r\nIdempotency-Key: k-{signal}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            crate::support::helpers::token("ann", &[]),
            body.len()
        );
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", serve.port))
            .await
            .unwrap();
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.write_all(&body[..5]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        serve.signal(signal);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            serve.exited_within(Duration::ZERO).await.is_none(),
            "SIG{signal}: serve waited for the request in flight"
        );
        conn.write_all(&body[5..]).await.unwrap();
        let mut answer = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            matches!(read, Ok(Ok(_))) && answer.starts_with("HTTP/1.1 404"),
            "SIG{signal}: the request in flight was answered: {read:?} {answer:?}"
        );
        let status = serve.exited_within(Duration::from_secs(10)).await;
        assert!(
            status.is_some_and(|s| s.success()),
            "SIG{signal}: serve exited cleanly: {status:?} {}",
            serve.stop()
        );
    }
}

/// `campaign plan` and `apply` in marketing's words: a campaign Redis has not
/// seen is "not applied yet", and a window that has already ended is said
/// before (plan) and while (apply) it is applied.
#[tokio::test]
async fn plan_and_apply_warn_of_a_window_that_has_ended() {
    use crate::support::helpers::{Spec, TempDir, TestDb, redis_url};
    let db = TestDb::new().await;
    let dir = TempDir::new();
    let stores = [("REDIS_URL", redis_url()), ("DATABASE_URL", db.url.clone())];
    let run = |args: &[&str]| prizewheel_with(args, &stores);
    let mut spec = Spec::new("ended");
    let now = chrono::Utc::now();
    spec.starts_at = (now - chrono::Duration::days(3)).to_rfc3339();
    spec.ends_at = (now - chrono::Duration::days(1)).to_rfc3339();
    let file = dir.0.join("ended.yaml");
    std::fs::write(&file, spec.yaml()).unwrap();
    let path = file.to_str().unwrap();

    let (code, out, err) = run(&["campaign", "plan", path]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("campaign {}: not applied yet;", spec.id)),
        "{out}"
    );
    assert!(out.contains("  warning: the window ended at "), "{out}");

    let (code, out, err) = run(&["campaign", "apply", path, "--by", "test"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("  warning: the window ended at "), "{out}");
    assert!(out.contains("is now at version 1"), "{out}");

    let (code, out, err) = run(&["campaign", "apply", path, "--by", "test"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("  warning: the window ended at ") && out.contains("unchanged"),
        "applied again, the warning stays: {out}"
    );

    std::fs::write(&file, Spec::new("open").yaml()).unwrap();
    let (_, out, _) = run(&["campaign", "plan", path]);
    assert!(!out.contains("warning"), "a window still open: {out}");
}

/// `campaign simulate --codes PRIZE=N`: a code prize's stock is the codes
/// given (the file cannot say it), shown as `codes: N`; with 100 codes it
/// awards at most 100. Without --codes it is simulated with none and the
/// report warns; --codes naming no code prize is one readable line and a
/// failure.
#[test]
fn simulate_takes_the_codes_of_a_code_prize() {
    let dir = crate::support::helpers::TempDir::new();
    let file = dir.0.join("codes.yaml");
    std::fs::write(
        &file,
        "id: codes-sale\nname: Codes Sale\ntimezone: Asia/Kolkata\nstarts_at: 2026-11-01T00:00:00+05:30\nends_at: 2026-11-02T00:00:00+05:30\nlimits: {spins_per_user: 5}\nfallback: none\nprizes:\n  - {id: gold, name: Gold, weight: 1, stock: 3, value: {amount: \"500.00\", currency: INR}}\n  - {id: coupon-100, name: Rs 100 off, weight: 2000, stock: codes, value: {amount: \"100.00\", currency: INR}}\n  - {id: none, name: Next time, weight: 7999, stock: unlimited, value: {amount: \"0\", currency: INR}}\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let simulate = |more: &[&str]| {
        let mut args = vec![
            "campaign", "simulate", path, "--users", "2000", "--runs", "3",
        ];
        args.extend_from_slice(more);
        prizewheel(&args)
    };

    // 10,000 attempts at 1 in 5 ask for ~2,000 coupons: 100 codes run out.
    let (code, out, err) = simulate(&["--codes", "coupon-100=100", "--json"]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let coupon = &report["prizes"][1];
    assert_eq!(coupon["id"], "coupon-100");
    assert_eq!(
        (&coupon["stock"], &coupon["codes"]),
        (&100.into(), &100.into())
    );
    assert!(
        coupon["awarded_median"].as_u64().unwrap() <= 100,
        "{coupon}"
    );
    assert_eq!(coupon["awarded_median"], 100);
    assert_eq!(coupon["ran_out_share"], 1.0);
    assert!(report.get("codes_not_given").is_none(), "{out}");

    let (code, out, err) = simulate(&["--codes", "coupon-100=5000"]);
    assert_eq!(code, 0, "{err}");
    let row = out.lines().find(|l| l.starts_with("coupon-100 ")).unwrap();
    assert!(row.contains("codes: 5000"), "{out}");
    assert!(!out.contains("warning"), "{out}");

    // Without --codes: 0 codes, said in the table and in the JSON.
    let (code, out, err) = simulate(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines().any(
            |l| l.starts_with("warning: code prize coupon-100 simulated with 0 codes")
                && l.contains("--codes coupon-100=N")
        ),
        "{out}"
    );
    assert!(out.contains("codes: 0"), "{out}");
    let (code, out, _) = simulate(&["--json"]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["codes_not_given"], serde_json::json!(["coupon-100"]));
    assert_eq!(report["prizes"][1]["awarded_median"], 0);

    // Refusals: one line naming the file and the problem, a failing exit.
    for (args, says) in [
        (
            &["--codes", "gold=100"][..],
            "prize `gold` is not a code prize (its stock is 3)",
        ),
        (
            &["--codes", "ghost=100"][..],
            "campaign codes-sale has no prize `ghost`",
        ),
        (&["--codes", "coupon-100"][..], "must be PRIZE=N"),
        (
            &["--codes", "coupon-100=lots"][..],
            "`lots` is not a number of codes",
        ),
        (
            &["--codes", "coupon-100=1", "--codes", "coupon-100=2"][..],
            "names prize `coupon-100` more than once",
        ),
    ] {
        let (code, out, err) = simulate(args);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(path) && err.contains(says), "{args:?}: {err}");
    }
}

/// `pools: 3`: `plan` shows how the stock is shared out and warns that this
/// version does not apply it; `apply` refuses it in one line, exit 1, and
/// leaves nothing behind; `simulate --json` draws the three pools.
#[tokio::test]
async fn pools_are_planned_and_simulated_but_not_applied() {
    use crate::support::helpers::{Spec, TempDir, TestDb, redis_url};
    let db = TestDb::new().await;
    let dir = TempDir::new();
    let stores = [("REDIS_URL", redis_url()), ("DATABASE_URL", db.url.clone())];
    let run = |args: &[&str]| prizewheel_with(args, &stores);
    let spec = Spec::new("pooled");
    let yaml = spec.yaml().replacen('\n', "\npools: 3\n", 1);
    let file = dir.0.join("pooled.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let path = file.to_str().unwrap();

    let (code, out, err) = run(&["campaign", "plan", path]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("3 pools, each a shopper's whole state; "),
        "{out}"
    );
    assert!(
        out.contains("warning: pools: 3 is planned and simulated"),
        "{out}"
    );

    let (code, out, err) = run(&["campaign", "apply", path, "--by", "test"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("`pools: 3` cannot be applied by this version"),
        "{err}"
    );
    let (_, out, _) = run(&["campaign", "plan", path]);
    assert!(
        out.starts_with(&format!("campaign {}: not applied yet;", spec.id)),
        "{out}"
    );

    let (code, out, err) = run(&[
        "campaign", "simulate", path, "--json", "--users", "300", "--runs", "2",
    ]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["pools"], 3, "{out}");
    for p in report["prizes"].as_array().unwrap() {
        if let Some(stock) = p["stock"].as_u64() {
            assert!(p["awarded_median"].as_u64().unwrap() <= stock, "{p}");
        }
    }
    // --pools overrides the file's count for a comparison; out of range is refused.
    let simulated = |pools: &str| {
        let (code, out, err) = run(&[
            "campaign", "simulate", path, "--json", "--users", "300", "--runs", "2", "--pools",
            pools,
        ]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    assert_eq!(simulated("16")["pools"], 16);
    assert!(simulated("1").get("pools").is_none());
    let (code, _, err) = run(&["campaign", "simulate", path, "--pools", "65"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--pools"), "{err}");
}
