//! Marketing's campaign YAML → a validated [`Campaign`], or every problem found,
//! each with its line and column.

use super::fields::{Fields, Problems, boolean, integer, string, text};
use super::model::{
    Campaign, EarnedSpins, Expiry, Limits, MAX_EXACT, Prize, Release, ReleaseStep, Stock,
};
use super::tree::{self, Diagnostic, Node, Value};
use crate::domain::{CampaignId, Currency, Money, Pool, PrizeId, truncate_for_message};
use chrono::{DateTime, Utc};

const CAMPAIGN_KEYS: &[&str] = &[
    "id",
    "name",
    "timezone",
    "starts_at",
    "ends_at",
    "paused",
    "limits",
    "earned_spins",
    "budget",
    "fallback",
    "prizes",
    "expected_users",
    "pools",
];
const LIMIT_KEYS: &[&str] = &["spins_per_user", "spins_per_user_per_day"];
const EARNED_KEYS: &[&str] = &["free", "expire"];
const PRIZE_KEYS: &[&str] = &["id", "name", "weight", "stock", "value", "release"];
const RELEASE_KEYS: &[&str] = &["per_day", "schedule"];
const STEP_KEYS: &[&str] = &["at", "units"];
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
                            truncate_for_message(s)
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
    let earned_spins = match f.get("earned_spins") {
        None => Some(None),
        Some(n) => earned_spins(n, p).map(Some),
    };
    let expected_users = f
        .get("expected_users")
        .map_or(Some(DEFAULT_EXPECTED_USERS), |n| {
            integer(n, "expected_users", 1, 10_000_000_000, p)
        });
    let pools = f.get("pools").map_or(Some(1), |n| {
        integer(n, "pools", 1, u64::from(Pool::MAX_COUNT), p).map(|n| n as u32)
    });
    let budget = match f.get("budget") {
        None => Some(None),
        Some(n) => money(n, "`budget`", p).map(Some),
    };
    let window = starts_at.zip(ends_at);
    let currency = budget
        .as_ref()
        .and_then(|b| b.as_ref().map(|m| &m.currency));
    let prizes = f
        .required("prizes", p)
        .and_then(|n| prizes(n, window, currency, p));
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
        earned_spins: earned_spins?,
        budget: budget?,
        fallback: fallback?,
        prizes: prizes?,
        expected_users: expected_users?,
        pools: pools?,
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

fn earned_spins(n: &Node, p: &mut Problems) -> Option<EarnedSpins> {
    let f = Fields::of(n, "`earned_spins`", EARNED_KEYS, p)?;
    let free = f.get("free").map_or(Some(0), |n| {
        integer(n, "free", 0, Limits::MAX_TOTAL.into(), p)
    });
    let expire = match f.get("expire") {
        None => Some(Expiry::CampaignEnd),
        Some(n) => string(n, "expire", p).and_then(|s| match s {
            "campaign_end" => Some(Expiry::CampaignEnd),
            "end_of_day" => Some(Expiry::EndOfDay),
            other => {
                p.at(
                    n.pos,
                    format!(
                        "`expire` must be campaign_end or end_of_day, found `{}`",
                        truncate_for_message(other)
                    ),
                );
                None
            }
        }),
    };
    Some(EarnedSpins {
        free: free? as u32,
        expire: expire?,
    })
}

/// The campaign window a prize's release is checked against, when it parsed.
type Window = Option<(DateTime<Utc>, DateTime<Utc>)>;

fn prizes(
    n: &Node,
    window: Window,
    budget: Option<&Currency>,
    p: &mut Problems,
) -> Option<Vec<Prize>> {
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
    let parsed: Vec<Option<Prize>> = items
        .iter()
        .map(|item| prize(item, window, budget, p))
        .collect();
    // Duplicates are found from the raw ids, so they are reported even when
    // another field of the prize is wrong.
    let mut seen: Vec<&str> = Vec::new();
    for item in items {
        if let Some(id) = peek_str(item, "id") {
            if seen.contains(&id) {
                p.at(
                    item.pos,
                    format!("prize id `{}` appears twice", truncate_for_message(id)),
                );
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

fn prize(n: &Node, window: Window, budget: Option<&Currency>, p: &mut Problems) -> Option<Prize> {
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
    let value = f.required("value", p).and_then(|n| money(n, "`value`", p));
    if let (Some(budget), Some(v), Some(n)) = (budget, &value, f.get("value"))
        && &v.currency != budget
    {
        p.at(
            n.pos,
            format!(
                "the prize's currency {} is not the budget's {budget}: with a budget, every prize is in its currency",
                v.currency
            ),
        );
    }
    let release = match f.get("release") {
        None => Some(Release::AllAtStart),
        Some(n) => release(n, stock, window, p),
    };
    Some(Prize {
        id: id?,
        name: name?,
        weight: weight?,
        stock: stock?,
        value: value?,
        release: release?,
    })
}

/// `release: all_at_start | even | {per_day: N} | {schedule: [{at, units}, …]}`,
/// for a prize whose stock parsed as `stock`.
fn release(n: &Node, stock: Option<Stock>, window: Window, p: &mut Problems) -> Option<Release> {
    let r = match &n.value {
        Value::Str(s) if s == "all_at_start" => return Some(Release::AllAtStart),
        Value::Str(s) if s == "even" => Release::Even,
        Value::Map(keys) => {
            let f = Fields::of(n, "`release`", RELEASE_KEYS, p)?;
            match (f.get("per_day"), f.get("schedule")) {
                (Some(d), None) => Release::PerDay(integer(d, "per_day", 1, Stock::MAX, p)?),
                (None, Some(s)) => schedule(s, stock, window, p)?,
                // Only unknown keys: those are reported already.
                (None, None) if !keys.is_empty() => return None,
                _ => {
                    p.at(
                        n.pos,
                        "`release` must have exactly one of `per_day` and `schedule`",
                    );
                    return None;
                }
            }
        }
        _ => {
            p.at(
                n.pos,
                "`release` must be all_at_start, even, {per_day: N} or {schedule: [...]}",
            );
            return None;
        }
    };
    if stock == Some(Stock::Unlimited) {
        p.at(
            n.pos,
            "`release` paces a stock-bounded prize: this prize's stock is unlimited",
        );
        return None;
    }
    Some(r)
}

/// A release schedule: instants inside the window, in order, whose units add
/// up to the stock.
fn schedule(n: &Node, stock: Option<Stock>, window: Window, p: &mut Problems) -> Option<Release> {
    let Value::Seq(items) = &n.value else {
        p.at(
            n.pos,
            format!("`schedule` must be a list, found {}", n.value.kind()),
        );
        return None;
    };
    if items.is_empty() || items.len() > Release::MAX_STEPS {
        p.at(
            n.pos,
            format!("`schedule` must list 1 to {} releases", Release::MAX_STEPS),
        );
        return None;
    }
    let mut steps = Vec::with_capacity(items.len());
    let mut ok = true;
    for item in items {
        let Some(f) = Fields::of(item, "a release", STEP_KEYS, p) else {
            ok = false;
            continue;
        };
        let at = f.required("at", p).and_then(|a| {
            let t = instant(a, "at", p)?;
            if let Some((start, end)) = window
                && (t < start || t >= end)
            {
                p.at(a.pos, "`at` must lie inside the campaign window (at or after `starts_at`, before `ends_at`)");
                return None;
            }
            if let Some(prev) = steps.last().map(|s: &ReleaseStep| s.at)
                && t.timestamp_millis() <= prev
            {
                p.at(a.pos, "the releases of a `schedule` must be in time order, each after the one before");
                return None;
            }
            Some(t.timestamp_millis())
        });
        let units = f
            .required("units", p)
            .and_then(|u| integer(u, "units", 1, Stock::MAX, p));
        match (at, units) {
            (Some(at), Some(units)) => steps.push(ReleaseStep { at, units }),
            _ => ok = false,
        }
    }
    if !ok {
        return None;
    }
    let total: u128 = steps.iter().map(|s| u128::from(s.units)).sum();
    if let Some(Stock::Limited(stock)) = stock
        && total != u128::from(stock)
    {
        p.at(
            n.pos,
            format!("the `schedule` releases {total} units but the stock is {stock}: its units must add up to the stock"),
        );
        return None;
    }
    Some(Release::Schedule(steps))
}

fn stock(n: &Node, p: &mut Problems) -> Option<Stock> {
    match &n.value {
        Value::Str(s) if s == "unlimited" => Some(Stock::Unlimited),
        Value::Str(s) if s == "codes" => Some(Stock::Codes),
        Value::Int(_) => integer(n, "stock", 0, Stock::MAX, p).map(Stock::Limited),
        _ => {
            p.at(
                n.pos,
                format!(
                    "`stock` must be an integer from 0 to {}, \"unlimited\" or \"codes\"",
                    Stock::MAX
                ),
            );
            None
        }
    }
}

/// `{amount, currency}` of a mapping named `what` (`value`, `budget`).
fn money(n: &Node, what: &'static str, p: &mut Problems) -> Option<Money> {
    let f = Fields::of(n, what, VALUE_KEYS, p)?;
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
                truncate_for_message(s)
            ),
        );
        return None;
    };
    if peek_str(&items[i], "stock") != Some("unlimited") {
        p.at(
            n.pos,
            format!(
                "the fallback prize `{}` must have `stock: unlimited`",
                truncate_for_message(s)
            ),
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

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"id: t
name: T
timezone: UTC
starts_at: 2026-11-01T00:00:00Z
ends_at: 2026-11-05T00:00:00Z
limits:
  spins_per_user: 3
  spins_per_user_per_day: 1
fallback: none
prizes:
  - id: gold
    name: Gold
    weight: 1
    stock: 10
    value: { amount: "5.00", currency: INR }
  - id: none
    name: None
    weight: 9
    stock: unlimited
    value: { amount: "0", currency: INR }
"#;

    /// Replaces line `line` (1-based) of the valid file with `with` and expects
    /// exactly one problem, at the column where `at` starts in that line (or at
    /// `column` when `at` is empty), whose message contains `says`.
    fn case(line: usize, with: &str, at: &str, says: &str) {
        let mut lines: Vec<&str> = VALID.lines().collect();
        lines[line - 1] = with;
        let yaml = lines.join("\n");
        let problems = parse_campaign(&yaml).expect_err(with);
        assert_eq!(problems.len(), 1, "{with}: {problems:?}");
        let d = &problems[0];
        let column = with.find(at).map(|i| i as u64 + 1).unwrap();
        assert_eq!((d.line, d.column), (line as u64, column), "{with}: {d:?}");
        assert!(d.message.contains(says), "{with}: {}", d.message);
    }

    #[test]
    fn the_valid_file_is_valid() {
        let c = parse_campaign(VALID).unwrap();
        assert_eq!(c.prizes.len(), 2);
        assert_eq!(c.fallback, 1);
        assert_eq!(c.limits.spins_per_user_per_day, Some(1));
        assert_eq!(c.expected_users, DEFAULT_EXPECTED_USERS);
        assert_eq!(c.total_weight(), 10);
    }

    #[test]
    fn every_rule_reports_its_position() {
        case(1, "id: Bad_Id", "Bad", "campaign id");
        case(2, "name: \"\"", "\"", "`name` must be 1 to 200");
        case(3, "timezone: Mars/Base", "Mars", "IANA time zone");
        case(4, "starts_at: 2026-11-01", "2026", "RFC 3339");
        case(
            5,
            "ends_at: 2026-10-01T00:00:00Z",
            "2026",
            "after `starts_at`",
        );
        case(
            5,
            "ends_at: 2028-01-01T00:00:00Z",
            "2028",
            "shorter than 366 days",
        );
        case(7, "  spins_per_user: 0", "0", "between 1 and 1000000");
        case(
            8,
            "  spins_per_user_per_day: 1001",
            "1001",
            "between 1 and 1000",
        );
        case(
            8,
            "  spins_per_user_per_day: once",
            "once",
            "must be an integer",
        );
        case(9, "fallback: gold", "gold", "must have `stock: unlimited`");
        case(9, "fallback: ghost", "ghost", "not one of the prizes");
        case(11, "  - id: Gold", "Gold", "prize id");
        case(13, "    weight: 0", "0", "between 1 and");
        case(13, "    weight: 1.5", "1.5", "must be an integer");
        case(14, "    stock: -1", "-1", "between 0 and");
        case(14, "    stock: lots", "lots", "\"unlimited\"");
        case(
            15,
            "    value: { amount: 5.00, currency: INR }",
            "5.00",
            "quoted decimal",
        );
        case(
            15,
            "    value: { amount: \"5.123456\", currency: INR }",
            "\"5.1",
            "decimal places",
        );
        case(
            15,
            "    value: { amount: \"-5\", currency: INR }",
            "\"-5",
            "non-negative",
        );
        case(
            15,
            "    value: { amount: \"5\", currency: rupees }",
            "rupees",
            "three-letter",
        );
        case(
            15,
            "    value: { amount: \"5\", currency: INR, tax: 1 }",
            "tax",
            "unknown key `tax`",
        );
    }

    /// The gold prize of the valid file with `release` lines after its value,
    /// and `budget` lines before `fallback`: the problems as (line, column, message).
    fn paced(release: &str, budget: &str) -> Result<Campaign, Vec<(u64, u64, String)>> {
        let yaml = VALID
            .replace("fallback: none\n", &format!("{budget}fallback: none\n"))
            .replace(
                "    value: { amount: \"5.00\", currency: INR }\n",
                &format!("    value: {{ amount: \"5.00\", currency: INR }}\n{release}"),
            );
        parse_campaign(&yaml).map_err(|ps| {
            ps.into_iter()
                .map(|d| (d.line, d.column, d.message))
                .collect()
        })
    }

    fn one_problem(r: Result<Campaign, Vec<(u64, u64, String)>>, at: (u64, u64), says: &str) {
        let problems = r.expect_err(says);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let (line, column, message) = &problems[0];
        assert_eq!((*line, *column), at, "{message}");
        assert!(message.contains(says), "{message}");
    }

    #[test]
    fn releases_and_budgets_parse() {
        let c = paced("    release: even\n", "").unwrap();
        assert_eq!(c.prizes[0].release, Release::Even);
        assert_eq!(c.prizes[1].release, Release::AllAtStart);
        let c = paced("    release: { per_day: 3 }\n", "").unwrap();
        assert_eq!(c.prizes[0].release, Release::PerDay(3));
        let c = paced(
            "    release:\n      schedule:\n        - { at: 2026-11-01T20:00:00+05:30, units: 4 }\n        - { at: 2026-11-02T20:00:00+05:30, units: 6 }\n",
            "budget: { amount: \"1500000.00\", currency: INR }\n",
        )
        .unwrap();
        let Release::Schedule(steps) = &c.prizes[0].release else {
            panic!("{:?}", c.prizes[0].release);
        };
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].units, 4);
        assert_eq!(
            steps[0].at,
            DateTime::parse_from_rfc3339("2026-11-01T14:30:00Z")
                .unwrap()
                .timestamp_millis()
        );
        assert_eq!(c.budget.unwrap().units(), 15_000_000_000);
        assert_eq!(
            paced("    release: all_at_start\n", "").unwrap().prizes[0].release,
            Release::AllAtStart
        );
    }

    #[test]
    fn a_schedule_of_the_most_releases_fits_in_a_file() {
        let steps: String = (0..Release::MAX_STEPS)
            .map(|i| {
                format!(
                    "        - {{ at: 2026-11-0{}T{:02}:{:02}:00Z, units: 1 }}\n",
                    1 + i / 600,
                    (i % 600) / 60 + 1,
                    i % 60
                )
            })
            .collect();
        let yaml = VALID.replace("    stock: 10\n", "    stock: 1000\n");
        let yaml = yaml.replace(
            "    value: { amount: \"5.00\", currency: INR }\n",
            &format!("    value: {{ amount: \"5.00\", currency: INR }}\n    release:\n      schedule:\n{steps}"),
        );
        let c = parse_campaign(&yaml).unwrap();
        assert!(
            matches!(&c.prizes[0].release, Release::Schedule(s) if s.len() == Release::MAX_STEPS)
        );
    }

    #[test]
    fn every_release_and_budget_rule_reports_its_position() {
        // The gold prize's value is line 15; its `release` starts on line 16.
        one_problem(
            paced("    release: often\n", ""),
            (16, 14),
            "must be all_at_start, even",
        );
        one_problem(
            paced("    release: { per_day: 0 }\n", ""),
            (16, 25),
            "between 1 and",
        );
        one_problem(
            paced("    release: { per_day: 1, schedule: [] }\n", ""),
            (16, 14),
            "exactly one of `per_day` and `schedule`",
        );
        one_problem(
            paced("    release: { weekly: 1 }\n", ""),
            (16, 16),
            "unknown key `weekly`",
        );
        one_problem(
            paced("    release: { schedule: [] }\n", ""),
            (16, 26),
            "1 to 1000 releases",
        );
        one_problem(
            paced(
                "    release: { schedule: [{ at: 2026-12-01T00:00:00Z, units: 10 }] }\n",
                "",
            ),
            (16, 33),
            "inside the campaign window",
        );
        one_problem(
            paced(
                "    release: { schedule: [{ at: 2026-11-02T00:00:00Z, units: 4 }, { at: 2026-11-01T00:00:00Z, units: 6 }] }\n",
                "",
            ),
            (16, 73),
            "in time order",
        );
        one_problem(
            paced(
                "    release: { schedule: [{ at: 2026-11-02T00:00:00Z, units: 4 }] }\n",
                "",
            ),
            (16, 26),
            "releases 4 units but the stock is 10",
        );
        one_problem(
            paced(
                "    release: { schedule: [{ at: 2026-11-02T00:00:00Z, units: 0 }] }\n",
                "",
            ),
            (16, 62),
            "between 1 and",
        );
        one_problem(
            paced(
                "    release: { schedule: [{ at: tomorrow, units: 10 }] }\n",
                "",
            ),
            (16, 33),
            "RFC 3339",
        );
        // Pacing needs a stock to pace: the fallback is unlimited.
        let yaml = VALID.replace(
            "    value: { amount: \"0\", currency: INR }\n",
            "    value: { amount: \"0\", currency: INR }\n    release: even\n",
        );
        let problems = parse_campaign(&yaml).unwrap_err();
        assert_eq!(
            (problems[0].line, problems[0].column),
            (21, 14),
            "{problems:?}"
        );
        assert!(
            problems[0].message.contains("stock is unlimited"),
            "{problems:?}"
        );
        // The budget: a money value, and every prize in its currency.
        // (The budget's line moves the prizes down by one.)
        let problems = paced("", "budget: { amount: \"10.00\", currency: USD }\n").unwrap_err();
        let at: Vec<(u64, u64)> = problems.iter().map(|(l, c, _)| (*l, *c)).collect();
        assert_eq!(at, [(16, 12), (21, 12)], "{problems:?}");
        assert!(
            problems[0].2.contains("not the budget's USD"),
            "{problems:?}"
        );
        one_problem(
            paced("", "budget: 1000\n"),
            (9, 9),
            "`budget` must be a mapping",
        );
        one_problem(
            paced("", "budget: { amount: \"900000000000\", currency: INR }\n"),
            (9, 19),
            "must be below",
        );
    }

    #[test]
    fn unknown_and_missing_keys() {
        let problems = parse_campaign(&format!("{VALID}colour: red\n")).unwrap_err();
        assert_eq!((problems[0].line, problems[0].column), (21, 1));
        assert!(problems[0].message.contains("unknown key `colour`"));

        let without_name = VALID.replace("name: T\n", "");
        let problems = parse_campaign(&without_name).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!((problems[0].line, problems[0].column), (1, 1));
        assert!(problems[0].message.contains("missing required key `name`"));
    }

    #[test]
    fn wrong_shapes() {
        let limits = VALID.replace(
            "limits:\n  spins_per_user: 3\n  spins_per_user_per_day: 1\n",
            "limits: 3\n",
        );
        let problems = parse_campaign(&limits).unwrap_err();
        assert_eq!(
            (problems[0].line, problems[0].column),
            (6, 9),
            "{problems:?}"
        );
        assert!(problems[0].message.contains("`limits` must be a mapping"));
        let prizes = format!("{}prizes: []\n", VALID.split("prizes:").next().unwrap());
        let problems = parse_campaign(&prizes).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|d| d.message.contains("1 to 64 prizes")),
            "{problems:?}"
        );
    }

    #[test]
    fn duplicate_prize_ids() {
        let yaml = VALID.replace("  - id: none", "  - id: gold");
        let problems = parse_campaign(&yaml).unwrap_err();
        let dup = problems
            .iter()
            .find(|d| d.message.contains("appears twice"))
            .unwrap();
        assert_eq!((dup.line, dup.column), (16, 5));
    }

    #[test]
    fn weights_must_sum_below_2_pow_53() {
        let yaml = VALID.replace("weight: 9\n", "weight: 9007199254740991\n");
        let problems = parse_campaign(&yaml).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("less than 2^53"));
        assert_eq!(problems[0].line, 11);
    }

    #[test]
    fn all_problems_are_reported_together_in_file_order() {
        let yaml = VALID
            .replace("id: t\n", "id: T\n")
            .replace("weight: 1\n", "weight: 0\n")
            .replace(
                "currency: INR }\n  - id: none",
                "currency: inr }\n  - id: none",
            );
        let problems = parse_campaign(&yaml).unwrap_err();
        let lines: Vec<u64> = problems.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![1, 13, 15], "{problems:?}");
    }

    #[test]
    fn names_are_one_line_without_control_characters() {
        // `\uXXXX` escapes of a double-quoted YAML string: separators YAML 1.2
        // does not break lines at, C0/C1 controls, and NUL (PostgreSQL text
        // cannot hold it).
        for bad in [0x2028, 0x2029, 0x85, 0x0, 0x1b, 0x7f] {
            let escaped = format!("\\u{bad:04X}");
            for (line, key) in [(2, "name"), (12, "    name")] {
                let with = format!("{key}: \"a{escaped}b\"");
                case(line, &with, "\"", "on one line");
                let problems =
                    parse_campaign(&VALID.replace(VALID.lines().nth(line - 1).unwrap(), &with))
                        .unwrap_err();
                let shown = format!("U+{bad:04X}");
                assert!(problems[0].message.contains(&shown), "{problems:?}");
            }
        }
    }

    #[test]
    fn echoed_values_are_short() {
        let long = "b".repeat(50_000);
        let yaml = VALID
            .replace("  - id: none", &format!("  - id: {long}"))
            .replace("  - id: gold", &format!("  - id: {long}"))
            .replace("fallback: none", &format!("fallback: {long}"))
            .replace("\"5.00\"", &format!("\"5.{}\"", "0".repeat(50_000)));
        let problems = parse_campaign(&yaml).unwrap_err();
        assert!(problems.len() >= 3, "{problems:?}");
        for d in &problems {
            assert!(d.message.len() < 200, "{}", d.message);
        }
    }

    #[test]
    fn the_examples_load() {
        for yaml in [
            include_str!("../../config/campaigns/diwali-2026.yaml"),
            include_str!("../../config/campaigns/mega-sale.yaml"),
            include_str!("../../config/campaigns/order-spins.yaml"),
        ] {
            parse_campaign(yaml).unwrap();
        }
    }

    #[test]
    fn earned_spins_are_optional_and_checked() {
        assert_eq!(parse_campaign(VALID).unwrap().earned_spins, None);
        let with =
            |block: &str| VALID.replace("fallback: none\n", &format!("{block}fallback: none\n"));
        let c = parse_campaign(&with("earned_spins:\n  free: 2\n  expire: end_of_day\n")).unwrap();
        assert_eq!(
            c.earned_spins,
            Some(EarnedSpins {
                free: 2,
                expire: Expiry::EndOfDay
            })
        );
        let c = parse_campaign(&with("earned_spins: {}\n")).unwrap();
        assert_eq!(
            c.earned_spins,
            Some(EarnedSpins {
                free: 0,
                expire: Expiry::CampaignEnd
            })
        );
        let problems =
            parse_campaign(&with("earned_spins:\n  free: -1\n  expire: tomorrow\n")).unwrap_err();
        let found: Vec<(u64, u64)> = problems.iter().map(|d| (d.line, d.column)).collect();
        assert_eq!(found, vec![(10, 9), (11, 11)], "{problems:?}");
        assert!(problems[1].message.contains("campaign_end or end_of_day"));
        let problems = parse_campaign(&with("earned_spins:\n  spare: 1\n")).unwrap_err();
        assert!(
            problems[0].message.contains("unknown key `spare`"),
            "{problems:?}"
        );
    }

    #[test]
    fn the_optional_fields() {
        let yaml = VALID.replace(
            "timezone: UTC\n",
            "timezone: Asia/Kolkata\npaused: true\nexpected_users: 5000\n",
        );
        let c = parse_campaign(&yaml).unwrap();
        assert!(c.paused);
        assert_eq!(c.expected_users, 5000);
        assert_eq!(c.timezone, chrono_tz::Asia::Kolkata);
        assert_eq!(c.pools, 1);
        let pooled = VALID.replace("timezone: UTC\n", "timezone: UTC\npools: 3\n");
        assert_eq!(parse_campaign(&pooled).unwrap().pools, 3);
        for (pools, says) in [
            ("0", "`pools` must be between 1 and 64"),
            ("65", "`pools` must be between 1 and 64"),
            ("two", "`pools` must be an integer"),
        ] {
            let bad = VALID.replace(
                "timezone: UTC\n",
                &format!("timezone: UTC\npools: {pools}\n"),
            );
            let problems = parse_campaign(&bad).unwrap_err();
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].message.contains(says), "{problems:?}");
            assert_eq!(
                (problems[0].line, problems[0].column),
                (4, 8),
                "{problems:?}"
            );
        }
        let bad = VALID.replace("timezone: UTC\n", "timezone: UTC\npaused: maybe\n");
        assert!(
            parse_campaign(&bad).unwrap_err()[0]
                .message
                .contains("true or false")
        );
    }
}
