//! The dispatcher: per endpoint, a loop that claims due deliveries (as many as
//! it has free slots: `concurrency`), sends each in a task of its own, and a
//! recorder that writes the outcomes back in batches. Endpoints share nothing
//! but the dispatcher's own small PostgreSQL pool (two connections each), so a
//! slow endpoint holds up only itself, and deliveries never take a connection
//! from spins or settlement.

use super::webhook::Endpoint;
use crate::outbox::queue::{self, Attempted, Claimed};
use crate::outbox::report;
use crate::outbox::sinks::{self, SinkSpec};
use crate::telemetry::metrics::metrics;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

/// A lease outlasts an attempt (bounded by the endpoint's timeout) by this
/// much: the time to record the outcome.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// Longest one PostgreSQL step of the dispatcher may take.
const PG_LIMIT: Duration = Duration::from_secs(10);
/// Most outcomes recorded in one transaction.
const RECORD_BATCH: usize = 256;

/// A future running `$step` (an expression on the connection `$conn`) on a
/// connection of `$pg`, the wait for it included, within [`PG_LIMIT`]
/// (`store::pg::within` cannot take a step that borrows more than the connection).
macro_rules! bounded {
    ($pg:expr, |$conn:ident| $step:expr) => {
        async {
            let deadline = tokio::time::Instant::now() + PG_LIMIT;
            let mut $conn = crate::store::pg::acquire_by($pg, deadline).await?;
            let outcome = tokio::time::timeout_at(deadline, $step).await;
            let done: Result<_, sqlx::Error> = crate::store::pg::unless_late($conn, outcome);
            done
        }
    };
}

/// How a dispatcher paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How often an endpoint with nothing due looks again.
    pub poll: Duration,
    /// Finished events older than this are pruned (`outbox::prune`); `None`
    /// keeps them.
    pub retention: Option<Duration>,
}

/// Running dispatchers, one per endpoint.
pub struct Dispatcher {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Dispatcher {
    /// Registers `sinks` (retrying while PostgreSQL is down), then delivers to
    /// `endpoints` until [`Dispatcher::stop`]. `pg` should be the dispatcher's
    /// own pool.
    pub fn start(
        pg: PgPool,
        endpoints: Vec<Endpoint>,
        sinks: Vec<SinkSpec>,
        options: Options,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut registered = stopped.clone();
        let endpoints: Vec<Arc<Endpoint>> = endpoints.into_iter().map(Arc::new).collect();
        tasks.spawn(async move {
            if !sinks::register_until_done(&pg, &sinks, PG_LIMIT, &mut registered).await {
                return;
            }
            tracing::info!(endpoints = endpoints.len(), "delivering webhooks");
            let mut loops = JoinSet::new();
            let ids = endpoints.iter().map(|e| e.id.clone()).collect();
            loops.spawn(sample(pg.clone(), ids, options.retention, stopped.clone()));
            for endpoint in endpoints {
                loops.spawn(deliver(pg.clone(), endpoint, options.poll, stopped.clone()));
            }
            while loops.join_next().await.is_some() {}
        });
        Dispatcher { stop, tasks }
    }

    /// Stops claiming; the attempts in flight end (within their timeout) and
    /// their outcomes are recorded.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// How often the backlog gauges are sampled, and finished events pruned.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Most events pruned per statement (one short transaction each).
const PRUNE_BATCH: i64 = 5_000;

/// Samples the backlog of the endpoints `ids` into the gauges, and prunes
/// what is older than `retention`, until `stop`.
async fn sample(
    pg: PgPool,
    ids: Vec<String>,
    retention: Option<Duration>,
    mut stop: watch::Receiver<bool>,
) {
    let mut next_prune = tokio::time::Instant::now();
    while !*stop.borrow() {
        if let Some(older_than) = retention
            && tokio::time::Instant::now() >= next_prune
        {
            next_prune = tokio::time::Instant::now() + PRUNE_EVERY;
            prune(&pg, older_than, &stop).await;
        }
        let sampled = bounded!(&pg, |conn| report::backlog(&mut *conn)).await;
        match sampled {
            Ok(backlog) => {
                for b in backlog.iter().filter(|b| ids.contains(&b.sink)) {
                    metrics().webhook_backlog(
                        &b.sink,
                        b.enabled,
                        b.pending,
                        b.oldest_pending_secs.unwrap_or(0.0),
                        b.dead,
                    );
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot sample the webhook backlog"),
        }
        tokio::select! {
            _ = tokio::time::sleep(SAMPLE_EVERY) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Prunes in batches until a batch comes back short (or `stop`, or an error:
/// the next round tries again).
async fn prune(pg: &PgPool, older_than: Duration, stop: &watch::Receiver<bool>) {
    let mut removed = 0;
    while !*stop.borrow() {
        let pruned = bounded!(pg, |conn| crate::outbox::prune::prune(
            &mut conn,
            older_than,
            PRUNE_BATCH
        ))
        .await;
        match pruned {
            Ok(n) => {
                removed += n;
                if n < PRUNE_BATCH as u64 {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot prune the outbox; trying again later");
                break;
            }
        }
    }
    if removed > 0 {
        tracing::info!(
            events = removed,
            "pruned finished outbox events past the retention"
        );
    }
}

/// One endpoint's loop, until `stop`.
async fn deliver(
    pg: PgPool,
    endpoint: Arc<Endpoint>,
    poll: Duration,
    mut stop: watch::Receiver<bool>,
) {
    metrics().webhook_endpoint(&endpoint.id, super::webhook::OUTCOMES);
    let slots = endpoint.settings.concurrency.get();
    let free = Arc::new(Semaphore::new(slots));
    let (outcomes, received) = mpsc::channel(slots.max(RECORD_BATCH));
    let recorder = tokio::spawn(record(pg.clone(), endpoint.clone(), received));
    let lease = endpoint.settings.timeout() + LEASE_MARGIN;
    let mut pause = poll;
    while !*stop.borrow() {
        let first = tokio::select! {
            permit = free.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stop.changed() => continue,
        };
        let mut permits = vec![first];
        while let Ok(p) = free.clone().try_acquire_owned() {
            permits.push(p);
        }
        let n = i64::try_from(permits.len()).unwrap_or(1);
        match bounded!(&pg, |conn| queue::claim(&mut conn, &endpoint.id, lease, n)).await {
            Ok(claimed) if !claimed.is_empty() => {
                pause = poll;
                for (delivery, permit) in claimed.into_iter().zip(permits) {
                    tokio::spawn(attempt(
                        endpoint.clone(),
                        delivery,
                        permit,
                        outcomes.clone(),
                    ));
                }
                continue;
            }
            Ok(_) => pause = poll,
            Err(e) => {
                tracing::warn!(endpoint = %endpoint.id, error = %e, "cannot claim deliveries; retrying");
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
        drop(permits);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => {}
        }
    }
    // Every attempt in flight has returned its slot once its outcome is queued.
    let _ = free.acquire_many(slots as u32).await;
    drop(outcomes);
    let _ = recorder.await;
}

/// Sends one delivery and queues its outcome; the slot is free once it is queued.
async fn attempt(
    endpoint: Arc<Endpoint>,
    delivery: Claimed,
    _slot: OwnedSemaphorePermit,
    outcomes: mpsc::Sender<Attempted>,
) {
    let retry_in = backoff(&endpoint, delivery.failures);
    let sent = endpoint.send(&delivery, retry_in).await;
    metrics().webhook_attempt(&endpoint.id, sent.label);
    let _ = outcomes
        .send(Attempted {
            event_seq: delivery.event_seq,
            lease_id: delivery.lease_id,
            outcome: sent.outcome,
        })
        .await;
}

/// The delay before the retry after a delivery's `failures + 1`-th failure:
/// `backoff_initial_ms` doubled per failure before it, at most
/// `backoff_max_ms`, then a random point in its upper half (so that retries
/// of a burst spread out).
pub fn backoff(endpoint: &Endpoint, failures: i32) -> Duration {
    let s = &endpoint.settings;
    let doubled = s
        .backoff_initial_ms
        .get()
        .saturating_mul(1u64 << failures.clamp(0, 40));
    let ceiling = doubled.min(s.backoff_max_ms.get());
    Duration::from_millis(rand::random_range(ceiling.div_ceil(2)..=ceiling))
}

/// Writes outcomes back in batches until the senders are gone. A batch that
/// cannot be written is retried while its leases may still hold; after that
/// the deliveries are claimed again by whoever comes next (at least once).
async fn record(pg: PgPool, endpoint: Arc<Endpoint>, mut received: mpsc::Receiver<Attempted>) {
    let retry_for = endpoint.settings.retry_for();
    let lease = endpoint.settings.timeout() + LEASE_MARGIN;
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while received.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        let until = tokio::time::Instant::now() + lease;
        let mut pause = Duration::from_millis(50);
        loop {
            let written = bounded!(&pg, |conn| queue::settle(
                &mut conn,
                &endpoint.id,
                retry_for,
                &batch
            ))
            .await;
            match written {
                Ok(settled) => {
                    metrics().webhook_settled(
                        &endpoint.id,
                        &settled.delivered_lag_secs,
                        settled.dead,
                    );
                    break;
                }
                Err(e) if tokio::time::Instant::now() + pause < until => {
                    tracing::warn!(endpoint = %endpoint.id, error = %e, "cannot record delivery outcomes; retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(e) => {
                    tracing::warn!(endpoint = %endpoint.id, error = %e, outcomes = batch.len(),
                        "giving up recording delivery outcomes: their deliveries will be attempted again");
                    break;
                }
            }
        }
        batch.clear();
    }
}
