//! `prizewheel serve`, `prizewheel settle`, `prizewheel deliver` and
//! `prizewheel migrate`.

use crate::config::Settings;
use crate::deliver::Delivery;
use crate::startup::Application;
use crate::startup::settling::Settling;
use crate::store::pg;
use std::path::Path;

/// Serves the API and, unless `settle.enabled` is false, settles in the same
/// process (see `Application`).
pub async fn serve(config: &Path) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let telemetry = crate::telemetry::init(&settings.log);
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            telemetry.shutdown();
            return Err(e);
        }
    };
    let served = app.run_until_stopped().await;
    tracing::info!("stopped");
    telemetry.shutdown();
    Ok(served?)
}

/// Settles only (no API) until SIGTERM/SIGINT.
pub async fn settle(config: &Path) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let sinks = crate::deliver::settings::sinks(&settings.webhooks)?;
    let telemetry = crate::telemetry::init(&settings.log);
    let settling = Settling::start(
        settings.redis.target()?,
        pg::pool(&settings.database)?,
        &settings.settle,
        sinks,
    );
    tracing::info!("settling; stop with SIGTERM or Ctrl-C");
    let signal = crate::startup::stop_signal().await?;
    tracing::info!("{signal} received: finishing the batch in hand, then stopping");
    settling.stop().await;
    telemetry.shutdown();
    Ok(())
}

/// Delivers webhooks only (no API, no settlement) until SIGTERM/SIGINT.
pub async fn deliver(config: &Path) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let Some(delivery) =
        Delivery::prepare(&settings.webhooks, &settings.deliver, &settings.database)?
    else {
        anyhow::bail!(
            "{}: no webhooks are configured (add a webhooks: list)",
            config.display()
        );
    };
    let telemetry = crate::telemetry::init(&settings.log);
    let dispatcher = delivery.start();
    tracing::info!("delivering; stop with SIGTERM or Ctrl-C");
    let signal = crate::startup::stop_signal().await?;
    tracing::info!("{signal} received: finishing the attempts in flight, then stopping");
    dispatcher.stop().await;
    telemetry.shutdown();
    Ok(())
}

pub async fn migrate(config: &Path) -> anyhow::Result<()> {
    let (_, database) = Settings::load_stores(config)?;
    let pool = pg::pool(&database)?;
    pg::migrate(&pool).await?;
    println!("migrations applied");
    Ok(())
}
