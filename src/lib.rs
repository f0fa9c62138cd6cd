//! prizewheel: a flash-sale "spin the wheel" backend.
//!
//! # Layout
//! - [`campaign`]: marketing's YAML, validated with positions.
//! - [`rollout`]: a campaign planned against Redis and applied.
//! - [`draw`]: the draw as the service runs it (randomness, request identity).
//! - [`store`]: Redis (live state, Lua scripts in `lua/`) and PostgreSQL.
//! - [`admission`]: the load-absorbing layers in front of Redis (limits, caches).
//! - [`http`]: the API: routes, auth, problem+json errors, OpenAPI.
//! - [`console`]: the web console at `/console/` (static pages that call the API).
//! - [`finance`]: the ledger listed, exported and reconciled.
//! - [`simulate`]: Monte Carlo of a sale on the model of the draw.
//! - [`settle`]: results streams → the PostgreSQL ledger, exactly once.
//! - [`recover`]: after Redis lost writes, a campaign rebuilt from the ledger.
//! - [`config`], [`telemetry`], [`startup`]: running the service.
//! - [`cli`]: the `prizewheel` command's subcommands.

pub mod admission;
pub mod campaign;
pub mod cli;
pub mod config;
pub mod console;
pub mod deliver;
pub mod domain;
pub mod draw;
pub mod finance;
pub mod http;
pub mod outbox;
pub mod recover;
pub mod rollout;
pub mod settle;
pub mod simulate;
pub mod startup;
pub mod store;
pub mod telemetry;
