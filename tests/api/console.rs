//! The web console (`/console/`): its pages and headers over HTTP, the list of
//! campaigns it reads (`GET /v1/admin/campaigns`), and the pages in a real
//! headless Chromium (support/browser.rs), each test leaving a screenshot in
//! `target/console-screenshots/`.

use crate::support::browser::{Browser, DESKTOP, PATIENCE, processes_in_group, processes_naming};
use crate::support::helpers::{SECRET, Spec, TestApp, now_secs, send, token};
use fantoccini::Locator;
use fantoccini::key::Key;
use prizewheel::http::auth::{Claims, sign_hs256};
use serde_json::{Value, json};

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'self'";

const PAGES: [&str; 5] = [
    "/console/",
    "/console/campaigns",
    "/console/campaigns/some-sale",
    "/console/campaigns/some-sale/edit",
    "/console/finance/some-sale",
];

const ASSETS: [(&str, &str); 3] = [
    (
        "/console/assets/console.js",
        "text/javascript; charset=utf-8",
    ),
    ("/console/assets/console.css", "text/css; charset=utf-8"),
    ("/console/assets/icon.svg", "image/svg+xml"),
];

fn assert_console_headers(r: &reqwest::Response, what: &str) {
    let h = r.headers();
    assert_eq!(h["content-security-policy"], CSP, "{what}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
    assert_eq!(h["cache-control"], "no-cache", "{what}");
}

/// Script elements with code in them, `style` elements or attributes, and
/// `on…=` handlers: what the CSP would refuse to run or apply.
fn inline_code(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut found = Vec::new();
    let mut rest = lower.as_str();
    while let Some(at) = rest.find("<script") {
        let tag_end = rest[at..]
            .find('>')
            .map(|e| at + e + 1)
            .unwrap_or(rest.len());
        let close = rest[tag_end..]
            .find("</script>")
            .map(|e| tag_end + e)
            .unwrap_or(rest.len());
        let tag = &rest[at..tag_end];
        if !tag.contains(" src=") || !rest[tag_end..close].trim().is_empty() {
            found.push(format!("inline script: {}", &rest[at..close.min(at + 80)]));
        }
        rest = &rest[close..];
    }
    if lower.contains("<style") {
        found.push("a <style> element".into());
    }
    let bytes = lower.as_bytes();
    for (i, _) in lower.match_indices("style=") {
        if i > 0 && bytes[i - 1].is_ascii_whitespace() {
            found.push(format!("a style attribute at byte {i}"));
        }
    }
    for (i, _) in lower.match_indices(" on") {
        let name: String = lower[i + 3..]
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        if !name.is_empty() && lower[i + 3 + name.len()..].starts_with('=') {
            found.push(format!("an on{name}= handler"));
        }
    }
    if lower.contains("javascript:") {
        found.push("a javascript: URL".into());
    }
    found
}

#[test]
fn the_inline_check_finds_what_the_csp_refuses() {
    assert!(inline_code("<script src=\"/a.js\"></script><p class=x>").is_empty());
    assert_eq!(inline_code("<script>alert(1)</script>").len(), 1);
    assert_eq!(inline_code("<p style=\"color:red\">").len(), 1);
    assert_eq!(inline_code("<a href=x onclick=\"f()\">").len(), 1);
    assert_eq!(inline_code("<style>p{}</style>").len(), 1);
}

#[tokio::test]
async fn console_pages_and_assets_carry_the_csp_and_no_inline_code() {
    let app = TestApp::spawn().await;
    for path in PAGES {
        let r = app.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_console_headers(&r, path);
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        let html = r.text().await.unwrap();
        assert!(html.starts_with("<!doctype html>"), "{path}");
        assert_eq!(inline_code(&html), Vec::<String>::new(), "{path}");
        assert!(
            html.contains(r#"<script type="module" src="/console/assets/console.js"></script>"#),
            "{path} loads the module"
        );
        // Nothing from another origin: no CDN, no web fonts.
        for attr in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
            assert!(!html.contains(attr), "{path} loads {attr}…");
        }
    }
    for (path, content_type) in ASSETS {
        let r = app.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_console_headers(&r, path);
        assert_eq!(r.headers()["content-type"], content_type, "{path}");
        // Revalidated by its ETag: the same file again is a 304.
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");
        let body = r.text().await.unwrap();
        assert!(!body.is_empty());
        if path.ends_with(".js") {
            assert!(
                !body.contains("innerHTML"),
                "text from the API is set as text"
            );
            assert!(!body.contains("eval("), "no eval");
            // Nothing but the SVG namespace (a name, never fetched) looks like a URL.
            let urls = body.replace("\"http://www.w3.org/2000/svg\"", "");
            assert!(
                !urls.contains("http://") && !urls.contains("https://"),
                "no other origin"
            );
        }
        let again = app
            .client
            .get(format!("{}{path}", app.address))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert_console_headers(&again, path);
    }
    let r = app
        .client
        .head(format!("{}/console/campaigns", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_console_headers(&r, "HEAD /console/campaigns");
    assert!(r.text().await.unwrap().is_empty());
    // The console's own not-found page and its redirect carry the headers too.
    let r = app.get("/console/nope").await;
    assert_eq!(r.status(), 404);
    assert_console_headers(&r, "/console/nope");
    assert!(inline_code(&r.text().await.unwrap()).is_empty());
    let r = app
        .client
        .post(format!("{}/console/", app.address))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    assert_console_headers(&r, "POST /console/");
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .get(format!("{}/console", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "/console/");
    assert_console_headers(&r, "/console");
    // The API keeps its own answers: problem+json, no console headers.
    let r = app.get("/nope").await;
    assert_eq!(r.status(), 404);
    assert!(r.headers().get("content-security-policy").is_none());
}

async fn list(app: &TestApp, roles: &[&str]) -> reqwest::Response {
    send(
        app.client
            .get(format!("{}/v1/admin/campaigns", app.address))
            .bearer_auth(token("console-lister", roles)),
    )
    .await
}

#[tokio::test]
async fn console_admin_campaigns_lists_every_campaign_with_stock_budget_and_recent_spins() {
    let app = TestApp::spawn().await;
    let mut budgeted = Spec::new("console-list");
    budgeted.budget = Some("100.00".into());
    budgeted.prizes = vec![("gold", 1, Some(1_000)), ("none", 1, None)];
    let mut paused = Spec::new("console-list");
    paused.paused = true;
    app.apply(&budgeted.yaml()).await;
    app.apply(&paused.yaml()).await;

    for n in 0..6 {
        let r = app
            .spin(&budgeted.id, &format!("lister-{n}"), &format!("k-{n}"))
            .await;
        assert_eq!(r.status(), 200);
    }
    crate::support::settling::settle_all(&app, &budgeted.id, "console-list").await;

    let r = list(&app, &["marketing"]).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let campaigns = v["campaigns"].as_array().unwrap();
    assert_eq!(campaigns.len(), 2, "{v}");
    let ids: Vec<&str> = campaigns
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "in order of id");
    assert_eq!(v["not_in_redis"], json!([]));
    let find = |id: &str| campaigns.iter().find(|c| c["id"] == id).unwrap().clone();

    let b = find(&budgeted.id);
    assert_eq!(b["status"], "live");
    assert_eq!(b["version"], 1);
    assert_eq!(b["name"], format!("Test {}", budgeted.id));
    assert_eq!(b["timezone"], "UTC");
    assert!(
        b["starts_at"]
            .as_str()
            .unwrap()
            .starts_with(&budgeted.starts_at[..10])
    );
    assert_eq!(b["spins_last_minute"], 6);
    assert_eq!(b["spins_last_hour"], 6);
    assert!(
        b.get("yaml").is_none(),
        "the list leaves the YAML to the campaign's own view"
    );
    let gold = &b["prizes"][0];
    assert_eq!(gold["id"], "gold");
    assert_eq!(gold["stock"], 1_000);
    let won = gold["awarded"].as_i64().unwrap();
    assert_eq!(gold["remaining"], 1_000 - won);
    assert_eq!(b["prizes"][1]["stock"], Value::Null, "unlimited");
    assert_eq!(b["prizes"][1]["awarded"].as_i64().unwrap() + won, 6);
    assert_eq!(b["budget"]["amount"], "100.00");
    assert_eq!(b["budget"]["left"], "91.0000", "six prizes of 1.50");

    let p = find(&paused.id);
    assert_eq!(p["status"], "paused");
    assert_eq!(p["spins_last_hour"], 0);
    assert!(p.get("budget").is_none());

    // The same figures as the campaign's own live view.
    let live: Value = send(
        app.client
            .get(format!(
                "{}/v1/admin/campaigns/{}",
                app.address, budgeted.id
            ))
            .bearer_auth(token("m", &["marketing"])),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(live["prizes"], b["prizes"]);
    assert_eq!(live["budget"], b["budget"]);

    // Role-gated like the rest of the admin API.
    let r = list(&app, &["finance"]).await;
    assert_eq!(r.status(), 403);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "forbidden");
    let r = send(
        app.client
            .get(format!("{}/v1/admin/campaigns", app.address)),
    )
    .await;
    assert_eq!(r.status(), 401);

    // Documented.
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    let op = &doc["paths"]["/v1/admin/campaigns"]["get"];
    assert_eq!(op["operationId"], "list_campaigns");
    for status in ["200", "401", "403", "503"] {
        assert!(op["responses"][status].is_object(), "documents {status}");
    }
    assert!(doc["components"]["schemas"]["CampaignList"].is_object());
}

/// Signs in on the console's first page with `token`, by keyboard: the token
/// typed into its field, Tab to the button, Enter.
async fn sign_in(b: &Browser, app: &TestApp, token: &str) {
    b.goto(&format!("{}/console/", app.address)).await;
    let field = b
        .client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Id("token"))
        .await
        .unwrap();
    field.click().await.unwrap();
    field.send_keys(token).await.unwrap();
    field.send_keys(&Key::Tab).await.unwrap();
    let focused = b.js("return document.activeElement.id;", vec![]).await;
    assert_eq!(focused, "sign-in", "Tab from the token reaches the button");
    let button = b.client.active_element().await.unwrap();
    button.send_keys(&Key::Enter).await.unwrap();
}

/// Every form control of the page has a label (or an accessible name).
async fn assert_labelled(b: &Browser) {
    let unlabelled = b
        .js(
            "return [...document.querySelectorAll('input, textarea, select, button, a')]
               .filter(e => e.getClientRects().length > 0)
               .filter(e => !((e.labels && e.labels.length) || e.getAttribute('aria-label')
                              || e.textContent.trim()))
               .map(e => e.outerHTML.slice(0, 80));",
            vec![],
        )
        .await;
    assert_eq!(unlabelled, json!([]), "unlabelled controls");
}

#[tokio::test]
async fn console_signs_in_and_lists_the_campaigns() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("console-ui");
    spec.prizes = vec![
        ("gold", 1, Some(40)),
        ("silver", 3, Some(200)),
        ("none", 6, None),
    ];
    spec.budget = Some("5000.00".into());
    app.apply(&spec.yaml()).await;
    let b = Browser::start().await;

    sign_in(&b, &app, &token("alice", &["marketing", "finance"])).await;
    b.at_path("/console/campaigns").await;
    let who = b.text_containing("#who-text", "alice").await;
    assert!(who.contains("marketing, finance"), "{who}");
    let row = format!("tr[data-campaign='{}']", spec.id);
    let text = b.text_containing(&row, "Prize gold").await;
    assert!(text.contains("40 of 40 left"), "{text}");
    assert!(text.contains("200 of 200 left"), "{text}");
    assert!(text.contains("live"), "{text}");
    assert!(text.contains("5000.0000 INR"), "budget left: {text}");
    let bars = b
        .client
        .find_all(Locator::Css(&format!("{row} svg.stock-bar")))
        .await
        .unwrap();
    assert_eq!(bars.len(), 2, "a bar per bounded prize");
    assert_eq!(
        bars[0].attr("aria-label").await.unwrap().as_deref(),
        Some("Prize gold: 40 of 40 left")
    );
    assert_labelled(&b).await;
    b.screenshot("campaigns-1280x800").await;
    let wider = b
        .js(
            "const w = document.querySelector('.table-wrap'); return w.scrollWidth - w.clientWidth;",
            vec![],
        )
        .await;
    assert!(
        wider.as_i64().unwrap() <= 0,
        "at 1280×800 the table fits: {wider} px over"
    );

    // At phone width the page does not overflow sideways: the table scrolls
    // inside its own box.
    b.resize((390, 844)).await;
    let overflow = b
        .js(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "the page is {overflow} px too wide"
    );
    b.screenshot("campaigns-phone").await;
    b.resize(DESKTOP).await;

    // Sign out forgets the token.
    b.client
        .find(Locator::Id("sign-out"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.at_path("/console/").await;
    let stored = b
        .js(
            "return sessionStorage.getItem('prizewheel.console.token');",
            vec![],
        )
        .await;
    assert_eq!(stored, Value::Null);
    b.goto(&format!("{}/console/campaigns", app.address)).await;
    b.text_containing("#message", "not signed in").await;
    b.close().await;
}

#[tokio::test]
async fn console_campaign_page_shows_prizes_stock_odds_and_codes() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("console-one");
    spec.prizes = vec![
        ("gold", 1, Some(10)),
        ("coupon", 1, None),
        ("none", 2, None),
    ];
    spec.code_prizes = vec!["coupon"];
    app.apply(&spec.yaml()).await;
    let codes: String = (0..25).map(|i| format!("CONSOLE-{i:03}\n")).collect();
    let r = send(
        app.client
            .post(format!(
                "{}/v1/admin/campaigns/{}/prizes/coupon/codes",
                app.address, spec.id
            ))
            .bearer_auth(token("m", &["marketing"]))
            .header("content-type", "text/plain")
            .body(codes),
    )
    .await;
    assert_eq!(r.status(), 200);
    let b = Browser::start().await;

    sign_in(&b, &app, &token("mia", &["marketing"])).await;
    let link = format!("a[href='/console/campaigns/{}']", spec.id);
    b.text_containing(&link, "Test").await;
    b.client
        .find(Locator::Css(&link))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.at_path(&format!("/console/campaigns/{}", spec.id)).await;
    b.text_containing("#title", &format!("Test {}", spec.id))
        .await;
    let gold = b
        .text_containing("tr[data-prize='gold']", "10 of 10 left")
        .await;
    assert!(gold.contains("25%"), "odds now, 1 of 4: {gold}");
    assert!(gold.contains("yes"), "{gold}");
    let coupon = b
        .text_containing("tr[data-prize='coupon']", "25 of 25 loaded")
        .await;
    assert!(coupon.contains("25 of 25 left"), "{coupon}");
    let none = b
        .text_containing("tr[data-prize='none']", "unlimited")
        .await;
    assert!(none.contains("50%"), "{none}");
    assert_eq!(b.text_containing("#campaign-status", "live").await, "live");
    assert!(!b.hidden("no-budget").await, "says it has no budget");
    assert_labelled(&b).await;
    b.screenshot("campaign-1280x800").await;
    b.close().await;
}

#[tokio::test]
async fn console_finance_page_without_the_finance_role_shows_no_finance_data() {
    let app = TestApp::spawn().await;
    let spec = Spec::new("console-fin");
    app.apply(&spec.yaml()).await;
    for n in 0..3 {
        assert_eq!(
            app.spin(&spec.id, &format!("f-{n}"), &format!("k-{n}"))
                .await
                .status(),
            200
        );
    }
    crate::support::settling::settle_all(&app, &spec.id, "console-fin").await;
    let b = Browser::start().await;
    let finance_page = format!("{}/console/finance/{}", app.address, spec.id);

    sign_in(&b, &app, &token("mia", &["marketing"])).await;
    b.at_path("/console/campaigns").await;
    b.goto(&finance_page).await;
    let message = b.text_containing("#message", "no finance role").await;
    assert!(
        message.contains("Your token has no finance role"),
        "{message}"
    );
    assert!(b.hidden("finance").await, "no finance section");
    let rows = b
        .client
        .find_all(Locator::Css("#summary tbody tr"))
        .await
        .unwrap();
    assert!(rows.is_empty(), "no finance data in the page");
    b.screenshot("finance-403").await;

    // A finance token (no marketing) signs in and sees the summary.
    sign_in(&b, &app, &token("fiona", &["finance"])).await;
    b.text_containing("#message", "no marketing role").await;
    assert!(
        !b.hidden("finance-form").await,
        "offers the finance page by id"
    );
    b.goto(&finance_page).await;
    b.text_containing("#reconcile-status", "agree").await;
    let gold = b.text_containing("#summary tbody", "gold").await;
    assert!(gold.contains("none"), "{gold}");
    let settled = b
        .js(
            "return [...document.querySelectorAll('#summary tbody tr')]
               .map(r => Number(r.cells[2].textContent)).reduce((a, b) => a + b, 0);",
            vec![],
        )
        .await;
    assert_eq!(settled, json!(3), "three settled rewards");
    b.screenshot("finance-summary").await;
    b.close().await;
}

#[tokio::test]
async fn console_refuses_a_bad_token_with_a_clear_message() {
    let app = TestApp::spawn().await;
    let b = Browser::start().await;
    let forged = sign_hs256(
        &SECRET.replace("test", "fake"),
        &Claims {
            sub: "mallory".into(),
            exp: now_secs() + 600,
            roles: vec!["marketing".into()],
            iss: None,
            aud: Some(crate::support::helpers::AUDIENCE.into()),
        },
    )
    .unwrap();
    for bad in ["not-a-token", forged.as_str()] {
        sign_in(&b, &app, bad).await;
        let message = b
            .text_containing("#message", "The service refused this token")
            .await;
        assert!(
            message.len() > "The service refused this token: ".len(),
            "{message}"
        );
        let role = b
            .js(
                "return document.getElementById('message').getAttribute('role');",
                vec![],
            )
            .await;
        assert_eq!(role, "alert", "announced at once");
        let stored = b
            .js(
                "return sessionStorage.getItem('prizewheel.console.token');",
                vec![],
            )
            .await;
        assert_eq!(stored, Value::Null, "a refused token is not kept");
        assert!(b.hidden("signed-in").await);
        assert!(b.hidden("who").await);
    }
    b.screenshot("bad-token").await;
    // Nothing was signed in: the list asks for a token.
    b.goto(&format!("{}/console/campaigns", app.address)).await;
    b.text_containing("#message", "not signed in").await;
    b.close().await;
    // And the API itself refused it (the console has no way around it).
    let r = send(
        app.client
            .get(format!("{}/v1/admin/campaigns", app.address))
            .bearer_auth(&forged),
    )
    .await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn console_browser_dropped_without_closing_leaves_no_process() {
    let app = TestApp::spawn().await;
    let b = Browser::start().await;
    b.goto(&format!("{}/console/", app.address)).await;
    b.text_containing("h1", "Sign in").await;
    let group = b.process_group();
    let profile = b.profile();
    let running = processes_in_group(group);
    assert!(
        running.len() > 1,
        "chromedriver and the browser share its process group: {running:?}"
    );
    assert!(!processes_naming(&profile).is_empty());
    // As when a test fails: the value is dropped, the session never closed.
    drop(b);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut left = processes_in_group(group);
        left.extend(processes_naming(&profile));
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running after the drop: {left:?} (of {running:?})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// `PUT /v1/admin/campaigns/{id}` with `If-Match` (the plan's `ETag`): the
/// guard the console's Apply sends.
#[tokio::test]
async fn console_apply_with_if_match_refuses_a_change_made_since_the_plan() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("console-ifm");
    app.apply(&spec.yaml()).await;
    let marketing = token("m", &["marketing"]);
    let live_url = format!("{}/v1/admin/campaigns/{}", app.address, spec.id);
    let live = |auth: String| {
        let url = live_url.clone();
        let client = app.client.clone();
        async move {
            let r = send(client.get(url).bearer_auth(auth)).await;
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let before = live(marketing.clone()).await;
    spec.prizes[0].2 = Some(12);
    let edited = spec.yaml();
    let r = send(
        app.client
            .post(format!("{live_url}/plan"))
            .bearer_auth(&marketing)
            .header("content-type", "application/yaml")
            .body(edited.clone()),
    )
    .await;
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(
        etag,
        format!("\"{}\"", before["config_hash"].as_str().unwrap())
    );
    let plan: Value = r.json().await.unwrap();
    assert!(
        plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["path"] == "prizes.gold.stock"),
        "{plan}"
    );

    let put = |if_match: Option<&str>, body: String| {
        let mut req = app
            .client
            .put(live_url.clone())
            .bearer_auth(&marketing)
            .header("content-type", "application/yaml")
            .body(body);
        if let Some(v) = if_match {
            req = req.header("if-match", v);
        }
        send(req)
    };
    // Malformed guards are refused before anything is parsed or applied.
    for bad in ["abc", "\"\"", "*", "\"a\", \"b\"", "W/\"abc\""] {
        let r = put(Some(bad), edited.clone()).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{bad}"
        );
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["code"], "invalid_if_match", "{bad}");
    }
    // Another hash is live: 409, nothing applied.
    let r = put(Some("\"0000\""), edited.clone()).await;
    assert_eq!(r.status(), 409);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "apply_conflict");
    assert_eq!(live(marketing.clone()).await["version"], before["version"]);

    // The plan's guard applies.
    let r = put(Some(&etag), edited.clone()).await;
    assert_eq!(r.status(), 200);
    let after = live(marketing.clone()).await;
    assert_eq!(
        after["version"].as_u64().unwrap(),
        before["version"].as_u64().unwrap() + 1
    );
    // The same guard again is stale: the first apply changed the hash.
    spec.prizes[0].2 = Some(13);
    let r = put(Some(&etag), spec.yaml()).await;
    assert_eq!(r.status(), 409);
    let gold = &live(marketing.clone()).await["prizes"][0];
    assert_eq!(gold["stock"], 12, "not overwritten");
    // Without If-Match, PUT applies as before.
    let r = put(None, spec.yaml()).await;
    assert_eq!(r.status(), 200);

    // Roles as for the rest of the admin API.
    let r = send(
        app.client
            .put(live_url.clone())
            .bearer_auth(token("f", &["finance"]))
            .header("if-match", &etag)
            .body(spec.yaml()),
    )
    .await;
    assert_eq!(r.status(), 403);
    let r = send(app.client.put(live_url.clone()).header("if-match", &etag)).await;
    assert_eq!(r.status(), 401);

    // Documented.
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    let put_op = &doc["paths"]["/v1/admin/campaigns/{id}"]["put"];
    assert!(
        put_op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "If-Match" && p["in"] == "header"),
        "{put_op}"
    );
    let plan_op = &doc["paths"]["/v1/admin/campaigns/{id}/plan"]["post"];
    assert!(
        plan_op["responses"]["200"]["headers"]["ETag"].is_object(),
        "{plan_op}"
    );
}

/// The 1-based line of `yaml` that holds `part`.
fn line_of(yaml: &str, part: &str) -> usize {
    yaml.lines()
        .position(|l| l.contains(part))
        .unwrap_or_else(|| panic!("no {part} in {yaml}"))
        + 1
}

async fn click(b: &Browser, css: &str) {
    b.client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Sets the editor's text as typing would (an `input` event follows).
async fn set_yaml(b: &Browser, yaml: &str) {
    b.js(
        "const a = document.getElementById('yaml'); a.value = arguments[0];
         a.dispatchEvent(new Event('input', { bubbles: true }));",
        vec![json!(yaml)],
    )
    .await;
}

async fn live_json(app: &TestApp, id: &str) -> Value {
    let r = send(
        app.client
            .get(format!("{}/v1/admin/campaigns/{id}", app.address))
            .bearer_auth(token("m", &["marketing"])),
    )
    .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn console_edit_page_marks_errors_plans_applies_and_reports_a_conflict() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("console-edit");
    spec.prizes = vec![("gold", 1, Some(10)), ("none", 9, None)];
    app.apply(&spec.yaml()).await;
    let b = Browser::start().await;
    sign_in(&b, &app, &token("mia", &["marketing"])).await;
    b.at_path("/console/campaigns").await;
    b.goto(&format!("{}/console/campaigns/{}", app.address, spec.id))
        .await;
    click(&b, "#edit-link").await;
    b.at_path(&format!("/console/campaigns/{}/edit", spec.id))
        .await;
    b.text_containing("#yaml-status", "Valid YAML").await;
    b.text_containing("#plan-summary", "Unchanged").await;
    let shown = b
        .js("return document.getElementById('yaml').value;", vec![])
        .await;
    assert_eq!(shown.as_str().unwrap(), spec.yaml(), "the live YAML");
    assert_labelled(&b).await;

    // Broken: the problem is listed and marked at its line.
    let live = spec.yaml();
    let line = line_of(&live, "stock: 10");
    set_yaml(&b, &live.replace("stock: 10", "stock: ten")).await;
    let problem = b
        .text_containing("#yaml-problems", &format!("{line}:"))
        .await;
    assert!(problem.contains("stock"), "{problem}");
    let marked = b
        .js(
            "return [...document.querySelectorAll('#gutter .line.bad')].map(e => Number(e.dataset.line));",
            vec![],
        )
        .await;
    assert_eq!(marked, json!([line]), "marked at the line of the problem");
    assert_eq!(
        b.js("return document.getElementById('apply').disabled;", vec![])
            .await,
        json!(true),
        "nothing to apply while the YAML is invalid"
    );
    b.text_containing("#yaml-status", "problem").await;
    b.screenshot("edit-error").await;

    // Choosing the problem selects its line; typing replaces it (keyboard).
    click(&b, "#yaml-problems button").await;
    let selection = b
        .js(
            "const a = document.getElementById('yaml');
             return [document.activeElement.id, a.value.slice(a.selectionStart, a.selectionEnd)];",
            vec![],
        )
        .await;
    assert_eq!(selection, json!(["yaml", "    stock: ten"]));
    let area = b.client.active_element().await.unwrap();
    area.send_keys("    stock: 12").await.unwrap();
    b.text_containing("#yaml-status", "Valid YAML").await;
    let change = b
        .text_containing("#plan-changes", "prizes.gold.stock")
        .await;
    assert!(change.contains("10") && change.contains("12"), "{change}");
    assert!(b.hidden("yaml-problems").await, "no problem left");
    b.screenshot("edit-plan").await;

    // Someone else applies meanwhile: Apply reports the conflict and
    // overwrites nothing.
    spec.prizes[0].2 = Some(30);
    app.apply(&spec.yaml()).await;
    click(&b, "#apply").await;
    let conflict = b
        .text_containing("#conflict", "someone changed this campaign")
        .await;
    assert!(conflict.contains("Nothing was overwritten"), "{conflict}");
    assert_eq!(live_json(&app, &spec.id).await["prizes"][0]["stock"], 30);
    b.screenshot("edit-conflict").await;
    // Planned again against what is live now: applying it is deliberate.
    b.text_containing("#plan-changes", "to 12").await;
    b.text_containing("#live-version", "2").await;
    click(&b, "#apply").await;
    b.text_containing("#message", "Applied: version 3").await;
    assert_eq!(live_json(&app, &spec.id).await["prizes"][0]["stock"], 12);

    // Pause: the button edits the YAML and plans it; Apply pauses.
    b.text_containing("#plan-summary", "Unchanged").await;
    click(&b, "#toggle-pause").await;
    b.text_containing("#plan-changes", "paused").await;
    let yaml = b
        .js("return document.getElementById('yaml').value;", vec![])
        .await;
    assert!(
        yaml.as_str().unwrap().contains("\npaused: true\n"),
        "{yaml}"
    );
    b.text_when("#apply", |_| true).await;
    b.text_containing("#apply-note", "Applies the change").await;
    click(&b, "#apply").await;
    b.text_containing("#message", "Applied: version 4").await;
    b.text_containing("#toggle-pause", "Resume the campaign")
        .await;
    let view: Value = send(
        app.client
            .get(format!("{}/v1/campaigns/{}", app.address, spec.id))
            .bearer_auth(token("shopper", &[])),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(view["status"], "paused");
    // …and resume.
    b.text_containing("#plan-summary", "Unchanged").await;
    click(&b, "#toggle-pause").await;
    b.text_containing("#apply-note", "Applies the change").await;
    click(&b, "#apply").await;
    b.text_containing("#message", "Applied: version 5").await;
    b.text_containing("#toggle-pause", "Pause the campaign")
        .await;
    let view: Value = send(
        app.client
            .get(format!("{}/v1/campaigns/{}", app.address, spec.id))
            .bearer_auth(token("shopper", &[])),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(view["status"], "live");
    b.close().await;
}

#[tokio::test]
async fn console_campaign_page_uploads_codes_typed_or_from_a_file() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("console-codes");
    spec.prizes = vec![("coupon", 1, None), ("none", 2, None)];
    spec.code_prizes = vec!["coupon"];
    app.apply(&spec.yaml()).await;
    let b = Browser::start().await;
    sign_in(&b, &app, &token("mia", &["marketing"])).await;
    b.at_path("/console/campaigns").await;
    b.goto(&format!("{}/console/campaigns/{}", app.address, spec.id))
        .await;
    b.text_containing("tr[data-prize='coupon']", "0 of 0 loaded")
        .await;
    let typed = b
        .client
        .find(Locator::Id("codes-text-coupon"))
        .await
        .unwrap();
    typed.click().await.unwrap();
    typed.send_keys("TYPED-1\nTYPED-2\nTYPED-3").await.unwrap();
    click(&b, "#codes-upload-coupon").await;
    let result = b.text_containing("#codes-result-coupon", "Added 3").await;
    assert!(result.contains("3 available now"), "{result}");
    b.text_containing("tr[data-prize='coupon']", "3 of 3 loaded")
        .await;

    // A file: one new code, one already loaded, one invalid line.
    let dir = crate::support::helpers::TempDir::new();
    let file = dir.0.join("codes.csv");
    std::fs::write(&file, "code\nFILE-1\nTYPED-2\nnot a code!\n").unwrap();
    let input = b
        .client
        .find(Locator::Id("codes-file-coupon"))
        .await
        .unwrap();
    input.send_keys(&file.display().to_string()).await.unwrap();
    click(&b, "#codes-upload-coupon").await;
    let result = b.text_containing("#codes-result-coupon", "Added 1").await;
    assert!(result.contains("1 already loaded"), "{result}");
    assert!(result.contains("1 invalid (line 4"), "{result}");
    b.text_containing("tr[data-prize='coupon']", "4 of 4 loaded")
        .await;
    let r = send(
        app.client
            .get(format!(
                "{}/v1/admin/campaigns/{}/prizes/coupon/codes",
                app.address, spec.id
            ))
            .bearer_auth(token("m", &["marketing"])),
    )
    .await;
    let counts: Value = r.json().await.unwrap();
    assert_eq!(counts["loaded"], 4, "{counts}");
    assert_eq!(counts["available"], 4, "{counts}");
    assert_labelled(&b).await;
    b.screenshot("campaign-codes-upload").await;
    b.close().await;
}

#[tokio::test]
async fn console_burndown_gives_settled_released_and_projected_units_per_prize() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("console-burn");
    spec.prizes = vec![
        ("gold", 5, Some(50)),
        ("silver", 5, Some(400)),
        ("none", 1, None),
    ];
    spec.releases.insert("silver", "even".into());
    spec.expected_users = 200;
    spec.spins_per_user = 5;
    app.apply(&spec.yaml()).await;
    let marketing = token("m", &["marketing"]);
    let url = format!("{}/v1/admin/campaigns/{}/burndown", app.address, spec.id);
    let get = |path: String, auth: Option<String>| {
        let mut req = app.client.get(path);
        if let Some(a) = auth {
            req = req.bearer_auth(a);
        }
        send(req)
    };

    let r = get(url.clone(), Some(marketing.clone())).await;
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    let ids: Vec<&str> = b["prizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gold", "silver"], "stock-bounded prizes only");
    let gold = &b["prizes"][0];
    assert_eq!(gold["stock"], 50);
    assert_eq!(
        gold["settled"].as_array().unwrap().last().unwrap()["units"],
        0
    );
    assert!(gold["released"].as_array().unwrap().is_empty(), "not paced");
    let silver = &b["prizes"][1];
    let released = silver["released"].as_array().unwrap();
    assert_eq!(
        released.first().unwrap()["units"],
        1,
        "even: the first unit at the start"
    );
    assert!(
        released.last().unwrap()["units"].as_u64().unwrap() >= 399,
        "even: all but the last unit by the end"
    );
    let projected = gold["projected"].as_array().unwrap();
    assert_eq!(projected.first().unwrap()["units"], 0, "from now");
    assert!(
        projected.last().unwrap()["units"].as_u64().unwrap() > 0,
        "200 shoppers × 5 spins over 30 days win gold: {projected:?}"
    );
    // The rest of 200 × 5 attempts: the window began an hour ago.
    let users = b["projection"]["users"].as_u64().unwrap();
    assert!((195..=200).contains(&users), "{}", b["projection"]);
    assert_eq!(b["projection"]["scaled"], false);

    // Spins: the settled series and the projection start from them.
    for n in 0..30 {
        let r = app
            .spin(&spec.id, &format!("b-{n}"), &format!("k-{n}"))
            .await;
        assert_eq!(r.status(), 200);
    }
    crate::support::settling::settle_all(&app, &spec.id, "console-burn").await;
    let b: Value = get(url.clone(), Some(marketing.clone()))
        .await
        .json()
        .await
        .unwrap();
    let live = live_json(&app, &spec.id).await;
    for (i, p) in b["prizes"].as_array().unwrap().iter().enumerate() {
        let awarded = live["prizes"][i]["awarded"].as_u64().unwrap();
        assert_eq!(p["awarded"].as_u64().unwrap(), awarded);
        let settled = p["settled"].as_array().unwrap();
        assert_eq!(
            settled.last().unwrap()["units"].as_u64().unwrap(),
            awarded,
            "every award settled: {p}"
        );
        let units: Vec<u64> = settled
            .iter()
            .map(|s| s["units"].as_u64().unwrap())
            .collect();
        assert!(
            units.windows(2).all(|w| w[0] <= w[1]),
            "cumulative: {units:?}"
        );
        let projected = p["projected"].as_array().unwrap();
        assert_eq!(
            projected.first().unwrap()["units"].as_u64().unwrap(),
            awarded
        );
        let end = projected.last().unwrap()["units"].as_u64().unwrap();
        assert!(end >= awarded && end <= p["stock"].as_u64().unwrap(), "{p}");
    }
    let rewards: i64 = sqlx::query_scalar("SELECT count(*) FROM rewards WHERE campaign_id = $1")
        .bind(&spec.id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(rewards, 30);

    // The SVG.
    let r = get(format!("{url}.svg"), Some(marketing.clone())).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    let svg = r.text().await.unwrap();
    assert!(svg.contains("<svg"), "{}", &svg[..svg.len().min(200)]);
    assert!(svg.contains("Prize gold: settled"), "a legend");
    assert!(svg.contains("Prize silver: released"), "a legend");

    // Roles and bad input, as problem+json.
    for path in [url.clone(), format!("{url}.svg")] {
        let r = get(path.clone(), Some(token("f", &["finance"]))).await;
        assert_eq!(r.status(), 403, "{path}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["code"], "forbidden");
        let r = get(path.clone(), None).await;
        assert_eq!(r.status(), 401, "{path}");
    }
    let r = get(
        format!("{}/v1/admin/campaigns/no-such-sale/burndown", app.address),
        Some(marketing.clone()),
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "campaign_not_found");
    let r = get(
        format!("{}/v1/admin/campaigns/Not_An_Id/burndown.svg", app.address),
        Some(marketing.clone()),
    )
    .await;
    assert!(r.status().is_client_error(), "{}", r.status());
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    // Documented.
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    let op = &doc["paths"]["/v1/admin/campaigns/{id}/burndown"]["get"];
    assert_eq!(op["operationId"], "get_burndown");
    for status in ["200", "401", "403"] {
        assert!(op["responses"][status].is_object(), "documents {status}");
    }
    let op = &doc["paths"]["/v1/admin/campaigns/{id}/burndown.svg"]["get"];
    assert!(
        op["responses"]["200"]["content"]["image/svg+xml"].is_object(),
        "{op}"
    );
    assert!(doc["components"]["schemas"]["Burndown"].is_object());
}

#[tokio::test]
async fn console_campaign_page_burndown_moves_with_spins() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("console-bdui");
    spec.prizes = vec![
        ("gold", 5, Some(20)),
        ("silver", 3, Some(200)),
        ("none", 1, None),
    ];
    spec.releases.insert("silver", "even".into());
    spec.expected_users = 100;
    spec.spins_per_user = 5;
    app.apply(&spec.yaml()).await;
    let b = Browser::start().await;
    sign_in(&b, &app, &token("mia", &["marketing"])).await;
    b.at_path("/console/campaigns").await;
    b.goto(&format!("{}/console/campaigns/{}", app.address, spec.id))
        .await;
    b.text_containing("#burndown-figures", "Prize gold: 0 of 20 settled")
        .await;
    let src = b
        .js(
            "return document.getElementById('burndown-img').src.slice(0, 26);",
            vec![],
        )
        .await;
    assert_eq!(src, json!("data:image/svg+xml;base64,"));
    let loaded = b
        .js(
            "return document.getElementById('burndown-img').naturalWidth;",
            vec![],
        )
        .await;
    assert!(
        loaded.as_u64().unwrap_or(0) > 0,
        "the chart shows: {loaded}"
    );

    for n in 0..12 {
        let r = app
            .spin(&spec.id, &format!("u-{n}"), &format!("k-{n}"))
            .await;
        assert_eq!(r.status(), 200);
    }
    crate::support::settling::settle_all(&app, &spec.id, "console-bdui").await;
    let awarded = live_json(&app, &spec.id).await["prizes"][0]["awarded"]
        .as_u64()
        .unwrap();
    assert!(awarded > 0, "12 spins at 5 of 9 win gold");
    // Refreshed by itself within a few seconds.
    b.text_containing(
        "#burndown-figures",
        &format!("Prize gold: {awarded} of 20 settled"),
    )
    .await;
    b.js(
        "document.getElementById('burndown-title').scrollIntoView();",
        vec![],
    )
    .await;
    b.screenshot("campaign-burndown").await;
    // The whole page, for docs/console-campaign.png, its table refreshed too.
    b.resize((1280, 1400)).await;
    b.js("window.scrollTo(0, 0);", vec![]).await;
    click(&b, "#refresh").await;
    b.text_containing(
        "tr[data-prize='gold']",
        &format!("{} of 20 left", 20 - awarded),
    )
    .await;
    b.screenshot("campaign-page").await;
    b.close().await;
}

#[tokio::test]
async fn console_finance_page_filters_pages_and_downloads_the_rewards() {
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("console-rew");
    spec.prizes = vec![("gold", 1, Some(100)), ("none", 1, None)];
    app.apply(&spec.yaml()).await;
    for n in 0..30 {
        let r = app
            .spin(&spec.id, &format!("r-{n:02}"), &format!("k-{n}"))
            .await;
        assert_eq!(r.status(), 200);
    }
    crate::support::settling::settle_all(&app, &spec.id, "console-rew").await;
    let finance = token("fiona", &["finance"]);
    let rewards_url = format!("{}/v1/finance/campaigns/{}/rewards", app.address, spec.id);
    let golds: Value = send(
        app.client
            .get(format!("{rewards_url}?prize=gold&limit=1000"))
            .bearer_auth(&finance),
    )
    .await
    .json()
    .await
    .unwrap();
    let golds = golds["rewards"].as_array().unwrap().len();
    assert!(golds > 0 && golds < 30, "both prizes were won: {golds}");

    let b = Browser::start().await;
    sign_in(&b, &app, &finance).await;
    b.text_containing("#message", "no marketing role").await;
    b.goto(&format!("{}/console/finance/{}", app.address, spec.id))
        .await;
    b.text_containing("#rewards-status", "Page 1: 30 rewards")
        .await;

    // Keyset paging, 25 a page.
    b.js("document.getElementById('f-limit').value = '25';", vec![])
        .await;
    click(&b, "#f-apply").await;
    b.text_containing("#rewards-status", "Page 1: 25 rewards; more")
        .await;
    let first: Value = b
        .js(
            "return [...document.querySelectorAll('#rewards tbody tr')].map(r => r.dataset.spin);",
            vec![],
        )
        .await;
    click(&b, "#next-page").await;
    b.text_containing("#rewards-status", "Page 2: 5 rewards; the last page")
        .await;
    let second: Value = b
        .js(
            "return [...document.querySelectorAll('#rewards tbody tr')].map(r => r.dataset.spin);",
            vec![],
        )
        .await;
    let all: Value = send(
        app.client
            .get(format!("{rewards_url}?limit=1000"))
            .bearer_auth(&finance),
    )
    .await
    .json()
    .await
    .unwrap();
    let ids: Vec<Value> = all["rewards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["spin_id"].clone())
        .collect();
    let mut shown = first.as_array().unwrap().clone();
    shown.extend(second.as_array().unwrap().iter().cloned());
    assert_eq!(
        shown, ids,
        "the two pages are every reward, in the API's order"
    );

    // A filter: only gold.
    let prize = b.client.find(Locator::Id("f-prize")).await.unwrap();
    prize.click().await.unwrap();
    prize.send_keys("gold").await.unwrap();
    b.js("document.getElementById('f-limit').value = '100';", vec![])
        .await;
    click(&b, "#f-apply").await;
    b.text_containing("#rewards-status", &format!("Page 1: {golds} reward"))
        .await;
    let prizes: Value = b
        .js(
            "return [...new Set([...document.querySelectorAll('#rewards tbody tr')]
               .map(r => r.cells[2].querySelector('code').textContent))];",
            vec![],
        )
        .await;
    assert_eq!(prizes, json!(["gold"]));
    assert_labelled(&b).await;
    b.screenshot("finance-rewards").await;

    // The CSV of the filtered set, saved from a Blob URL, is the API's.
    click(&b, "#csv").await;
    let name = format!("rewards-{}-gold.csv", spec.id);
    b.text_containing("#rewards-status", &format!("Downloaded {name}"))
        .await;
    let file = b.downloads().join(&name);
    let deadline = std::time::Instant::now() + PATIENCE;
    while !file.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no {} in {:?}",
            file.display(),
            std::fs::read_dir(b.downloads()).map(|d| d.count()).ok()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let saved = std::fs::read_to_string(&file).unwrap();
    let api_csv = send(
        app.client
            .get(format!("{rewards_url}?prize=gold"))
            .bearer_auth(&finance)
            .header("accept", "text/csv"),
    )
    .await
    .text()
    .await
    .unwrap();
    assert_eq!(saved, api_csv);
    assert_eq!(saved.lines().count(), golds + 1, "a header and every gold");

    // A time filter, typed as UTC: none spun after 2099.
    b.js(
        "document.getElementById('f-from').value = '2099-01-01T00:00:00';",
        vec![],
    )
    .await;
    click(&b, "#f-apply").await;
    b.text_containing("#rewards-status", "Page 1: 0 rewards")
        .await;
    b.text_containing("#rewards tbody", "No settled reward matches")
        .await;
    b.js("document.getElementById('f-from').value = '';", vec![])
        .await;

    // A bad filter is the API's 400, said on the page.
    prize.clear().await.unwrap();
    prize.send_keys("Not A Prize").await.unwrap();
    click(&b, "#f-apply").await;
    b.text_containing("#message", "Check the filters").await;
    b.close().await;
}
