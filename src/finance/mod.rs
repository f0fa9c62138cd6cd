//! Finance: the settled ledger queried, exported and reconciled against Redis.

pub mod audit;
pub mod reconcile;
pub mod rewards;
