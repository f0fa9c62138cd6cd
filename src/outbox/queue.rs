//! A sink's deliveries as a work queue shared by any number of dispatchers.
//!
//! [`claim`] takes due deliveries under a lease: it locks them with
//! `FOR UPDATE SKIP LOCKED` (two dispatchers never take the same row) and sets
//! `lease_until`, before which nobody claims them again. The lease outlasts the
//! attempt (the dispatcher's timeout plus a margin), so no delivery is in
//! flight twice at the same moment; a dispatcher that dies mid-attempt leaves
//! its deliveries to whoever claims them once the lease has run out. Only the
//! lease holder may record the outcome ([`settle`]): a late answer from an
//! attempt whose lease ran out changes nothing.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use std::time::Duration;
use uuid::Uuid;

/// A delivery claimed under a lease, with its event.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub event_seq: i64,
    pub event_id: String,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    /// The event's data, JSON.
    pub payload: String,
    /// Attempts so far, this one included.
    pub attempts: i32,
    /// Failed attempts before this one.
    pub failures: i32,
    pub lease_id: Uuid,
}

/// Claims up to `limit` due deliveries of `sink` (enabled) for `lease`.
pub async fn claim(
    conn: &mut PgConnection,
    sink: &str,
    lease: Duration,
    limit: i64,
) -> Result<Vec<Claimed>, sqlx::Error> {
    sqlx::query_as(
        "WITH due AS (
           SELECT d.sink, d.event_seq FROM outbox_deliveries d
           WHERE d.sink = $1 AND d.state = 'pending' AND d.next_at <= now()
             AND (d.lease_until IS NULL OR d.lease_until < now())
             AND EXISTS (SELECT 1 FROM outbox_sinks s WHERE s.sink = $1 AND s.enabled)
           ORDER BY d.next_at
           LIMIT $4
           FOR UPDATE OF d SKIP LOCKED),
         c AS (
           UPDATE outbox_deliveries d
           SET lease_id = $2, lease_until = now() + $3 * interval '1 millisecond',
               attempts = d.attempts + 1
           FROM due WHERE d.sink = due.sink AND d.event_seq = due.event_seq
           RETURNING d.event_seq, d.attempts, d.failures, d.lease_id)
         SELECT c.event_seq, e.event_id, e.type AS event_type, e.occurred_at,
                e.payload::text AS payload, c.attempts, c.failures, c.lease_id
         FROM c JOIN outbox_events e ON e.seq = c.event_seq
         ORDER BY c.event_seq",
    )
    .bind(sink)
    .bind(Uuid::new_v4())
    .bind(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// How one attempt ended, for the queue.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The sink took it (a webhook: a 2xx answer, its status).
    Delivered { status: Option<i32> },
    /// Try again after `retry_in`, unless that is past the delivery's
    /// `retry_for`: then it is dead.
    Failed {
        status: Option<i32>,
        error: String,
        retry_in: Duration,
    },
    /// The sink is gone (a webhook: 410): the sink is disabled (`error` is
    /// the reason) and the delivery stays pending, as it was, for when the
    /// sink is enabled again.
    Released { status: Option<i32>, error: String },
}

/// A claimed delivery and its outcome.
#[derive(Debug, Clone)]
pub struct Attempted {
    pub event_seq: i64,
    pub lease_id: Uuid,
    pub outcome: Outcome,
}

/// What [`settle`] recorded.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Settled {
    /// Per delivery marked delivered: seconds from the event's recording to now.
    pub delivered_lag_secs: Vec<f64>,
    /// Deliveries that will be retried.
    pub retrying: u64,
    /// Deliveries that ran out of time (`retry_for`) and are now dead.
    pub dead: u64,
    /// Outcomes not recorded because their lease had passed to someone else.
    pub stale: u64,
}

/// Records the outcomes of `attempts` of `sink` in one transaction; those whose
/// lease is no longer theirs are left alone (counted `stale`).
pub async fn settle(
    conn: &mut PgConnection,
    sink: &str,
    retry_for: Duration,
    attempts: &[Attempted],
) -> Result<Settled, sqlx::Error> {
    use sqlx::Connection;
    let mut settled = Settled::default();
    let mut delivered = (Vec::new(), Vec::new(), Vec::new());
    let mut failed = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut released = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for a in attempts {
        match &a.outcome {
            Outcome::Delivered { status } => {
                delivered.0.push(a.event_seq);
                delivered.1.push(a.lease_id);
                delivered.2.push(*status);
            }
            Outcome::Failed {
                status,
                error,
                retry_in,
            } => {
                failed.0.push(a.event_seq);
                failed.1.push(a.lease_id);
                failed.2.push(*status);
                failed.3.push(error.clone());
                failed.4.push(millis(*retry_in));
            }
            Outcome::Released { status, error } => {
                released.0.push(a.event_seq);
                released.1.push(a.lease_id);
                released.2.push(*status);
                released.3.push(error.clone());
            }
        }
    }
    let mut tx = conn.begin().await?;
    if !delivered.0.is_empty() {
        settled.delivered_lag_secs = sqlx::query_scalar(
            "UPDATE outbox_deliveries d
             SET state = 'delivered', delivered_at = now(), lease_id = NULL, lease_until = NULL,
                 last_status = b.status, last_error = NULL
             FROM UNNEST($2::bigint[], $3::uuid[], $4::int[]) AS b(seq, lease, status),
                  outbox_events e
             WHERE d.sink = $1 AND d.event_seq = b.seq AND d.lease_id = b.lease
               AND d.state = 'pending' AND e.seq = d.event_seq
             RETURNING extract(epoch FROM now() - e.recorded_at)::float8",
        )
        .bind(sink)
        .bind(&delivered.0)
        .bind(&delivered.1)
        .bind(&delivered.2)
        .fetch_all(&mut *tx)
        .await?;
    }
    if !failed.0.is_empty() {
        let states: Vec<String> = sqlx::query_scalar(
            "UPDATE outbox_deliveries d
             SET failures = d.failures + 1, lease_id = NULL, lease_until = NULL,
                 last_status = b.status, last_error = b.error,
                 next_at = now() + b.retry_ms * interval '1 millisecond',
                 state = CASE WHEN now() + b.retry_ms * interval '1 millisecond'
                                   > d.created_at + $2 * interval '1 millisecond'
                              THEN 'dead' ELSE 'pending' END
             FROM UNNEST($3::bigint[], $4::uuid[], $5::int[], $6::text[], $7::bigint[])
                  AS b(seq, lease, status, error, retry_ms)
             WHERE d.sink = $1 AND d.event_seq = b.seq AND d.lease_id = b.lease
               AND d.state = 'pending'
             RETURNING d.state",
        )
        .bind(sink)
        .bind(millis(retry_for))
        .bind(&failed.0)
        .bind(&failed.1)
        .bind(&failed.2)
        .bind(&failed.3)
        .bind(&failed.4)
        .fetch_all(&mut *tx)
        .await?;
        settled.dead = states.iter().filter(|s| *s == "dead").count() as u64;
        settled.retrying = states.len() as u64 - settled.dead;
    }
    let mut released_n = 0;
    if !released.0.is_empty() {
        released_n = sqlx::query(
            "UPDATE outbox_deliveries d
             SET lease_id = NULL, lease_until = NULL, last_status = b.status, last_error = b.error
             FROM UNNEST($2::bigint[], $3::uuid[], $4::int[], $5::text[])
                  AS b(seq, lease, status, error)
             WHERE d.sink = $1 AND d.event_seq = b.seq AND d.lease_id = b.lease
               AND d.state = 'pending'",
        )
        .bind(sink)
        .bind(&released.0)
        .bind(&released.1)
        .bind(&released.2)
        .bind(&released.3)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "UPDATE outbox_sinks SET enabled = false, disabled_reason = $2, updated_at = now()
             WHERE sink = $1 AND enabled",
        )
        .bind(sink)
        .bind(&released.3[0])
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    let recorded =
        settled.delivered_lag_secs.len() as u64 + settled.retrying + settled.dead + released_n;
    settled.stale = attempts.len() as u64 - recorded;
    Ok(settled)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
