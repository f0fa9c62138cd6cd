//! Where state lives: Redis holds the live campaign and every draw; PostgreSQL
//! holds the applied versions (and, with settlement, the ledger).

pub mod pg;
pub mod redis;
