//! Entries of a campaign's results stream, as lua/spin.lua and lua/apply.lua
//! write them, parsed for the ledger.

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
}

/// An apply between draws: a row of `ledger_applies`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyEvent {
    pub stream: StreamId,
    pub version: i64,
    pub config_hash: String,
    pub applied_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Spin(Reward),
    Apply(ApplyEvent),
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
    let text = |k: &str| -> Result<String, String> {
        let (_, v) = f
            .iter()
            .find(|(name, _)| name.as_slice() == k.as_bytes())
            .ok_or_else(|| format!("missing field `{k}`"))?;
        String::from_utf8(v.clone()).map_err(|_| format!("`{k}` is not UTF-8"))
    };
    let int = |k: &str| -> Result<i64, String> {
        text(k)?
            .parse()
            .map_err(|_| format!("`{k}` is not an integer"))
    };
    let millis = |ms: i64| {
        Utc.timestamp_millis_opt(ms)
            .single()
            .ok_or("time out of range".to_owned())
    };
    match text("type")?.as_str() {
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
                spin_id: Uuid::parse_str(&text("spin")?)
                    .map_err(|_| "`spin` is not a UUID".to_owned())?,
                user_id: text("user")?,
                prize_id: text("prize")?,
                amount: text("amount")?
                    .parse()
                    .map_err(|_| "`amount` is not a decimal".to_owned())?,
                currency,
                r,
                stream,
                config_version: int("ver")?,
                idempotency_key: text("key")?,
                context,
                spun_at: millis(int("t")?)?,
            }))
        }
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
