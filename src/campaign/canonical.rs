//! The canonical form of a campaign: a JSON document whose hash identifies the
//! config. Two files that mean the same thing (comments, key order, quoting)
//! have the same hash, so re-applying either changes nothing.

use super::model::{Campaign, Stock};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The campaign as canonical JSON (keys sorted, amounts as strings).
pub fn to_json(c: &Campaign) -> Value {
    let mut v = json!({
        "id": c.id.as_str(),
        "name": c.name,
        "timezone": c.timezone.name(),
        "starts_at": c.starts_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "ends_at": c.ends_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "paused": c.paused,
        "limits": {
            "spins_per_user": c.limits.spins_per_user,
            "spins_per_user_per_day": c.limits.spins_per_user_per_day,
        },
        "fallback": c.prizes[c.fallback].id.as_str(),
        "expected_users": c.expected_users,
        "prizes": c.prizes.iter().map(|p| json!({
            "id": p.id.as_str(),
            "name": p.name,
            "weight": p.weight,
            "stock": match p.stock {
                Stock::Limited(n) => json!(n),
                Stock::Unlimited => json!("unlimited"),
                Stock::Codes => json!("codes"),
            },
            "value": { "amount": p.value.amount.to_string(), "currency": p.value.currency.as_str() },
        })).collect::<Vec<_>>(),
    });
    // Only when set: the hash of a campaign without earned spins, a budget or
    // paced prizes stays what it was before they existed, so re-applying its
    // file changes nothing.
    let Some(map) = v.as_object_mut() else {
        return v;
    };
    if let Some(e) = c.earned_spins {
        map.insert(
            "earned_spins".into(),
            json!({ "free": e.free, "expire": e.expire.as_str() }),
        );
    }
    if let Some(b) = &c.budget {
        map.insert(
            "budget".into(),
            json!({ "amount": b.amount.to_string(), "currency": b.currency.as_str() }),
        );
    }
    if c.pools != 1 {
        map.insert("pools".into(), json!(c.pools));
    }
    if let Some(Value::Array(prizes)) = map.get_mut("prizes") {
        for (json, p) in prizes.iter_mut().zip(&c.prizes) {
            if let (true, Some(obj)) = (p.release.is_paced(), json.as_object_mut()) {
                obj.insert("release".into(), json!(p.release));
            }
        }
    }
    v
}

/// Hex SHA-256 of the canonical JSON.
pub fn hash(c: &Campaign) -> String {
    hex(&Sha256::digest(to_json(c).to_string().as_bytes()))
}

/// Hex SHA-256 of arbitrary text (the YAML as written, for the version record).
pub fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
