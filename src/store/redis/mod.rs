//! Redis: the live state of every campaign and the atomic draw.
//!
//! Spins go through a few multiplexed connections (`ConnectionManager`, or a
//! cluster connection when `cluster_nodes` is set): the script calls of
//! concurrent spins are pipelined on them, which is what lets one Redis core
//! serve tens of thousands of draws a second. Admin work uses the same
//! connections; nothing on this path blocks a connection.

pub mod apply;
pub mod codes;
pub mod connection;
pub mod durability;
pub mod grant;
pub mod keys;
pub mod live;
pub mod recovery;
mod reply;
pub mod scripts;
pub mod spin;
pub mod status;
pub mod table;

use connection::{RedisConn, RedisTarget, Timeouts};
use durability::Durability;
use secrecy::{ExposeSecret, SecretString};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};

/// How to reach Redis and how long to wait for it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://host:port[/db]`; from `REDIS_URL`. Unused when `cluster_nodes` is set.
    #[serde(default)]
    pub url: Option<SecretString>,
    /// Seed nodes of a Redis Cluster (`redis://host:port` each; a list, or one
    /// comma-separated string from `REDIS_CLUSTER_NODES`). When set, prizewheel
    /// talks to the cluster and finds the other nodes itself.
    #[serde(default, deserialize_with = "seed_list")]
    pub cluster_nodes: Vec<SecretString>,
    /// Multiplexed connections shared by all requests of this process.
    #[serde(default = "default_connections")]
    pub connections: usize,
    /// A Redis call slower than this fails and the client gets 503 (and may retry
    /// with the same Idempotency-Key). It bounds the whole call, including a
    /// wait for a reconnection in progress (see connection.rs).
    #[serde(default = "default_timeout_ms")]
    pub response_timeout_ms: u64,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Most Redis calls of API requests in flight at once in this process.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// How long a request waits for one of those slots before it is answered 503
    /// (with `Retry-After`) instead of queuing.
    #[serde(default = "default_in_flight_wait_ms")]
    pub in_flight_wait_ms: u64,
    /// What an answered spin survives: `aof` (the default: AOF required),
    /// `fsync-wins` (also fsync every bounded win before answering it) or `none`
    /// (development only). See durability.rs.
    #[serde(default)]
    pub durability: Durability,
    /// With `fsync-wins`: how long Redis may take to confirm a win's fsync
    /// before the spin is answered 503 (`durability_timeout`; the retry with the
    /// same key answers the draw). Below `response_timeout_ms`.
    #[serde(default = "default_waitaof_timeout_ms")]
    pub waitaof_timeout_ms: u64,
}

impl RedisSettings {
    /// The single server or cluster these settings name.
    pub fn target(&self) -> anyhow::Result<RedisTarget> {
        let seeds: Vec<&str> = self
            .cluster_nodes
            .iter()
            .map(|s| s.expose_secret())
            .collect();
        RedisTarget::new(self.url.as_ref().map(|u| u.expose_secret()), &seeds)
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: Duration::from_millis(self.connect_timeout_ms),
            response: Duration::from_millis(self.response_timeout_ms),
        }
    }
}

/// A list of seed URLs, or one string of them separated by commas (as an
/// environment variable gives it).
fn seed_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<SecretString>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Seeds {
        List(Vec<String>),
        Joined(String),
    }
    let seeds = match <Seeds as serde::Deserialize>::deserialize(d)? {
        Seeds::List(v) => v,
        Seeds::Joined(s) => s.split(',').map(str::to_owned).collect(),
    };
    Ok(seeds
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .map(SecretString::from)
        .collect())
}

fn default_connections() -> usize {
    4
}
fn default_timeout_ms() -> u64 {
    1000
}
fn default_connect_timeout_ms() -> u64 {
    1000
}
fn default_max_in_flight() -> usize {
    256
}
fn default_in_flight_wait_ms() -> u64 {
    20
}
fn default_waitaof_timeout_ms() -> u64 {
    500
}

/// What went wrong talking to Redis, as the API needs to tell it apart.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis is down, slow or loading: the client should retry later.
    #[error("redis unavailable: {0}")]
    Unavailable(#[source] redis::RedisError),
    /// Anything else is a bug or a broken deployment.
    #[error("redis error: {0}")]
    Other(#[source] redis::RedisError),
    #[error("unexpected reply from a script: {0}")]
    Protocol(String),
    /// Every in-flight slot stayed taken for the whole wait: shed the request.
    #[error("too many Redis calls in flight")]
    Overloaded,
    /// A bounded win was drawn but its fsync was not confirmed (`fsync-wins`):
    /// the draw stands, and a retry with the same key answers it.
    #[error("the draw's fsync to the AOF was not confirmed: {0}")]
    NotDurable(String),
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        use redis::ServerErrorKind as S;
        let transient = e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_cluster_error()
            || matches!(
                e.kind(),
                redis::ErrorKind::Server(
                    S::BusyLoading | S::TryAgain | S::ClusterDown | S::MasterDown | S::ReadOnly
                        // A script flushed again while it was being reloaded
                        // (scripts.rs).
                        | S::NoScript
                )
            )
            || e.code() == Some("OOM");
        if transient {
            StoreError::Unavailable(e)
        } else {
            StoreError::Other(e)
        }
    }
}

/// The Redis side of a running service.
pub struct RedisStore {
    target: RedisTarget,
    connections: Vec<RedisConn>,
    next: AtomicUsize,
    in_flight: Semaphore,
    max_in_flight: usize,
    in_flight_wait: Duration,
    durability: Durability,
    waitaof_timeout: Duration,
}

impl RedisStore {
    /// Connects and checks the server is fit to hold stock: refuses any eviction
    /// policy other than `noeviction` and any server (or cluster primary) that
    /// cannot give `redis.durability`, and logs version and persistence.
    pub async fn connect(settings: &RedisSettings) -> anyhow::Result<Self> {
        use anyhow::Context;
        durability::check_settings(settings)?;
        let target = settings.target()?;
        let mut connections = Vec::with_capacity(settings.connections.max(1));
        for _ in 0..settings.connections.max(1) {
            let c = target.shared(settings.timeouts()).await.context(
                "cannot connect to Redis (are REDIS_URL or redis.cluster_nodes right and the servers up?)",
            )?;
            connections.push(c);
        }
        let max_in_flight = settings.max_in_flight.max(1);
        let store = RedisStore {
            target,
            connections,
            next: AtomicUsize::new(0),
            in_flight: Semaphore::new(max_in_flight),
            max_in_flight,
            in_flight_wait: Duration::from_millis(settings.in_flight_wait_ms),
            durability: settings.durability,
            waitaof_timeout: Duration::from_millis(settings.waitaof_timeout_ms),
        };
        store.check_server().await?;
        Ok(store)
    }

    /// Where this store's Redis is, for components that open their own
    /// connections (the settler).
    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    /// A connection for one call; round-robin over the shared ones.
    pub fn conn(&self) -> RedisConn {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[i].clone()
    }

    /// A slot for one Redis call of an API request, or [`StoreError::Overloaded`]
    /// when none frees up within the configured wait. Hold it across the call.
    pub async fn slot(&self) -> Result<SemaphorePermit<'_>, StoreError> {
        if let Ok(permit) = self.in_flight.try_acquire() {
            return Ok(permit);
        }
        match tokio::time::timeout(self.in_flight_wait, self.in_flight.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(StoreError::Overloaded),
        }
    }

    /// Redis calls of API requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.max_in_flight - self.in_flight.available_permits()
    }

    async fn check_server(&self) -> anyhow::Result<()> {
        let nodes: Vec<(String, String)> = self.conn().per_node(redis::cmd("INFO")).await?;
        for (node, info) in &nodes {
            check_node(node, info)?;
        }
        let fsync = self.check_durability(&nodes).await?;
        tracing::info!(
            redis.cluster = self.target.is_cluster(),
            redis.primaries = nodes.len(),
            redis.appendfsync = %fsync,
            redis.durability = self.durability.as_str(),
            "Redis is fit to hold stock"
        );
        if let Some(n) = self.config_get("hash-max-listpack-entries").await
            && n.parse::<u64>().unwrap_or(0) < keys::USERS_PER_BUCKET
        {
            tracing::warn!(
                redis.hash_max_listpack_entries = %n,
                "user buckets will not stay in listpack encoding: Redis memory per user will be several times higher"
            );
        }
        Ok(())
    }

    /// `CONFIG GET`, or `None` where the command is disabled (managed Redis).
    async fn config_get(&self, name: &str) -> Option<String> {
        let reply: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
            .arg("GET")
            .arg(name)
            .query_async(&mut self.conn())
            .await;
        reply.ok().and_then(|v| v.into_iter().nth(1))
    }

    /// Redis answers PING (every primary of a cluster).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn()).await?;
        Ok(())
    }
}

/// Field `name` of an INFO reply, or `unknown`.
fn info_field(info: &str, name: &str) -> String {
    info.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or("unknown")
        .to_owned()
}

/// Refuses a server (or cluster primary) that may evict keys, and logs its
/// version and persistence.
fn check_node(node: &str, info: &str) -> anyhow::Result<()> {
    let field = |name: &str| info_field(info, name);
    let policy = field("maxmemory_policy");
    if policy != "noeviction" {
        anyhow::bail!(
            "Redis {node} has maxmemory-policy `{policy}`, but prizewheel needs `noeviction`: \
             evicting stock or idempotency records would oversell prizes and draw twice \
             (set `maxmemory-policy noeviction`, as config/redis.conf does)"
        );
    }
    tracing::info!(
        redis.node = %node,
        redis.version = %field("redis_version"),
        redis.maxmemory_policy = %policy,
        redis.aof_enabled = field("aof_enabled") == "1",
        "connected to Redis"
    );
    Ok(())
}
