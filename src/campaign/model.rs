//! A validated campaign: what marketing's YAML means once every rule holds.

use crate::domain::{CampaignId, Money, PrizeId};
use chrono::{DateTime, Utc};

/// Redis Lua numbers are doubles: every count, weight and stock the draw script
/// handles stays below 2^53 so its arithmetic is integer-exact.
pub const MAX_EXACT: u64 = 1 << 53;

#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    pub id: CampaignId,
    pub name: String,
    /// Where a day begins for the per-day limit.
    pub timezone: chrono_tz::Tz,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// A paused campaign answers spins with 409 `campaign_paused` and keeps its state.
    pub paused: bool,
    pub limits: Limits,
    /// Spins earned by orders (granted by the order service); `None`: every
    /// user has `limits.spins_per_user` spins, as without grants.
    pub earned_spins: Option<EarnedSpins>,
    /// The most value the campaign may award; every prize is in its currency.
    pub budget: Option<Money>,
    /// Index into `prizes` of the prize that takes the weight of exhausted ones.
    pub fallback: usize,
    /// In file order; the draw walks them in the order of the live prize table
    /// (see `store::redis::table`).
    pub prizes: Vec<Prize>,
    /// How many distinct users marketing expects; sizes the Redis buckets once,
    /// at the first apply.
    pub expected_users: u64,
    /// The sub-pools the campaign's state is split into, each a complete
    /// campaign state in its own cluster slot (`domain::Pool`); fixed at the
    /// first apply. 1: the campaign is one state, as before pools existed.
    pub pools: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Limits {
    /// Spins a user may make over the whole campaign.
    pub spins_per_user: u32,
    /// Spins a user may make per calendar day in the campaign's time zone.
    pub spins_per_user_per_day: Option<u32>,
}

impl Limits {
    pub const MAX_TOTAL: u32 = 1_000_000;
    /// The per-user counter packs the day's count in 10 bits.
    pub const MAX_PER_DAY: u32 = 1000;
}

/// With earned spins a user may spin `free` times plus what the order service
/// granted and did not revoke, within `limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct EarnedSpins {
    /// Spins every user has without earning any.
    pub free: u32,
    pub expire: Expiry,
}

/// When unused earned spins lapse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Expiry {
    /// They last as long as the campaign; a spin spends free spins first.
    CampaignEnd,
    /// Spins earned on a campaign day (in `timezone`) lapse when that day ends;
    /// a spin spends them before the free ones.
    EndOfDay,
}

impl Expiry {
    pub fn as_str(self) -> &'static str {
        match self {
            Expiry::CampaignEnd => "campaign_end",
            Expiry::EndOfDay => "end_of_day",
        }
    }
}

impl EarnedSpins {
    /// The most spins one grant may give.
    pub const MAX_PER_GRANT: u32 = 100;
}

#[derive(Debug, Clone, PartialEq)]
pub struct Prize {
    pub id: PrizeId,
    pub name: String,
    /// Relative odds, positive.
    pub weight: u64,
    pub stock: Stock,
    pub value: Money,
    /// When its units become available (only for a stock-bounded prize).
    pub release: Release,
}

/// How a stock-bounded prize's units are released over the window
/// (`draw::release` computes `released(t)`).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Release {
    /// Every unit from the start (the behaviour without `release`).
    #[default]
    AllAtStart,
    /// Unit k (1-based) of stock S at `starts_at + floor((k - 1) * window / S)` ms.
    Even,
    /// N more units at the start of each campaign day (in `timezone`).
    PerDay(u64),
    /// Units at given instants: (Unix ms, units), sorted by instant; the units
    /// add up to the stock.
    Schedule(Vec<ReleaseStep>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReleaseStep {
    /// Unix milliseconds.
    pub at: i64,
    pub units: u64,
}

impl Release {
    /// The most instants one schedule may list.
    pub const MAX_STEPS: usize = 1000;

    pub fn is_paced(&self) -> bool {
        *self != Release::AllAtStart
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stock {
    Limited(u64),
    Unlimited,
    /// `stock: codes`: one unit per prize code loaded and not yet awarded or
    /// withdrawn (`prizewheel campaign codes add`); each win hands out one.
    Codes,
}

impl Stock {
    pub const MAX: u64 = 1_000_000_000_000;

    pub fn from_redis(v: i64) -> Self {
        if v < 0 {
            Stock::Unlimited
        } else {
            Stock::Limited(v as u64)
        }
    }
}

impl std::fmt::Display for Stock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stock::Limited(n) => write!(f, "{n}"),
            Stock::Unlimited => f.write_str("unlimited"),
            Stock::Codes => f.write_str("codes"),
        }
    }
}

impl Campaign {
    /// Longest campaign window; the per-user counter packs the day index in 10 bits.
    pub const MAX_DAYS: i64 = 366;
    pub const MAX_PRIZES: usize = 64;
    pub const MAX_NAME: usize = 200;

    pub fn total_weight(&self) -> u64 {
        self.prizes.iter().map(|p| p.weight).sum()
    }

    pub fn prize(&self, id: &PrizeId) -> Option<&Prize> {
        self.prizes.iter().find(|p| &p.id == id)
    }
}
