//! What applying a campaign would change against what is live. The same plan is
//! printed by `campaign plan`, returned by the admin API and recorded with the
//! version in PostgreSQL.

use crate::campaign::days::day_starts;
use crate::campaign::model::{Campaign, Prize, Release, Stock};
use crate::campaign::parse_campaign;
use crate::domain::{Money, Pool};
use crate::draw::release::{self, Window};
use crate::store::redis::live::LiveState;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;
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
        if let Some(b) = &new.budget {
            changes.push(
                Change::new("add", "budget")
                    .note(format!("at most {} {} of prizes", b.amount, b.currency)),
            );
        }
        if new.pools > 1 {
            changes.push(Change::new("add", "pools").note(pool_shares(new)));
        }
        let curve = Curve::of(new, now);
        changes.extend(
            new.prizes
                .iter()
                .map(|p| Change::new("add", format!("prizes.{}", p.id)).note(added(p, &curve))),
        );
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
        Ok(old) => diff(&old, new, live, now, &mut changes),
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
    if new.pools > 1 {
        out.push(format!(
            "pools: {} is planned and simulated by this version but not applied: `apply` takes pools: 1 until the draws, settlement and recovery of sub-pools are built",
            new.pools
        ));
    }
    if new.ends_at <= now {
        out.push(format!(
            "the window ended at {} (it is now {}): every spin will be refused as ended",
            new.ends_at.to_rfc3339(),
            now.format("%Y-%m-%dT%H:%M:%SZ")
        ));
    }
    out
}

/// How the stock and the budget are shared out among the pools, e.g.
/// `3 pools, each a shopper's whole state; gold 6/7/7; budget 3333.3334/3333.3333/3333.3333 INR`
/// (gold: 20 units, budget: 10000 INR).
fn pool_shares(c: &Campaign) -> String {
    let shares: Vec<Campaign> = Pool::all(c.pools).map(|p| c.pool_share(p)).collect();
    let mut parts = vec![format!("{} pools, each a shopper's whole state", c.pools)];
    for (i, p) in c.prizes.iter().enumerate() {
        if let Stock::Limited(_) = p.stock {
            let units: Vec<String> = shares
                .iter()
                .map(|s| s.prizes[i].stock.to_string())
                .collect();
            parts.push(format!("{} {}", p.id, units.join("/")));
        }
    }
    if let Some(b) = &c.budget {
        let amounts: Vec<String> = shares
            .iter()
            .filter_map(|s| s.budget.as_ref().map(|m| m.amount.normalize().to_string()))
            .collect();
        parts.push(format!("budget {} {}", amounts.join("/"), b.currency));
    }
    parts.join("; ")
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

/// The release curves of a campaign's prizes at an instant: its window and days.
struct Curve {
    start_ms: i64,
    end_ms: i64,
    day_starts: Vec<i64>,
    now_ms: i64,
    /// Codes loaded per code prize (awarded + available): what its curve spreads.
    codes_loaded: HashMap<String, u64>,
}

impl Curve {
    fn of(c: &Campaign, now: DateTime<Utc>) -> Self {
        Curve {
            start_ms: c.starts_at.timestamp_millis(),
            end_ms: c.ends_at.timestamp_millis(),
            day_starts: day_starts(c),
            now_ms: now.timestamp_millis(),
            codes_loaded: HashMap::new(),
        }
    }

    /// The curves over the codes `live` holds for each code prize.
    fn with_codes(mut self, live: &LiveState) -> Self {
        self.codes_loaded = live
            .initial
            .iter()
            .map(|(id, &n)| (id.clone(), u64::try_from(n).unwrap_or(0)))
            .collect();
        self
    }

    /// The units `p`'s curve spreads: its stock, or the codes loaded for it.
    fn stock_of(&self, p: &Prize) -> Option<u64> {
        match p.stock {
            Stock::Limited(n) => Some(n),
            Stock::Codes => Some(self.codes_loaded.get(p.id.as_str()).copied().unwrap_or(0)),
            Stock::Unlimited => None,
        }
    }

    fn window(&self) -> Window<'_> {
        Window {
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            day_starts: &self.day_starts,
        }
    }

    /// Units of `p` released now (`None`: unlimited), its curve drawn over
    /// its configured stock.
    fn released(&self, p: &Prize) -> Option<u64> {
        self.stock_of(p)
            .map(|n| release::released(&p.release, n, self.window(), self.now_ms))
    }

    /// When a paced `p` with `awarded` units drawn gets a unit to draw again,
    /// if it waits for one now.
    fn resumes_at(&self, p: &Prize, awarded: u64) -> Option<String> {
        let n = self.stock_of(p)?;
        let waits = p.release.is_paced() && self.released(p).is_some_and(|r| r <= awarded);
        waits
            .then(|| release::next_release(&p.release, n, awarded, self.window()))
            .flatten()
            .and_then(DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    }
}

/// A release rule in a few words.
fn rule(r: &Release) -> String {
    match r {
        Release::AllAtStart => "all_at_start".into(),
        Release::Even => "even".into(),
        Release::PerDay(n) => format!("per_day {n}"),
        Release::Schedule(steps) => {
            let shown: Vec<String> = steps
                .iter()
                .take(3)
                .map(|s| {
                    let at = DateTime::from_timestamp_millis(s.at)
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                        .unwrap_or_default();
                    format!("{at} +{}", s.units)
                })
                .collect();
            let more = if steps.len() > 3 { ", …" } else { "" };
            format!("schedule of {} ({}{more})", steps.len(), shown.join(", "))
        }
    }
}

fn units(n: Option<u64>) -> String {
    n.map_or("unlimited".to_owned(), |n| n.to_string())
}

/// The note of a prize added to the draw.
fn added(p: &Prize, curve: &Curve) -> String {
    let mut note = format!(
        "weight {}, stock {}, value {} {}",
        p.weight, p.stock, p.value.amount, p.value.currency
    );
    if p.release.is_paced() {
        note += &format!(
            ", release {}: {} released now",
            rule(&p.release),
            units(curve.released(p))
        );
    }
    note
}

/// Units released now before and after the apply, and what that means for a
/// prize with `awarded` units drawn.
fn released_note(before: Option<u64>, p: &Prize, after: &Curve, awarded: u64) -> String {
    let now = after.released(p);
    let mut note = format!("released now {} -> {}", units(before), units(now));
    if let Some(at) = after.resumes_at(p, awarded) {
        note += &format!("; {awarded} awarded, so the prize waits for its next unit until {at}");
    }
    note
}

/// The budget set, changed or dropped, against what the draw has counted as
/// awarded (meta `bs`: every award, also those before a budget was set).
fn budget(old: &Campaign, new: &Campaign, live: &LiveState, out: &mut Vec<Change>) {
    if old.budget == new.budget {
        return;
    }
    let show = |b: &Option<Money>| {
        b.as_ref().map_or("none".to_owned(), |b| {
            format!("{} {}", b.amount, b.currency)
        })
    };
    let spent_units = live.draw.spent;
    let spent = Money::amount_of_units(spent_units);
    let currency = new
        .budget
        .as_ref()
        .or(old.budget.as_ref())
        .map(|b| b.currency.to_string())
        .unwrap_or_default();
    let action = match (&old.budget, &new.budget) {
        (None, Some(_)) => "add",
        (Some(_), None) => "retire",
        _ => "change",
    };
    let note = match &new.budget {
        None => {
            format!("{spent} {currency} awarded so far; the value awarded is no longer limited")
        }
        Some(b) if b.units() < spent_units => {
            let fallback = &new.prizes[new.fallback];
            let mut note = format!(
                "{spent} {currency} awarded so far (every award counted): the budget is below it, so no prize with a value is drawn any more"
            );
            if fallback.value.units() > 0 {
                note += &format!(
                    ", and the fallback `{}` is worth {} {}: every spin is refused as budget_exhausted",
                    fallback.id, fallback.value.amount, fallback.value.currency
                );
            }
            note
        }
        Some(b) => format!(
            "{spent} {currency} awarded so far (every award counted); {} {currency} left",
            Money::amount_of_units(b.units() - spent_units)
        ),
    };
    out.push(
        Change::new(action, "budget")
            .values(show(&old.budget), show(&new.budget))
            .note(note),
    );
}

fn diff(
    old: &Campaign,
    new: &Campaign,
    live: &LiveState,
    now: DateTime<Utc>,
    out: &mut Vec<Change>,
) {
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
    budget(old, new, live, out);
    if old.pools != new.pools {
        out.push(
            Change::new("change", "pools")
                .values(old.pools, new.pools)
                .note("refused on a live campaign: its pools are fixed at the first apply (every shopper's state lives in the pool their id maps to)"),
        );
    }
    if old.expected_users != new.expected_users {
        out.push(
            Change::new("change", "expected_users")
                .values(old.expected_users, new.expected_users)
                .note("recorded only: Redis buckets are sized once, at the first apply"),
        );
    }

    let (old_curve, new_curve) = (
        Curve::of(old, now).with_codes(live),
        Curve::of(new, now).with_codes(live),
    );
    for p in &new.prizes {
        let path = format!("prizes.{}", p.id);
        let awarded = live.awarded.get(p.id.as_str()).copied().unwrap_or(0);
        let Some(o) = old.prize(&p.id) else {
            out.push(Change::new("add", path).note(added(p, &new_curve)));
            continue;
        };
        let won = u64::try_from(awarded).unwrap_or(0);
        let (released_before, released_after) = (old_curve.released(o), new_curve.released(p));
        let paced = o.release.is_paced() || p.release.is_paced();
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
                Stock::Codes => "the codes loaded for it".to_owned(),
            };
            let before = Stock::from_redis(remaining).to_string();
            let mut note = format!("{awarded} awarded; remaining {before} -> {after}");
            if paced && o.release == p.release {
                // The curve is drawn over the configured stock: redrawn.
                note += &format!(
                    "; the {} curve is redrawn over the new stock: {}",
                    rule(&p.release),
                    released_note(released_before, p, &new_curve, won)
                );
            }
            out.push(
                Change::new("change", format!("{path}.stock"))
                    .values(o.stock, p.stock)
                    .note(note),
            );
        }
        if o.release != p.release {
            out.push(
                Change::new("change", format!("{path}.release"))
                    .values(rule(&o.release), rule(&p.release))
                    .note(released_note(released_before, p, &new_curve, won)),
            );
        } else if paced && o.stock == p.stock && released_before != released_after {
            // Same rule and stock, another window or time zone.
            out.push(
                Change::new("change", format!("{path}.release")).note(format!(
                    "{} unchanged, its curve redrawn over the new window: {}",
                    rule(&p.release),
                    released_note(released_before, p, &new_curve, won)
                )),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redis::live::DrawState;
    use std::collections::HashMap;

    /// A 10-day campaign from 2026-11-01 (UTC): `gold` 100 units, `none` the fallback.
    fn yaml(gold: &str, budget: &str) -> String {
        format!(
            "id: plan-test\nname: Plan\nstarts_at: 2026-11-01T00:00:00Z\nends_at: 2026-11-11T00:00:00Z\nlimits:\n  spins_per_user: 5\n{budget}fallback: none\nprizes:\n  - id: gold\n    name: Gold\n    weight: 1\n{gold}    value: {{ amount: \"5.00\", currency: INR }}\n  - id: none\n    name: None\n    weight: 9\n    stock: unlimited\n    value: {{ amount: \"0\", currency: INR }}\n"
        )
    }

    fn campaign(yaml: &str) -> Campaign {
        parse_campaign(yaml).unwrap_or_else(|e| panic!("{e:?}"))
    }

    /// What Redis holds after `yaml` was applied and `awarded` golds drawn,
    /// worth `spent` value units.
    fn live(yaml: &str, awarded: i64, spent: u64) -> LiveState {
        let c = campaign(yaml);
        let stock = match c.prizes[0].stock {
            Stock::Limited(n) => (n as i64 - awarded).max(0),
            Stock::Unlimited | Stock::Codes => -1,
        };
        LiveState {
            version: 1,
            hash: crate::campaign::canonical::hash(&c),
            yaml: yaml.to_owned(),
            table: Vec::new(),
            buckets: 1,
            stock: HashMap::from([("gold".into(), stock), ("none".into(), -1)]),
            initial: HashMap::new(),
            awarded: HashMap::from([("gold".into(), awarded)]),
            draw: DrawState {
                now_ms: 0,
                config: crate::campaign::canonical::to_json(&c),
                prizes: Vec::new(),
                budget: c.budget.as_ref().map(Money::units),
                spent,
                day_starts: Vec::new(),
            },
        }
    }

    /// Day 3 of 10, noon.
    fn day3() -> DateTime<Utc> {
        "2026-11-03T12:00:00Z".parse().unwrap()
    }

    fn change<'a>(p: &'a Plan, path: &str) -> &'a Change {
        p.changes
            .iter()
            .find(|c| c.path == path)
            .unwrap_or_else(|| panic!("no {path} in {p}"))
    }

    #[test]
    fn a_release_change_shows_the_units_released_now_before_and_after() {
        let old = yaml("    stock: 100\n", "");
        let new = yaml("    stock: 100\n    release: { per_day: 5 }\n", "");
        let p = plan(&campaign(&new), Some(&live(&old, 20, 0)), day3());
        let c = change(&p, "prizes.gold.release");
        assert_eq!(c.from.as_deref(), Some("all_at_start"));
        assert_eq!(c.to.as_deref(), Some("per_day 5"));
        // Day 3: 15 released, 20 already awarded: it waits for day 5 (unit 21).
        assert_eq!(
            c.note.as_deref(),
            Some(
                "released now 100 -> 15; 20 awarded, so the prize waits for its next unit until 2026-11-05T00:00:00Z"
            ),
            "{p}"
        );
        assert!(!p.unchanged);
    }

    #[test]
    fn a_live_top_up_redraws_an_even_curve() {
        let old = yaml("    stock: 100\n    release: even\n", "");
        let new = yaml("    stock: 200\n    release: even\n", "");
        let p = plan(&campaign(&new), Some(&live(&old, 10, 0)), day3());
        let c = change(&p, "prizes.gold.stock");
        // 2.5 of 10 days: ceil of a quarter of the stock, plus the unit at the start.
        assert_eq!(
            c.note.as_deref(),
            Some(
                "10 awarded; remaining 90 -> 190; the even curve is redrawn over the new stock: released now 26 -> 51"
            ),
            "{p}"
        );
        assert!(
            !p.changes.iter().any(|c| c.path == "prizes.gold.release"),
            "{p}"
        );
        // A cut below what the curve released makes the prize wait.
        let cut = yaml("    stock: 40\n    release: even\n", "");
        let p = plan(&campaign(&cut), Some(&live(&old, 30, 0)), day3());
        let note = change(&p, "prizes.gold.stock").note.clone().unwrap();
        assert!(
            note.ends_with("released now 26 -> 11; 30 awarded, so the prize waits for its next unit until 2026-11-08T12:00:00Z"),
            "{note}"
        );
    }

    #[test]
    fn a_window_change_of_a_paced_prize_says_its_curve_moves() {
        let old = yaml("    stock: 100\n    release: even\n", "");
        let new = old.replace("2026-11-11T00:00:00Z", "2026-11-21T00:00:00Z");
        let p = plan(&campaign(&new), Some(&live(&old, 0, 0)), day3());
        let c = change(&p, "prizes.gold.release");
        assert_eq!((c.from.as_deref(), c.to.as_deref()), (None, None));
        assert_eq!(
            c.note.as_deref(),
            Some("even unchanged, its curve redrawn over the new window: released now 26 -> 13")
        );
        // Not paced: a window change moves no curve.
        let flat = yaml("    stock: 100\n", "");
        let moved = flat.replace("2026-11-11T00:00:00Z", "2026-11-21T00:00:00Z");
        let p = plan(&campaign(&moved), Some(&live(&flat, 0, 0)), day3());
        assert!(
            p.changes.iter().all(|c| !c.path.starts_with("prizes.")),
            "{p}"
        );
    }

    #[test]
    fn budget_changes_show_what_was_spent() {
        let none = yaml("    stock: 100\n", "");
        let set = yaml(
            "    stock: 100\n",
            "budget: { amount: \"500.00\", currency: INR }\n",
        );
        // 30 golds awarded before any budget: 150.00, counted.
        let p = plan(&campaign(&set), Some(&live(&none, 30, 1_500_000)), day3());
        let c = change(&p, "budget");
        assert_eq!(c.action, "add");
        assert_eq!(
            (c.from.as_deref(), c.to.as_deref()),
            (Some("none"), Some("500.00 INR"))
        );
        assert_eq!(
            c.note.as_deref(),
            Some("150.0000 INR awarded so far (every award counted); 350.0000 INR left")
        );
        let low = yaml(
            "    stock: 100\n",
            "budget: { amount: \"100\", currency: INR }\n",
        );
        let p = plan(&campaign(&low), Some(&live(&set, 30, 1_500_000)), day3());
        let c = change(&p, "budget");
        assert_eq!(c.action, "change");
        assert!(
            c.note
                .as_deref()
                .unwrap()
                .contains("below it, so no prize with a value is drawn"),
            "{p}"
        );
        let p = plan(&campaign(&none), Some(&live(&set, 30, 1_500_000)), day3());
        assert_eq!(change(&p, "budget").action, "retire");
        // Unchanged: no change, and the hash says so.
        let p = plan(&campaign(&set), Some(&live(&set, 30, 1_500_000)), day3());
        assert!(p.unchanged && p.changes.is_empty(), "{p}");
    }

    #[test]
    fn a_new_campaign_lists_its_budget_and_paced_prizes() {
        let new = yaml(
            "    stock: 100\n    release: { per_day: 5 }\n",
            "budget: { amount: \"500.00\", currency: INR }\n",
        );
        let p = plan(&campaign(&new), None, day3());
        assert_eq!(
            change(&p, "budget").note.as_deref(),
            Some("at most 500.00 INR of prizes")
        );
        assert_eq!(
            change(&p, "prizes.gold").note.as_deref(),
            Some("weight 1, stock 100, value 5.00 INR, release per_day 5: 15 released now")
        );
    }

    #[test]
    fn pools_show_their_shares_and_are_fixed_once_live() {
        let budget = "budget: { amount: \"500.01\", currency: INR }\n";
        let pooled = yaml("    stock: 100\n", &format!("pools: 3\n{budget}"));
        let p = plan(&campaign(&pooled), None, day3());
        assert_eq!(
            change(&p, "pools").note.as_deref(),
            Some(
                "3 pools, each a shopper's whole state; gold 33/34/33; budget 166.67/166.67/166.67 INR"
            )
        );
        assert!(p.warnings.iter().any(|w| w.contains("not applied")), "{p}");
        // One pool: no change, no warning, the hash of the file without the key.
        let single = yaml("    stock: 100\n", budget);
        let explicit = yaml("    stock: 100\n", &format!("pools: 1\n{budget}"));
        let p = plan(&campaign(&explicit), Some(&live(&single, 0, 0)), day3());
        assert!(
            p.unchanged && p.changes.is_empty() && p.warnings.is_empty(),
            "{p}"
        );
        let p = plan(&campaign(&pooled), Some(&live(&single, 0, 0)), day3());
        let c = change(&p, "pools");
        assert_eq!((c.from.as_deref(), c.to.as_deref()), (Some("1"), Some("3")));
        assert!(
            c.note
                .as_deref()
                .unwrap()
                .starts_with("refused on a live campaign")
        );
    }
}
