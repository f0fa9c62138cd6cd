//! The Grafana dashboard (deploy/grafana/dashboards/prizewheel.json) queries
//! only metrics and labels the service exposes on `GET /metrics`, shows every
//! one of them, and uses the data source that deploy/grafana provisions. The
//! list of metrics it is held to is itself held to a running service's
//! `/metrics`.

use crate::support::helpers::{Spec, TestApp};
use crate::support::promql::parse;
use crate::support::receiver::{Receiver, SECRET};
use crate::support::repo::{repo, yaml};
use prizewheel::deliver::dispatcher::Dispatcher;
use prizewheel::deliver::settings::{WebhookSettings, sinks};
use prizewheel::deliver::webhook::Endpoint;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One exposed metric: its Prometheus name, kind and labels.
struct Metric {
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
}

const fn m(name: &'static str, kind: Kind, labels: &'static [&'static str]) -> Metric {
    Metric { name, kind, labels }
}

/// The metrics of `GET /metrics` (Prometheus names) and their labels: the one
/// list the dashboard is held to.
const METRICS: &[Metric] = &[
    m(
        "http_server_request_duration_seconds",
        Kind::Histogram,
        &[
            "http_request_method",
            "http_route",
            "http_response_status_code",
        ],
    ),
    m(
        "prizewheel_spins_total",
        Kind::Counter,
        &["campaign", "outcome"],
    ),
    m(
        "prizewheel_grants_total",
        Kind::Counter,
        &["campaign", "outcome"],
    ),
    m(
        "prizewheel_prizes_awarded_total",
        Kind::Counter,
        &["campaign", "prize"],
    ),
    m(
        "prizewheel_stock_remaining",
        Kind::Gauge,
        &["campaign", "prize"],
    ),
    m(
        "prizewheel_stock_released",
        Kind::Gauge,
        &["campaign", "prize"],
    ),
    m("prizewheel_budget_spent", Kind::Gauge, &["campaign"]),
    m("prizewheel_budget_left", Kind::Gauge, &["campaign"]),
    m(
        "prizewheel_codes_available",
        Kind::Gauge,
        &["campaign", "prize"],
    ),
    m(
        "prizewheel_codes_loaded",
        Kind::Gauge,
        &["campaign", "prize"],
    ),
    m("prizewheel_campaign_live", Kind::Gauge, &["campaign"]),
    m(
        "prizewheel_admission_rejections_total",
        Kind::Counter,
        &["layer"],
    ),
    m("prizewheel_redis_in_flight", Kind::Gauge, &[]),
    m(
        "prizewheel_redis_script_duration_seconds",
        Kind::Histogram,
        &["script"],
    ),
    m(
        "prizewheel_settlement_lag_entries",
        Kind::Gauge,
        &["campaign"],
    ),
    m(
        "prizewheel_settlement_lag_age_seconds",
        Kind::Gauge,
        &["campaign"],
    ),
    m("prizewheel_settlement_batch_size", Kind::Histogram, &[]),
    m(
        "prizewheel_settlement_batch_duration_seconds",
        Kind::Histogram,
        &[],
    ),
    m(
        "prizewheel_settlement_dead_letters",
        Kind::Gauge,
        &["campaign"],
    ),
    m(
        "prizewheel_campaign_awaiting_recovery",
        Kind::Gauge,
        &["campaign"],
    ),
    m(
        "prizewheel_http_connection_errors_total",
        Kind::Counter,
        &["kind"],
    ),
    m(
        "prizewheel_webhook_deliveries_total",
        Kind::Counter,
        &["endpoint", "outcome"],
    ),
    m(
        "prizewheel_webhook_lag_seconds",
        Kind::Histogram,
        &["endpoint"],
    ),
    m(
        "prizewheel_webhook_dead_marked_total",
        Kind::Counter,
        &["endpoint"],
    ),
    m("prizewheel_webhook_pending", Kind::Gauge, &["endpoint"]),
    m(
        "prizewheel_webhook_oldest_pending_seconds",
        Kind::Gauge,
        &["endpoint"],
    ),
    m("prizewheel_webhook_dead", Kind::Gauge, &["endpoint"]),
    m("prizewheel_webhook_enabled", Kind::Gauge, &["endpoint"]),
];

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: &[&str] = &["instance", "job"];

/// The listed metric a Prometheus series name belongs to (a histogram's
/// `_bucket`, `_sum` and `_count` included), and whether it is a bucket.
fn metric_of(series: &str) -> Option<(&'static Metric, bool)> {
    METRICS.iter().find_map(|m| {
        if series == m.name {
            return (m.kind != Kind::Histogram).then_some((m, false));
        }
        let suffix = series.strip_prefix(m.name)?;
        match (m.kind, suffix) {
            (Kind::Histogram, "_bucket") => Some((m, true)),
            (Kind::Histogram, "_sum" | "_count") => Some((m, false)),
            _ => None,
        }
    })
}

fn dashboard() -> Value {
    let path = repo("deploy/grafana/dashboards/prizewheel.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every panel, rows' nested panels included.
fn panels(d: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        out.extend(p["panels"].as_array().into_iter().flatten().cloned());
        out.push(p.clone());
    }
    out
}

#[test]
fn histogram_series_belong_to_their_histogram() {
    assert!(
        metric_of("prizewheel_settlement_batch_size_bucket")
            .unwrap()
            .1
    );
    assert!(!metric_of("prizewheel_settlement_batch_size_sum").unwrap().1);
    assert!(metric_of("prizewheel_spins_total_bucket").is_none());
    assert!(metric_of("prizewheel_spins").is_none());
}

#[test]
fn the_dashboard_queries_only_exposed_metrics_and_shows_them_all() {
    let d = dashboard();
    let all_labels: BTreeSet<&str> = METRICS
        .iter()
        .flat_map(|m| m.labels.iter().copied())
        .chain(TARGET_LABELS.iter().copied())
        .chain(["le"])
        .collect();
    let mut used = BTreeSet::new();
    let mut queries = 0;
    for panel in panels(&d) {
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().unwrap().to_owned();
        let targets = panel["targets"].as_array().expect("a panel has queries");
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            queries += 1;
            let p = parse(expr);
            assert!(!p.selectors.is_empty(), "{title}: `{expr}` selects nothing");
            for (series, labels) in &p.selectors {
                let (m, bucket) = metric_of(series)
                    .unwrap_or_else(|| panic!("{title}: `{series}` is not exposed"));
                used.insert(m.name);
                for l in labels {
                    let known = m.labels.contains(&l.as_str())
                        || TARGET_LABELS.contains(&l.as_str())
                        || (bucket && l == "le");
                    assert!(known, "{title}: {series} has no label `{l}`");
                }
            }
            for l in &p.grouping {
                assert!(
                    all_labels.contains(l.as_str()),
                    "{title}: no metric has `{l}`"
                );
            }
        }
    }
    assert!(queries >= 12, "{queries} queries");
    let missing: Vec<_> = METRICS
        .iter()
        .map(|m| m.name)
        .filter(|m| !used.contains(m))
        .collect();
    assert!(missing.is_empty(), "not on the dashboard: {missing:?}");

    for var in d["templating"]["list"].as_array().unwrap() {
        let q = var["query"]["query"]
            .as_str()
            .or(var["query"].as_str())
            .unwrap();
        let args = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable query `{q}`"));
        let (series, label) = args.split_once(',').unwrap();
        let (m, _) = metric_of(series.trim()).unwrap_or_else(|| panic!("`{series}`"));
        assert!(
            m.labels.contains(&label.trim()),
            "{} has no label {label}",
            m.name
        );
    }
}

#[test]
fn the_dashboard_uses_the_provisioned_data_source() {
    let provisioned = yaml("deploy/grafana/provisioning/datasources/prometheus.yaml");
    let uid = provisioned["datasources"][0]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(provisioned["datasources"][0]["type"], "prometheus");
    let d = dashboard();
    for panel in panels(&d).iter().filter(|p| p["type"] != "row") {
        assert_eq!(
            panel["datasource"]["uid"],
            uid.as_str(),
            "{}",
            panel["title"]
        );
        for t in panel["targets"].as_array().unwrap() {
            assert_eq!(t["datasource"]["uid"], uid.as_str(), "{}", panel["title"]);
        }
    }
    // The provider loads the folder compose mounts the dashboard into.
    let provider = yaml("deploy/grafana/provisioning/dashboards/prizewheel.yaml");
    let folder = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    let compose = std::fs::read_to_string(repo("docker-compose.yml")).unwrap();
    assert!(
        compose.contains(&format!("./deploy/grafana/dashboards:{folder}:ro")),
        "compose mounts the dashboards at {folder}"
    );
    // Prometheus scrapes the port the image listens on.
    let prom = yaml("deploy/prometheus/prometheus.yml");
    let job = &prom["scrape_configs"][0];
    assert_eq!(job["metrics_path"], "/metrics");
    let port = job["dns_sd_configs"][0]["port"].as_u64().unwrap();
    let dockerfile = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    assert!(dockerfile.contains(&format!("ENV PRIZEWHEEL_LISTEN=0.0.0.0:{port}")));
}

/// The alert rules Prometheus loads query only exposed metrics and labels, and
/// cover stuck settlement, dead letters, campaigns awaiting recovery, code
/// pools running low or out while their campaign is live, and webhook
/// endpoints with dead deliveries, falling behind or failing; the lag bound is
/// the service's default `settle.max_lag_ms`.
#[test]
fn the_alert_rules_query_exposed_metrics_and_cover_settlement() {
    let prom = yaml("deploy/prometheus/prometheus.yml");
    assert_eq!(prom["rule_files"][0], "/etc/prometheus/alerts.yml");
    let compose = std::fs::read_to_string(repo("docker-compose.yml")).unwrap();
    assert!(compose.contains("./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro"));
    let rules = yaml("deploy/prometheus/alerts.yml");
    let mut alerted = BTreeMap::new();
    let mut by_name = BTreeMap::new();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"].as_str().expect("an alerting rule").to_owned();
            let expr = rule["expr"].as_str().unwrap();
            assert!(rule["for"].as_str().is_some(), "{name}: a `for`");
            assert!(
                rule["labels"]["severity"].as_str().is_some(),
                "{name}: a severity"
            );
            assert!(
                rule["annotations"]["summary"].as_str().is_some(),
                "{name}: a summary"
            );
            let p = parse(expr);
            let mut labels_of_rule = BTreeSet::new();
            for (series, labels) in &p.selectors {
                let (m, _) = metric_of(series)
                    .unwrap_or_else(|| panic!("{name}: `{series}` is not exposed"));
                assert!(
                    labels.iter().all(|l| m.labels.contains(&l.as_str())),
                    "{name}: {labels:?}"
                );
                labels_of_rule.extend(m.labels.iter().copied());
                alerted.insert(m.name, expr.to_owned());
            }
            // Every replica samples the same gauges: a rule groups by the
            // labels of its metrics (campaign, prize), never keeps replicas
            // (instance, job) apart.
            for l in &p.grouping {
                assert!(
                    labels_of_rule.contains(l.as_str()),
                    "{name}: groups by `{l}`, a label none of its metrics has"
                );
            }
            by_name.insert(name, expr.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    for metric in [
        "prizewheel_settlement_lag_age_seconds",
        "prizewheel_settlement_dead_letters",
        "prizewheel_campaign_awaiting_recovery",
        "prizewheel_codes_available",
        "prizewheel_codes_loaded",
        "prizewheel_prizes_awarded_total",
        "prizewheel_campaign_live",
        "prizewheel_webhook_dead",
        "prizewheel_webhook_oldest_pending_seconds",
        "prizewheel_webhook_deliveries_total",
        "prizewheel_webhook_enabled",
    ] {
        assert!(alerted.contains_key(metric), "no alert on {metric}");
    }
    let bound = prizewheel::settle::SettleSettings::default().max_lag_ms / 1000;
    assert!(
        alerted["prizewheel_settlement_lag_age_seconds"].ends_with(&format!("> {bound}")),
        "the lag alert fires at settle.max_lag_ms ({bound} s)"
    );
    // A pool running low: under 10 % of the codes loaded, or under an hour of
    // the awards of the last minutes, while some are left and the sale is on.
    let live = "and on (campaign) max by (campaign) (prizewheel_campaign_live) == 1";
    let low = &by_name["PrizewheelCodesLow"];
    for part in [
        "max by (campaign, prize) (prizewheel_codes_available) < 0.1 * max by (campaign, prize) (prizewheel_codes_loaded)",
        "max by (campaign, prize) (prizewheel_codes_available) < 3600 * sum by (campaign, prize) (rate(prizewheel_prizes_awarded_total[",
        "and max by (campaign, prize) (prizewheel_codes_available) > 0",
        live,
    ] {
        assert!(
            low.contains(part),
            "PrizewheelCodesLow lacks `{part}`: {low}"
        );
    }
    // An empty pool while the campaign is live.
    let out = &by_name["PrizewheelCodesExhausted"];
    for part in [
        "max by (campaign, prize) (prizewheel_codes_available) == 0",
        live,
    ] {
        assert!(
            out.contains(part),
            "PrizewheelCodesExhausted lacks `{part}`: {out}"
        );
    }
}

/// deploy/prometheus/alerts.test.yml (promtool's unit tests of the rules, run
/// by `promtool test rules`) loads the rules file and makes every alert fire
/// in some test, so no rule goes untested.
#[test]
fn every_alert_has_a_promtool_unit_test_that_fires_it() {
    let rules = yaml("deploy/prometheus/alerts.yml");
    let tests = yaml("deploy/prometheus/alerts.test.yml");
    assert_eq!(tests["rule_files"][0], "alerts.yml");
    let mut fired = BTreeSet::new();
    for t in tests["tests"].as_array().unwrap() {
        for a in t["alert_rule_test"].as_array().into_iter().flatten() {
            if a["exp_alerts"].as_array().is_some_and(|e| !e.is_empty()) {
                fired.insert(a["alertname"].as_str().unwrap().to_owned());
            }
        }
    }
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"].as_str().unwrap();
            assert!(
                fired.contains(name),
                "{name}: no test of alerts.test.yml expects it to fire"
            );
        }
    }
}

/// Metric families of a Prometheus text exposition: name → (TYPE, the label
/// names seen on its series).
fn families(text: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut out: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            out.entry(name.to_owned()).or_default().0 = kind.to_owned();
        } else if !line.starts_with('#') && !line.is_empty() {
            let name_end = line.find(['{', ' ']).unwrap();
            let series = &line[..name_end];
            let family = out
                .keys()
                .filter(|f| series.starts_with(f.as_str()))
                .max_by_key(|f| f.len())
                .cloned()
                .unwrap_or_else(|| panic!("series before its TYPE: {line}"));
            if let Some(body) = line[name_end..].strip_prefix('{') {
                let body = &body[..body.rfind('}').unwrap()];
                let labels = parse(&format!("m{{{body}}}")).selectors.remove(0).1;
                out.get_mut(&family).unwrap().1.extend(labels);
            }
        }
    }
    out
}

/// An endpoint for rewards and applies at `url` (signed with the test
/// receiver's secret), with `extra` settings.
fn webhook(id: &str, url: String, extra: serde_json::Value) -> WebhookSettings {
    let mut hook = serde_json::json!({
        "id": id,
        "url": url,
        "secret_env": "PW_DASHBOARD_TEST_SECRET",
        "events": ["reward.settled", "campaign.applied"],
        "timeout_ms": 2000,
        "backoff_initial_ms": 20,
        "backoff_max_ms": 500,
    });
    hook.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(hook).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metric_list_is_what_a_running_service_exposes() {
    // Webhooks: one endpoint that takes every delivery, one that fails every
    // attempt and gives up at the first (its retry is due after retry_for):
    // each webhook series appears, a dead delivery included.
    let receiver = Receiver::start().await;
    let failing = Receiver::start().await;
    failing.fail(1000);
    let hooks = vec![
        webhook("dashboard", receiver.url(), serde_json::json!({})),
        webhook(
            "dashboard-dead",
            failing.url(),
            serde_json::json!({"retry_for_secs": 1, "backoff_initial_ms": 5000, "backoff_max_ms": 5000}),
        ),
    ];
    let settled_hooks = hooks.clone();
    let app = TestApp::spawn_with(|s| {
        s.settle = crate::support::settling::fast();
        s.admission.per_user.enabled = true;
        s.admission.per_user.per_second = 1;
        s.admission.per_user.burst = 1;
        // The settler records deliveries for them; the dispatcher is started
        // below with the secret (the process environment is not the test's to set).
        s.webhooks = settled_hooks;
        s.deliver.enabled = false;
    })
    .await;
    let endpoints = hooks
        .iter()
        .map(|h| Endpoint::with_secret(h, h.secret_from(SECRET).unwrap()).unwrap())
        .collect();
    let dispatcher = Dispatcher::start(
        app.db.pool.clone(),
        endpoints,
        sinks(&hooks).unwrap(),
        prizewheel::deliver::dispatcher::Options {
            poll: Duration::from_millis(50),
            retention: None,
        },
    );
    let mut spec = Spec::new("dashboard");
    spec.earned = Some((1, "campaign_end"));
    // A code prize: its pool's gauges are sampled (0 codes loaded).
    spec.prizes.insert(1, ("coupon", 1, None));
    spec.code_prizes.push("coupon");
    app.apply(&spec.yaml()).await;
    // A grant: its counter appears once one is made (not only when another
    // test of the run made one).
    let body = serde_json::json!({"user_id": "ann", "spins": 1}).to_string();
    let r = crate::support::helpers::grant(&app.client, &app.address, &spec.id, "g1", &body).await;
    assert_eq!(r.status(), 200);
    // Two at once from one user: the second is over the per-user burst.
    for key in ["a", "b"] {
        app.spin(&spec.id, "ann", key).await;
    }
    let url = format!("{}/metrics", app.address);
    let mut exposed = BTreeMap::new();
    // Gauges are sampled every few seconds; the batch settles within one.
    for _ in 0..150 {
        let text = app
            .client
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        exposed = families(&text);
        if METRICS.iter().all(|m| exposed.contains_key(m.name)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for m in METRICS {
        let (kind, labels) = exposed
            .get(m.name)
            .unwrap_or_else(|| panic!("{} is not on /metrics", m.name));
        let want = match m.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        assert_eq!(kind, want, "{}", m.name);
        let extra: Vec<_> = labels
            .iter()
            .filter(|l| !m.labels.contains(&l.as_str()) && *l != "le")
            .collect();
        assert!(
            extra.is_empty(),
            "{} has labels {extra:?} not listed",
            m.name
        );
    }
    // And the other way: the service's own metrics are all listed (so on the
    // dashboard). The runtime's target_info is not the service's.
    for name in exposed.keys() {
        if name.starts_with("prizewheel_") || name.starts_with("http_") {
            assert!(
                METRICS.iter().any(|m| m.name == name),
                "{name} is on /metrics: add it to METRICS and the dashboard"
            );
        }
    }
    dispatcher.stop().await;
    receiver.assert_clean();
}
