//! Settling in the background, as `serve` (unless `settle.enabled` is false)
//! and `prizewheel settle` run it: the settler (one task per active campaign)
//! and the recovery watch (src/recover) side by side, stopped together.

use crate::settle::{SettleSettings, Settler};
use crate::store::redis::connection::RedisTarget;
use sqlx::PgPool;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The running settler and recovery watch.
pub struct Settling {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Settling {
    /// Starts both; they run until [`Settling::stop`].
    pub fn start(redis: RedisTarget, pg: PgPool, settings: &SettleSettings) -> Self {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(crate::recover::watch(
            redis.clone(),
            pg.clone(),
            Duration::from_millis(settings.recovery_check_ms),
            Duration::from_millis(settings.refresh_ms),
            Duration::from_millis(settings.write_timeout_ms),
            stopped.clone(),
        ));
        let settler = Settler::new(redis, pg, settings.clone(), Settler::default_consumer());
        tasks.spawn(settler.run(stopped));
        Settling { stop, tasks }
    }

    /// The settler finishes and acknowledges the batch in hand; both return.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}
