//! The `Idempotency-Key` a client sends with every spin.

/// `[A-Za-z0-9_-]{1,64}`: a UUID, a ULID or any client-chosen token fits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "Idempotency-Key must be 1 to {} characters of A-Z, a-z, 0-9, _ and -",
                Self::MAX_LEN
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(IdempotencyKey::parse("0b8f5c0e-5d1a-4a43-9f0e-4f5d2b7f8a11").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(64)).is_ok());
        for bad in ["", "a b", "ключ", "a.b", &"k".repeat(65)] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad}");
        }
    }
}
