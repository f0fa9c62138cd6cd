//! The direction of dependencies in src/, held to docs/ARCHITECTURE.md ("Module
//! map"): each top-level module calls only modules on lower layers, so there
//! is no import cycle between them; and within a folder, no two files call
//! each other. Read from the source text: every `crate::name` and `super::name`
//! outside comments and outside `#[cfg(test)]` code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top to bottom; a module may call modules on lower lines only. The same
/// table is drawn in docs/ARCHITECTURE.md.
const LAYERS: &[&[&str]] = &[
    &["main", "lib"],
    &["cli"],
    &["startup"],
    &["config", "console"],
    &["http"],
    &["finance", "simulate", "rollout", "deliver"],
    &["recover"],
    &["draw", "settle"],
    &["outbox"],
    &["store"],
    &["campaign", "telemetry", "admission"],
    &["domain"],
];

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| {
            panic!("src/{module} is in no layer: add it to LAYERS and docs/ARCHITECTURE.md")
        })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code lines of a file: comments dropped, and everything from the first
/// `#[cfg(test)]` on (the project keeps unit tests at the end of a file).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, l)| !l.trim_start().starts_with("#[cfg(test)]"))
        .map(|(i, l)| (i + 1, l.split("//").next().unwrap_or("")))
}

/// The identifiers that follow each `prefix` in `line` (`crate::store::…` → `store`).
fn names_after<'a>(line: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut names = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find(prefix) {
        let boundary = at == 0 || !rest[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        rest = &rest[at + prefix.len()..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if boundary && end > 0 {
            names.push(&rest[..end]);
        }
    }
    names
}

struct Source {
    /// Path under src/, e.g. `settle/entry.rs`.
    rel: String,
    text: String,
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| Source {
            rel: p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/"),
            text: std::fs::read_to_string(&p).unwrap(),
        })
        .collect()
}

/// `settle/entry.rs` → `settle`; `config.rs` → `config`.
fn top_module(rel: &str) -> &str {
    rel.split('/').next().unwrap().trim_end_matches(".rs")
}

/// Calls against [`LAYERS`], as `src/FILE:LINE: from → to`, and the number of
/// module-to-module edges found.
fn layer_violations(sources: &[Source]) -> (Vec<String>, usize) {
    let modules: BTreeSet<&str> = sources.iter().map(|s| top_module(&s.rel)).collect();
    let mut against = Vec::new();
    let mut seen = BTreeSet::new();
    for src in sources {
        let from = top_module(&src.rel);
        for (line, code) in code_lines(&src.text) {
            for to in names_after(code, "crate::") {
                if to == from || !modules.contains(to) {
                    continue;
                }
                seen.insert((from, to));
                if layer_of(to) <= layer_of(from) {
                    against.push(format!("src/{}:{line}: {from} → {to}", src.rel));
                }
            }
        }
    }
    (against, seen.len())
}

/// The sibling files of a folder a file calls (`super::stream` or
/// `crate::settle::stream` from `settle/entry.rs` → `stream`).
fn sibling_calls(src: &Source, siblings: &BTreeSet<String>) -> BTreeMap<String, usize> {
    let parts: Vec<&str> = src.rel.trim_end_matches(".rs").split('/').collect();
    let mut calls = BTreeMap::new();
    if parts.len() != 2 || parts[1] == "mod" {
        return calls;
    }
    let (folder, me) = (parts[0], parts[1]);
    for (line, code) in code_lines(&src.text) {
        let via_crate = names_after(code, &format!("crate::{folder}::"));
        for to in names_after(code, "super::").into_iter().chain(via_crate) {
            if to != me && siblings.contains(to) {
                calls.entry(to.to_owned()).or_insert(line);
            }
        }
    }
    calls
}

/// Pairs of files of one folder that call each other, with where.
fn two_way_calls(sources: &[Source]) -> Vec<String> {
    let mut folders: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for src in sources {
        if let Some((folder, file)) = src.rel.split_once('/') {
            let name = file.trim_end_matches(".rs").split('/').next().unwrap();
            folders.entry(folder).or_default().insert(name.to_owned());
        }
    }
    let mut edges: BTreeMap<(String, String), String> = BTreeMap::new();
    for src in sources {
        let Some((folder, _)) = src.rel.split_once('/') else {
            continue;
        };
        let me = src
            .rel
            .trim_end_matches(".rs")
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        for (to, line) in sibling_calls(src, &folders[folder]) {
            edges.insert(
                (format!("{folder}/{me}"), format!("{folder}/{to}")),
                format!("src/{}:{line}", src.rel),
            );
        }
    }
    edges
        .iter()
        .filter(|((a, b), _)| a < b && edges.contains_key(&(b.clone(), a.clone())))
        .map(|((a, b), at)| format!("{a} ↔ {b} ({at} and {})", edges[&(b.clone(), a.clone())]))
        .collect()
}

#[test]
fn top_level_modules_call_only_lower_layers() {
    let (against, edges) = layer_violations(&sources());
    assert!(
        edges > 30,
        "the scan found only {edges} edges: it no longer reads the code"
    );
    assert!(
        against.is_empty(),
        "calls against the layers of docs/ARCHITECTURE.md:\n{}",
        against.join("\n")
    );
}

#[test]
fn no_two_files_of_a_folder_call_each_other() {
    let both_ways = two_way_calls(&sources());
    assert!(
        both_ways.is_empty(),
        "files that call each other:\n{}",
        both_ways.join("\n")
    );
}

fn source(rel: &str, text: &str) -> Source {
    Source {
        rel: rel.into(),
        text: text.into(),
    }
}

/// The checks see what they must: an upward call, a cycle between two files,
/// and not what is only in a comment or in a unit test.
#[test]
fn the_checks_catch_an_upward_call_and_a_two_way_pair() {
    let tree = [
        source(
            "store/pg.rs",
            "use crate::domain::CampaignId;\nfn f() { crate::draw::spin(); }\n",
        ),
        source(
            "draw/mod.rs",
            "use crate::store::pg;\n// crate::http is only named here\n",
        ),
        source(
            "draw/rng.rs",
            "use super::model::X;\n#[cfg(test)]\nmod tests { use crate::http::y; }\n",
        ),
        source("draw/model.rs", "use super::rng::next_r;\n"),
        source("domain/mod.rs", ""),
        source("http/mod.rs", ""),
    ];
    let (against, _) = layer_violations(&tree);
    assert_eq!(against, ["src/store/pg.rs:2: store → draw"]);
    assert_eq!(
        two_way_calls(&tree),
        ["draw/model ↔ draw/rng (src/draw/model.rs:1 and src/draw/rng.rs:1)"]
    );
}
