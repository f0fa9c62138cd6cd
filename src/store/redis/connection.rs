//! Where Redis is — one server or a Redis Cluster — and a connection that works
//! the same on both.
//!
//! Every key a script or a pipeline touches belongs to one campaign and carries
//! its `{id}` hash tag (see keys.rs), so every call routes to one slot: the code
//! above this module never needs to know which deployment it talks to.

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How to reach Redis: one server, or the seed nodes of a cluster.
#[derive(Clone)]
pub enum RedisTarget {
    Single(redis::Client),
    Cluster(Box<ClusterClient>),
}

/// Timeouts of a connection: how long to wait to connect and for each reply.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub response: Duration,
}

impl RedisTarget {
    /// A single server at `url`, or the cluster behind `seeds` when there are any.
    pub fn new(url: Option<&str>, seeds: &[&str]) -> anyhow::Result<Self> {
        use anyhow::Context;
        if !seeds.is_empty() {
            let client = ClusterClient::builder(seeds.iter().copied())
                .build()
                .context("redis.cluster_nodes: each seed must be a redis://host:port URL")?;
            return Ok(RedisTarget::Cluster(Box::new(client)));
        }
        let url = url.context("set REDIS_URL (redis.url) or redis.cluster_nodes")?;
        Ok(RedisTarget::Single(
            redis::Client::open(url).context("REDIS_URL is not a valid redis:// URL")?,
        ))
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisTarget::Cluster(_))
    }

    /// A long-lived connection for many concurrent requests: it reconnects by
    /// itself after a failure (ConnectionManager; a cluster connection follows
    /// failovers and slot moves), and every call is bounded by `t.response`,
    /// including its wait for a reconnection in progress. On one server, a
    /// connection that stays silent is also replaced (see [`Managed`]).
    pub async fn shared(&self, t: Timeouts) -> RedisResult<RedisConn> {
        match self {
            RedisTarget::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(t.response))
                    .set_connection_timeout(Some(t.connect))
                    .set_number_of_retries(1);
                let first =
                    ConnectionManager::new_with_config(client.clone(), config.clone()).await?;
                Ok(RedisConn::Managed(Managed(Arc::new(ManagedInner {
                    client: client.clone(),
                    config,
                    deadline: t.response,
                    current: RwLock::new(first),
                    born: Instant::now(),
                    silent_since_ms: AtomicU64::new(0),
                }))))
            }
            RedisTarget::Cluster(client) => match self.cluster(client, t).await? {
                RedisConn::Cluster(c, _) => Ok(RedisConn::Cluster(c, Some(t.response))),
                other => Ok(other),
            },
        }
    }

    /// A connection of its own (the settler's, whose reads block): a failure
    /// ends it and the caller connects again.
    pub async fn dedicated(&self, t: Timeouts) -> RedisResult<RedisConn> {
        match self {
            RedisTarget::Single(client) => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_response_timeout(Some(t.response))
                    .set_connection_timeout(Some(t.connect));
                Ok(RedisConn::Multiplexed(
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                ))
            }
            RedisTarget::Cluster(client) => self.cluster(client, t).await,
        }
    }

    async fn cluster(&self, client: &ClusterClient, t: Timeouts) -> RedisResult<RedisConn> {
        let config = ClusterConfig::new()
            .set_connection_timeout(t.connect)
            .set_response_timeout(t.response);
        Ok(RedisConn::Cluster(
            client.get_async_connection_with_config(config).await?,
            None,
        ))
    }
}

/// A connection to whichever Redis the target names; cheap to clone (all
/// variants multiplex requests over shared sockets).
#[derive(Clone)]
pub enum RedisConn {
    Managed(Managed),
    Multiplexed(MultiplexedConnection),
    /// With the deadline of a whole call, for the shared connection.
    Cluster(ClusterConnection, Option<Duration>),
}

/// The shared connection to one server: a `ConnectionManager`, with two bounds
/// it lacks.
///
/// A deadline on a whole call: the manager's response timeout starts only once
/// a call is sent, and a call made while the connection is being re-established
/// first waits for that, up to every connect attempt and the backoff between
/// them (several times the response timeout, seen behind a reset followed by a
/// black hole). The deadline keeps a spin's answer within
/// `redis.response_timeout_ms`.
///
/// A replacement when Redis falls silent: the manager reconnects after a reset,
/// but a timeout is no failure to it. When Redis's host vanishes without a reset
/// (or a NAT forgets the connection), every call on the old socket times out
/// until the kernel gives up on it, a quarter of an hour later. So once calls
/// have timed out without any reply for [`SILENCE`] response timeouts, the next
/// timeout replaces the manager; the old one closes when its last call ends.
#[derive(Clone)]
pub struct Managed(Arc<ManagedInner>);

struct ManagedInner {
    client: redis::Client,
    config: ConnectionManagerConfig,
    deadline: Duration,
    current: RwLock<ConnectionManager>,
    born: Instant,
    /// Since when calls have been timing out without any reply (ms since
    /// `born`, plus one), or 0 while Redis answers.
    silent_since_ms: AtomicU64,
}

/// Response timeouts without any reply after which a timeout replaces the
/// shared connection.
pub const SILENCE: u32 = 2;

impl Managed {
    fn manager(&self) -> ConnectionManager {
        self.0
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn now_ms(&self) -> u64 {
        // Never 0, which means "answering".
        self.0.born.elapsed().as_millis() as u64 + 1
    }

    /// Notes the outcome of a call sent at `sent_ms`; replaces the manager once
    /// calls have timed out without any reply for [`SILENCE`] response timeouts.
    fn observe<T>(&self, sent_ms: u64, outcome: &RedisResult<T>) {
        let m = &self.0;
        let since = m.silent_since_ms.load(Ordering::Relaxed);
        if !matches!(outcome, Err(e) if e.is_timeout()) {
            // A reply, or an error the manager handles itself (a reset).
            if since != 0 {
                m.silent_since_ms.store(0, Ordering::Relaxed);
            }
            return;
        }
        if since == 0 {
            let _ = m.silent_since_ms.compare_exchange(
                0,
                sent_ms,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            return;
        }
        let now = self.now_ms();
        let silence = (m.deadline * SILENCE).as_millis() as u64;
        // One replacement per silence, whatever the number of calls timing out.
        if now.saturating_sub(since) < silence
            || m.silent_since_ms
                .compare_exchange(since, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        match ConnectionManager::new_lazy_with_config(m.client.clone(), m.config.clone()) {
            Ok(fresh) => {
                tracing::warn!(
                    silent_ms = now - since,
                    "Redis has not answered on the shared connection: replacing it"
                );
                *m.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
            }
            Err(e) => tracing::warn!(error = %e, "cannot replace a silent Redis connection"),
        }
    }

    fn call<'a, T: Send + 'a>(
        &'a self,
        send: impl FnOnce(ConnectionManager) -> RedisFuture<'a, T> + Send + 'a,
    ) -> RedisFuture<'a, T> {
        let manager = self.manager();
        let deadline = self.0.deadline;
        let sent = self.now_ms();
        Box::pin(async move {
            let outcome = within(Some(deadline), send(manager)).await;
            self.observe(sent, &outcome);
            outcome
        })
    }
}

/// `call`, or a timeout error once `limit` has passed.
fn within<'a, T: Send + 'a>(
    limit: Option<Duration>,
    call: RedisFuture<'a, T>,
) -> RedisFuture<'a, T> {
    let Some(limit) = limit else {
        return call;
    };
    Box::pin(async move {
        tokio::time::timeout(limit, call)
            .await
            .unwrap_or_else(|_| Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()))
    })
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Managed(m) => {
                m.call(move |mut c| Box::pin(async move { c.req_packed_command(cmd).await }))
            }
            RedisConn::Multiplexed(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c, limit) => within(*limit, c.req_packed_command(cmd)),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Managed(m) => m.call(move |mut c| {
                Box::pin(async move { c.req_packed_commands(pipeline, offset, count).await })
            }),
            RedisConn::Multiplexed(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c, limit) => {
                within(*limit, c.req_packed_commands(pipeline, offset, count))
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Managed(m) => m.manager().get_db(),
            RedisConn::Multiplexed(c) => c.get_db(),
            RedisConn::Cluster(c, _) => c.get_db(),
        }
    }
}

impl RedisConn {
    /// The reply of `cmd` from every primary, as (node, reply); one entry,
    /// named `server`, on a single server.
    pub async fn per_node<T: redis::FromRedisValue>(
        &mut self,
        cmd: Cmd,
    ) -> RedisResult<Vec<(String, T)>> {
        use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
        match self {
            RedisConn::Cluster(c, _) => {
                let routing = RoutingInfo::MultiNode((
                    MultipleNodeRoutingInfo::AllMasters,
                    Some(ResponsePolicy::Special),
                ));
                let reply = c.route_command(cmd, routing).await?;
                let per_node: std::collections::HashMap<String, T> =
                    redis::from_redis_value(reply)?;
                Ok(per_node.into_iter().collect())
            }
            _ => Ok(vec![("server".to_owned(), cmd.query_async(self).await?)]),
        }
    }

    /// `WAITAOF 1 0 timeout_ms` on this very connection: it waits for the writes
    /// sent on it so far (Redis tracks them per connection), so send it on the
    /// clone that sent them. On a cluster it goes to the primary owning `key`'s
    /// slot (the command has no key, and by default would go to every shard).
    /// Returns how many local AOFs (0 or 1) confirmed the fsync.
    pub async fn wait_aof(&mut self, key: &str, timeout_ms: u64) -> RedisResult<i64> {
        use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
        let mut cmd = redis::cmd("WAITAOF");
        cmd.arg(1).arg(0).arg(timeout_ms);
        let (local, _replicas): (i64, i64) = match self {
            RedisConn::Cluster(c, _) => {
                let route = Route::with_key(key.as_bytes(), SlotAddr::Master);
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                redis::from_redis_value(c.route_command(cmd, routing).await?)?
            }
            _ => cmd.query_async(self).await?,
        };
        Ok(local)
    }
}
