//! Starting the processes: `Application` builds and runs the HTTP server
//! (connect the stores, bind the listener, port 0 works for tests, serve until
//! stopped) with its background loops; `settling` and `sampler` are loops it
//! starts, `settling` also for `prizewheel settle`.

pub mod sampler;
pub mod settling;

use crate::admission::Admission;
use crate::config::Settings;
use crate::deliver::Delivery;
use crate::http::admission::{per_ip, watch_campaign_versions};
use crate::http::auth::Verifier;
use crate::http::observe::observe;
use crate::http::unread_body;
use crate::http::{
    AllowedMethods, AppState, fallback, metrics_text, openapi, openapi_json, routes,
};
use crate::store::{pg, redis::RedisStore};
use crate::telemetry::traces::RequestSpan;
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use sampler::sample_forever;
use settling::Settling;
use std::net::TcpListener;
use std::time::Duration;
use tokio::task::JoinHandle;
use tracing_actix_web::TracingLogger;
use utoipa_actix_web::AppExt;

pub struct Application {
    port: u16,
    server: Server,
    /// The in-process settler and recovery watch, when `settle.enabled`.
    settling: Option<Settling>,
    /// The quota cache's campaign version watcher.
    watcher: JoinHandle<()>,
    /// The sampler of store-backed gauges (stock, settlement lag).
    sampler: JoinHandle<()>,
    /// The webhook dispatcher, when webhooks are configured and `deliver.enabled`.
    dispatcher: Option<crate::deliver::dispatcher::Dispatcher>,
}

impl Application {
    /// Connects to Redis (checking its eviction policy), prepares the Postgres
    /// pool (lazily connected), binds `settings.listen` and, unless
    /// `settle.enabled` is false, starts settling in the background.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let verifier = web::Data::new(Verifier::new(&settings.auth)?);
        let sinks = crate::deliver::settings::sinks(&settings.webhooks)?;
        let delivery = match settings.deliver.enabled {
            true => Delivery::prepare(&settings.webhooks, &settings.deliver, &settings.database)?,
            false => None,
        };
        let redis = RedisStore::connect(&settings.redis).await?;
        let pg = pg::pool(&settings.database)?;
        let listener = TcpListener::bind(&settings.listen)
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(AppState {
            redis,
            admission: Admission::new(&settings.admission),
            pg,
            http: settings.http.clone(),
            settlement: settings.settle.thresholds(),
            pg_query_limit: settings.database.query_limit(),
            settling: settings.settle.enabled,
            campaign_parser: Default::default(),
        });
        let api = openapi();
        let allowed = web::Data::new(AllowedMethods::from_openapi(&api));
        let doc = web::Data::new(
            serde_json::to_string(&api).context("serialising the OpenAPI document")?,
        );
        let background = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(per_ip))
                .wrap(from_fn(observe))
                .wrap(TracingLogger::<RequestSpan>::new())
                // Outermost: before anything may answer early.
                .wrap(from_fn(unread_body::keep_payload))
                .app_data(state.clone())
                .app_data(verifier.clone())
                .app_data(doc.clone())
                .app_data(allowed.clone())
                .into_utoipa_app()
                .configure(routes)
                .into_app()
                .route("/openapi.json", web::get().to(openapi_json))
                .route("/metrics", web::get().to(metrics_text))
                .configure(crate::console::routes)
                .default_service(web::to(fallback))
        })
        .on_connect(unread_body::on_connect)
        // Signals are ours (`run_until_stopped`): actix stops at once on
        // SIGINT, and Ctrl-C must drain like SIGTERM.
        .disable_signals()
        .shutdown_timeout(settings.http.shutdown_timeout_secs)
        .listen(listener)?;
        if settings.http.workers > 0 {
            server = server.workers(settings.http.workers);
        }
        // The background loops start once nothing can fail any more: a refused
        // start leaves no task behind.
        let watcher = tokio::spawn(watch_campaign_versions(
            background.clone(),
            Duration::from_millis(settings.admission.quota_cache.version_check_ms),
        ));
        let dispatcher = delivery.map(Delivery::start);
        let settling = settings.settle.enabled.then(|| {
            Settling::start(
                background.redis.target().clone(),
                background.pg.clone(),
                &settings.settle,
                sinks,
            )
        });
        let sampler = tokio::spawn(async move {
            sample_forever(&background.redis, &background.pg, Duration::from_secs(5)).await;
        });
        tracing::info!(http.port = port, "listening");
        Ok(Application {
            port,
            server: server.run(),
            settling,
            watcher,
            sampler,
            dispatcher,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM or until the server handle is stopped. On a
    /// signal it stops accepting and gives the requests in flight up to
    /// `http.shutdown_timeout_secs`; then the settler finishes and acknowledges
    /// the batch in hand.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let mut server = self.server;
        let served = tokio::select! {
            served = &mut server => served,
            signal = stop_signal() => {
                match signal {
                    Ok(name) => tracing::info!("{name} received: finishing the requests in flight, then stopping"),
                    Err(e) => tracing::error!(error = %e, "cannot wait for signals; stopping"),
                }
                // The server future runs the stop: poll both.
                tokio::join!(handle.stop(true), server).1
            }
        };
        self.watcher.abort();
        self.sampler.abort();
        if let Some(settling) = self.settling {
            settling.stop().await;
        }
        if let Some(dispatcher) = self.dispatcher {
            dispatcher.stop().await;
        }
        served
    }

    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM and names the one that came. Both mean
/// an ordinary, clean stop.
pub async fn stop_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    })
}
