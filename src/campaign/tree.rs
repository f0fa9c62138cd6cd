//! A YAML document as a tree of values that each know their line and column.
//!
//! The campaign loader walks this tree by hand instead of deserialising straight
//! into structs, so that it can report *every* problem of a file at once (unknown
//! keys, wrong types and rule violations alike), each with its own position.
//! Positions come from `serde_saphyr::Spanned`, which works through nested
//! `deserialize_any` calls as long as no `flatten`/untagged enum is in between.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// 1-based line and column of a value in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

/// One YAML value with its position.
#[derive(Debug, Clone)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in file order; duplicate keys are rejected by the parser.
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// What the value is, for messages such as "expected a string, found a list".
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number with a fraction",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl From<Spanned<Value>> for Node {
    fn from(s: Spanned<Value>) -> Self {
        Node {
            pos: Pos {
                line: s.referenced.line(),
                column: s.referenced.column(),
            },
            value: s.value,
        }
    }
}

impl<'de> de::Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Spanned::<Value>::deserialize(d).map(Node::from)
    }
}

impl<'de> de::Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        i128::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom("integer too large"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

/// A problem found in a file, at a position.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Diagnostic {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl Diagnostic {
    /// A problem at `pos`; a message over [`MAX_MESSAGE_CHARS`] (one quoting a
    /// huge value) is cut there.
    pub fn at(pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            line: pos.line,
            column: pos.column,
            message: crate::domain::shorten(&message.into(), MAX_MESSAGE_CHARS),
        }
    }
}

/// Longest message of one problem, in characters.
pub const MAX_MESSAGE_CHARS: usize = 240;

/// Most problems an answer lists (the API's `errors`, the CLI's lines), the
/// first ones by position: enough to fix a file, and a bounded answer
/// whatever the file.
pub const MAX_LISTED: usize = 50;

/// Largest campaign file accepted, in bytes. A campaign is a few kilobytes; the
/// bound keeps a hostile upload from costing memory or parse time.
pub const MAX_FILE_BYTES: usize = 256 * 1024;

/// Most values (scalars, lists and mappings) a file may hold once its aliases
/// are expanded; 64 prizes take about 1,000, a release schedule of its most
/// (1,000) instants about 5,000. With [`MAX_FILE_BYTES`] of text after
/// expansion, this bounds the time and memory of a parse (an alias bomb of a
/// few hundred bytes would otherwise expand to millions of values).
pub const MAX_NODES: usize = 16_384;

/// Deepest nesting of lists and mappings; a campaign nests 4 deep.
pub const MAX_DEPTH: usize = 16;

/// The parser's options: YAML 1.2 booleans, and budgets sized to a campaign.
fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = MAX_NODES;
    budget.max_events = 4 * MAX_NODES;
    budget.max_depth = MAX_DEPTH;
    budget.max_total_scalar_bytes = MAX_FILE_BYTES;
    budget.max_recorded_anchor_events = 4 * MAX_NODES;
    budget.max_recorded_anchor_bytes = MAX_FILE_BYTES;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = 4 * MAX_NODES;
    options.alias_limits.max_replay_stack_depth = MAX_DEPTH;
    // A prize named `No` or `On` stays a string.
    options.strict_booleans = true;
    options
}

/// The parser's refusal of a document over the budgets of [`options`], in words.
fn limit_exceeded(e: &serde_saphyr::Error) -> Option<String> {
    use serde_saphyr::Error;
    use serde_saphyr::budget::BudgetBreach as B;
    let mut e = e;
    while let Error::WithSnippet { error, .. } | Error::AliasError { error, .. } = e {
        e = error;
    }
    let what = match e {
        Error::Budget {
            breach: B::Nodes { .. } | B::Events { .. } | B::RecordedAnchorEvents { .. },
            ..
        }
        | Error::AliasReplayLimitExceeded { .. } => {
            format!("more than {MAX_NODES} values once its aliases are expanded")
        }
        Error::Budget {
            breach: B::ScalarBytes { .. } | B::RecordedAnchorBytes { .. },
            ..
        } => format!("more than {MAX_FILE_BYTES} bytes of text once its aliases are expanded"),
        Error::Budget {
            breach: B::Depth { .. },
            ..
        }
        | Error::AliasReplayStackDepthExceeded { .. } => {
            format!("lists and mappings nested more than {MAX_DEPTH} deep")
        }
        Error::Budget { breach, .. } => format!("a budget of the YAML reader ({breach:?})"),
        _ => return None,
    };
    Some(format!("the document exceeds a limit: {what}"))
}

/// Parses YAML text into a [`Node`] tree, or the one syntax error that stopped it.
pub fn parse(text: &str) -> Result<Node, Diagnostic> {
    if text.len() > MAX_FILE_BYTES {
        return Err(Diagnostic::at(
            Pos { line: 1, column: 1 },
            format!("file is larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    serde_saphyr::from_str_with_options::<Node>(text, options()).map_err(|e| {
        let pos = e
            .location()
            .filter(|l| l.line() > 0)
            .map(|l| Pos {
                line: l.line(),
                column: l.column(),
            })
            .unwrap_or(Pos { line: 1, column: 1 });
        let message = limit_exceeded(&e).unwrap_or_else(|| first_line(&e.to_string()));
        Diagnostic::at(pos, message)
    })
}

/// serde-saphyr renders "error: line L column C: message" and a source snippet;
/// `FILE:LINE:COLUMN: message` needs only the message.
fn first_line(s: &str) -> String {
    let line = s
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid YAML");
    let line = line.strip_prefix("error: ").unwrap_or(line);
    let line = match line
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(": "))
    {
        Some((position, message)) if position.contains("column") => message,
        _ => line,
    };
    // Drop advice meant for programmers and a trailing " at line X column Y".
    let line = line
        .split(", set DuplicateKeyPolicy")
        .next()
        .unwrap_or(line);
    match line.find(" at line ") {
        Some(i) => line[..i].to_owned(),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_nested_values() {
        let doc = parse("a: 1\nb:\n  - x: \"s\"\n    y: 2.5\n").unwrap();
        let Value::Map(entries) = &doc.value else {
            panic!("map")
        };
        assert_eq!(entries[0].1.pos, Pos { line: 1, column: 4 });
        let Value::Seq(items) = &entries[1].1.value else {
            panic!("seq")
        };
        let Value::Map(inner) = &items[0].value else {
            panic!("inner map")
        };
        assert_eq!(inner[0].0.pos, Pos { line: 3, column: 5 });
        assert_eq!(inner[1].1.pos, Pos { line: 4, column: 8 });
        assert!(matches!(inner[1].1.value, Value::Float(_)));
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.line >= 1, "{err:?}");
        assert!(!err.message.contains('\n'));
    }

    #[test]
    fn only_yaml_1_2_booleans() {
        let doc = parse("a: No\nb: on\nc: true\n").unwrap();
        let Value::Map(entries) = &doc.value else {
            panic!("map")
        };
        assert!(matches!(&entries[0].1.value, Value::Str(s) if s == "No"));
        assert!(matches!(&entries[1].1.value, Value::Str(s) if s == "on"));
        assert!(matches!(entries[2].1.value, Value::Bool(true)));
    }

    /// 9 anchors, each a list of 9 aliases to the one before: 9^9 values.
    fn alias_bomb() -> String {
        let mut y = String::from("a: &a [x,x,x,x,x,x,x,x,x]\n");
        for (prev, name) in "abcdefgh".chars().zip("bcdefghi".chars()) {
            let aliases = vec![format!("*{prev}"); 9].join(",");
            y.push_str(&format!("{name}: &{name} [{aliases}]\n"));
        }
        y
    }

    #[test]
    fn an_alias_bomb_exceeds_a_limit() {
        let err = parse(&alias_bomb()).unwrap_err();
        assert!(
            err.message.starts_with("the document exceeds a limit"),
            "{err:?}"
        );
        assert!(err.line >= 2, "{err:?}");
    }

    #[test]
    fn limits_on_the_expanded_document() {
        // One big string used twice is twice its size, over the file's bound.
        let big = format!("a: &a {}\nb: *a\n", "x".repeat(MAX_FILE_BYTES * 2 / 3));
        // Deeper than a campaign ever nests.
        let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        // More values than 64 prizes have.
        let many = format!("[{}]", vec!["1"; MAX_NODES].join(","));
        for text in [big, deep, many] {
            let err = parse(&text).unwrap_err();
            assert!(
                err.message.starts_with("the document exceeds a limit"),
                "{err:?}"
            );
        }
        // A few aliases, as a marketer may write them, are fine.
        parse("v: &inr {amount: \"1\", currency: INR}\np: [*inr, *inr, *inr]\n").unwrap();
    }

    #[test]
    fn long_parser_messages_are_cut() {
        let err = parse(&format!("a: {}\n", "1".repeat(250_000))).unwrap_err();
        assert_eq!((err.line, err.column), (1, 4), "{err:?}");
        assert!(err.message.starts_with("non-finite float `111"), "{err:?}");
        // Cut, then `…`.
        assert_eq!(err.message.chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(err.line, 2, "{err:?}");
    }
}
