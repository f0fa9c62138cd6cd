//! A keyed rate limiter whose memory is bounded.
//!
//! governor keeps one small state per key and can drop the keys whose state is
//! indistinguishable from a fresh one (`retain_recent`). Under a flood of distinct
//! keys that is not enough on its own: between two clean-ups the map grows with
//! every new key. So the table has a hard size: when it is full, stale keys are
//! dropped (at most once per [`PRUNE_EVERY`], since a clean-up walks the whole
//! table), and while it is still full every request of this layer is refused.
//! A full table of live keys means the replica is being flooded far beyond what it
//! could serve anyway; refusing keeps its memory flat until the flood's keys go
//! stale. With the default limits that takes more distinct keys per second than a
//! replica can accept requests.

use super::settings::RateSettings;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shortest time between two clean-ups of a full table.
pub const PRUNE_EVERY: Duration = Duration::from_millis(100);

/// Why a keyed limiter refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// This key is over its rate; it may try again after this long.
    OverRate(Duration),
    /// The table of keys is full of live keys.
    TableFull,
}

pub struct KeyedLimiter<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    clock: DefaultClock,
    max_keys: usize,
    last_prune: Mutex<Option<Instant>>,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// `None` when the layer is turned off.
    pub fn new(s: &RateSettings) -> Option<Self> {
        s.enabled.then(|| KeyedLimiter {
            limiter: RateLimiter::keyed(quota(s)),
            clock: DefaultClock::default(),
            max_keys: s.max_keys.max(1),
            last_prune: Mutex::new(None),
        })
    }

    pub fn check(&self, key: &K) -> Result<(), Refused> {
        if self.limiter.len() >= self.max_keys && !self.prune() {
            return Err(Refused::TableFull);
        }
        self.limiter
            .check_key(key)
            .map_err(|not_until| Refused::OverRate(not_until.wait_time_from(self.clock.now())))
    }

    /// As [`KeyedLimiter::check`] for `n` requests at once (a batch). More than
    /// the burst can never pass: it waits as long as a full burst takes.
    pub fn check_n(&self, key: &K, n: u32) -> Result<(), Refused> {
        let Some(n) = std::num::NonZeroU32::new(n) else {
            return Ok(());
        };
        if self.limiter.len() >= self.max_keys && !self.prune() {
            return Err(Refused::TableFull);
        }
        match self.limiter.check_key_n(key, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Refused::OverRate(
                not_until.wait_time_from(self.clock.now()),
            )),
            Err(_) => Err(Refused::OverRate(Duration::from_secs(1))),
        }
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }

    /// Drops stale keys unless another thread did so lately; true when the table
    /// has room afterwards.
    fn prune(&self) -> bool {
        if let Ok(mut last) = self.last_prune.try_lock() {
            let due = last.is_none_or(|t| t.elapsed() >= PRUNE_EVERY);
            if due {
                self.limiter.retain_recent();
                self.limiter.shrink_to_fit();
                *last = Some(Instant::now());
            }
        }
        self.limiter.len() < self.max_keys
    }
}

/// governor's quota for `s` (zero values are raised to one).
pub fn quota(s: &RateSettings) -> Quota {
    let nz = |n: u32| NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(nz(s.per_second)).allow_burst(nz(s.burst))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(per_second: u32, burst: u32, max_keys: usize) -> RateSettings {
        RateSettings {
            enabled: true,
            per_second,
            burst,
            max_keys,
        }
    }

    #[test]
    fn a_key_gets_its_burst_then_a_retry_time() {
        let l = KeyedLimiter::new(&settings(2, 3, 10)).unwrap();
        for _ in 0..3 {
            assert_eq!(l.check(&"a"), Ok(()));
        }
        match l.check(&"a") {
            Err(Refused::OverRate(wait)) => assert!(wait <= Duration::from_millis(500)),
            other => panic!("expected over rate, got {other:?}"),
        }
        assert_eq!(l.check(&"b"), Ok(()), "another key has its own budget");
    }

    #[test]
    fn a_disabled_layer_does_not_exist() {
        let mut s = settings(1, 1, 10);
        s.enabled = false;
        assert!(KeyedLimiter::<u32>::new(&s).is_none());
    }

    #[test]
    fn a_flood_of_live_keys_never_grows_the_table_past_its_bound() {
        // One request an hour per key: no key ever goes stale during the test.
        let l = KeyedLimiter::new(&settings(1, 1, 1_000)).unwrap();
        let mut refused = 0;
        for k in 0..100_000u64 {
            if l.check(&k) == Err(Refused::TableFull) {
                refused += 1;
            }
            assert!(l.len() <= 1_000, "table grew to {}", l.len());
        }
        assert_eq!(refused, 99_000);
    }

    #[test]
    fn stale_keys_make_room_for_new_ones() {
        // 1,000 per second per key: a key used once is stale after a millisecond.
        let l = KeyedLimiter::new(&settings(1_000, 1, 1_000)).unwrap();
        let mut allowed = 0;
        for k in 0..10_000u64 {
            if k % 1_000 == 999 {
                std::thread::sleep(PRUNE_EVERY + Duration::from_millis(5));
            }
            if l.check(&k).is_ok() {
                allowed += 1;
            }
            assert!(l.len() <= 1_000);
        }
        assert_eq!(allowed, 10_000, "pruning made room every time");
    }
}
