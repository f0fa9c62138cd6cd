//! Entries of a campaign's results stream, as lua/spin.lua, lua/grant.lua,
//! lua/revoke.lua and lua/apply.lua write them, parsed for the ledger.

use super::stream::Fields;
use crate::domain::StreamId;
use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

/// One settled spin: a row of `rewards`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reward {
    pub spin_id: Uuid,
    pub user_id: String,
    pub prize_id: String,
    pub amount: Decimal,
    pub currency: String,
    pub r: i64,
    pub stream: StreamId,
    pub config_version: i64,
    pub idempotency_key: String,
    /// Canonical JSON, or empty.
    pub context: String,
    pub spun_at: DateTime<Utc>,
    /// The prize code the win handed out (a code prize only).
    pub code: Option<String>,
    /// The draw took its prize's last unit (field `last`): the outbox
    /// announces `prize.exhausted`.
    pub exhausted: bool,
}

/// An apply between draws: a row of `ledger_applies`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyEvent {
    pub stream: StreamId,
    pub version: i64,
    pub config_hash: String,
    pub applied_at: DateTime<Utc>,
}

/// Spins granted: a row of `grants`.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantEvent {
    pub grant_id: String,
    pub user_id: String,
    pub spins: i32,
    /// Canonical JSON, or empty.
    pub reason: String,
    pub day: i32,
    pub stream: StreamId,
    pub granted_at: DateTime<Utc>,
}

/// A grant revoked: a row of `grant_revocations`, and the grant's row updated.
#[derive(Debug, Clone, PartialEq)]
pub struct RevokeEvent {
    pub grant_id: String,
    pub revoked: i32,
    pub already_used: i32,
    pub lapsed: i32,
    pub stream: StreamId,
    pub revoked_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Spin(Reward),
    Apply(ApplyEvent),
    Grant(GrantEvent),
    Revoke(RevokeEvent),
    /// Cannot be settled; goes to the dead-letter stream with the reason.
    Poison(String),
}

/// Parses one stream entry.
pub fn parse(id: &str, fields: &Fields) -> Entry {
    match parse_inner(id, fields) {
        Ok(e) => e,
        Err(reason) => Entry::Poison(reason),
    }
}

fn parse_inner(id: &str, f: &Fields) -> Result<Entry, String> {
    let stream = StreamId::parse(id).ok_or_else(|| format!("bad stream id `{id}`"))?;
    // A dozen fields: a linear scan beats building a map.
    // Borrowed: only what the entry keeps is copied.
    let field = |k: &str| -> Result<&str, String> {
        let (_, v) = f
            .iter()
            .find(|(name, _)| name.as_slice() == k.as_bytes())
            .ok_or_else(|| format!("missing field `{k}`"))?;
        std::str::from_utf8(v).map_err(|_| format!("`{k}` is not UTF-8"))
    };
    let text = |k: &str| field(k).map(str::to_owned);
    let int = |k: &str| -> Result<i64, String> {
        field(k)?
            .parse()
            .map_err(|_| format!("`{k}` is not an integer"))
    };
    let millis = |ms: i64| {
        Utc.timestamp_millis_opt(ms)
            .single()
            .ok_or("time out of range".to_owned())
    };
    match field("type")? {
        "spin" => {
            let r = int("r")?;
            if !(0..1 << 53).contains(&r) {
                return Err("`r` out of range".into());
            }
            let context = text("ctx")?;
            // Syntax only: a serde_json::Value would refuse numbers beyond f64
            // that the API accepts and jsonb stores exactly.
            if !context.is_empty()
                && serde_json::from_str::<&serde_json::value::RawValue>(&context).is_err()
            {
                return Err("`ctx` is not JSON".into());
            }
            let currency = text("currency")?;
            if currency.len() != 3 {
                return Err("`currency` is not a 3-letter code".into());
            }
            Ok(Entry::Spin(Reward {
                spin_id: Uuid::parse_str(field("spin")?)
                    .map_err(|_| "`spin` is not a UUID".to_owned())?,
                user_id: text("user")?,
                prize_id: text("prize")?,
                amount: field("amount")?
                    .parse()
                    .map_err(|_| "`amount` is not a decimal".to_owned())?,
                currency,
                r,
                stream,
                config_version: int("ver")?,
                idempotency_key: text("key")?,
                context,
                spun_at: millis(int("t")?)?,
                // Optional: only a win of a code prize carries one.
                code: text("code").ok(),
                exhausted: field("last").is_ok_and(|l| l == "1"),
            }))
        }
        "grant" => {
            let reason = text("reason")?;
            if !reason.is_empty()
                && serde_json::from_str::<&serde_json::value::RawValue>(&reason).is_err()
            {
                return Err("`reason` is not JSON".into());
            }
            Ok(Entry::Grant(GrantEvent {
                grant_id: text("grant")?,
                user_id: text("user")?,
                spins: small(int("spins")?, "spins")?,
                reason,
                day: small(int("day")?, "day")?,
                stream,
                granted_at: millis(int("t")?)?,
            }))
        }
        "revoke" => Ok(Entry::Revoke(RevokeEvent {
            grant_id: text("grant")?,
            revoked: small(int("revoked")?, "revoked")?,
            already_used: small(int("used")?, "used")?,
            lapsed: small(int("lapsed")?, "lapsed")?,
            stream,
            revoked_at: millis(int("t")?)?,
        })),
        "apply" => Ok(Entry::Apply(ApplyEvent {
            stream,
            version: int("ver")?,
            config_hash: text("hash")?,
            applied_at: Utc
                .timestamp_opt(int("t")?, 0)
                .single()
                .ok_or("time out of range")?,
        })),
        other => Err(format!("unknown entry type `{other}`")),
    }
}

/// A count or day the ledger keeps as `integer`.
fn small(n: i64, k: &str) -> Result<i32, String> {
    i32::try_from(n).map_err(|_| format!("`{k}` out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn spins_parse() {
        let f = fields(&[
            ("type", "spin"),
            ("spin", "01a20c26-485c-724e-9c56-a55302a57511"),
            ("user", "u1"),
            ("prize", "phone"),
            ("amount", "79900.00"),
            ("currency", "INR"),
            ("r", "12345"),
            ("t", "1795000000000"),
            ("ver", "2"),
            ("key", "k1"),
            ("ctx", "{\"order_id\":\"o1\"}"),
        ]);
        let Entry::Spin(r) = parse("1795000000000-3", &f) else {
            panic!("a spin")
        };
        assert_eq!(
            r.stream,
            StreamId {
                ms: 1795000000000,
                seq: 3
            }
        );
        assert_eq!(r.amount.to_string(), "79900.00");
        assert_eq!(r.config_version, 2);
        assert!(!r.exhausted && r.code.is_none());
        let mut last = f.clone();
        last.push((b"last".to_vec(), b"1".to_vec()));
        let Entry::Spin(r) = parse("1795000000000-4", &last) else {
            panic!("a spin")
        };
        assert!(r.exhausted, "`last 1`: the draw took the last unit");
    }

    #[test]
    fn grants_and_revocations_parse() {
        let f = fields(&[
            ("type", "grant"),
            ("grant", "order-1"),
            ("user", "u1"),
            ("spins", "2"),
            ("reason", "{\"order_id\":\"o1\"}"),
            ("t", "1795000000000"),
            ("day", "3"),
        ]);
        let Entry::Grant(g) = parse("1795000000000-1", &f) else {
            panic!("a grant")
        };
        assert_eq!((g.spins, g.day, g.grant_id.as_str()), (2, 3, "order-1"));
        let f = fields(&[
            ("type", "revoke"),
            ("grant", "order-1"),
            ("user", "u1"),
            ("spins", "2"),
            ("revoked", "1"),
            ("used", "1"),
            ("lapsed", "0"),
            ("t", "1795000000001"),
        ]);
        let Entry::Revoke(r) = parse("1795000000001-0", &f) else {
            panic!("a revocation")
        };
        assert_eq!((r.revoked, r.already_used, r.lapsed), (1, 1, 0));
        let bad = fields(&[
            ("type", "grant"),
            ("grant", "g"),
            ("user", "u"),
            ("reason", ""),
            ("spins", "x"),
        ]);
        assert!(matches!(parse("1-0", &bad), Entry::Poison(m) if m.contains("spins")));
    }

    #[test]
    fn poison_says_why() {
        let f = fields(&[("type", "spin"), ("spin", "not-a-uuid")]);
        assert!(matches!(parse("1-0", &f), Entry::Poison(_)));
        assert!(
            matches!(parse("1-0", &fields(&[("type", "weird")])), Entry::Poison(m) if m.contains("weird"))
        );
        assert!(matches!(parse("x", &fields(&[])), Entry::Poison(_)));
    }
}
