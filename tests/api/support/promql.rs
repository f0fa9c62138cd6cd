//! Just enough PromQL lexing for tests/api/dashboard.rs: the metric names an
//! expression selects, the label names their matchers use and the labels of
//! its `by (…)`/`on (…)` clauses. No evaluation; promtool checks the syntax
//! (scripts/check-deploy.sh).

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
pub struct Parsed {
    pub selectors: Vec<(String, Vec<String>)>,
    pub grouping: Vec<String>,
}

/// Splits a PromQL expression into what the checks need: no evaluation, just
/// enough lexing to tell metric names from functions, labels, strings and ranges.
pub fn parse(expr: &str) -> Parsed {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lexer_finds_metrics_labels_and_groupings() {
        let p = parse(
            r#"histogram_quantile(0.99, sum by (le, script) (rate(a_b_bucket{x=~"{id}/spins", y!="2"}[$__rate_interval]))) / on (job) c:d >= 0"#,
        );
        let names: Vec<&str> = p.selectors.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(names, ["a_b_bucket", "c:d"]);
        assert_eq!(p.selectors[0].1, ["x", "y"]);
        assert_eq!(p.grouping, ["le", "script", "job"]);
    }
}
