//! Typed reads from a YAML mapping that record every problem instead of
//! stopping at the first one.

use super::tree::{Diagnostic, Node, Pos, Value};
use crate::domain::is_control_or_separator;

/// Collected problems of one file.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<Diagnostic>);

impl Problems {
    pub fn at(&mut self, pos: Pos, message: impl Into<String>) {
        self.0.push(Diagnostic::at(pos, message));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The keys of one mapping, checked against the keys it may have.
pub struct Fields<'a> {
    /// Where the mapping starts: missing keys are reported here.
    pub pos: Pos,
    what: &'static str,
    entries: Vec<(&'a str, &'a Node)>,
}

impl<'a> Fields<'a> {
    /// Reads `node` as a mapping whose keys are all in `allowed`; reports
    /// non-string and unknown keys. `None` when `node` is not a mapping.
    pub fn of(
        node: &'a Node,
        what: &'static str,
        allowed: &[&str],
        p: &mut Problems,
    ) -> Option<Self> {
        let Value::Map(map) = &node.value else {
            p.at(
                node.pos,
                format!("{what} must be a mapping, found {}", node.value.kind()),
            );
            return None;
        };
        let mut entries = Vec::with_capacity(map.len());
        for (k, v) in map {
            match &k.value {
                Value::Str(name) if allowed.contains(&name.as_str()) => {
                    entries.push((name.as_str(), v))
                }
                Value::Str(name) => p.at(
                    k.pos,
                    format!(
                        "unknown key `{}` in {what} (allowed: {})",
                        crate::domain::truncate_for_message(name),
                        allowed.join(", ")
                    ),
                ),
                other => p.at(
                    k.pos,
                    format!("keys of {what} must be strings, found {}", other.kind()),
                ),
            }
        }
        Some(Fields {
            pos: node.pos,
            what,
            entries,
        })
    }

    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    /// A key that must be present.
    pub fn required(&self, key: &str, p: &mut Problems) -> Option<&'a Node> {
        let node = self.get(key);
        if node.is_none() {
            p.at(
                self.pos,
                format!("{} is missing required key `{key}`", self.what),
            );
        }
        node
    }
}

/// A string value (a quoted or plain YAML scalar that is not a number or boolean).
pub fn string<'a>(node: &'a Node, key: &str, p: &mut Problems) -> Option<&'a str> {
    match &node.value {
        Value::Str(s) => Some(s),
        other => {
            p.at(
                node.pos,
                format!("`{key}` must be a string, found {}", other.kind()),
            );
            None
        }
    }
}

/// A non-empty, single-line string of at most `max` characters: free text a
/// log line, a CSV row and a dashboard show as one line. No control character
/// (NUL among them: PostgreSQL text cannot hold it) and no U+2028/U+2029, line
/// breaks for JavaScript and many editors though YAML 1.2 reads them as text.
pub fn text(node: &Node, key: &str, max: usize, p: &mut Problems) -> Option<String> {
    let s = string(node, key, p)?;
    let n = s.chars().count();
    let rule = format!("`{key}` must be 1 to {max} characters on one line");
    if let Some(c) = s.chars().find(|c| is_control_or_separator(*c)) {
        let code = u32::from(c);
        p.at(
            node.pos,
            format!("{rule}, without control characters or line separators (found U+{code:04X})"),
        );
        return None;
    }
    if n == 0 || n > max {
        p.at(node.pos, rule);
        return None;
    }
    Some(s.to_owned())
}

/// An integer in `min..=max`.
pub fn integer(node: &Node, key: &str, min: u64, max: u64, p: &mut Problems) -> Option<u64> {
    match &node.value {
        Value::Int(i) if *i >= i128::from(min) && *i <= i128::from(max) => Some(*i as u64),
        Value::Int(_) => {
            p.at(node.pos, format!("`{key}` must be between {min} and {max}"));
            None
        }
        other => {
            p.at(
                node.pos,
                format!("`{key}` must be an integer, found {}", other.kind()),
            );
            None
        }
    }
}

/// A boolean.
pub fn boolean(node: &Node, key: &str, p: &mut Problems) -> Option<bool> {
    match &node.value {
        Value::Bool(b) => Some(*b),
        other => {
            p.at(
                node.pos,
                format!("`{key}` must be true or false, found {}", other.kind()),
            );
            None
        }
    }
}
