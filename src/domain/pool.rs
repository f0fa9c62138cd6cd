//! A campaign's sub-pools: the complete campaign states a hot campaign is
//! split into so that a Redis Cluster spreads its draws over several primaries
//! (docs/ARCHITECTURE.md, "Sub-pools").
//!
//! A campaign of `count` pools keeps pool `i`'s state under the hash tag
//! `{C~i}`; a campaign of one pool keeps it under `{C}`, as before pools
//! existed. (`~` is not allowed in a campaign id, so the tag is unambiguous.)
//! Every quantity the campaign shares out (a prize's stock, its release
//! curve, the budget) is divided by [`Pool::share`], whose parts sum to the
//! whole to the unit.

use super::CampaignId;

/// One of a campaign's pools: `index` in `0..count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pool {
    index: u32,
    count: u32,
}

impl Pool {
    /// Most pools a campaign may have: a three-primary cluster needs 3, the
    /// capacity model's largest sale 16; more only thins each pool's stock.
    pub const MAX_COUNT: u32 = 64;

    /// The only pool of a one-pool campaign (tag `{C}`).
    pub const ONLY: Pool = Pool { index: 0, count: 1 };

    /// Pool `index` of `count`, if `index < count <= MAX_COUNT`.
    pub fn new(index: u32, count: u32) -> Option<Pool> {
        (index < count && count <= Self::MAX_COUNT).then_some(Pool { index, count })
    }

    /// Every pool of a campaign of `count` pools (none if `count` is out of
    /// range).
    pub fn all(count: u32) -> impl Iterator<Item = Pool> {
        let count = if (1..=Self::MAX_COUNT).contains(&count) {
            count
        } else {
            0
        };
        (0..count).map(move |index| Pool { index, count })
    }

    /// The pool of the campaign of `count` pools that `hash` (a uniform
    /// 64-bit hash of the shopper) lands in.
    pub fn of_hash(hash: u64, count: u32) -> Option<Pool> {
        let count_ok = (1..=Self::MAX_COUNT).contains(&count);
        count_ok.then(|| Pool {
            index: (hash % u64::from(count)) as u32,
            count,
        })
    }

    pub fn index(self) -> u32 {
        self.index
    }

    pub fn count(self) -> u32 {
        self.count
    }

    /// The Redis hash tag of this pool of campaign `id`, without the braces.
    pub fn tag(self, id: &CampaignId) -> String {
        if self.count == 1 {
            id.as_str().to_owned()
        } else {
            format!("{id}~{}", self.index)
        }
    }

    /// This pool's part of `total` units shared out among all pools: each pool
    /// gets `total / count`, and the `total % count` units left over go one
    /// each to the pools that follow pool `salt % count` in a ring (so that
    /// prizes with different salts leave their odd units in different pools).
    /// The parts sum to `total` exactly, differ by at most one, and grow by
    /// one unit in exactly one pool when `total` grows by one: a share of a
    /// release curve is a release curve, and a live top-up or cut is a delta
    /// per pool. A prize with fewer units than pools has one unit in each of
    /// `total` pools and none in the others.
    pub fn share(self, total: u64, salt: u64) -> u64 {
        let n = u64::from(self.count);
        let rank = (u64::from(self.index) + n - salt % n) % n;
        total / n + u64::from(rank < total % n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(total: u64, count: u32, salt: u64) -> Vec<u64> {
        Pool::all(count).map(|p| p.share(total, salt)).collect()
    }

    #[test]
    fn shares_sum_to_the_whole_and_differ_by_at_most_one() {
        for count in 1..=Pool::MAX_COUNT {
            for total in (0..200).chain([1_000_003, u64::MAX / 3, 1 << 53]) {
                for salt in [0, 1, 7, u64::MAX] {
                    let s = shares(total, count, salt);
                    assert_eq!(s.len(), count as usize);
                    let sum: u128 = s.iter().map(|&x| u128::from(x)).sum();
                    assert_eq!(sum, u128::from(total), "{total} over {count}, salt {salt}");
                    let (lo, hi) = (s.iter().min().unwrap(), s.iter().max().unwrap());
                    assert!(hi - lo <= 1, "{s:?}");
                }
            }
        }
    }

    #[test]
    fn one_more_unit_lands_in_exactly_one_pool() {
        for count in [1, 2, 3, 5, 16, 64] {
            for salt in [0, 2, 9] {
                for total in 0..300 {
                    let (a, b) = (shares(total, count, salt), shares(total + 1, count, salt));
                    let grown: Vec<u64> = a.iter().zip(&b).map(|(x, y)| y - x).collect();
                    assert_eq!(grown.iter().sum::<u64>(), 1, "{a:?} -> {b:?}");
                }
            }
        }
    }

    #[test]
    fn odd_units_start_at_the_salts_pool() {
        assert_eq!(shares(2, 3, 0), vec![1, 1, 0]);
        assert_eq!(shares(2, 3, 1), vec![0, 1, 1]);
        assert_eq!(shares(2, 3, 2), vec![1, 0, 1]);
        assert_eq!(shares(7, 1, 5), vec![7]);
    }

    #[test]
    fn pools_and_tags() {
        let id = CampaignId::parse("diwali-2026").unwrap();
        assert_eq!(Pool::ONLY.tag(&id), "diwali-2026");
        assert_eq!(Pool::new(2, 3).unwrap().tag(&id), "diwali-2026~2");
        assert_eq!(Pool::new(3, 3), None);
        assert_eq!(Pool::new(0, Pool::MAX_COUNT + 1), None);
        assert_eq!(Pool::all(0).count(), 0);
        assert_eq!(Pool::all(65).count(), 0);
        assert_eq!(Pool::all(3).map(Pool::index).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(Pool::of_hash(7, 3), Pool::new(1, 3));
        assert_eq!(Pool::of_hash(7, 0), None);
    }
}
