//! `prizewheel serve` and `prizewheel migrate`.

use crate::config::Settings;
use crate::startup::Application;
use crate::store::pg;
use std::path::Path;

pub async fn serve(config: &Path) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    crate::telemetry::init(&settings.log);
    let app = Application::build(settings).await?;
    app.run_until_stopped().await?;
    tracing::info!("stopped");
    Ok(())
}

pub async fn migrate(config: &Path) -> anyhow::Result<()> {
    let (_, database) = Settings::load_stores(config)?;
    let pool = pg::pool(&database)?;
    pg::migrate(&pool).await?;
    println!("migrations applied");
    Ok(())
}
