//! The dead-letter stream of a campaign: entries the settler could not settle
//! (unparseable, or refused by the ledger on their own), each with its reason
//! and a copy of the original fields (`f:<name>`). A dead-lettered draw was
//! answered to the shopper and counted in Redis: `reconcile` counts it per prize,
//! and [`retry`] settles it once its cause is fixed.

use super::entry::Entry;
use super::ledger;
use super::stream::{Fields, RawEntry};
use crate::domain::StreamId;
use redis::aio::ConnectionLike;
use sqlx::PgPool;
use std::time::Duration;

/// One dead letter.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    /// Its id in the dead-letter stream.
    pub id: String,
    /// The original entry's id in the results stream.
    pub source_id: String,
    pub reason: String,
    /// The original entry's fields, as text (lossy for bytes that are not UTF-8).
    pub fields: Vec<(String, String)>,
    #[serde(skip)]
    original: Fields,
}

/// Dead letters read per page.
const PAGE: usize = 500;

/// Up to `count` dead letters after `after` (exclusive; `None` = from the start).
pub async fn list(
    conn: &mut impl ConnectionLike,
    dead: &str,
    after: Option<&str>,
    count: usize,
) -> redis::RedisResult<Vec<DeadLetter>> {
    let after = after.and_then(StreamId::parse);
    let entries = super::stream::range_after(conn, dead, after, count).await?;
    Ok(entries.into_iter().map(letter).collect())
}

fn letter((id, fields): RawEntry) -> DeadLetter {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k.as_slice() == name.as_bytes())
            .map(|(_, v)| text(v))
            .unwrap_or_default()
    };
    let original: Fields = fields
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(b"f:")?.to_vec(), v.clone())))
        .collect();
    DeadLetter {
        source_id: field("source_id"),
        reason: field("reason"),
        fields: original.iter().map(|(k, v)| (text(k), text(v))).collect(),
        original,
        id,
    }
}

/// What a [`retry`] did.
#[derive(Debug, Default, serde::Serialize)]
pub struct RetryReport {
    /// Dead letters now in the ledger (and deleted from the dead-letter stream).
    pub settled: u64,
    /// Dead letters that still cannot be settled, with today's reason.
    pub remaining: Vec<Remaining>,
}

#[derive(Debug, serde::Serialize)]
pub struct Remaining {
    pub id: String,
    pub source_id: String,
    pub reason: String,
}

/// Settles every dead letter of `campaign` that the ledger now takes, and
/// deletes those from the dead-letter stream `dead` (after the commit: a retry
/// that stops half-way is run again, and the ledger ignores a spin it holds).
/// With `drop_context`, spins are settled without their client context (for a
/// context the ledger will never take). The rest stay, with the reason.
pub async fn retry(
    conn: &mut impl ConnectionLike,
    pg: &PgPool,
    pg_limit: Duration,
    campaign: &str,
    dead: &str,
    drop_context: bool,
) -> Result<RetryReport, RetryError> {
    let mut report = RetryReport::default();
    let mut after: Option<String> = None;
    loop {
        let page = list(conn, dead, after.as_deref(), PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(report);
        };
        after = Some(last.id.clone());
        let entries = page.iter().map(|d| (d.source_id.as_str(), &d.original));
        let written = ledger::write_stream_entries(pg, pg_limit, campaign, entries, |e| {
            if let (true, Entry::Spin(r)) = (drop_context, e) {
                r.context.clear();
            }
        })
        .await?;
        let mut refused = vec![false; page.len()];
        for (i, reason) in written.refused {
            refused[i] = true;
            report.remaining.push(remaining(&page[i], reason));
        }
        let settled: Vec<&str> = page
            .iter()
            .zip(&refused)
            .filter(|(_, r)| !**r)
            .map(|(d, _)| d.id.as_str())
            .collect();
        if !settled.is_empty() {
            let _: i64 = redis::cmd("XDEL")
                .arg(dead)
                .arg(&settled)
                .query_async(conn)
                .await?;
        }
        report.settled += settled.len() as u64;
        if page.len() < PAGE {
            return Ok(report);
        }
    }
}

fn remaining(d: &DeadLetter, reason: String) -> Remaining {
    Remaining {
        id: d.id.clone(),
        source_id: d.source_id.clone(),
        reason,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("postgres: {0}")]
    Pg(#[from] sqlx::Error),
}
