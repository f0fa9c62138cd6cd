//! Campaigns: marketing's YAML (loading and validation with positions), its
//! canonical form and day boundaries. Planning and applying a change against
//! Redis is `crate::rollout`.

pub mod canonical;
pub mod days;
mod fields;
pub mod load;
pub mod model;
pub mod pools;
pub mod tree;

pub use load::parse_campaign;
pub use model::Campaign;
pub use tree::Diagnostic;
