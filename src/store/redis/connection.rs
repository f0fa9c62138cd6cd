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
use std::time::Duration;

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
    /// failovers and slot moves), and every reply is bounded by `t.response`.
    pub async fn shared(&self, t: Timeouts) -> RedisResult<RedisConn> {
        match self {
            RedisTarget::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(t.response))
                    .set_connection_timeout(Some(t.connect))
                    .set_number_of_retries(1);
                Ok(RedisConn::Managed(
                    ConnectionManager::new_with_config(client.clone(), config).await?,
                ))
            }
            RedisTarget::Cluster(client) => self.cluster(client, t).await,
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
        ))
    }
}

/// A connection to whichever Redis the target names; cheap to clone (all
/// variants multiplex requests over shared sockets).
#[derive(Clone)]
pub enum RedisConn {
    Managed(ConnectionManager),
    Multiplexed(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Managed(c) => c.req_packed_command(cmd),
            RedisConn::Multiplexed(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Managed(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Multiplexed(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Managed(c) => c.get_db(),
            RedisConn::Multiplexed(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
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
            RedisConn::Cluster(c) => {
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
            RedisConn::Cluster(c) => {
                let route = Route::with_key(key.as_bytes(), SlotAddr::Master);
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                redis::from_redis_value(c.route_command(cmd, routing).await?)?
            }
            _ => cmd.query_async(self).await?,
        };
        Ok(local)
    }
}
