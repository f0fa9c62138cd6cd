//! Marketing's campaign YAML → a validated [`Campaign`], or every problem found,
//! each with its line and column.

use super::fields::{Fields, Problems, boolean, integer, string, text};
use super::model::{Campaign, Limits, MAX_EXACT, Prize, Stock};
use super::tree::{self, Diagnostic, Node, Value};
use crate::domain::{CampaignId, Currency, Money, PrizeId};
use chrono::{DateTime, Utc};

const CAMPAIGN_KEYS: &[&str] = &[
    "id",
    "name",
    "timezone",
    "starts_at",
    "ends_at",
    "paused",
    "limits",
    "fallback",
    "prizes",
    "expected_users",
];
const LIMIT_KEYS: &[&str] = &["spins_per_user", "spins_per_user_per_day"];
const PRIZE_KEYS: &[&str] = &["id", "name", "weight", "stock", "value"];
const VALUE_KEYS: &[&str] = &["amount", "currency"];

/// Default for `expected_users` when the file does not say.
pub const DEFAULT_EXPECTED_USERS: u64 = 1_000_000;

/// Parses and validates a campaign file's text. On failure, returns every problem
/// it could find, sorted by position.
pub fn parse_campaign(text: &str) -> Result<Campaign, Vec<Diagnostic>> {
    let root = tree::parse(text).map_err(|d| vec![d])?;
    let mut p = Problems::default();
    let campaign = campaign(&root, &mut p);
    match campaign {
        Some(c) if p.is_empty() => Ok(c),
        _ => {
            let mut all = p.0;
            all.sort_by_key(|d| (d.line, d.column));
            all.dedup();
            Err(all)
        }
    }
}

fn campaign(root: &Node, p: &mut Problems) -> Option<Campaign> {
    let f = Fields::of(root, "the campaign", CAMPAIGN_KEYS, p)?;

    let id = f.required("id", p).and_then(|n| {
        let s = string(n, "id", p)?;
        CampaignId::parse(s).map_err(|e| p.at(n.pos, e)).ok()
    });
    let name = f
        .required("name", p)
        .and_then(|n| text(n, "name", Campaign::MAX_NAME, p));
    let timezone = match f.get("timezone") {
        None => Some(chrono_tz::UTC),
        Some(n) => string(n, "timezone", p).and_then(|s| {
            s.parse::<chrono_tz::Tz>()
                .map_err(|_| {
                    p.at(
                        n.pos,
                        format!(
                            "`timezone` `{}` is not an IANA time zone name such as Asia/Kolkata",
                            crate::domain::truncate_for_message(s)
                        ),
                    )
                })
                .ok()
        }),
    };
    let starts_at = f
        .required("starts_at", p)
        .and_then(|n| instant(n, "starts_at", p));
    let ends_at = f
        .required("ends_at", p)
        .and_then(|n| instant(n, "ends_at", p));
    if let (Some(s), Some(e), Some(n)) = (starts_at, ends_at, f.get("ends_at")) {
        if e <= s {
            p.at(n.pos, "`ends_at` must be after `starts_at`");
        } else if (e - s).num_days() >= Campaign::MAX_DAYS {
            p.at(
                n.pos,
                format!(
                    "the campaign window must be shorter than {} days",
                    Campaign::MAX_DAYS
                ),
            );
        }
    }
    let paused = f
        .get("paused")
        .map_or(Some(false), |n| boolean(n, "paused", p));
    let limits = f.required("limits", p).and_then(|n| limits(n, p));
    let expected_users = f
        .get("expected_users")
        .map_or(Some(DEFAULT_EXPECTED_USERS), |n| {
            integer(n, "expected_users", 1, 10_000_000_000, p)
        });
    let prizes = f.required("prizes", p).and_then(|n| prizes(n, p));
    let fallback = match (f.required("fallback", p), f.get("prizes")) {
        (
            Some(n),
            Some(Node {
                value: Value::Seq(items),
                ..
            }),
        ) => fallback(n, items, p),
        _ => None,
    };

    Some(Campaign {
        id: id?,
        name: name?,
        timezone: timezone?,
        starts_at: starts_at?,
        ends_at: ends_at?,
        paused: paused?,
        limits: limits?,
        fallback: fallback?,
        prizes: prizes?,
        expected_users: expected_users?,
    })
}

/// An RFC 3339 instant with an explicit offset, e.g. `2026-11-01T00:00:00+05:30`.
fn instant(n: &Node, key: &str, p: &mut Problems) -> Option<DateTime<Utc>> {
    let s = string(n, key, p)?;
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            p.at(
                n.pos,
                format!("`{key}` must be an RFC 3339 time with an offset, such as 2026-11-01T00:00:00+05:30"),
            )
        })
        .ok()
}

fn limits(n: &Node, p: &mut Problems) -> Option<Limits> {
    let f = Fields::of(n, "`limits`", LIMIT_KEYS, p)?;
    let total = f
        .required("spins_per_user", p)
        .and_then(|n| integer(n, "spins_per_user", 1, Limits::MAX_TOTAL.into(), p));
    let per_day = match f.get("spins_per_user_per_day") {
        None => Some(None),
        Some(n) => integer(
            n,
            "spins_per_user_per_day",
            1,
            Limits::MAX_PER_DAY.into(),
            p,
        )
        .map(Some),
    };
    Some(Limits {
        spins_per_user: total? as u32,
        spins_per_user_per_day: per_day?.map(|d| d as u32),
    })
}

fn prizes(n: &Node, p: &mut Problems) -> Option<Vec<Prize>> {
    let Value::Seq(items) = &n.value else {
        p.at(
            n.pos,
            format!("`prizes` must be a list, found {}", n.value.kind()),
        );
        return None;
    };
    if items.is_empty() || items.len() > Campaign::MAX_PRIZES {
        p.at(
            n.pos,
            format!("`prizes` must list 1 to {} prizes", Campaign::MAX_PRIZES),
        );
        return None;
    }
    let parsed: Vec<Option<Prize>> = items.iter().map(|item| prize(item, p)).collect();
    // Duplicates are found from the raw ids, so they are reported even when
    // another field of the prize is wrong.
    let mut seen: Vec<&str> = Vec::new();
    for item in items {
        if let Some(id) = peek_str(item, "id") {
            if seen.contains(&id) {
                p.at(item.pos, format!("prize id `{id}` appears twice"));
            }
            seen.push(id);
        }
    }
    let prizes: Vec<Prize> = parsed.into_iter().collect::<Option<_>>()?;
    let total: u128 = prizes.iter().map(|p| u128::from(p.weight)).sum();
    if total >= u128::from(MAX_EXACT) {
        p.at(
            n.pos,
            "the weights of all prizes must add up to less than 2^53",
        );
    }
    Some(prizes)
}

fn prize(n: &Node, p: &mut Problems) -> Option<Prize> {
    let f = Fields::of(n, "a prize", PRIZE_KEYS, p)?;
    let id = f.required("id", p).and_then(|n| {
        let s = string(n, "id", p)?;
        PrizeId::parse(s).map_err(|e| p.at(n.pos, e)).ok()
    });
    let name = f
        .required("name", p)
        .and_then(|n| text(n, "name", Campaign::MAX_NAME, p));
    let weight = f
        .required("weight", p)
        .and_then(|n| integer(n, "weight", 1, MAX_EXACT - 1, p));
    let stock = f.required("stock", p).and_then(|n| stock(n, p));
    let value = f.required("value", p).and_then(|n| money(n, p));
    Some(Prize {
        id: id?,
        name: name?,
        weight: weight?,
        stock: stock?,
        value: value?,
    })
}

fn stock(n: &Node, p: &mut Problems) -> Option<Stock> {
    match &n.value {
        Value::Str(s) if s == "unlimited" => Some(Stock::Unlimited),
        Value::Int(_) => integer(n, "stock", 0, Stock::MAX, p).map(Stock::Limited),
        _ => {
            p.at(
                n.pos,
                format!(
                    "`stock` must be an integer from 0 to {} or \"unlimited\"",
                    Stock::MAX
                ),
            );
            None
        }
    }
}

fn money(n: &Node, p: &mut Problems) -> Option<Money> {
    let f = Fields::of(n, "`value`", VALUE_KEYS, p)?;
    let amount = f.required("amount", p).and_then(|n| match &n.value {
        Value::Str(s) => Money::parse_amount(s).map_err(|e| p.at(n.pos, e)).ok(),
        Value::Int(_) | Value::Float(_) => {
            p.at(
                n.pos,
                "`amount` must be a quoted decimal string such as \"100.00\", never a bare number",
            );
            None
        }
        other => {
            p.at(
                n.pos,
                format!(
                    "`amount` must be a quoted decimal string, found {}",
                    other.kind()
                ),
            );
            None
        }
    });
    let currency = f.required("currency", p).and_then(|n| {
        let s = string(n, "currency", p)?;
        Currency::parse(s).map_err(|e| p.at(n.pos, e)).ok()
    });
    Some(Money {
        amount: amount?,
        currency: currency?,
    })
}

/// The fallback's position among the prizes, read from the raw items so the
/// rule is checked even when some prize has other problems.
fn fallback(n: &Node, items: &[Node], p: &mut Problems) -> Option<usize> {
    let s = string(n, "fallback", p)?;
    let Some(i) = items
        .iter()
        .position(|item| peek_str(item, "id") == Some(s))
    else {
        p.at(
            n.pos,
            format!(
                "`fallback` names `{}`, which is not one of the prizes",
                crate::domain::truncate_for_message(s)
            ),
        );
        return None;
    };
    if peek_str(&items[i], "stock") != Some("unlimited") {
        p.at(
            n.pos,
            format!("the fallback prize `{s}` must have `stock: unlimited`"),
        );
        return None;
    }
    Some(i)
}

/// A string field of a mapping node, without reporting anything.
fn peek_str<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    let Value::Map(entries) = &node.value else {
        return None;
    };
    entries
        .iter()
        .find_map(|(k, v)| match (&k.value, &v.value) {
            (Value::Str(k), Value::Str(v)) if k == key => Some(v.as_str()),
            _ => None,
        })
}
