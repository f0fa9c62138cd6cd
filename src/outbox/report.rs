//! What operators see of the outbox and do with it: per sink status, the
//! backlog the metrics sample, and replays.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool};

/// One sink's deliveries.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SinkStatus {
    pub sink: String,
    pub kind: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// Deliveries not yet delivered (waiting, in flight or retrying).
    pub pending: i64,
    /// Pending deliveries that have failed at least once.
    pub failing: i64,
    /// Seconds since the oldest pending event was recorded; null when none.
    pub oldest_pending_secs: Option<f64>,
    pub delivered: i64,
    /// Failed attempts, over every delivery.
    pub failed_attempts: i64,
    /// Deliveries whose retries ran out (`retry_for`): `webhooks replay` resends them.
    pub dead: i64,
}

/// The status of every sink.
pub async fn status<'e>(pg: impl PgExecutor<'e>) -> Result<Vec<SinkStatus>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.sink, s.kind, s.enabled, s.disabled_reason,
                count(d.event_seq) FILTER (WHERE d.state = 'pending') AS pending,
                count(d.event_seq) FILTER (WHERE d.state = 'pending' AND d.failures > 0) AS failing,
                extract(epoch FROM now() - min(e.recorded_at) FILTER (WHERE d.state = 'pending'))::float8
                  AS oldest_pending_secs,
                count(d.event_seq) FILTER (WHERE d.state = 'delivered') AS delivered,
                coalesce(sum(d.failures), 0)::bigint AS failed_attempts,
                count(d.event_seq) FILTER (WHERE d.state = 'dead') AS dead
         FROM outbox_sinks s
         LEFT JOIN outbox_deliveries d ON d.sink = s.sink
         LEFT JOIN outbox_events e ON e.seq = d.event_seq
         GROUP BY s.sink, s.enabled ORDER BY s.sink",
    )
    .fetch_all(pg)
    .await
}

/// One sink's backlog, cheap enough to sample (delivered rows are not read).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Backlog {
    pub sink: String,
    pub enabled: bool,
    pub pending: i64,
    pub oldest_pending_secs: Option<f64>,
    pub dead: i64,
}

/// The backlog of every sink.
pub async fn backlog<'e>(pg: impl PgExecutor<'e>) -> Result<Vec<Backlog>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.sink, s.enabled,
                count(d.event_seq) FILTER (WHERE d.state = 'pending') AS pending,
                extract(epoch FROM now() - min(e.recorded_at) FILTER (WHERE d.state = 'pending'))::float8
                  AS oldest_pending_secs,
                count(d.event_seq) FILTER (WHERE d.state = 'dead') AS dead
         FROM outbox_sinks s
         LEFT JOIN outbox_deliveries d ON d.sink = s.sink AND d.state IN ('pending', 'dead')
         LEFT JOIN outbox_events e ON e.seq = d.event_seq
         GROUP BY s.sink ORDER BY s.sink",
    )
    .fetch_all(pg)
    .await
}

/// What a replay did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Replayed {
    /// Delivered or dead deliveries made pending again.
    pub resent: u64,
    /// Deliveries created for recorded events the sink had none of (events
    /// recorded before it was registered or subscribed to their type, for
    /// another sink).
    pub created: u64,
}

/// Sends again to `sink` every event recorded since `since`: its delivered and
/// dead deliveries become pending, with a fresh `retry_for`, and events that
/// match the sink's filter but have no delivery to it get one. Deliveries
/// still pending are left as they are. `None` if there is no such sink.
pub async fn replay(
    pg: &PgPool,
    sink: &str,
    since: DateTime<Utc>,
) -> Result<Option<Replayed>, sqlx::Error> {
    let mut tx = pg.begin().await?;
    if !super::sinks::lock(&mut tx, sink).await? {
        return Ok(None);
    }
    let resent = sqlx::query(
        "UPDATE outbox_deliveries d
         SET state = 'pending', next_at = now(), created_at = now(), failures = 0,
             delivered_at = NULL, lease_id = NULL, lease_until = NULL
         FROM outbox_events e
         WHERE d.sink = $1 AND e.seq = d.event_seq AND e.recorded_at >= $2
           AND d.state IN ('delivered', 'dead')",
    )
    .bind(sink)
    .bind(since)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let created = sqlx::query(
        "INSERT INTO outbox_deliveries (sink, event_seq)
         SELECT s.sink, e.seq FROM outbox_events e
         JOIN outbox_sinks s ON s.sink = $1 AND e.type = ANY(s.events)
                            AND (s.campaigns = '{}' OR e.campaign_id = ANY(s.campaigns))
         WHERE e.recorded_at >= $2
         ON CONFLICT (sink, event_seq) DO NOTHING",
    )
    .bind(sink)
    .bind(since)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(Some(Replayed { resent, created }))
}
