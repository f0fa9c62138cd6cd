//! The Lua scripts, compiled into the binary and run with `EVALSHA`.
//!
//! `redis::Script` sends `EVALSHA` and, when Redis answers `NOSCRIPT` (after a
//! restart, a failover or `SCRIPT FLUSH`), loads the script and retries once,
//! transparently.

use super::connection::RedisConn;
use super::{RedisStore, StoreError};
use redis::{FromRedisValue, Script, ScriptInvocation};
use std::sync::LazyLock;
use std::time::Instant;
use tracing::Instrument;

/// The atomic draw; see lua/spin.lua for its KEYS/ARGV contract.
pub static SPIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("../../../lua/counters.lua"),
        include_str!("../../../lua/spin.lua")
    ))
});

/// Read-only campaign view for a client; see lua/status.lua.
pub static STATUS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("../../../lua/counters.lua"),
        include_str!("../../../lua/status.lua")
    ))
});

/// Rebuilding a campaign from the ledger after Redis lost writes; see lua/recover.lua.
pub static RECOVER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("../../../lua/counters.lua"),
        include_str!("../../../lua/recover.lua")
    ))
});

/// A grant of earned spins; see lua/grant.lua.
pub static GRANT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("../../../lua/counters.lua"),
        include_str!("../../../lua/grant.lua")
    ))
});

/// Revoking a grant; see lua/revoke.lua.
pub static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("../../../lua/counters.lua"),
        include_str!("../../../lua/revoke.lua")
    ))
});

/// A prize's pool of codes: add, withdraw, count; see lua/codes.lua.
pub static CODES: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../../lua/codes.lua")));

/// Atomic install or change of a campaign; see lua/apply.lua.
pub static APPLY: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../../lua/apply.lua")));

impl RedisStore {
    /// Every script is loaded (on every primary of a cluster); loads the
    /// missing ones. Fails when Redis is unreachable.
    pub async fn ensure_scripts(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let scripts = [
            &*SPIN, &*STATUS, &*GRANT, &*REVOKE, &*APPLY, &*RECOVER, &*CODES,
        ];
        let mut exists = redis::cmd("SCRIPT");
        exists.arg("EXISTS");
        for s in scripts {
            exists.arg(s.get_hash());
        }
        let loaded: Vec<bool> = exists.query_async(&mut conn).await?;
        for (script, loaded) in scripts.iter().zip(loaded) {
            if !loaded {
                script.prepare_invoke().load_async(&mut conn).await?;
            }
        }
        Ok(())
    }

    /// Runs a prepared script call on `conn`, in a `redis.script` span, and
    /// records its duration by script name.
    pub(crate) async fn run_script<T: FromRedisValue>(
        &self,
        name: &'static str,
        inv: &ScriptInvocation<'_>,
        conn: &mut RedisConn,
    ) -> Result<T, StoreError> {
        let span = tracing::info_span!(
            "redis.script",
            otel.kind = "client",
            db.system.name = "redis",
            db.operation.name = "EVALSHA",
            script = name
        );
        let started = Instant::now();
        let mut reply = inv.invoke_async(conn).instrument(span.clone()).await;
        // The crate loads a script Redis does not know and sends it again; a
        // SCRIPT FLUSH landing between the two gets one more try here (and,
        // should it happen again, a 503: see `StoreError::from`).
        if matches!(&reply, Err(e) if is_no_script(e)) {
            reply = inv.invoke_async(conn).instrument(span).await;
        }
        crate::telemetry::metrics().script(name, started.elapsed().as_secs_f64());
        Ok(reply?)
    }
}

/// Redis answered NOSCRIPT: it does not know the script (flushed or restarted).
fn is_no_script(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}
