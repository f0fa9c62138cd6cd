//! The `prizewheel` command: campaign files report every problem with its
//! position; a missing file is one line.

use crate::support::serve::Serve;
use std::process::Command;

fn prizewheel(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_prizewheel"))
        .args(args)
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
    let args = [
        "campaign",
        "simulate",
        "config/campaigns/diwali-2026.yaml",
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
