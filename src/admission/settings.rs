//! The `admission` section of the service config: every in-process layer that
//! answers before Redis, each with its own switch.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdmissionSettings {
    /// Per client address (before authentication). Shoppers on mobile networks
    /// share carrier NAT addresses, so the default lets thousands of requests per
    /// second from one address through: it stops a runaway script, not a crowd.
    pub per_ip: RateSettings,
    /// Per user (the token's `sub`) on the spin endpoint: a person spins a wheel a
    /// few times a second at most; retries count.
    pub per_user: RateSettings,
    /// Per caller (the token's `sub`) on the grant endpoints: the order service's
    /// grants per second, each item of a batch counted. A batch larger than the
    /// burst never passes.
    pub per_granter: RateSettings,
    /// Spins this replica lets through to Redis per second: size it to what Redis
    /// can serve divided by the number of replicas (see docs/operations.md, "Capacity model").
    pub global: RateSettings,
    /// Proxies (addresses or CIDR blocks) whose `X-Forwarded-For` is believed. A
    /// request from anywhere else is keyed by its peer address, whatever it claims.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub quota_cache: QuotaCacheSettings,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        AdmissionSettings {
            per_ip: RateSettings {
                enabled: true,
                per_second: 5_000,
                burst: 10_000,
                max_keys: 100_000,
            },
            per_user: RateSettings {
                enabled: true,
                per_second: 2,
                burst: 10,
                max_keys: 200_000,
            },
            per_granter: RateSettings {
                enabled: true,
                per_second: 20_000,
                burst: 20_000,
                max_keys: 1_000,
            },
            global: RateSettings {
                enabled: true,
                per_second: 50_000,
                burst: 5_000,
                max_keys: 1,
            },
            trusted_proxies: Vec::new(),
            quota_cache: QuotaCacheSettings::default(),
        }
    }
}

/// One rate limiter: a steady rate and a burst (GCRA, as governor implements it).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateSettings {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Sustained requests per second per key.
    pub per_second: u32,
    /// Requests a key may make at once after a quiet spell.
    pub burst: u32,
    /// Most keys tracked at once (memory bound); unused by the global limiter.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

fn yes() -> bool {
    true
}
fn default_max_keys() -> usize {
    100_000
}

/// Users whose spin quota is used up, remembered so their next clicks are
/// answered without Redis.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaCacheSettings {
    pub enabled: bool,
    /// Most users remembered at once (memory bound; about 100 bytes each).
    pub max_entries: u64,
    /// A user out of their whole-campaign quota is remembered this long at most
    /// (a daily quota is remembered until the day resets, never longer).
    pub max_ttl_secs: u64,
    /// How often each replica checks whether a campaign was re-applied (a live
    /// quota change forgets the campaign's remembered users).
    pub version_check_ms: u64,
}

impl Default for QuotaCacheSettings {
    fn default() -> Self {
        QuotaCacheSettings {
            enabled: true,
            max_entries: 1_000_000,
            max_ttl_secs: 600,
            version_check_ms: 1_000,
        }
    }
}
