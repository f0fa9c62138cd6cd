//! What the tests share, and nothing else: the test application and its
//! helpers, a private Redis, the fault-injecting proxy, a webhook receiver, the served process, the
//! PromQL reader, settling, a rush of spins, the repository's files, the
//! cluster and a headless browser. No test module imports another; they all import from here.

pub mod browser;
pub mod cluster;
pub mod helpers;
pub mod private_redis;
pub mod promql;
pub mod proxy;
pub mod receiver;
pub mod repo;
pub mod rush;
pub mod serve;
pub mod settling;
