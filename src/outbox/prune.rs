//! Retention: events whose every delivery is finished (delivered or dead) are
//! removed, with their deliveries, once they are older than the retention.
//! The ledger keeps the facts for good; the outbox only what is on its way
//! (and, for `webhooks replay --since`, what was sent within the retention).

use sqlx::PgConnection;
use std::time::Duration;

/// Removes up to `limit` events recorded more than `older_than` ago whose
/// deliveries are all delivered or dead, and those deliveries; the number of
/// events removed. Events with a pending delivery are kept, however old.
pub async fn prune(
    conn: &mut PgConnection,
    older_than: Duration,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    // Deliveries are found by their primary key (sink, event_seq), one probe
    // per sink (there are few): no index on event_seq alone is needed. The
    // foreign key is checked at the end of the statement, after both deletes.
    let removed = sqlx::query(
        "WITH old AS (
           SELECT e.seq FROM outbox_events e
           WHERE e.recorded_at < now() - $1 * interval '1 second'
             AND NOT EXISTS (
               SELECT 1 FROM outbox_sinks s
               JOIN outbox_deliveries d ON d.sink = s.sink AND d.event_seq = e.seq
               WHERE d.state = 'pending')
           ORDER BY e.recorded_at
           LIMIT $2
           FOR UPDATE OF e SKIP LOCKED),
         gone AS (
           DELETE FROM outbox_deliveries d USING outbox_sinks s, old
           WHERE d.sink = s.sink AND d.event_seq = old.seq)
         DELETE FROM outbox_events e USING old WHERE e.seq = old.seq",
    )
    .bind(i64::try_from(older_than.as_secs()).unwrap_or(i64::MAX))
    .bind(limit)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(removed)
}
