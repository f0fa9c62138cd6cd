//! The Redis key layout of a campaign (docs/ARCHITECTURE.md, "Redis keys").
//!
//! Every key of a pool of campaign `C` starts with `pw:{T}:`, where `T` is the
//! pool's tag (`C` for a campaign of one pool, `C~i~s` for pool `i` of several:
//! `domain::Pool`); the `{T}` hash tag puts all of a pool's keys in one cluster
//! slot so a script can touch them together. The table says `{C}` for `{T}`.
//!
//! | key                      | type       | holds                                         |
//! |--------------------------|------------|-----------------------------------------------|
//! | `pw:{C}:meta`            | hash       | config, prize table, version, bucket count    |
//! | `pw:{C}:stock`           | hash       | remaining units per prize (-1 = unlimited)    |
//! | `pw:{C}:initial`         | hash       | configured units per prize (-1 = unlimited)   |
//! | `pw:{C}:awarded`         | hash       | units awarded per prize                       |
//! | `pw:{C}:days`            | sorted set | start of each campaign day, unix ms           |
//! | `pw:{C}:rel:<prize>`     | sorted set | a prize's release schedule: units released by each instant (ms) |
//! | `pw:{C}:results`         | stream     | draws and applies: the settlement outbox      |
//! | `pw:{C}:dead`            | stream     | entries settlement could not parse            |
//! | `pw:{C}:u:<b>`           | hash       | per-user state (counters, earned spins), bucket b |
//! | `pw:{C}:g:<b>`           | hash       | grant records of bucket b, by grant id        |
//! | `pw:{C}:i:<day>:<b>`     | hash       | idempotency records of UTC day `day`, bucket b |
//! | `pw:{C}:codes:<prize>`   | set        | a code prize's pool of codes                  |
//! | `pw:{C}:codes-awarded`   | set        | every code handed out                         |
//! | `pw:{C}:codes-withdrawn` | set        | every code withdrawn                          |
//! | `pw:{C}:codes-stats`     | hash       | `<prize>:loaded`, `<prize>:withdrawn`         |

use crate::domain::{CampaignId, Pool};

#[derive(Debug, Clone)]
pub struct CampaignKeys {
    pub meta: String,
    pub stock: String,
    pub initial: String,
    pub awarded: String,
    pub days: String,
    pub results: String,
    pub dead: String,
    pub codes_awarded: String,
    pub codes_withdrawn: String,
    pub codes_stats: String,
    /// `pw:{T}:`, which every key of the pool starts with.
    prefix: String,
}

impl CampaignKeys {
    /// The keys of a campaign of one pool (tag `{C}`).
    pub fn new(id: &CampaignId) -> Self {
        Self::of(id, Pool::ONLY)
    }

    /// The keys of pool `pool` of campaign `id`.
    pub fn of(id: &CampaignId, pool: Pool) -> Self {
        // A campaign of one pool (every spin today) formats no tag first.
        let p = if pool.count() == 1 {
            format!("pw:{{{id}}}:")
        } else {
            format!("pw:{{{}}}:", pool.tag(id))
        };
        CampaignKeys {
            meta: format!("{p}meta"),
            stock: format!("{p}stock"),
            initial: format!("{p}initial"),
            awarded: format!("{p}awarded"),
            days: format!("{p}days"),
            results: format!("{p}results"),
            dead: format!("{p}dead"),
            codes_awarded: format!("{p}codes-awarded"),
            codes_withdrawn: format!("{p}codes-withdrawn"),
            codes_stats: format!("{p}codes-stats"),
            prefix: p,
        }
    }

    /// The bucket hash of user counters for bucket `b`.
    pub fn users(&self, b: u64) -> String {
        format!("{}u:{b}", self.prefix)
    }

    /// The grant records of bucket `b`.
    pub fn grants(&self, b: u64) -> String {
        format!("{}g:{b}", self.prefix)
    }

    /// The idempotency records of UTC day `utc_day` (days since the epoch), bucket `b`.
    pub fn records(&self, utc_day: i64, b: u64) -> String {
        format!("{}i:{utc_day}:{b}", self.prefix)
    }

    /// The release schedule of prize `prize` (score: instant in ms, member:
    /// units released by then).
    pub fn release(&self, prize: &str) -> String {
        format!("{}rel:{prize}", self.prefix)
    }

    /// The pool of codes of prize `prize` (lua/codes.lua, lua/spin.lua).
    pub fn code_pool(&self, prize: &str) -> String {
        format!("{}codes:{prize}", self.prefix)
    }

    /// Pattern matching every key of the pool (for tests and tooling).
    pub fn pattern(&self) -> String {
        format!("{}*", self.prefix)
    }

    /// `pw:{T}:`, which every key of the pool starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// Number of bucket hashes for a campaign expecting `expected_users` users:
/// about [`USERS_PER_BUCKET`] users each, a power of two.
pub fn bucket_count(expected_users: u64) -> u64 {
    expected_users
        .div_ceil(USERS_PER_BUCKET)
        .max(1)
        .next_power_of_two()
        .min(1 << 24)
}

/// Users per bucket hash. Redis keeps a hash in its compact listpack encoding up to
/// `hash-max-listpack-entries` (512 in config/redis.conf); a draw scans its user's
/// bucket, so smaller buckets are faster and larger ones cost less memory per user.
/// See the memory figures in docs/operations.md ("Redis: layout, memory and durability").
pub const USERS_PER_BUCKET: u64 = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_hash_tag() {
        let k = CampaignKeys::new(&CampaignId::parse("diwali-2026").unwrap());
        assert_eq!(k.meta, "pw:{diwali-2026}:meta");
        assert_eq!(k.results, "pw:{diwali-2026}:results");
        assert_eq!(k.users(3), "pw:{diwali-2026}:u:3");
        assert_eq!(k.records(20_000, 3), "pw:{diwali-2026}:i:20000:3");
        assert_eq!(k.pattern(), "pw:{diwali-2026}:*");
    }

    #[test]
    fn a_pool_of_several_has_its_own_tag() {
        let id = CampaignId::parse("diwali-2026").unwrap();
        let pool = Pool::new(2, 3).unwrap();
        let (k, tag) = (CampaignKeys::of(&id, pool), pool.tag(&id));
        assert!(tag.starts_with("diwali-2026~2~"), "{tag}");
        assert_eq!(k.meta, format!("pw:{{{tag}}}:meta"));
        assert_eq!(k.code_pool("gold"), format!("pw:{{{tag}}}:codes:gold"));
        assert_eq!(k.release("gold"), format!("pw:{{{tag}}}:rel:gold"));
        assert_eq!(k.grants(0), format!("pw:{{{tag}}}:g:0"));
    }

    #[test]
    fn buckets() {
        assert_eq!(bucket_count(1), 1);
        assert_eq!(bucket_count(256), 1);
        assert_eq!(bucket_count(257), 2);
        assert_eq!(bucket_count(1_000_000), 4096);
    }
}
