//! The campaign as one run of the simulation draws it: one reference model
//! per sub-pool, each of its pool's share of the campaign
//! (`Campaign::pool_share`), and a shopper always drawing in the same pool, as
//! the service routes them. The pools do not help each other: a pool that has
//! given out its share of a prize falls back while another still has units of
//! it, which is the drift from the configured odds that `pools` costs. With
//! one pool, the wheel is the campaign's own model.

use crate::draw::model::Model;

pub(super) struct Wheel {
    pools: Vec<Model>,
}

impl Wheel {
    /// The wheel of one model per pool, in pool order (at least one:
    /// `Options::pool_models` makes them).
    pub(super) fn new(pools: Vec<Model>) -> Self {
        debug_assert!(!pools.is_empty(), "a campaign has at least one pool");
        Wheel { pools }
    }

    /// What every pool has alike: the window, days, limits, odds and values.
    pub(super) fn config(&self) -> &Model {
        &self.pools[0]
    }

    pub(super) fn count(&self) -> usize {
        self.pools.len()
    }

    /// The pool of simulated shopper `user` (an index drawn uniformly, so
    /// the pools have as many shoppers each, give or take one).
    pub(super) fn pool_of(&self, user: usize) -> usize {
        user % self.pools.len()
    }

    pub(super) fn pool(&self, k: usize) -> &Model {
        &self.pools[k]
    }

    pub(super) fn pool_mut(&mut self, k: usize) -> &mut Model {
        &mut self.pools[k]
    }

    /// Units of prize `i` awarded by all pools.
    pub(super) fn awarded(&self, i: usize) -> u64 {
        self.pools.iter().map(|m| m.prizes[i].awarded).sum()
    }

    /// Units of prize `i` left in all pools (None: unlimited).
    pub(super) fn remaining(&self, i: usize) -> Option<u64> {
        self.pools.iter().map(|m| m.prizes[i].remaining).sum()
    }

    /// Value units awarded by all pools.
    pub(super) fn spent(&self) -> u64 {
        self.pools.iter().map(|m| m.spent).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Options, Resume};
    use super::*;
    use crate::campaign::parse_campaign;

    fn options(codes: u64) -> Options {
        Options {
            codes: [("coupon".to_owned(), codes)].into(),
            ..super::super::tests::options(100, 1, super::super::Arrival::Uniform)
        }
    }

    #[test]
    fn the_pools_hold_the_campaigns_stock_codes_and_budget_between_them() {
        let c = parse_campaign(
            "id: w\nname: W\nstarts_at: 2026-11-01T00:00:00Z\nends_at: 2026-11-02T00:00:00Z\n\
             limits:\n  spins_per_user: 3\npools: 3\nbudget: {amount: \"1000.00\", currency: INR}\nfallback: none\nprizes:\n\
             \x20 - {id: gold, name: G, weight: 1, stock: 10, value: {amount: \"50.00\", currency: INR}}\n\
             \x20 - {id: coupon, name: C, weight: 5, stock: codes, value: {amount: \"1.00\", currency: INR}}\n\
             \x20 - {id: none, name: N, weight: 94, stock: unlimited, value: {amount: \"0\", currency: INR}}\n",
        )
        .unwrap();
        let resume = Resume {
            at_ms: c.starts_at.timestamp_millis(),
            prizes: [("gold".to_owned(), (4, Some(6)))].into(),
            spent: 2_000_000,
        };
        for resume in [None, Some(&resume)] {
            let w = Wheel::new(options(1000).pool_models(&c, resume));
            assert_eq!(w.count(), 3);
            let whole = options(1000).model_at(&c, resume);
            for i in 0..whole.prizes.len() {
                assert_eq!(w.remaining(i), whole.prizes[i].remaining, "prize {i}");
                assert_eq!(w.awarded(i), whole.prizes[i].awarded, "prize {i}");
            }
            assert_eq!(w.spent(), whole.spent);
            let budget: u64 = (0..3).filter_map(|k| w.pool(k).budget).sum();
            assert_eq!(Some(budget), whole.budget);
        }
        assert_eq!(
            (0..7)
                .map(|u| Wheel::new(options(0).pool_models(&c, None)).pool_of(u))
                .collect::<Vec<_>>(),
            [0, 1, 2, 0, 1, 2, 0]
        );
    }
}

#[cfg(test)]
mod pooled_sales {
    use super::super::tests::options;
    use super::super::{Arrival, simulate};
    use crate::campaign::parse_campaign;

    fn campaign(pools: u32, gold: u64) -> crate::campaign::Campaign {
        parse_campaign(&format!(
            "id: pooled\nname: P\nstarts_at: 2026-11-01T00:00:00Z\nends_at: 2026-11-02T00:00:00Z\n\
             limits:\n  spins_per_user: 10\npools: {pools}\nbudget: {{amount: \"2000.00\", currency: INR}}\nfallback: none\nprizes:\n\
             \x20 - {{id: gold, name: G, weight: 5, stock: {gold}, value: {{amount: \"10.00\", currency: INR}}}}\n\
             \x20 - {{id: silver, name: S, weight: 20, stock: 300, value: {{amount: \"1.00\", currency: INR}}}}\n\
             \x20 - {{id: none, name: N, weight: 75, stock: unlimited, value: {{amount: \"0\", currency: INR}}}}\n"
        ))
        .unwrap()
    }

    /// Enough attempts that every pool gives out all it holds: the pools
    /// award the campaign's stock to the unit between them, never more, and
    /// the first pool runs out of gold while the others still have some.
    #[test]
    fn three_pools_award_the_whole_stock_and_no_more() {
        let c = campaign(3, 40);
        let r = simulate(&c, &options(600, 10, Arrival::Uniform));
        assert_eq!(r.pools, 3);
        let gold = &r.prizes[0];
        assert_eq!((gold.awarded_median, gold.ran_out_share), (40, 1.0));
        assert_eq!(r.prizes[1].awarded_median, 300);
        let first_out = gold.first_pool_out_at_secs.unwrap();
        assert!(first_out <= gold.ran_out_at_secs.unwrap(), "{gold:?}");
        // The others hold about two thirds of gold when the first runs dry.
        let left = gold.left_in_other_pools.unwrap();
        assert!((1..=27).contains(&left), "{gold:?}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["pools"], 3);
        let spent: rust_decimal::Decimal = r.budget.as_ref().unwrap().awarded_median;
        assert!(spent <= rust_decimal::Decimal::from(2000), "{spent}");
    }

    /// Two units of gold over three pools: one pool has none from the start
    /// (its shoppers never win gold), which the report says.
    #[test]
    fn fewer_units_than_pools_leave_a_pool_without_the_prize() {
        let r = simulate(&campaign(3, 2), &options(600, 10, Arrival::Uniform));
        let gold = &r.prizes[0];
        assert_eq!(gold.awarded_median, 2);
        assert_eq!(gold.first_pool_out_at_secs, Some(0.0));
        assert_eq!(gold.left_in_other_pools, Some(2));
    }

    /// One pool is the campaign's own model: nothing about pools in the report.
    #[test]
    fn one_pool_reports_no_pools() {
        let r = simulate(&campaign(1, 40), &options(600, 10, Arrival::Uniform));
        assert_eq!(r.prizes[0].first_pool_out_at_secs, None);
        let json = serde_json::to_value(&r).unwrap();
        assert!(json.get("pools").is_none());
        assert!(json["prizes"][0].get("first_pool_out_at_secs").is_none());
    }
}
