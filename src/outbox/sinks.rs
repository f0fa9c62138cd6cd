//! The sinks table: where events go. Every `serve`, `settle` and `deliver`
//! process registers the sinks of its configuration when it starts, before it
//! settles or delivers ([`register_until_done`]). Registering never removes a
//! sink nor re-enables one: a sink left out of a configuration keeps its
//! deliveries (shown by `webhooks status`) until an operator disables it, and a
//! sink disabled by a 410 Gone stays disabled until `webhooks enable`.

use serde::Serialize;
use sqlx::{PgExecutor, PgPool};
use std::time::Duration;
use tokio::sync::watch;

/// A sink as a configuration declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkSpec {
    pub id: String,
    /// The transport (`webhook`).
    pub kind: &'static str,
    /// Event types it receives (src/outbox `EVENT_TYPES`).
    pub events: Vec<String>,
    /// Campaigns it receives events of; empty: every campaign.
    pub campaigns: Vec<String>,
}

/// A sink as the table holds it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Sink {
    pub sink: String,
    pub kind: String,
    pub events: Vec<String>,
    pub campaigns: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
}

/// Inserts or updates `specs` (their kind, events and campaigns) in one
/// transaction.
pub async fn register(pg: &PgPool, specs: &[SinkSpec]) -> Result<(), sqlx::Error> {
    let mut tx = pg.begin().await?;
    for s in specs {
        sqlx::query(
            "INSERT INTO outbox_sinks (sink, kind, events, campaigns) VALUES ($1, $2, $3, $4)
             ON CONFLICT (sink) DO UPDATE
             SET kind = excluded.kind, events = excluded.events, campaigns = excluded.campaigns,
                 updated_at = now()
             WHERE (outbox_sinks.kind, outbox_sinks.events, outbox_sinks.campaigns)
                   IS DISTINCT FROM (excluded.kind, excluded.events, excluded.campaigns)",
        )
        .bind(&s.id)
        .bind(s.kind)
        .bind(&s.events)
        .bind(&s.campaigns)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// [`register`], retried (PostgreSQL may be down at start) until it succeeds
/// or `stop` turns true; `false` when stopped first. Whatever settles or
/// delivers waits for it: a batch settled before its sinks are known would get
/// no deliveries.
pub async fn register_until_done(
    pg: &PgPool,
    specs: &[SinkSpec],
    limit: Duration,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    if specs.is_empty() {
        return true;
    }
    let mut pause = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            return false;
        }
        match tokio::time::timeout(limit, register(pg, specs)).await {
            Ok(Ok(())) => return true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot register the outbox sinks yet; retrying")
            }
            Err(_) => tracing::warn!("registering the outbox sinks timed out; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => {}
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// Every sink, by id.
pub async fn list<'e>(pg: impl PgExecutor<'e>) -> Result<Vec<Sink>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sink, kind, events, campaigns, enabled, disabled_reason FROM outbox_sinks ORDER BY sink",
    )
    .fetch_all(pg)
    .await
}

/// Pauses deliveries to `sink`, with `reason`: new events still queue for it
/// (sent once it is enabled again, or dead past its retry time then);
/// `false` if there is no such sink.
pub async fn disable<'e>(
    pg: impl PgExecutor<'e>,
    sink: &str,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE outbox_sinks SET enabled = false, disabled_reason = $2, updated_at = now()
         WHERE sink = $1",
    )
    .bind(sink)
    .bind(reason)
    .execute(pg)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Resumes deliveries to `sink`; `false` if there is no such sink.
pub async fn enable<'e>(pg: impl PgExecutor<'e>, sink: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE outbox_sinks SET enabled = true, disabled_reason = NULL, updated_at = now()
         WHERE sink = $1",
    )
    .bind(sink)
    .execute(pg)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Locks `sink`'s row for the caller's transaction (against a concurrent
/// replay, removal or registration); `false` if there is no such sink.
pub async fn lock(tx: &mut sqlx::PgConnection, sink: &str) -> Result<bool, sqlx::Error> {
    let known: Option<String> =
        sqlx::query_scalar("SELECT sink FROM outbox_sinks WHERE sink = $1 FOR UPDATE")
            .bind(sink)
            .fetch_optional(tx)
            .await?;
    Ok(known.is_some())
}

/// Removes `sink` and its deliveries, in one transaction; how many deliveries,
/// or `None` if there is no such sink. Its events go with the next prunes.
pub async fn remove(pg: &PgPool, sink: &str) -> Result<Option<u64>, sqlx::Error> {
    let mut tx = pg.begin().await?;
    if !lock(&mut tx, sink).await? {
        return Ok(None);
    }
    let deliveries = sqlx::query("DELETE FROM outbox_deliveries WHERE sink = $1")
        .bind(sink)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM outbox_sinks WHERE sink = $1")
        .bind(sink)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(deliveries))
}
