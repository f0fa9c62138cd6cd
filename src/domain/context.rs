//! The client context of a spin: the JSON object a shopper's app sends with it,
//! in the one canonical text that is fingerprinted (idempotent replay), stored in
//! the results stream and settled into the ledger's `jsonb` column.
//!
//! Canonical: keys sorted (bytewise), no spaces, strings escaped as serde_json
//! escapes them, and numbers kept exact: each is written as PostgreSQL's
//! `numeric` prints it (`1e2` → `100`, `1.50` → `1.50`, `-0.0` → `0.0`), never
//! rounded through a float. So `0.1` and `0.10000000000000001` are two bodies,
//! and the ledger's jsonb text, canonicalised again (crash recovery restores
//! fingerprints from it), gives back the same text.
//!
//! Refused here, because the ledger would refuse it later and stop settlement:
//! a NUL character in any string or key (`jsonb` cannot hold one), a number
//! beyond `numeric`'s range, and a canonical text longer than the body limit
//! (an exponent would otherwise turn 6 bytes into a thousand).

use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// Deepest nesting of objects and arrays accepted.
pub const MAX_DEPTH: usize = 32;
/// PostgreSQL `numeric`: at most this many digits after the point…
const NUMERIC_MAX_SCALE: u64 = 16_383;
/// …and before it.
const NUMERIC_MAX_INT_DIGITS: u64 = 131_072;

/// Why a body is not an acceptable context; the message is for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ContextError(pub String);

fn refuse(m: impl Into<String>) -> ContextError {
    ContextError(m.into())
}

/// The canonical text of `body`, which must be a JSON object; at most `limit`
/// bytes of canonical text.
pub fn canonical(body: &[u8], limit: usize) -> Result<String, ContextError> {
    let raw: &RawValue = serde_json::from_slice(body)
        .map_err(|e| refuse(format!("the body is not valid JSON: {e}")))?;
    if !raw.get().starts_with('{') {
        return Err(refuse("the body must be a JSON object"));
    }
    let mut out = Writer {
        text: String::with_capacity(body.len()),
        limit,
    };
    value(raw, 1, &mut out)?;
    Ok(out.text)
}

struct Writer {
    text: String,
    limit: usize,
}

impl Writer {
    fn push(&mut self, s: &str) -> Result<(), ContextError> {
        if self.text.len() + s.len() > self.limit {
            return Err(refuse(format!(
                "the body's canonical form (keys sorted, numbers written out) is longer than {} bytes",
                self.limit
            )));
        }
        self.text.push_str(s);
        Ok(())
    }
}

fn value(raw: &RawValue, depth: usize, out: &mut Writer) -> Result<(), ContextError> {
    let text = raw.get();
    let parse_err = |e: serde_json::Error| refuse(format!("the body is not valid JSON: {e}"));
    match text.as_bytes().first() {
        Some(b'{') | Some(b'[') if depth > MAX_DEPTH => Err(refuse(format!(
            "the body nests objects and arrays deeper than {MAX_DEPTH} levels"
        ))),
        Some(b'{') => {
            // A key given twice keeps its last value, as jsonb does.
            let map: BTreeMap<String, &RawValue> = serde_json::from_str(text).map_err(parse_err)?;
            out.push("{")?;
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(",")?;
                }
                string(k, out)?;
                out.push(":")?;
                value(v, depth + 1, out)?;
            }
            out.push("}")
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text).map_err(parse_err)?;
            out.push("[")?;
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(",")?;
                }
                value(v, depth + 1, out)?;
            }
            out.push("]")
        }
        Some(b'"') => {
            let s: String = serde_json::from_str(text).map_err(parse_err)?;
            string(&s, out)
        }
        Some(b'-' | b'0'..=b'9') => out.push(&number(text)?),
        // true, false, null: serde_json checked the literal.
        _ => out.push(text),
    }
}

fn string(s: &str, out: &mut Writer) -> Result<(), ContextError> {
    if s.contains('\0') {
        return Err(refuse(
            "a string in the body contains a NUL character (\\u0000), which the ledger cannot store",
        ));
    }
    // Serialising a &str cannot fail.
    out.push(&serde_json::to_string(s).unwrap_or_default())
}

/// A JSON number (grammar already checked by serde_json) as PostgreSQL's
/// `numeric` prints it: digits exact, display scale max(0, fraction digits −
/// exponent), no sign on zero.
fn number(text: &str) -> Result<String, ContextError> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, "0"),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let out_of_range = || {
        refuse(format!(
            "the number {} is beyond what the ledger stores (at most {NUMERIC_MAX_INT_DIGITS} digits before the point and {NUMERIC_MAX_SCALE} after)",
            crate::domain::truncate_for_message(text)
        ))
    };
    // An exponent this large is out of range whatever the digits (but for zero).
    let e: i64 = exponent.parse().unwrap_or(if exponent.starts_with('-') {
        i64::MIN / 4
    } else {
        i64::MAX / 4
    });
    let e = e.clamp(i64::MIN / 4, i64::MAX / 4);
    let digits: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
    let scale = (frac.len() as i64 - e).max(0);
    if scale as u64 > NUMERIC_MAX_SCALE {
        return Err(out_of_range());
    }
    let scale = scale as usize;
    // Position of the decimal point within `digits`.
    let point = int.len() as i64 + e;
    let Some(first) = digits.iter().position(|d| *d != b'0') else {
        // Zero: "0", with its scale.
        return Ok(zero(scale));
    };
    let int_digits = (point - first as i64).max(0) as u64;
    if int_digits > NUMERIC_MAX_INT_DIGITS {
        return Err(out_of_range());
    }
    let mut s = String::with_capacity(int_digits as usize + scale + 3);
    if negative {
        s.push('-');
    }
    if int_digits == 0 {
        s.push('0');
    } else {
        // The integer part: digits from `first` up to the point, then zeros.
        for i in first as i64..point {
            s.push(digits.get(i as usize).map_or('0', |d| *d as char));
        }
    }
    if scale > 0 {
        s.push('.');
        // `scale` digits after the point, zeros where `digits` has none.
        for i in point..point + scale as i64 {
            let d = if i < 0 {
                b'0'
            } else {
                digits.get(i as usize).copied().unwrap_or(b'0')
            };
            s.push(d as char);
        }
    }
    Ok(s)
}

fn zero(scale: usize) -> String {
    if scale == 0 {
        "0".to_owned()
    } else {
        format!("0.{}", "0".repeat(scale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> Result<String, ContextError> {
        canonical(s.as_bytes(), 1 << 20)
    }

    #[test]
    fn keys_sorted_and_spaces_gone() {
        assert_eq!(
            canon(r#"{ "b": 1, "a": {"y": [true, null], "x": "é\n"} }"#).unwrap(),
            r#"{"a":{"x":"é\n","y":[true,null]},"b":1}"#
        );
        assert_eq!(canon(r#"{"a":1,"a":2}"#).unwrap(), r#"{"a":2}"#);
    }

    #[test]
    fn numbers_are_exact_as_numeric_prints_them() {
        // Each pair: what a client may send, what PostgreSQL's jsonb prints.
        for (sent, printed) in [
            ("1e2", "100"),
            ("1.5e1", "15"),
            ("1.50e1", "15.0"),
            ("1e-2", "0.01"),
            ("0e5", "0"),
            ("0.00e1", "0.0"),
            ("-0", "0"),
            ("-0.0", "0.0"),
            ("1E+2", "100"),
            ("100e-2", "1.00"),
            ("12345678901234567890123", "12345678901234567890123"),
            ("0.10000000000000001", "0.10000000000000001"),
            ("-1.5e-3", "-0.0015"),
            ("0.0e-3", "0.0000"),
            ("10", "10"),
            ("-7", "-7"),
            ("0e999999999999999999999", "0"),
        ] {
            let got = canon(&format!(r#"{{"n":{sent}}}"#)).unwrap();
            assert_eq!(got, format!(r#"{{"n":{printed}}}"#), "{sent}");
        }
        assert_ne!(canon(r#"{"n":0.1}"#), canon(r#"{"n":0.10000000000000001}"#));
    }

    #[test]
    fn what_the_ledger_cannot_store_is_refused() {
        for bad in [
            r#"{"x":"\u0000"}"#,
            r#"{"a\u0000":1}"#,
            r#"{"x":["ok",{"y":"a\u0000b"}]}"#,
            r#"{"n":1e131072}"#,
            r#"{"n":1e-16384}"#,
            r#"{"n":1e99999999999999999999}"#,
            r#"{"x":"\ud800"}"#,
            "[1]",
            "{",
            r#"{"a":1} x"#,
        ] {
            assert!(canon(bad).is_err(), "{bad}");
        }
        assert!(canon(r#"{"n":1e-16383}"#).is_ok());
        let deep = format!(
            "{}{}",
            r#"{"a":"#.repeat(MAX_DEPTH),
            "1".to_owned() + &"}".repeat(MAX_DEPTH)
        );
        assert!(canon(&deep).is_ok());
        let deeper = format!("{{\"a\":{deep}}}");
        assert!(canon(&deeper).unwrap_err().0.contains("deeper"));
    }

    #[test]
    fn the_canonical_text_is_bounded() {
        assert!(canonical(br#"{"n":1e100}"#, 64).is_err());
        assert_eq!(
            canonical(br#"{"n":1e10}"#, 64).unwrap(),
            r#"{"n":10000000000}"#
        );
    }

    #[test]
    fn canonical_is_a_fixed_point() {
        for s in [r#"{"b":[1.50,-0.0,1e3],"a":"\t\"q\""}"#, r#"{}"#] {
            let once = canon(s).unwrap();
            assert_eq!(canon(&once).unwrap(), once);
        }
    }
}
