//! The outbox: what external systems receive of the ledger, kept in PostgreSQL
//! beside it, independent of how it is carried (webhooks today: src/deliver).
//!
//! - [`record`]: the settler's transaction records an event per ledger fact
//!   (a settled reward, a prize's last unit taken, a grant, a revocation, an
//!   apply) and a delivery per
//!   subscribed sink, in the same commit as the rows: exactly what the ledger
//!   holds is sent, nothing before it is there.
//! - [`sinks`]: where events go (kept in step with the configuration).
//! - [`queue`]: a sink's due deliveries claimed under a lease, so that any
//!   number of dispatchers share them and none is in flight twice at once;
//!   marked delivered, retried later, or dead.
//! - [`report`]: per sink status, and replays.
//! - [`prune`]: finished events removed after the retention.
//!
//! A second transport (a Kafka or NATS topic) is a new sink kind with its own
//! dispatcher over the same queue.

pub mod prune;
pub mod queue;
pub mod record;
pub mod report;
pub mod sinks;

/// A reward settled into the ledger.
pub const REWARD_SETTLED: &str = "reward.settled";
/// Earned spins granted.
pub const GRANT_RECORDED: &str = "grant.recorded";
/// A grant revoked.
pub const GRANT_REVOKED: &str = "grant.revoked";
/// A prize's stock (or its codes) reached zero.
pub const PRIZE_EXHAUSTED: &str = "prize.exhausted";
/// A campaign version applied.
pub const CAMPAIGN_APPLIED: &str = "campaign.applied";

/// Every event type a sink may subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    REWARD_SETTLED,
    GRANT_RECORDED,
    GRANT_REVOKED,
    PRIZE_EXHAUSTED,
    CAMPAIGN_APPLIED,
];
