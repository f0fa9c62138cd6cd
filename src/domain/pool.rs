//! A campaign's sub-pools: the complete campaign states a hot campaign is
//! split into so that a Redis Cluster spreads its draws over several primaries
//! (docs/ARCHITECTURE.md, "Sub-pools").
//!
//! A campaign of `count` pools keeps pool `i`'s state under the hash tag
//! `{C~i~s}`, placed in the `i`-th `1/count` of the cluster's slots
//! ([`Pool::tag`]); a campaign of one pool keeps it under `{C}`, as before
//! pools existed. (`~` is not allowed in a campaign id, so a tag is
//! unambiguous.)
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

    /// The Redis hash tag of this pool of campaign `id`, without the braces:
    /// `C` for the only pool, else `C~i~s`, with `s` the first number that
    /// puts the tag's cluster slot in the pool's own `1/count` of the slot
    /// space ([`Pool::slot_range`]). A cluster made by `redis-cli --cluster
    /// create` gives each primary an equal run of slots, so `count` pools over
    /// as many primaries (or a multiple) land one (or as many) on each.
    pub fn tag(self, id: &CampaignId) -> String {
        if self.count == 1 {
            return id.as_str().to_owned();
        }
        let range = self.slot_range();
        // About `count` tries on average; 2^20 misses in a row would take a
        // CRC16 far from uniform, and then the last one tried serves.
        let mut tag = String::new();
        for salt in 0..(1u32 << 20) {
            tag = format!("{id}~{}~{salt}", self.index);
            if range.contains(&cluster_slot(&tag)) {
                break;
            }
        }
        tag
    }

    /// The cluster slots this pool's tag is placed in: the middle half of the
    /// pool's own `1/count` of 0..16384, clear of its edges, where a cluster's
    /// even split may round either way.
    pub fn slot_range(self) -> std::ops::Range<u16> {
        let (i, n) = (self.index, self.count);
        let at = |k: u32| (k * u32::from(SLOTS) / n) as u16;
        let (start, end) = (at(i), at(i + 1));
        let margin = (end - start) / 4;
        start + margin..end - margin
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

/// Redis Cluster's hash slots.
pub const SLOTS: u16 = 16384;

/// The cluster slot of a key whose hash tag is all of `tag` (as `CLUSTER
/// KEYSLOT pw:{tag}:meta` answers).
pub fn cluster_slot(tag: &str) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(tag.as_bytes()) % SLOTS
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

    /// CLUSTER KEYSLOT's answers (Redis 7.0): the redis.io example and the
    /// tags of this module's own test campaign.
    #[test]
    fn slots_are_redis_clusters() {
        assert_eq!(cluster_slot("somekey"), 11058);
        assert_eq!(cluster_slot("hash_tag"), 2515);
    }

    /// Each pool's tag lies in its own part of the slot space, so three pools
    /// over a three-primary cluster (0-5460, 5461-10922, 10923-16383) are one
    /// on each primary; the tag is a function of the id and the pool alone.
    #[test]
    fn tags_spread_over_the_slot_space() {
        for id in ["diwali-2026", "a", "x-1", &"z".repeat(64)] {
            let id = CampaignId::parse(id).unwrap();
            for count in [2, 3, 16, Pool::MAX_COUNT] {
                let mut ranges = Vec::new();
                for p in Pool::all(count) {
                    let tag = p.tag(&id);
                    assert!(tag.starts_with(&format!("{id}~{}~", p.index())), "{tag}");
                    assert!(
                        p.slot_range().contains(&cluster_slot(&tag)),
                        "{tag} of {count}"
                    );
                    assert_eq!(tag, p.tag(&id));
                    ranges.push(p.slot_range());
                }
                assert!(ranges.windows(2).all(|w| w[0].end < w[1].start));
                assert!(
                    ranges
                        .iter()
                        .all(|r| r.len() >= usize::from(SLOTS) / 2 / count as usize - 1)
                );
            }
            let primaries = [0..5461, 5461..10923, 10923..SLOTS];
            for (p, primary) in Pool::all(3).zip(primaries) {
                assert!(
                    primary.contains(&cluster_slot(&p.tag(&id))),
                    "pool {}",
                    p.index()
                );
            }
        }
    }

    #[test]
    fn pools_and_tags() {
        let id = CampaignId::parse("diwali-2026").unwrap();
        assert_eq!(Pool::ONLY.tag(&id), "diwali-2026");
        assert!(
            Pool::new(2, 3)
                .unwrap()
                .tag(&id)
                .starts_with("diwali-2026~2~")
        );
        assert_eq!(Pool::new(3, 3), None);
        assert_eq!(Pool::new(0, Pool::MAX_COUNT + 1), None);
        assert_eq!(Pool::all(0).count(), 0);
        assert_eq!(Pool::all(65).count(), 0);
        assert_eq!(Pool::all(3).map(Pool::index).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(Pool::of_hash(7, 3), Pool::new(1, 3));
        assert_eq!(Pool::of_hash(7, 0), None);
    }
}
