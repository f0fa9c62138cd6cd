//! A campaign's share for one of its sub-pools (`domain::Pool`): the campaign
//! as that pool's state is applied, drawn and modelled.
//!
//! Each pool gets [`Pool::share`] of every bounded prize's stock, of its
//! release curve and of the budget, so that the parts sum to the whole to the
//! unit; the limits, odds, window and values are the campaign's own. Prize
//! `P`'s odd units go first to the pool after `salt(P)`, so that a wheel of
//! many small prizes does not leave all of them in pool 0.

use super::days::day_starts;
use super::model::{Campaign, Release, ReleaseStep, Stock};
use crate::domain::{Money, Pool};

impl Campaign {
    /// This campaign as pool `pool` holds it. With one pool, the campaign itself.
    pub fn pool_share(&self, pool: Pool) -> Campaign {
        let mut c = self.clone();
        if pool.count() == 1 {
            return c;
        }
        let days = day_starts(self);
        for p in &mut c.prizes {
            let salt = prize_salt(p.id.as_str());
            // A code prize's stock is its codes, shared out as they are
            // loaded: its curve is cut by them, not by a configured stock.
            let stock = match p.stock {
                Stock::Limited(n) => {
                    p.stock = Stock::Limited(pool.share(n, salt));
                    n
                }
                Stock::Codes => u64::MAX,
                Stock::Unlimited => continue,
            };
            p.release = match &p.release {
                // A curve over the pool's own stock: units released by any
                // instant add up over the pools to within one unit per pool.
                Release::AllAtStart | Release::Even => p.release.clone(),
                // The share of the campaign's units released by each day (a
                // share of the daily units would strand a pool's stock when
                // there are fewer daily units than pools).
                Release::PerDay(n) => {
                    let by_day = per_day_steps(&days, *n, stock);
                    Release::Schedule(schedule_share(&by_day, pool, salt))
                }
                Release::Schedule(steps) => Release::Schedule(schedule_share(steps, pool, salt)),
            };
        }
        if let Some(b) = &mut c.budget {
            b.amount = Money::amount_of_units(pool.share(b.units(), BUDGET_SALT));
        }
        c.expected_users = self.expected_users.div_ceil(u64::from(pool.count()));
        c
    }
}

/// A `per_day` release of `n` units a day of `stock` as the schedule it is:
/// a step at each day's start while units remain (at most one a day: a
/// window is under 366 days, within `Release::MAX_STEPS`).
fn per_day_steps(days: &[i64], n: u64, stock: u64) -> Vec<ReleaseStep> {
    let mut by_then = 0u64;
    days.iter()
        .map_while(|&at| {
            let units = n.min(stock.saturating_sub(by_then));
            by_then += units;
            (units > 0).then_some(ReleaseStep { at, units })
        })
        .collect()
}

/// The pool's part of each step: the share of the units released by each
/// step less the share of those released by the one before, so that the
/// steps of all pools add up to the campaign's at every instant.
fn schedule_share(steps: &[ReleaseStep], pool: Pool, salt: u64) -> Vec<ReleaseStep> {
    let mut by_then = 0u64;
    steps
        .iter()
        .map(|s| {
            let before = pool.share(by_then, salt);
            by_then += s.units;
            ReleaseStep {
                at: s.at,
                units: pool.share(by_then, salt) - before,
            }
        })
        .collect()
}

/// Where the budget's odd value units start.
pub const BUDGET_SALT: u64 = 0;

/// Where a prize's odd units start (FNV-1a of its id): fixed by the id alone,
/// so that reordering the prizes of the file moves no unit between pools.
/// A code prize's codes are shared out with it too.
pub fn prize_salt(prize: &str) -> u64 {
    prize.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::load::parse_campaign;

    fn campaign(release: &str, budget: &str) -> Campaign {
        parse_campaign(&format!(
            "id: pooled\nname: Pooled\nstarts_at: 2026-11-01T00:00:00Z\nends_at: 2026-11-05T00:00:00Z\n\
             limits:\n  spins_per_user: 5\n{budget}fallback: none\nprizes:\n\
             \x20 - {{id: gold, name: G, weight: 1, stock: 20, value: {{amount: \"500.00\", currency: INR}}{release}}}\n\
             \x20 - {{id: silver, name: S, weight: 20, stock: 1501, value: {{amount: \"10.50\", currency: INR}}}}\n\
             \x20 - {{id: none, name: N, weight: 79, stock: unlimited, value: {{amount: \"0\", currency: INR}}}}\n"
        ))
        .unwrap()
    }

    fn limited(c: &Campaign, prize: usize) -> u64 {
        match c.prizes[prize].stock {
            Stock::Limited(n) => n,
            ref other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stock_and_budget_add_up_over_the_pools() {
        let c = campaign("", "budget: {amount: \"10000.0001\", currency: INR}\n");
        for count in [1, 2, 3, 7, 64] {
            let shares: Vec<Campaign> = Pool::all(count).map(|p| c.pool_share(p)).collect();
            for prize in [0, 1] {
                let sum: u64 = shares.iter().map(|s| limited(s, prize)).sum();
                assert_eq!(sum, limited(&c, prize), "prize {prize} over {count}");
            }
            let budget: u64 = shares
                .iter()
                .map(|s| s.budget.as_ref().unwrap().units())
                .sum();
            assert_eq!(budget, c.budget.as_ref().unwrap().units());
            for s in &shares {
                assert_eq!(s.prizes[2].stock, Stock::Unlimited);
                assert_eq!(s.limits, c.limits);
                assert_eq!(s.prizes[0].weight, 1);
            }
        }
        assert_eq!(c.pool_share(Pool::ONLY), c);
    }

    #[test]
    fn a_schedule_adds_up_at_every_step() {
        let c = campaign(
            ", release: {schedule: [{at: \"2026-11-01T00:00:00Z\", units: 7}, {at: \"2026-11-02T00:00:00Z\", units: 13}]}",
            "",
        );
        let Release::Schedule(whole) = &c.prizes[0].release else {
            panic!("{:?}", c.prizes[0].release)
        };
        let shares: Vec<Vec<ReleaseStep>> = Pool::all(3)
            .map(|p| match c.pool_share(p).prizes[0].release.clone() {
                Release::Schedule(s) => s,
                other => panic!("{other:?}"),
            })
            .collect();
        for (i, step) in whole.iter().enumerate() {
            let units: u64 = shares.iter().map(|s| s[i].units).sum();
            assert_eq!(units, step.units, "step {i}");
            assert!(shares.iter().all(|s| s[i].at == step.at));
        }
        // Each pool's schedule adds up to its own stock.
        for (p, s) in Pool::all(3).zip(&shares) {
            let stock = limited(&c.pool_share(p), 0);
            assert_eq!(s.iter().map(|s| s.units).sum::<u64>(), stock);
        }
    }

    /// 2 units a day over 3 pools: every day, the pools have released the
    /// campaign's units between them, and by the end all of each pool's stock
    /// (a share of the 2 daily units would have left one pool with none a day).
    #[test]
    fn per_day_releases_add_up_every_day() {
        use crate::draw::release::{Window, released};
        let c = campaign(", release: {per_day: 6}", "");
        let days = day_starts(&c);
        let w = Window {
            start_ms: c.starts_at.timestamp_millis(),
            end_ms: c.ends_at.timestamp_millis(),
            day_starts: &days,
        };
        let shares: Vec<Campaign> = Pool::all(7).map(|p| c.pool_share(p)).collect();
        for (d, &day) in days.iter().enumerate() {
            for now in [day, day + 3_600_000] {
                let whole = released(&c.prizes[0].release, 20, w, now);
                let pools: u64 = shares
                    .iter()
                    .map(|s| released(&s.prizes[0].release, limited(s, 0), w, now))
                    .sum();
                assert_eq!(pools, whole, "day {d}");
                assert_eq!(whole, (6 * (d as u64 + 1)).min(20));
            }
        }
        let end = w.end_ms - 1;
        for s in &shares {
            assert_eq!(
                released(&s.prizes[0].release, limited(s, 0), w, end),
                limited(s, 0)
            );
        }
    }

    #[test]
    fn salts_are_fixed_by_the_id() {
        assert_eq!(prize_salt("gold"), prize_salt("gold"));
        assert_ne!(prize_salt("gold"), prize_salt("silver"));
        // FNV-1a's published offset basis for the empty input.
        assert_eq!(prize_salt(""), 0xcbf2_9ce4_8422_2325);
    }
}
