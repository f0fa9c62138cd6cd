//! Campaigns: marketing's YAML (loading and validation with positions), its
//! canonical form, day boundaries, and planning and applying a change.

pub mod apply;
pub mod canonical;
pub mod days;
mod fields;
pub mod load;
pub mod model;
pub mod plan;
pub mod tree;

pub use load::parse_campaign;
pub use model::Campaign;
pub use tree::Diagnostic;
