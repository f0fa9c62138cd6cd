//! Each prize as the draw treats it at an instant: stock, paced releases and
//! the budget, by the model's rule (`draw::model`), with its odds now. One
//! function for every view of it: the shopper's `GET /v1/campaigns/{id}`, the
//! admin view and the gauge sampler (`startup::sampler`).

use crate::campaign::model::Release;
use crate::draw::model::{Held, PrizeState, odds};
use crate::draw::release::{Window, next_release, released};
use crate::store::redis::live::DrawState;
use crate::store::redis::table::TableEntry;

/// What the draw decides from, borrowed from a Redis read.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// Redis's clock, Unix ms.
    pub now_ms: i64,
    /// The canonical config JSON (`campaign::canonical`).
    pub config: &'a serde_json::Value,
    /// The prize table with units left (-1 = unlimited) and units awarded.
    pub prizes: &'a [(TableEntry, i64, u64)],
    /// The budget in value units, if there is one.
    pub budget: Option<u64>,
    /// Value units awarded so far (meta `bs`).
    pub spent: u64,
    pub day_starts: &'a [i64],
}

impl<'a> From<&'a DrawState> for Inputs<'a> {
    fn from(v: &'a DrawState) -> Self {
        Inputs {
            now_ms: v.now_ms,
            config: &v.config,
            prizes: &v.prizes,
            budget: v.budget,
            spent: v.spent,
            day_starts: &v.day_starts,
        }
    }
}

impl Inputs<'_> {
    /// The budget left in value units (none below 0), if there is a budget.
    pub fn budget_left(&self) -> Option<u64> {
        crate::draw::model::budget_left(self.budget, self.spent)
    }

    /// The config's `starts_at` or `ends_at` in Unix ms (0 if unreadable).
    /// The campaign at `now_ms`: `paused`, `scheduled`, `ended` or `live`
    /// (what lua/spin.lua's step 2 answers, in that order of checks).
    pub fn status(&self) -> &'static str {
        let paused = self
            .config
            .get("paused")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        if paused {
            "paused"
        } else if self.now_ms < self.millis("starts_at") {
            "scheduled"
        } else if self.now_ms >= self.millis("ends_at") {
            "ended"
        } else {
            "live"
        }
    }

    fn millis(&self, key: &str) -> i64 {
        self.config
            .get(key)
            .and_then(|v| v.as_str())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis())
            .unwrap_or_default()
    }
}

/// One prize of the table now.
#[derive(Debug, Clone)]
pub struct PrizeNow {
    pub state: PrizeState,
    /// `Ok` when the draw may award it now, else why not.
    pub held: Result<(), Held>,
    /// The share of the total weight it is drawn with now (see `draw::model::odds`).
    pub odds: f64,
    /// Units its release rule has released by now (the configured stock when
    /// not paced); `None` for an unlimited prize.
    pub released: Option<u64>,
    /// A paced prize with units still to come: when the next unit beyond those
    /// released or awarded is released (Unix ms).
    pub next_release_ms: Option<i64>,
}

impl PrizeNow {
    /// While the prize waits for its next unit (held back as not released):
    /// when that unit is released (Unix ms). The shopper's `next_release_at`.
    pub fn waiting_until_ms(&self) -> Option<i64> {
        (self.held == Err(Held::NotReleased))
            .then_some(self.next_release_ms)
            .flatten()
    }

    /// Why it is held back, as the API names it.
    pub fn held_reason(&self) -> Option<&'static str> {
        match self.held {
            Ok(()) => None,
            Err(Held::NoStock) => Some("no_stock"),
            Err(Held::NotReleased) => Some("not_released"),
            Err(Held::OverBudget) => Some("over_budget"),
        }
    }
}

/// Every prize of the table, in table order (retired ones included), as the
/// draw treats it at `inputs.now_ms`.
pub fn prizes_now(inputs: &Inputs) -> Vec<PrizeNow> {
    let configured = inputs
        .config
        .get("prizes")
        .and_then(|p| p.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let of = |id: &str| configured.iter().find(|p| p["id"].as_str() == Some(id));
    let fallback_id = inputs.config.get("fallback").and_then(|f| f.as_str());
    let fallback = inputs
        .prizes
        .iter()
        .position(|(e, _, _)| Some(e.id.as_str()) == fallback_id)
        .unwrap_or_default();
    let window = Window {
        start_ms: inputs.millis("starts_at"),
        end_ms: inputs.millis("ends_at"),
        day_starts: inputs.day_starts,
    };
    let budget_left = inputs.budget_left();
    let states: Vec<PrizeState> = inputs
        .prizes
        .iter()
        .map(|(entry, stock, awarded)| {
            let cfg = of(&entry.id);
            PrizeState {
                entry: entry.clone(),
                remaining: u64::try_from(*stock).ok(),
                awarded: *awarded,
                // A code prize's curve spreads its codes loaded: awarded + pool.
                configured: match cfg.map(|p| &p["stock"]) {
                    Some(serde_json::Value::String(s)) if s == "codes" => {
                        awarded + u64::try_from(*stock).unwrap_or(0)
                    }
                    other => other.and_then(|s| s.as_u64()).unwrap_or(0),
                },
                release: cfg
                    .and_then(|p| p.get("release"))
                    .and_then(|r| serde_json::from_value::<Release>(r.clone()).ok())
                    .unwrap_or_default(),
            }
        })
        .collect();
    let held: Vec<Result<(), Held>> = states
        .iter()
        .enumerate()
        .map(|(i, p)| p.held(i == fallback, budget_left, window, inputs.now_ms))
        .collect();
    let weights: Vec<u64> = states.iter().map(|p| p.entry.w).collect();
    let drawable: Vec<bool> = held.iter().map(Result::is_ok).collect();
    let shares = odds(&weights, fallback, &drawable);
    states
        .into_iter()
        .zip(held)
        .zip(shares)
        .map(|((state, held), odds)| {
            let released = state
                .remaining
                .map(|_| released(&state.release, state.configured, window, inputs.now_ms));
            // Unit k + 1, k the units out or drawn already: for a prize
            // waiting for its next unit (awarded >= released) that is the one
            // it waits for.
            let next_release_ms = released
                .filter(|_| state.release.is_paced())
                .and_then(|out| {
                    next_release(
                        &state.release,
                        state.configured,
                        out.max(state.awarded),
                        window,
                    )
                });
            PrizeNow {
                state,
                held,
                odds,
                released,
                next_release_ms,
            }
        })
        .collect()
}

/// An instant as the API writes it: RFC 3339, milliseconds, UTC.
pub fn rfc3339_ms(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(id: &str, w: u64, v: Option<u64>) -> TableEntry {
        TableEntry {
            id: id.into(),
            name: id.into(),
            w,
            amt: "1.00".into(),
            cur: "INR".into(),
            v,
            pe: None,
            pd: None,
            ps: None,
            c: None,
        }
    }

    /// A 10 s window; `gold` 4 units released evenly (one every 2.5 s), 1
    /// awarded; `none` the fallback.
    fn config() -> serde_json::Value {
        json!({
            "starts_at": "1970-01-01T00:00:00.000Z",
            "ends_at": "1970-01-01T00:00:10.000Z",
            "fallback": "none",
            "prizes": [
                {"id": "gold", "stock": 4, "release": "even"},
                {"id": "none", "stock": "unlimited"},
            ],
        })
    }

    #[test]
    fn released_units_and_the_next_release_follow_the_curve() {
        let config = config();
        let prizes = [
            (entry("gold", 1, Some(10_000)), 3, 1),
            (entry("none", 3, None), -1, 5),
        ];
        let at = |now_ms| {
            prizes_now(&Inputs {
                now_ms,
                config: &config,
                prizes: &prizes,
                budget: None,
                spent: 0,
                day_starts: &[0],
            })
        };
        // At 3 s: units 1 and 2 are out, 1 awarded: drawable, the next unit at 5 s.
        let now = at(3_000);
        assert_eq!(now[0].released, Some(2));
        assert_eq!(now[0].held, Ok(()));
        assert_eq!(now[0].next_release_ms, Some(5_000));
        assert_eq!(now[0].waiting_until_ms(), None, "not waiting");
        assert_eq!(now[0].odds, 0.25);
        assert_eq!(now[1].released, None, "unlimited");
        assert_eq!(now[1].next_release_ms, None);
        // At 1 s: only unit 1, already awarded: waiting for unit 2 at 2.5 s.
        let now = at(1_000);
        assert_eq!(now[0].released, Some(1));
        assert_eq!(now[0].held, Err(Held::NotReleased));
        assert_eq!(now[0].held_reason(), Some("not_released"));
        assert_eq!(now[0].waiting_until_ms(), Some(2_500));
        assert_eq!((now[0].odds, now[1].odds), (0.0, 1.0));
        // At the end: all 4 out, nothing more to come.
        let now = at(9_999);
        assert_eq!(now[0].released, Some(4));
        assert_eq!(now[0].next_release_ms, None);
    }

    #[test]
    fn the_budget_left_holds_back_what_it_cannot_pay() {
        let config = config();
        let prizes = [
            (entry("gold", 1, Some(10_000)), 3, 1),
            (entry("none", 3, None), -1, 5),
        ];
        let inputs = Inputs {
            now_ms: 3_000,
            config: &config,
            prizes: &prizes,
            budget: Some(15_000),
            spent: 10_000,
            day_starts: &[0],
        };
        assert_eq!(inputs.budget_left(), Some(5_000));
        let now = prizes_now(&inputs);
        assert_eq!(now[0].held_reason(), Some("over_budget"));
        assert_eq!(now[1].odds, 1.0);
        let below = Inputs {
            spent: 20_000,
            ..inputs
        };
        assert_eq!(
            below.budget_left(),
            Some(0),
            "a budget below what was spent"
        );
    }

    #[test]
    fn instants_are_written_in_utc_with_milliseconds() {
        assert_eq!(
            rfc3339_ms(2_500).as_deref(),
            Some("1970-01-01T00:00:02.500Z")
        );
    }
}
