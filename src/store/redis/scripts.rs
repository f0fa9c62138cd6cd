//! The Lua scripts, compiled into the binary and run with `EVALSHA`.
//!
//! `redis::Script` sends `EVALSHA` and, when Redis answers `NOSCRIPT` (after a
//! restart, a failover or `SCRIPT FLUSH`), loads the script and retries once,
//! transparently.

use redis::Script;
use std::sync::LazyLock;

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

/// Atomic install or change of a campaign; see lua/apply.lua.
pub static APPLY: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../../lua/apply.lua")));
