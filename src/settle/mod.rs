//! Settlement: every draw in a campaign's results stream lands in PostgreSQL
//! exactly once.
//!
//! Each settler (inside `serve`, or alone as `prizewheel settle`; any number of
//! them) follows every active campaign's stream through the consumer group
//! `settlers`. For each batch it inserts the rows in one transaction with
//! `ON CONFLICT (spin_id) DO NOTHING`, commits, and only then `XACK`s. A crash
//! before the commit leaves the entries pending, a crash between commit and ack
//! settles them again harmlessly; pending entries are re-read by their consumer
//! on restart and taken over by others (`XAUTOCLAIM`) once idle long enough.
//! PostgreSQL being down pauses settlement (with backoff), never spins.

mod copy;
pub mod dead;
pub mod entry;
pub mod ledger;
pub mod reader;
pub mod stream;

use crate::store::redis::connection::{RedisConn, RedisTarget, Timeouts};
use crate::store::redis::keys::CampaignKeys;
use serde::Deserialize;
use sqlx::PgPool;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SettleSettings {
    /// Run a settler inside `serve`.
    pub enabled: bool,
    /// Most entries per batch (one COPY, one commit, one XACK).
    pub batch_size: usize,
    /// How long a read waits for new entries, which bounds how late a lone spin settles.
    pub batch_wait_ms: u64,
    /// Entries pending on another settler for this long are taken over.
    pub claim_idle_ms: u64,
    /// How often the list of active campaigns is re-read from PostgreSQL.
    pub refresh_ms: u64,
    /// How often settled entries are trimmed from the streams.
    pub trim_every_ms: u64,
    /// Longest pause between retries while PostgreSQL or Redis fails.
    pub max_backoff_ms: u64,
    /// How often each settler checks whether a campaign awaits recovery after
    /// Redis lost writes (src/recover): its new draws wait that long at most.
    pub recovery_check_ms: u64,
    /// Longest one PostgreSQL step may take (a batch's write and commit, or the
    /// read of the campaign list) before the settler gives up its connection
    /// and retries on a new one: a peer that vanished without a reset never
    /// answers, and nothing else would end the wait.
    pub write_timeout_ms: u64,
    /// Settlement counts as stuck once its oldest unsettled entry is older than
    /// this: the finance summary and `reconcile` then fail, `/readyz` names it
    /// (check `settlement`) and the alert rules in deploy/prometheus fire.
    pub max_lag_ms: u64,
}

impl Default for SettleSettings {
    fn default() -> Self {
        SettleSettings {
            enabled: true,
            batch_size: 2000,
            batch_wait_ms: 200,
            claim_idle_ms: 30_000,
            refresh_ms: 5_000,
            trim_every_ms: 2_000,
            max_backoff_ms: 5_000,
            recovery_check_ms: 500,
            write_timeout_ms: 10_000,
            max_lag_ms: 60_000,
        }
    }
}

impl SettleSettings {
    /// Pending entries idle this long are stuck: a live settler would have taken
    /// them over after `claim_idle_ms`.
    pub fn stuck_after_ms(&self) -> u64 {
        self.claim_idle_ms.saturating_mul(4)
    }

    /// When settlement counts as stuck, for the finance summary and readiness.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            stuck_after_ms: self.stuck_after_ms(),
            max_lag_ms: self.max_lag_ms,
        }
    }
}

/// When settlement counts as stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// A pending entry idle this long is stuck (no settler holds it).
    pub stuck_after_ms: u64,
    /// The oldest unsettled entry may be at most this old.
    pub max_lag_ms: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        SettleSettings::default().thresholds()
    }
}

/// Stops settlers: send `true` and they finish the batch in hand, ack it and return.
pub type Shutdown = watch::Receiver<bool>;

/// A settler process: one task per active campaign.
pub struct Settler {
    pub client: RedisTarget,
    pub pg: PgPool,
    pub settings: SettleSettings,
    /// Unique per process: pending entries are owned by consumer name.
    pub consumer: String,
}

impl Settler {
    pub fn new(
        client: RedisTarget,
        pg: PgPool,
        settings: SettleSettings,
        consumer: String,
    ) -> Self {
        Settler {
            client,
            pg,
            settings,
            consumer,
        }
    }

    /// A consumer name for this process: host and pid, stable across the
    /// process's life so it finds its own pending entries.
    pub fn default_consumer() -> String {
        let host =
            std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "host".into());
        format!("{}-{}", host.trim(), std::process::id())
    }

    /// Follows every active campaign until `shutdown` turns true. (The
    /// recovery watch runs beside it: `startup::settling`.)
    pub async fn run(self, mut shutdown: Shutdown) {
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut running: HashMap<String, tokio::task::AbortHandle> = HashMap::new();
        loop {
            match self.campaigns().await {
                Ok(ids) => {
                    for id in ids {
                        if running.get(&id).is_some_and(|h| !h.is_finished()) {
                            continue;
                        }
                        let keys = match crate::domain::CampaignId::parse(&id) {
                            Ok(c) => CampaignKeys::new(&c),
                            Err(_) => continue,
                        };
                        let worker = CampaignSettler {
                            campaign: id.clone(),
                            stream: keys.results,
                            dead: keys.dead,
                            client: self.client.clone(),
                            pg: self.pg.clone(),
                            settings: self.settings.clone(),
                            consumer: self.consumer.clone(),
                        };
                        let handle = tasks.spawn(worker.run(shutdown.clone()));
                        running.insert(id, handle);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "settler cannot list campaigns; retrying"),
            }
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep(Duration::from_millis(self.settings.refresh_ms)) => {}
            }
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
        tracing::info!("settler stopped");
    }
}

impl Settler {
    /// The campaigns to follow, within `write_timeout_ms`.
    async fn campaigns(&self) -> Result<Vec<String>, sqlx::Error> {
        let limit = Duration::from_millis(self.settings.write_timeout_ms);
        crate::store::pg::within(&self.pg, limit, |c| Box::pin(ledger::active_campaigns(c))).await
    }
}

/// Settles one campaign's stream.
struct CampaignSettler {
    campaign: String,
    stream: String,
    dead: String,
    client: RedisTarget,
    pg: PgPool,
    settings: SettleSettings,
    consumer: String,
}

/// Where a settler reads its stream from (`CampaignSettler::source`).
enum Source {
    Own(Box<reader::Reader>),
    Crate(RedisConn),
}

impl Source {
    /// Up to `batch_size` entries of `s`'s stream for its consumer, from
    /// `from` (`"0"`: its own pending ones; `">"`: new ones, waiting up to
    /// `block_ms`).
    async fn read(
        &mut self,
        s: &CampaignSettler,
        from: &str,
        block_ms: Option<u64>,
    ) -> redis::RedisResult<Vec<stream::RawEntry>> {
        let n = s.settings.batch_size;
        match self {
            Source::Own(r) => r.read(&s.stream, &s.consumer, from, n, block_ms).await,
            Source::Crate(c) => stream::read(c, &s.stream, &s.consumer, from, n, block_ms).await,
        }
    }
}

/// Why a step failed: a store is unavailable (back off and retry).
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("postgres: {0}")]
    Pg(#[from] sqlx::Error),
}

impl CampaignSettler {
    async fn run(self, mut shutdown: Shutdown) {
        let mut backoff = Duration::from_millis(100);
        while !*shutdown.borrow() {
            match self.follow(&mut shutdown).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(campaign.id = %self.campaign, error = %e, backoff_ms = backoff.as_millis() as u64, "settlement paused");
                    tokio::select! {
                        _ = shutdown.changed() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff =
                        (backoff * 2).min(Duration::from_millis(self.settings.max_backoff_ms));
                }
            }
        }
    }

    async fn connect(&self) -> Result<RedisConn, StepError> {
        // Reads block for batch_wait_ms; allow that plus a margin.
        let timeouts = Timeouts {
            connect: Duration::from_secs(2),
            response: Duration::from_millis(self.settings.batch_wait_ms + 5_000),
        };
        Ok(self.client.dedicated(timeouts).await?)
    }

    /// Where this settler reads its stream: a reader of its own that parses
    /// the replies itself on a single server (`reader.rs`), the crate's
    /// connection otherwise.
    fn source(&self, conn: &RedisConn) -> Source {
        let own = match &self.client {
            RedisTarget::Single(client) => {
                reader::Reader::new(client, Duration::from_secs(2), Duration::from_millis(5_000))
            }
            RedisTarget::Cluster(_) => None,
        };
        match own {
            Some(r) => Source::Own(Box::new(r)),
            None => Source::Crate(conn.clone()),
        }
    }

    /// Own pending entries first, then idle ones of others, then new ones; returns
    /// on shutdown, or with the error that stopped it.
    async fn follow(&self, shutdown: &mut Shutdown) -> Result<(), StepError> {
        let mut conn = self.connect().await?;
        stream::ensure_group(&mut conn, &self.stream).await?;
        let mut source = self.source(&conn);
        let n = self.settings.batch_size;
        loop {
            let own = source.read(self, "0", None).await?;
            if own.is_empty() {
                break;
            }
            self.settle(&mut conn, own).await?;
        }
        let mut last_claim = Instant::now() - Duration::from_secs(3600);
        let mut last_trim = Instant::now();
        // The next batch, read while the previous one was being written.
        let mut ahead: Option<Vec<stream::RawEntry>> = None;
        loop {
            if *shutdown.borrow() {
                // Finish the batch in hand before stopping.
                if let Some(batch) = ahead.take().filter(|b| !b.is_empty()) {
                    self.settle(&mut conn, batch).await?;
                }
                return Ok(());
            }
            if last_claim.elapsed() >= Duration::from_millis(self.settings.claim_idle_ms / 2) {
                let mut claimed = stream::claim_idle(
                    &mut conn,
                    &self.stream,
                    &self.consumer,
                    self.settings.claim_idle_ms,
                    n,
                )
                .await?;
                // The batch read ahead is pending on this consumer too, and
                // idle once a write took longer than claim_idle_ms: it is
                // settled next, not twice (a refused entry would be
                // dead-lettered twice).
                if let Some(ahead) = ahead
                    .as_ref()
                    .filter(|a| !claimed.is_empty() && !a.is_empty())
                {
                    let held: std::collections::HashSet<&str> =
                        ahead.iter().map(|(id, _)| id.as_str()).collect();
                    claimed.retain(|(id, _)| !held.contains(id.as_str()));
                }
                if !claimed.is_empty() {
                    tracing::info!(campaign.id = %self.campaign, entries = claimed.len(), "took over idle pending entries");
                    self.settle(&mut conn, claimed).await?;
                }
                last_claim = Instant::now();
            }
            let batch = match ahead.take() {
                Some(b) => b,
                None => {
                    source
                        .read(self, ">", Some(self.settings.batch_wait_ms))
                        .await?
                }
            };
            if !batch.is_empty() {
                // Write this batch while reading the next: PostgreSQL and Redis
                // work at the same time. Entries read ahead are pending on this
                // consumer, so a crash here loses nothing.
                let (settled, next) = tokio::join!(
                    self.settle(&mut conn, batch),
                    source.read(self, ">", Some(self.settings.batch_wait_ms)),
                );
                settled?;
                ahead = Some(next?);
            }
            if last_trim.elapsed() >= Duration::from_millis(self.settings.trim_every_ms) {
                stream::trim_settled(&mut conn, &self.stream).await?;
                last_trim = Instant::now();
            }
        }
    }

    /// Settles one batch in a `settlement.batch` span, and records its size and
    /// duration.
    async fn settle(
        &self,
        conn: &mut RedisConn,
        batch: Vec<stream::RawEntry>,
    ) -> Result<(), StepError> {
        use tracing::Instrument;
        let entries = batch.len();
        let span = tracing::info_span!("settlement.batch", campaign.id = %self.campaign, entries);
        let started = Instant::now();
        self.write_and_ack(conn, batch).instrument(span).await?;
        let m = crate::telemetry::metrics();
        m.settlement_batch_size.record(entries as u64, &[]);
        m.settlement_batch_duration
            .record(started.elapsed().as_secs_f64(), &[]);
        Ok(())
    }

    /// Writes one batch to PostgreSQL, commits, dead-letters what cannot be
    /// parsed or what the ledger refuses on its own (`ledger::write_isolating`),
    /// then acknowledges everything. Nothing is acked before the commit.
    async fn write_and_ack(
        &self,
        conn: &mut RedisConn,
        batch: Vec<stream::RawEntry>,
    ) -> Result<(), StepError> {
        let started = Instant::now();
        // Bounded per attempt: a PostgreSQL that vanished without a reset would
        // hold this batch (and the campaign's settlement) forever.
        let limit = Duration::from_millis(self.settings.write_timeout_ms);
        let entries = batch.iter().map(|(id, fields)| (id.as_str(), fields));
        let written =
            ledger::write_stream_entries(&self.pg, limit, &self.campaign, entries, |_| {}).await?;
        for (i, reason) in &written.refused {
            let (id, fields) = &batch[*i];
            tracing::error!(campaign.id = %self.campaign, stream.id = %id, reason = %reason, "unsettleable entry moved to the dead-letter stream");
            stream::dead_letter(conn, &self.dead, id, reason, fields).await?;
        }
        let ids: Vec<&str> = batch.iter().map(|(id, _)| id.as_str()).collect();
        stream::ack(conn, &self.stream, &ids).await?;
        tracing::debug!(
            campaign.id = %self.campaign,
            entries = ids.len(),
            inserted = written.inserted,
            dead = written.refused.len(),
            duration_ms = started.elapsed().as_millis() as u64,
            "batch settled"
        );
        Ok(())
    }
}
