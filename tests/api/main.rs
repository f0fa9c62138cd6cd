//! Integration tests against a real Redis and a real PostgreSQL (see helpers).

mod admin;
mod admission;
mod audit;
mod auth;
mod bodies;
mod cli;
mod cluster;
mod crash;
mod dashboard;
mod deploy_files;
mod draw;
mod durability;
mod finance;
mod healthcheck;
mod helpers;
mod limits;
mod memory;
mod model;
mod private_redis;
mod proxy;
mod reapply;
mod serve;
mod settle;
mod spins;
mod telemetry;
mod window;
