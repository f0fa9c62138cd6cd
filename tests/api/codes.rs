//! Prize codes (`stock: codes`): uploads, the draw handing out each code once,
//! replays, the ledger's `rewards.code`, withdrawals and the CLI.

use crate::support::helpers::{
    Spec, TempDir, TestApp, cli, client, redis_url, send, spawn_server, spin, token, unique,
};
use crate::support::settling::settle_all;
use futures::stream::{self, StreamExt};
use serde_json::Value;
use std::collections::HashSet;

/// A wheel whose code prize `coupon` has weight `w` out of 10.
pub fn coupons(prefix: &str, w: u64) -> Spec {
    let mut s = Spec::new(prefix);
    s.prizes = vec![("coupon", w, None), ("none", 10 - w, None)];
    s.code_prizes = vec!["coupon"];
    s
}

fn marketing() -> String {
    token("marketer", &["marketing"])
}

/// Sends `body` to the codes endpoint of `prize` with `method`.
pub async fn codes_call(
    app: &TestApp,
    method: reqwest::Method,
    campaign: &str,
    prize: &str,
    body: String,
) -> (u16, Value) {
    let res = send(
        app.client
            .request(
                method,
                format!(
                    "{}/v1/admin/campaigns/{campaign}/prizes/{prize}/codes",
                    app.address
                ),
            )
            .bearer_auth(marketing())
            .header("content-type", "text/plain")
            .body(body),
    )
    .await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub async fn upload(app: &TestApp, campaign: &str, prize: &str, body: String) -> Value {
    let (status, v) = codes_call(app, reqwest::Method::POST, campaign, prize, body).await;
    assert_eq!(status, 200, "{v}");
    v
}

async fn counts(app: &TestApp, campaign: &str, prize: &str) -> Value {
    let res = send(
        app.client
            .get(format!(
                "{}/v1/admin/campaigns/{campaign}/prizes/{prize}/codes",
                app.address
            ))
            .bearer_auth(marketing()),
    )
    .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_spins_on_three_replicas_hand_out_each_of_100_codes_once() {
    let app = TestApp::spawn().await;
    let spec = coupons("codes5k", 2);
    app.apply(&spec.yaml()).await;
    let loaded: Vec<String> = (0..100).map(|i| format!("C5K-{i:04}")).collect();
    let up = upload(&app, &spec.id, "coupon", loaded.join("\n")).await;
    assert_eq!(
        (up["added"].as_u64(), up["available"].as_u64()),
        (Some(100), Some(100))
    );

    let mut addresses = vec![app.address.clone()];
    for _ in 0..2 {
        addresses
            .push(spawn_server(crate::support::helpers::settings(&app.db, &redis_url())).await);
    }
    let c = client();
    let tokens: Vec<String> = (0..2000).map(|u| token(&format!("u{u}"), &[])).collect();
    let results: Vec<(usize, u16, Value)> = stream::iter(0..5000usize)
        .map(|i| {
            let (c, address, t, id) = (&c, &addresses[i % 3], &tokens[i % 2000], &spec.id);
            async move {
                let res = spin(c, address, id, t, &format!("k{i}"), None).await;
                let status = res.status().as_u16();
                (i, status, res.json::<Value>().await.unwrap_or(Value::Null))
            }
        })
        .buffer_unordered(256)
        .collect()
        .await;
    assert!(
        results.iter().all(|(_, s, _)| *s == 200),
        "every spin is answered"
    );
    let wins: Vec<&(usize, u16, Value)> = results
        .iter()
        .filter(|(_, _, b)| b["prize"]["id"] == "coupon")
        .collect();
    assert_eq!(wins.len(), 100, "exactly the codes loaded are awarded");
    let codes: HashSet<&str> = wins
        .iter()
        .map(|(_, _, b)| b["prize"]["code"].as_str().expect("a win carries its code"))
        .collect();
    assert_eq!(codes.len(), 100, "100 distinct codes");
    let loaded_set: HashSet<&str> = loaded.iter().map(String::as_str).collect();
    assert_eq!(codes, loaded_set, "all from the loaded set");
    assert!(
        results
            .iter()
            .filter(|(_, _, b)| b["prize"]["id"] == "none")
            .all(|(_, _, b)| b["prize"].get("code").is_none()),
        "the fallback carries no code"
    );

    // A replay on another replica returns the same code.
    for (i, _, first) in wins.iter().take(20) {
        let again = spin(
            &c,
            &addresses[(i + 1) % 3],
            &spec.id,
            &tokens[i % 2000],
            &format!("k{i}"),
            None,
        )
        .await;
        assert_eq!(again.status(), 200);
        let again: Value = again.json().await.unwrap();
        assert_eq!(again["replayed"], true);
        assert_eq!(again["prize"]["code"], first["prize"]["code"]);
        assert_eq!(again["spin_id"], first["spin_id"]);
    }

    let n = counts(&app, &spec.id, "coupon").await;
    assert_eq!(
        (
            n["loaded"].as_u64(),
            n["awarded"].as_u64(),
            n["available"].as_u64()
        ),
        (Some(100), Some(100), Some(0))
    );

    // The ledger keeps each code with its reward.
    settle_all(&app, &spec.id, &unique("s")).await;
    let rows: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT spin_id::text, prize_id, code FROM rewards WHERE campaign_id = $1")
            .bind(&spec.id)
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 5000);
    let ledger: HashSet<&str> = rows.iter().filter_map(|(_, _, c)| c.as_deref()).collect();
    assert_eq!(ledger, loaded_set);
    assert!(rows.iter().all(|(_, p, c)| (p == "coupon") == c.is_some()));
    for (_, _, b) in &wins {
        let row = rows
            .iter()
            .find(|(id, _, _)| b["spin_id"] == id.as_str())
            .unwrap();
        assert_eq!(row.2.as_deref(), b["prize"]["code"].as_str());
    }
}

#[tokio::test]
async fn uploads_report_invalid_lines_and_duplicates_and_withdrawals_count_what_they_took() {
    let app = TestApp::spawn().await;
    let mut spec = coupons("codesup", 8);
    spec.prizes.insert(1, ("voucher", 1, None));
    spec.code_prizes.push("voucher");
    app.apply(&spec.yaml()).await;
    let id = spec.id.clone();

    // A CSV with a header, a duplicate inside the file, blank and bad lines.
    let csv = "code,batch\nA-1,b1\n\"A-2\",b1\nA-1,b1\n\nbad code,b1\nA-3\r\n,b2\n".to_owned()
        + &"X".repeat(65)
        + "\nA-4";
    let v = upload(&app, &id, "coupon", csv.clone()).await;
    assert_eq!(
        (v["added"].as_u64(), v["duplicates"].as_u64()),
        (Some(4), Some(1)),
        "{v}"
    );
    assert_eq!(v["invalid_count"], 3);
    let lines: Vec<(u64, &str)> = v["invalid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["line"].as_u64().unwrap(), i["message"].as_str().unwrap()))
        .collect();
    assert_eq!(lines.iter().map(|l| l.0).collect::<Vec<_>>(), vec![6, 8, 9]);
    assert!(lines[0].1.contains("`bad code` is not a code"), "{lines:?}");
    assert!(lines[1].1.contains("first column is empty"));
    assert!(lines[2].1.contains("at most 64"));
    assert_eq!(v["available"], 4);

    // The same file again adds nothing; an overlapping one adds the rest.
    let again = upload(&app, &id, "coupon", csv).await;
    assert_eq!(
        (again["added"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(5))
    );
    let more = upload(&app, &id, "coupon", "A-4\nA-5\nA-6\n".into()).await;
    assert_eq!(
        (more["added"].as_u64(), more["duplicates"].as_u64()),
        (Some(2), Some(1))
    );
    // A code of one prize is not loaded for another.
    let other = upload(&app, &id, "voucher", "A-1\nV-1\n".into()).await;
    assert_eq!(
        (other["added"].as_u64(), other["duplicates"].as_u64()),
        (Some(1), Some(1))
    );

    // Spins award codes; awarded codes are duplicates from then on.
    let t = token("shopper", &[]);
    let mut awarded = Vec::new();
    for k in 0..40 {
        let res: Value = spin(&app.client, &app.address, &id, &t, &format!("k{k}"), None)
            .await
            .json()
            .await
            .unwrap();
        if res["prize"]["id"] == "coupon" {
            awarded.push(res["prize"]["code"].as_str().unwrap().to_owned());
        }
    }
    // 40 spins at 8 in 10 take the six coupon codes (but for a chance below 1e-15).
    assert_eq!(
        awarded.len(),
        6,
        "the six coupon codes, then the fallback: {awarded:?}"
    );
    let reload = upload(&app, &id, "coupon", awarded.join("\n")).await;
    assert_eq!(
        (reload["added"].as_u64(), reload["duplicates"].as_u64()),
        (Some(0), Some(6))
    );

    // Withdrawing: available codes go, awarded ones stay, unknown ones are counted.
    upload(&app, &id, "coupon", "W-1\nW-2\nW-3\n".into()).await;
    let (status, w) = codes_call(
        &app,
        reqwest::Method::DELETE,
        &id,
        "coupon",
        format!("W-1\nW-2\n{}\nNEVER-LOADED\nbad!\n", awarded[0]),
    )
    .await;
    assert_eq!(status, 200, "{w}");
    assert_eq!(
        (
            w["withdrawn"].as_u64(),
            w["already_awarded"].as_u64(),
            w["unknown"].as_u64(),
            w["invalid_count"].as_u64(),
            w["available"].as_u64()
        ),
        (Some(2), Some(1), Some(1), Some(1), Some(1))
    );
    let reload = upload(&app, &id, "coupon", "W-1\n".into()).await;
    assert_eq!(
        reload["duplicates"], 1,
        "a withdrawn code is never loaded again"
    );
    let n = counts(&app, &id, "coupon").await;
    assert_eq!(
        (
            n["loaded"].as_u64(),
            n["awarded"].as_u64(),
            n["withdrawn"].as_u64(),
            n["available"].as_u64()
        ),
        (Some(9), Some(6), Some(2), Some(1))
    );
    // The one code left is what the draw hands out next (weight 8 of 10:
    // within 50 spins but for a chance of 0.2^50).
    let mut next = Value::Null;
    for k in 0..50 {
        let v: Value = spin(&app.client, &app.address, &id, &t, &format!("n{k}"), None)
            .await
            .json()
            .await
            .unwrap();
        if v["prize"]["id"] == "coupon" {
            next = v;
            break;
        }
    }
    assert_eq!(next["prize"]["code"], "W-3");
}

#[tokio::test]
async fn bad_requests_get_clear_problems_and_load_nothing() {
    let app = TestApp::spawn_with(|s| s.http.max_codes_upload_bytes = 1000).await;
    let spec = coupons("codesbad", 2);
    app.apply(&spec.yaml()).await;
    let url = |prize: &str| {
        format!(
            "{}/v1/admin/campaigns/{}/prizes/{prize}/codes",
            app.address, spec.id
        )
    };
    let post = |prize: &str, t: String, ct: &'static str, body: String| {
        app.client
            .post(url(prize))
            .bearer_auth(t)
            .header("content-type", ct)
            .body(body)
    };
    let problem = |res: reqwest::Response| async move {
        let status = res.status().as_u16();
        let v: Value = res.json().await.unwrap();
        (status, v["code"].as_str().unwrap_or_default().to_owned())
    };
    let cases = [
        (
            post("coupon", token("shopper", &[]), "text/plain", "A\n".into()),
            403,
            "forbidden",
        ),
        (
            post("coupon", marketing(), "application/json", "[\"A\"]".into()),
            415,
            "unsupported_media_type",
        ),
        (
            post("none", marketing(), "text/plain", "A\n".into()),
            409,
            "not_a_code_prize",
        ),
        (
            post("nope", marketing(), "text/plain", "A\n".into()),
            404,
            "prize_not_found",
        ),
        (
            post("Not_A_Prize!", marketing(), "text/plain", "A\n".into()),
            404,
            "prize_not_found",
        ),
        (
            post("coupon", marketing(), "text/csv", "A\n".repeat(600)),
            413,
            "body_too_large",
        ),
    ];
    for (req, status, code) in cases {
        assert_eq!(problem(send(req).await).await, (status, code.to_owned()));
    }
    let res = send(
        app.client
            .post(format!(
                "{}/v1/admin/campaigns/nope-{}/prizes/coupon/codes",
                app.address, spec.id
            ))
            .bearer_auth(marketing())
            .body("A\n"),
    )
    .await;
    assert_eq!(problem(res).await, (404, "campaign_not_found".to_owned()));
    assert_eq!(
        counts(&app, &spec.id, "coupon").await["loaded"],
        0,
        "nothing was loaded"
    );
    // text/csv and no content type at all are both codes.
    let ok = send(
        app.client
            .post(url("coupon"))
            .bearer_auth(marketing())
            .body("B-1\n"),
    )
    .await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn the_cli_loads_a_file_or_stdin_and_reports_each_invalid_line() {
    let app = TestApp::spawn().await;
    let spec = coupons("codescli", 2);
    app.apply(&spec.yaml()).await;
    let dir = TempDir::new();
    let file = dir.0.join("batch.csv");
    std::fs::write(&file, "code\nCLI-1\nCLI-2\nno way\nCLI-1\n").unwrap();
    let path = file.to_str().unwrap();
    let db = app.db.url.clone();
    let (ok, out) = cli(
        &["campaign", "codes", "add", &spec.id, "coupon", path],
        &redis_url(),
        &db,
    );
    assert!(!ok, "an invalid line fails the command: {out}");
    assert!(
        out.contains(&format!("{path}:4: `no way` is not a code")),
        "{out}"
    );
    assert!(
        out.contains("2 added, 1 duplicates, 1 invalid; 2 available"),
        "{out}"
    );
    let (ok, out) = cli(
        &["campaign", "codes", "add", &spec.id, "coupon", path],
        &redis_url(),
        &db,
    );
    assert!(!ok && out.contains("0 added, 3 duplicates"), "{out}");

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_prizewheel"))
        .args(["campaign", "codes", "add", &spec.id, "coupon", "-"])
        .env("REDIS_URL", redis_url())
        .env("DATABASE_URL", &db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"CLI-3\nCLI-4")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("2 added, 0 duplicates, 0 invalid; 4 available"),
        "{text}"
    );

    let (ok, out) = cli(
        &["campaign", "codes", "status", &spec.id, "coupon"],
        &redis_url(),
        &db,
    );
    assert!(
        ok && out.contains("4 loaded, 0 awarded, 0 withdrawn, 4 available"),
        "{out}"
    );
    let (ok, out) = cli(
        &["campaign", "codes", "add", &spec.id, "none", path],
        &redis_url(),
        &db,
    );
    assert!(!ok && out.contains("does not take codes"), "{out}");
    assert_eq!(out.lines().count(), 1, "one readable line: {out}");
}
