//! Campaign, prize and user identifiers.

use std::fmt;

/// Lowercase letters, digits and `-`, at least one character.
fn is_slug(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A campaign id: `[a-z0-9-]{1,64}`. It is part of every Redis key of the campaign
/// (inside the `{…}` hash tag), so it must never contain `{`, `}` or `:`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct CampaignId(String);

impl CampaignId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<Self, String> {
        if is_slug(s, Self::MAX_LEN) {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "campaign id `{}` must be 1 to {} characters of a-z, 0-9 and -",
                truncate_for_message(s),
                Self::MAX_LEN
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CampaignId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A prize id: `[a-z0-9-]{1,32}`, unique within its campaign.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct PrizeId(String);

impl PrizeId {
    pub const MAX_LEN: usize = 32;

    pub fn parse(s: &str) -> Result<Self, String> {
        if is_slug(s, Self::MAX_LEN) {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "prize id `{}` must be 1 to {} characters of a-z, 0-9 and -",
                truncate_for_message(s),
                Self::MAX_LEN
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PrizeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The user a spin belongs to: always the `sub` claim of a verified token.
/// Printable ASCII without spaces, 1 to 128 bytes, so it is safe in a stream
/// entry, a log field and a CSV export.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(String);

impl UserId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(s: &str) -> Result<Self, String> {
        if !s.is_empty() && s.len() <= Self::MAX_LEN && s.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "the token subject must be 1 to {} printable ASCII characters",
                Self::MAX_LEN
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Keeps echoed input short and on one line in error messages: at most 40
/// characters.
pub fn truncate_for_message(s: &str) -> String {
    shorten(s, 40)
}

/// `s` in at most `max` characters (then `…`), with control characters and
/// line separators written as escapes such as `\u{2028}`, so that a message
/// quoting it stays one readable line of bounded size.
pub fn shorten(s: &str, max: usize) -> String {
    let mut out = String::new();
    let mut len = 0;
    for c in s.chars() {
        let piece: String = if is_control_or_separator(c) {
            c.escape_unicode().collect()
        } else {
            c.into()
        };
        len += piece.chars().count();
        if len > max {
            out.push('…');
            break;
        }
        out.push_str(&piece);
    }
    out
}

/// A control character (C0, C1, DEL; NUL among them) or a Unicode line or
/// paragraph separator: none belongs in one line of text.
pub fn is_control_or_separator(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn campaign_ids() {
        assert!(CampaignId::parse("diwali-2026").is_ok());
        assert!(CampaignId::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "Diwali", "a b", "a{b}", "a:b", &"a".repeat(65)] {
            assert!(CampaignId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn echoed_input_is_short_and_on_one_line() {
        assert_eq!(truncate_for_message("gold"), "gold");
        let long = "x".repeat(10_000);
        assert_eq!(truncate_for_message(&long), format!("{}…", "x".repeat(40)));
        assert_eq!(
            truncate_for_message("a\nb\u{2028}c\0"),
            "a\\u{a}b\\u{2028}c\\u{0}"
        );
    }

    #[test]
    fn user_ids() {
        assert!(UserId::parse("user-1@example").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("has space").is_err());
        assert!(UserId::parse(&"u".repeat(129)).is_err());
    }
}
