//! Load absorption: the in-process layers that answer before Redis, cheapest
//! first (docs/api.md, "Absorbing load"; docs/ARCHITECTURE.md, "A spin").
//!
//! 1. per client address, before the token is even verified;
//! 2. per user (the token's `sub`); on the grant endpoints, per caller (the
//!    order service's `sub`), each grant of a batch counted;
//! 3. the quota cache: users Redis already refused, until their quota can change;
//! 4. a global admission budget per replica, sized to what Redis can serve;
//! 5. a bound on in-flight Redis calls ([`crate::store::redis::RedisStore`]),
//!    where waiting too long answers 503 at once instead of queuing.
//!
//! Layers 1–4 refuse with 429 and `Retry-After` without touching Redis. None of
//! them decides a spin: the exact per-user quotas stay in the Lua script, across
//! every replica. Each layer can be turned off, and every keyed table is bounded.

pub mod client_ip;
pub mod keyed;
pub mod quota_cache;
pub mod settings;

use client_ip::{IpKey, TrustedProxies};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, RateLimiter};
use keyed::{KeyedLimiter, Refused};
use quota_cache::QuotaCache;
pub use settings::AdmissionSettings;
use std::time::Duration;

use crate::domain::UserId;

/// Which layer refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    PerIp,
    PerUser,
    PerGranter,
    Global,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::PerIp => "per_ip",
            Layer::PerUser => "per_user",
            Layer::PerGranter => "per_granter",
            Layer::Global => "global",
        }
    }
}

/// A request refused by a rate limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub layer: Layer,
    /// When a retry can pass this layer.
    pub retry_after: Duration,
}

pub struct Admission {
    per_ip: Option<KeyedLimiter<IpKey>>,
    per_user: Option<KeyedLimiter<UserId>>,
    per_granter: Option<KeyedLimiter<UserId>>,
    global: Option<DefaultDirectRateLimiter>,
    clock: DefaultClock,
    pub proxies: TrustedProxies,
    pub quota_cache: Option<QuotaCache>,
}

impl Admission {
    pub fn new(s: &AdmissionSettings) -> Self {
        Admission {
            per_ip: KeyedLimiter::new(&s.per_ip),
            per_user: KeyedLimiter::new(&s.per_user),
            per_granter: KeyedLimiter::new(&s.per_granter),
            global: s
                .global
                .enabled
                .then(|| RateLimiter::direct(keyed::quota(&s.global))),
            clock: DefaultClock::default(),
            proxies: TrustedProxies::new(s.trusted_proxies.clone()),
            quota_cache: QuotaCache::new(&s.quota_cache),
        }
    }

    pub fn check_ip(&self, ip: &IpKey) -> Result<(), Limited> {
        check_keyed(self.per_ip.as_ref(), ip, Layer::PerIp)
    }

    pub fn check_user(&self, user: &UserId) -> Result<(), Limited> {
        check_keyed(self.per_user.as_ref(), user, Layer::PerUser)
    }

    /// `grants` grants by the caller `granter` (a batch counts each).
    pub fn check_granter(&self, granter: &UserId, grants: u32) -> Result<(), Limited> {
        let Some(l) = &self.per_granter else {
            return Ok(());
        };
        l.check_n(granter, grants)
            .map_err(|r| refused(r, Layer::PerGranter))
    }

    pub fn check_global(&self) -> Result<(), Limited> {
        match &self.global {
            None => Ok(()),
            Some(l) => l.check().map_err(|not_until| Limited {
                layer: Layer::Global,
                retry_after: not_until.wait_time_from(self.clock.now()),
            }),
        }
    }
}

fn check_keyed<K: std::hash::Hash + Eq + Clone>(
    limiter: Option<&KeyedLimiter<K>>,
    key: &K,
    layer: Layer,
) -> Result<(), Limited> {
    let Some(l) = limiter else { return Ok(()) };
    l.check(key).map_err(|r| refused(r, layer))
}

fn refused(r: Refused, layer: Layer) -> Limited {
    Limited {
        layer,
        retry_after: match r {
            Refused::OverRate(wait) => wait,
            Refused::TableFull => keyed::PRUNE_EVERY,
        },
    }
}
