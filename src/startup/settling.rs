//! Settling in the background, as `serve` (unless `settle.enabled` is false)
//! and `prizewheel settle` run it: the settler (one task per active campaign)
//! and the recovery watch (src/recover) side by side, stopped together. The
//! settler starts once the configuration's outbox sinks are registered.

use crate::outbox::sinks::{self, SinkSpec};
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
    pub fn start(
        redis: RedisTarget,
        pg: PgPool,
        settings: &SettleSettings,
        sinks: Vec<SinkSpec>,
    ) -> Self {
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
        let limit = Duration::from_millis(settings.write_timeout_ms);
        let settler = Settler::new(
            redis,
            pg.clone(),
            settings.clone(),
            Settler::default_consumer(),
        );
        tasks.spawn(async move {
            let mut registering = stopped.clone();
            if sinks::register_until_done(&pg, &sinks, limit, &mut registering).await {
                settler.run(stopped).await;
            }
        });
        Settling { stop, tasks }
    }

    /// The settler finishes and acknowledges the batch in hand; both return.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}
