//! What applying a campaign would change against what is live. The same plan is
//! printed by `campaign plan`, returned by the admin API and recorded with the
//! version in PostgreSQL.

use crate::campaign::model::{Campaign, Stock};
use crate::campaign::parse_campaign;
use crate::store::redis::live::LiveState;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Plan {
    pub campaign_id: String,
    /// Live version, or null when the campaign does not exist yet.
    pub live_version: Option<u64>,
    /// True when the file equals the live config: applying changes nothing.
    pub unchanged: bool,
    pub changes: Vec<Change>,
    /// What to know before applying that no change says, e.g. a window that
    /// has already ended (applying it draws nothing).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Change {
    /// `create`, `add`, `change` or `retire`.
    pub action: &'static str,
    /// What changes, e.g. `prizes.phone.stock` or `ends_at`.
    pub path: String,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Consequences worth knowing, e.g. the stock that will remain.
    pub note: Option<String>,
}

impl Change {
    fn new(action: &'static str, path: impl Into<String>) -> Self {
        Change {
            action,
            path: path.into(),
            from: None,
            to: None,
            note: None,
        }
    }
    fn values(mut self, from: impl fmt::Display, to: impl fmt::Display) -> Self {
        self.from = Some(from.to_string());
        self.to = Some(to.to_string());
        self
    }
    fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// The plan of applying `new` over `live`, at `now`.
pub fn plan(new: &Campaign, live: Option<&LiveState>, now: DateTime<Utc>) -> Plan {
    let warnings = warnings(new, now);
    let Some(live) = live else {
        let mut changes = vec![Change::new("create", "campaign").note(format!(
            "{} prizes, window {} to {}",
            new.prizes.len(),
            new.starts_at,
            new.ends_at
        ))];
        if let Some(e) = new.earned_spins {
            changes.push(Change::new("add", "earned_spins").note(format!(
                "free {}, expire {}",
                e.free,
                e.expire.as_str()
            )));
        }
        changes.extend(new.prizes.iter().map(|p| {
            Change::new("add", format!("prizes.{}", p.id)).note(format!(
                "weight {}, stock {}, value {} {}",
                p.weight, p.stock, p.value.amount, p.value.currency
            ))
        }));
        return Plan {
            campaign_id: new.id.to_string(),
            live_version: None,
            unchanged: false,
            changes,
            warnings,
        };
    };
    let unchanged = live.hash == crate::campaign::canonical::hash(new);
    let mut changes = Vec::new();
    match parse_campaign(&live.yaml) {
        Ok(old) => diff(&old, new, live, &mut changes),
        Err(_) => changes.push(Change::new("change", "campaign").note(
            "the live config cannot be read by this version of prizewheel; every field will be replaced",
        )),
    }
    Plan {
        campaign_id: new.id.to_string(),
        live_version: Some(live.version),
        unchanged,
        changes,
        warnings,
    }
}

/// A window over before the apply: the campaign would be applied and recorded,
/// and every spin refused as ended.
fn warnings(new: &Campaign, now: DateTime<Utc>) -> Vec<String> {
    let mut out = Vec::new();
    if new.ends_at <= now {
        out.push(format!(
            "the window ended at {} (it is now {}): every spin will be refused as ended",
            new.ends_at.to_rfc3339(),
            now.format("%Y-%m-%dT%H:%M:%SZ")
        ));
    }
    out
}

/// Earned spins turned on or off, or their free spins changed; a changed
/// `expire` cannot be applied (lua/apply.lua refuses it).
fn earned_spins(old: &Campaign, new: &Campaign, out: &mut Vec<Change>) {
    match (old.earned_spins, new.earned_spins) {
        (None, None) => {}
        (None, Some(e)) => out.push(
            Change::new("add", "earned_spins")
                .note(format!(
                    "free {}, expire {}: every shopper now has {} free spin(s) plus what the order service grants, instead of spins_per_user",
                    e.free,
                    e.expire.as_str(),
                    e.free
                )),
        ),
        (Some(_), None) => out.push(Change::new("retire", "earned_spins").note(
            "every shopper has spins_per_user spins again; grants are refused, spins already granted stay counted",
        )),
        (Some(a), Some(b)) => {
            if a.free != b.free {
                let note = if b.free < a.free {
                    "every shopper has fewer free spins (spins already made stay made); granted spins are untouched"
                } else {
                    "every shopper gains the difference"
                };
                out.push(
                    Change::new("change", "earned_spins.free")
                        .values(a.free, b.free)
                        .note(note),
                );
            }
            if a.expire != b.expire {
                out.push(
                    Change::new("change", "earned_spins.expire")
                        .values(a.expire.as_str(), b.expire.as_str())
                        .note("refused on a live campaign: earned spins are counted by the rule first applied"),
                );
            }
        }
    }
}

fn diff(old: &Campaign, new: &Campaign, live: &LiveState, out: &mut Vec<Change>) {
    let mut field = |path: &str, a: String, b: String| {
        if a != b {
            out.push(Change::new("change", path).values(a, b));
        }
    };
    field("name", old.name.clone(), new.name.clone());
    field(
        "timezone",
        old.timezone.name().into(),
        new.timezone.name().into(),
    );
    field(
        "starts_at",
        old.starts_at.to_rfc3339(),
        new.starts_at.to_rfc3339(),
    );
    field(
        "ends_at",
        old.ends_at.to_rfc3339(),
        new.ends_at.to_rfc3339(),
    );
    field("paused", old.paused.to_string(), new.paused.to_string());
    field(
        "limits.spins_per_user",
        old.limits.spins_per_user.to_string(),
        new.limits.spins_per_user.to_string(),
    );
    let per_day = |c: &Campaign| {
        c.limits
            .spins_per_user_per_day
            .map_or("none".to_owned(), |n| n.to_string())
    };
    field("limits.spins_per_user_per_day", per_day(old), per_day(new));
    field(
        "fallback",
        old.prizes[old.fallback].id.to_string(),
        new.prizes[new.fallback].id.to_string(),
    );
    earned_spins(old, new, out);
    if old.expected_users != new.expected_users {
        out.push(
            Change::new("change", "expected_users")
                .values(old.expected_users, new.expected_users)
                .note("recorded only: Redis buckets are sized once, at the first apply"),
        );
    }

    for p in &new.prizes {
        let path = format!("prizes.{}", p.id);
        let awarded = live.awarded.get(p.id.as_str()).copied().unwrap_or(0);
        let Some(o) = old.prize(&p.id) else {
            out.push(Change::new("add", path).note(format!(
                "weight {}, stock {}, value {} {}",
                p.weight, p.stock, p.value.amount, p.value.currency
            )));
            continue;
        };
        let mut field = |name: &str, a: String, b: String| {
            if a != b {
                out.push(Change::new("change", format!("{path}.{name}")).values(a, b));
            }
        };
        field("name", o.name.clone(), p.name.clone());
        field("weight", o.weight.to_string(), p.weight.to_string());
        field(
            "value.amount",
            o.value.amount.to_string(),
            p.value.amount.to_string(),
        );
        field(
            "value.currency",
            o.value.currency.to_string(),
            p.value.currency.to_string(),
        );
        if o.stock != p.stock {
            let remaining = live.stock.get(p.id.as_str()).copied().unwrap_or(0);
            let after = match p.stock {
                Stock::Limited(n) => (n as i64 - awarded).max(0).to_string(),
                Stock::Unlimited => "unlimited".to_owned(),
            };
            let before = Stock::from_redis(remaining).to_string();
            out.push(
                Change::new("change", format!("{path}.stock"))
                    .values(o.stock, p.stock)
                    .note(format!("{awarded} awarded; remaining {before} -> {after}")),
            );
        }
    }
    for o in &old.prizes {
        if new.prize(&o.id).is_none() {
            let awarded = live.awarded.get(o.id.as_str()).copied().unwrap_or(0);
            out.push(
                Change::new("retire", format!("prizes.{}", o.id)).note(format!(
                    "no more units are drawn; its {awarded} awarded units stay in the ledger"
                )),
            );
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.live_version {
            None => writeln!(
                f,
                "campaign {}: not applied yet; applying creates version 1",
                self.campaign_id
            )?,
            Some(v) if self.unchanged => writeln!(
                f,
                "campaign {}: version {v} is live and equal to this file; nothing to apply",
                self.campaign_id
            )?,
            Some(v) => writeln!(
                f,
                "campaign {}: version {v} is live; applying creates version {}",
                self.campaign_id,
                v + 1
            )?,
        }
        for w in &self.warnings {
            writeln!(f, "  warning: {w}")?;
        }
        if self.unchanged {
            return Ok(());
        }
        if self.changes.is_empty() {
            writeln!(f, "  (no field changes; formatting only)")?;
        }
        for c in &self.changes {
            let sign = match c.action {
                "add" | "create" => '+',
                "retire" => '-',
                _ => '~',
            };
            write!(f, "  {sign} {}", c.path)?;
            if let (Some(a), Some(b)) = (&c.from, &c.to) {
                write!(f, ": {a} -> {b}")?;
            }
            if let Some(n) = &c.note {
                write!(f, " ({n})")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
