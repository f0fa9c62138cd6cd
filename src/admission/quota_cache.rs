//! Users whose spin quota is used up, remembered by this replica so their next
//! clicks are refused without a Redis call.
//!
//! The cache only ever refuses, and only what Redis refused:
//! - an entry is written only from Redis's own quota answer;
//! - a daily refusal expires when the campaign day resets (the deadline is taken
//!   from the moment the request started, so it never outlives Redis's reset);
//!   a whole-campaign refusal after at most `max_ttl_secs`;
//! - a re-apply of the campaign (which may raise the quota) forgets the campaign's
//!   entries: each replica reads every remembered campaign's version every
//!   `version_check_ms`, and an entry written under an older generation no longer
//!   counts. Until that check runs (one interval at most) a raised quota is not
//!   yet seen here;
//! - a user with no spins left (earned spins) may be granted one on any replica:
//!   every grant moves the campaign's grants counter (meta `gv`), read with the
//!   version, and a move forgets the campaign's `no_spins_left` entries (not the
//!   others: a grant raises no limit). A user granted a spin is refused here for
//!   one check interval at most.
//!
//! What it cannot know: a retry of an *earlier* spin's Idempotency-Key from a user
//! it remembers is refused, where Redis would replay the earlier answer (the
//! reward itself is drawn and settled either way). Clients retry a key before
//! sending a new one, so this needs a client that spun again while its previous
//! spin was unanswered; turn the cache off where that matters more than the load.

use super::settings::QuotaCacheSettings;
use crate::domain::{CampaignId, UserId};
use moka::Expiry;
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Most campaigns whose versions are watched (campaign ids come from Redis
/// answers, so this is the number of live campaigns, never a client's input).
const MAX_CAMPAIGNS: usize = 10_000;

/// A remembered refusal, as the API answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachedRefusal {
    QuotaExhausted,
    DailyQuotaExhausted { retry_after: Duration },
    NoSpinsLeft,
}

/// A refusal Redis gave, to remember.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    QuotaExhausted,
    /// With the time to the day's reset Redis gave.
    DailyQuotaExhausted {
        reset_in: Duration,
    },
    NoSpinsLeft,
}

/// A campaign's generations: read before calling Redis, handed back with
/// Redis's answer to [`QuotaCache::remember`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Generation {
    /// Moves with each new version of the campaign.
    pub config: u64,
    /// Moves when any grant was made.
    pub grants: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// When the entry is forgotten: the day's reset, or `max_ttl` after the
    /// refusal, whichever comes first.
    until: Instant,
    /// A daily refusal: when the campaign's day resets, as Redis said. A
    /// cached answer's `Retry-After` is the time to it, as Redis's would be.
    reset: Option<Instant>,
    generation: Generation,
    /// A `no_spins_left` refusal (it also ends with the grants generation).
    no_spins: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Watched {
    generation: Generation,
    /// The campaign's `ver` in Redis when last read (`Some(None)`: no campaign);
    /// `None` before the first read.
    version: Option<Option<i64>>,
    /// The campaign's grants counter `gv` when last read, likewise.
    grants: Option<Option<i64>>,
}

pub struct QuotaCache {
    users: moka::sync::Cache<String, Entry>,
    campaigns: RwLock<HashMap<CampaignId, Watched>>,
    max_ttl: Duration,
}

struct UntilDeadline;

impl Expiry<String, Entry> for UntilDeadline {
    fn expire_after_create(&self, _: &String, e: &Entry, now: Instant) -> Option<Duration> {
        Some(e.until.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        _: &String,
        e: &Entry,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(e.until.saturating_duration_since(now))
    }
}

fn cache_key(campaign: &CampaignId, user: &UserId) -> String {
    // Campaign ids are [a-z0-9-]: the separator cannot occur in one.
    format!("{campaign}/{}", user.as_str())
}

impl QuotaCache {
    /// `None` when the cache is turned off.
    pub fn new(s: &QuotaCacheSettings) -> Option<Self> {
        s.enabled.then(|| QuotaCache {
            users: moka::sync::Cache::builder()
                .max_capacity(s.max_entries)
                .expire_after(UntilDeadline)
                .build(),
            campaigns: RwLock::new(HashMap::new()),
            max_ttl: Duration::from_secs(s.max_ttl_secs.max(1)),
        })
    }

    /// The campaign's current generation; read it before calling Redis and hand
    /// it back to [`QuotaCache::remember`].
    pub fn generation(&self, campaign: &CampaignId) -> Generation {
        self.campaigns
            .read()
            .ok()
            .and_then(|m| m.get(campaign).map(|w| w.generation))
            .unwrap_or_default()
    }

    /// The refusal Redis gave this user, if it still holds.
    pub fn lookup(&self, campaign: &CampaignId, user: &UserId) -> Option<CachedRefusal> {
        let e = self.users.get(&cache_key(campaign, user))?;
        let left = e.until.checked_duration_since(Instant::now())?;
        let now = self.generation(campaign);
        if left.is_zero()
            || e.generation.config != now.config
            || (e.no_spins && e.generation.grants != now.grants)
        {
            return None;
        }
        Some(match e.reset {
            Some(reset) => CachedRefusal::DailyQuotaExhausted {
                retry_after: reset.saturating_duration_since(Instant::now()),
            },
            None if e.no_spins => CachedRefusal::NoSpinsLeft,
            None => CachedRefusal::QuotaExhausted,
        })
    }

    /// Remembers Redis's refusal of a request that started at `started` under
    /// `generation`.
    pub fn remember(
        &self,
        campaign: &CampaignId,
        user: &UserId,
        generation: Generation,
        started: Instant,
        refusal: Refusal,
    ) {
        let daily_reset_in = match refusal {
            Refusal::DailyQuotaExhausted { reset_in } => Some(reset_in),
            _ => None,
        };
        let ttl = daily_reset_in.map_or(self.max_ttl, |d| d.min(self.max_ttl));
        let entry = Entry {
            until: started + ttl,
            reset: daily_reset_in.map(|d| started + d),
            generation,
            no_spins: refusal == Refusal::NoSpinsLeft,
        };
        self.watch(campaign);
        self.users.insert(cache_key(campaign, user), entry);
    }

    fn watch(&self, campaign: &CampaignId) {
        let known = self
            .campaigns
            .read()
            .map(|m| m.contains_key(campaign) || m.len() >= MAX_CAMPAIGNS)
            .unwrap_or(true);
        if !known && let Ok(mut m) = self.campaigns.write() {
            m.entry(campaign.clone()).or_default();
        }
    }

    /// Campaigns whose versions should be read.
    pub fn watched(&self) -> Vec<CampaignId> {
        self.campaigns
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Records the version and grants counter read from Redis (`None`: the
    /// campaign is gone, or has had no grant). A new version, or the first
    /// reading, forgets every entry of the campaign; a new grants counter its
    /// `no_spins_left` entries.
    pub fn observe(&self, campaign: &CampaignId, version: Option<i64>, grants: Option<i64>) {
        let Ok(mut m) = self.campaigns.write() else {
            return;
        };
        let Some(w) = m.get_mut(campaign) else {
            return;
        };
        if w.version != Some(version) {
            w.version = Some(version);
            w.generation.config += 1;
        }
        if w.grants != Some(grants) {
            w.grants = Some(grants);
            w.generation.grants += 1;
        }
    }

    /// Users remembered (approximate; for metrics and tests).
    pub fn entry_count(&self) -> u64 {
        self.users.run_pending_tasks();
        self.users.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(max_entries: u64) -> QuotaCache {
        QuotaCache::new(&QuotaCacheSettings {
            enabled: true,
            max_entries,
            max_ttl_secs: 600,
            version_check_ms: 1000,
        })
        .unwrap()
    }

    fn ids(c: &str, u: &str) -> (CampaignId, UserId) {
        (CampaignId::parse(c).unwrap(), UserId::parse(u).unwrap())
    }

    #[test]
    fn a_daily_refusal_lasts_until_the_reset_and_no_longer() {
        let q = cache(100);
        let (c, u) = ids("c", "u");
        let started = Instant::now();
        q.remember(
            &c,
            &u,
            q.generation(&c),
            started,
            Refusal::DailyQuotaExhausted {
                reset_in: Duration::from_millis(300),
            },
        );
        match q.lookup(&c, &u) {
            Some(CachedRefusal::DailyQuotaExhausted { retry_after }) => {
                assert!(retry_after <= Duration::from_millis(300))
            }
            other => panic!("expected a daily refusal, got {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(310));
        assert_eq!(q.lookup(&c, &u), None, "expired with the day");
    }

    /// The entry lives at most `max_ttl` (600 s here), but its answer is what
    /// Redis would say: the time to the day's reset, not the entry's time left.
    #[test]
    fn a_cached_daily_refusal_says_when_the_day_resets() {
        let q = cache(100);
        let (c, u) = ids("c", "u");
        let reset_in = Duration::from_secs(80_474);
        q.remember(
            &c,
            &u,
            q.generation(&c),
            Instant::now(),
            Refusal::DailyQuotaExhausted { reset_in },
        );
        match q.lookup(&c, &u) {
            Some(CachedRefusal::DailyQuotaExhausted { retry_after }) => assert!(
                retry_after > reset_in - Duration::from_secs(5) && retry_after <= reset_in,
                "{retry_after:?}"
            ),
            other => panic!("expected a daily refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_new_campaign_version_forgets_its_users() {
        let q = cache(100);
        let (c, u) = ids("c", "u");
        let (other, _) = ids("other", "u");
        q.remember(
            &c,
            &u,
            q.generation(&c),
            Instant::now(),
            Refusal::QuotaExhausted,
        );
        q.remember(
            &other,
            &u,
            q.generation(&other),
            Instant::now(),
            Refusal::QuotaExhausted,
        );
        assert_eq!(q.lookup(&c, &u), Some(CachedRefusal::QuotaExhausted));
        // The first reading of a version counts as a change: entries written
        // before anyone looked may predate a re-apply.
        q.observe(&c, Some(3), None);
        assert_eq!(q.lookup(&c, &u), None);
        assert_eq!(q.lookup(&other, &u), Some(CachedRefusal::QuotaExhausted));
        q.remember(
            &c,
            &u,
            q.generation(&c),
            Instant::now(),
            Refusal::QuotaExhausted,
        );
        q.observe(&c, Some(3), None);
        assert_eq!(q.lookup(&c, &u), Some(CachedRefusal::QuotaExhausted));
        q.observe(&c, Some(4), None);
        assert_eq!(q.lookup(&c, &u), None);
    }

    #[test]
    fn a_refusal_read_under_an_old_generation_does_not_count() {
        let q = cache(100);
        let (c, u) = ids("c", "u");
        q.remember(
            &c,
            &u,
            Generation::default(),
            Instant::now(),
            Refusal::QuotaExhausted,
        );
        q.observe(&c, Some(1), None);
        let mut before = q.generation(&c);
        before.config -= 1;
        // Redis answered under the old config, but the answer arrives late.
        q.remember(&c, &u, before, Instant::now(), Refusal::QuotaExhausted);
        assert_eq!(q.lookup(&c, &u), None);
    }

    #[test]
    fn a_grant_anywhere_forgets_no_spins_left_and_nothing_else() {
        let q = cache(100);
        let (c, broke) = ids("c", "broke");
        let (_, capped) = ids("c", "capped");
        q.remember(
            &c,
            &broke,
            q.generation(&c),
            Instant::now(),
            Refusal::QuotaExhausted,
        );
        q.observe(&c, Some(1), Some(7));
        q.remember(
            &c,
            &broke,
            q.generation(&c),
            Instant::now(),
            Refusal::NoSpinsLeft,
        );
        q.remember(
            &c,
            &capped,
            q.generation(&c),
            Instant::now(),
            Refusal::QuotaExhausted,
        );
        q.observe(&c, Some(1), Some(7));
        assert_eq!(q.lookup(&c, &broke), Some(CachedRefusal::NoSpinsLeft));
        // A grant on some replica: the counter moved.
        q.observe(&c, Some(1), Some(8));
        assert_eq!(q.lookup(&c, &broke), None, "may have been granted a spin");
        assert_eq!(
            q.lookup(&c, &capped),
            Some(CachedRefusal::QuotaExhausted),
            "a grant raises no cap"
        );
    }

    #[test]
    fn the_cache_stays_within_its_bound() {
        let q = cache(1_000);
        let (c, _) = ids("c", "u");
        for i in 0..50_000 {
            let u = UserId::parse(&format!("user-{i}")).unwrap();
            q.remember(
                &c,
                &u,
                Generation::default(),
                Instant::now(),
                Refusal::QuotaExhausted,
            );
        }
        assert!(q.entry_count() <= 1_000, "{} entries", q.entry_count());
    }
}
