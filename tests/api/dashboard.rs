//! The Grafana dashboard (deploy/grafana/dashboards/prizewheel.json) queries
//! only metrics and labels the service exposes on `GET /metrics`, shows every
//! one of them, and uses the data source that deploy/grafana provisions.

use crate::deploy_files::{repo, yaml};
use serde_json::Value;
use std::collections::BTreeSet;

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

/// Functions, aggregations and keywords: identifiers that are not metric names.
const NOT_METRICS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
];

/// A selector in a PromQL expression: a metric name and the label names its
/// matchers use; `grouping` collects the labels of `by (…)`/`on (…)` clauses.
#[derive(Debug, Default)]
struct Parsed {
    selectors: Vec<(String, Vec<String>)>,
    grouping: Vec<String>,
}

/// Splits a PromQL expression into what the checks need: no evaluation, just
/// enough lexing to tell metric names from functions, labels, strings and ranges.
fn parse(expr: &str) -> Parsed {
    let b = expr.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut p = Parsed::default();
    let mut i = 0;
    let mut grouping_next = false;
    while i < b.len() {
        let c = b[i];
        if c == b'"' || c == b'\'' || c == b'`' {
            i += 1;
            while i < b.len() && b[i] != c {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == b'[' {
            i += expr[i..].find(']').expect("closed [") + 1;
        } else if c == b'{' {
            let end = closing_brace(expr, i);
            let labels = matcher_labels(&expr[i + 1..end]);
            match p.selectors.last_mut() {
                Some(last) if expr[..i].trim_end().ends_with(last.0.as_str()) => last.1 = labels,
                _ => panic!("a matcher without a metric name in `{expr}`"),
            }
            i = end + 1;
        } else if c == b'(' && grouping_next {
            let end = i + expr[i..].find(')').expect("closed (");
            p.grouping
                .extend(expr[i + 1..end].split(',').map(|l| l.trim().to_owned()));
            grouping_next = false;
            i = end + 1;
        } else if c.is_ascii_digit() || c == b'.' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
        } else if c == b'$' || ident(c) {
            let start = i;
            i += 1;
            while i < b.len() && ident(b[i]) {
                i += 1;
            }
            let word = &expr[start..i];
            let next = expr[i..].trim_start().chars().next();
            if ["by", "without", "on", "ignoring"].contains(&word) {
                grouping_next = true;
            } else if !(word.starts_with('$') || next == Some('(') || NOT_METRICS.contains(&word)) {
                p.selectors.push((word.to_owned(), Vec::new()));
            }
        } else {
            i += 1;
        }
    }
    p
}

/// The `}` closing the matcher list opened at `open`, past quoted values.
fn closing_brace(expr: &str, open: usize) -> usize {
    let b = expr.as_bytes();
    let mut i = open + 1;
    while i < b.len() {
        match b[i] {
            b'}' => return i,
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unclosed matcher list in `{expr}`")
}

/// Label names of a matcher list such as `campaign=~"$campaign", le="0.1"`.
fn matcher_labels(inner: &str) -> Vec<String> {
    let mut labels = Vec::new();
    let mut rest = inner;
    while let Some(op) = rest.find(['=', '!']) {
        labels.push(rest[..op].trim().trim_start_matches(',').trim().to_owned());
        let q = rest[op..].find('"').expect("quoted matcher value") + op;
        let close = rest[q + 1..].find('"').expect("closed value") + q + 1;
        rest = &rest[close + 1..];
    }
    labels
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
fn the_lexer_finds_metrics_labels_and_groupings() {
    let p = parse(
        r#"histogram_quantile(0.99, sum by (le, script) (rate(a_b_bucket{x=~"{id}/spins", y!="2"}[$__rate_interval]))) / on (job) c:d >= 0"#,
    );
    let names: Vec<&str> = p.selectors.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(names, ["a_b_bucket", "c:d"]);
    assert_eq!(p.selectors[0].1, ["x", "y"]);
    assert_eq!(p.grouping, ["le", "script", "job"]);
    assert!(
        metric_of("prizewheel_settlement_batch_size_bucket")
            .unwrap()
            .1
    );
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
