//! Validated identifiers and values shared by every layer. Each type proves its
//! input was checked: construct it through `parse` and nothing else.

pub mod context;
mod idempotency_key;
mod ids;
mod money;
mod pool;
mod stream_id;

pub use idempotency_key::IdempotencyKey;
pub use ids::{
    CampaignId, PrizeId, UserId, is_control_or_separator, shorten, truncate_for_message,
};
pub use money::{Currency, Money};
pub use pool::{Pool, SLOTS, cluster_slot};
pub use stream_id::StreamId;
