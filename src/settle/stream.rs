//! The Redis side of settlement: the consumer group on a campaign's results
//! stream, reading, claiming, acknowledging, dead-lettering and safe trimming.

use crate::domain::StreamId;
use redis::Value;
use redis::aio::ConnectionLike;
use std::collections::HashMap;

/// The one consumer group every settler joins.
pub const GROUP: &str = "settlers";

/// A stream entry: its id and its field/value pairs in order (empty when the
/// entry was deleted while pending).
pub type RawEntry = (String, Fields);
pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// Creates the group at the start of the stream (idempotent).
pub async fn ensure_group(conn: &mut impl ConnectionLike, stream: &str) -> redis::RedisResult<()> {
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => other,
    }
}

/// `XREADGROUP GROUP settlers <consumer> COUNT <count> [BLOCK <ms>] STREAMS
/// <stream> <from>`: the read of [`read`] and of the settler's own reader
/// (`reader.rs`).
pub fn read_command(
    stream: &str,
    consumer: &str,
    from: &str,
    count: usize,
    block_ms: Option<u64>,
) -> redis::Cmd {
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg(GROUP)
        .arg(consumer)
        .arg("COUNT")
        .arg(count);
    if let Some(ms) = block_ms {
        cmd.arg("BLOCK").arg(ms);
    }
    cmd.arg("STREAMS").arg(stream).arg(from);
    cmd
}

/// Reads up to `count` entries for `consumer`: `from = "0"` re-reads its own
/// pending entries, `">"` new ones (waiting up to `block_ms`).
pub async fn read(
    conn: &mut impl ConnectionLike,
    stream: &str,
    consumer: &str,
    from: &str,
    count: usize,
    block_ms: Option<u64>,
) -> redis::RedisResult<Vec<RawEntry>> {
    // [[stream, [entry, …]]] or nil; walked by hand to avoid a map per entry.
    let reply: Value = read_command(stream, consumer, from, count, block_ms)
        .query_async(conn)
        .await?;
    let mut out = Vec::new();
    if let Value::Array(streams) = reply {
        for s in streams {
            if let Value::Array(mut pair) = s
                && pair.len() == 2
                && let Value::Array(items) = pair.swap_remove(1)
            {
                out.extend(items.into_iter().filter_map(entry));
            }
        }
    }
    Ok(out)
}

/// One `[id, [field, value, …]]` entry; the field list is nil for an entry
/// deleted while pending (nothing to settle; the caller acknowledges it).
fn entry(v: Value) -> Option<RawEntry> {
    let Value::Array(mut parts) = v else {
        return None;
    };
    if parts.len() != 2 {
        return None;
    }
    let fields = parts.pop()?;
    let id = match parts.pop()? {
        Value::BulkString(b) => String::from_utf8(b).ok()?,
        Value::SimpleString(s) => s,
        _ => return None,
    };
    let mut pairs = Vec::new();
    if let Value::Array(flat) = fields {
        let mut it = flat.into_iter();
        while let (Some(Value::BulkString(k)), Some(Value::BulkString(v))) = (it.next(), it.next())
        {
            pairs.push((k, v));
        }
    }
    Some((id, pairs))
}

/// Up to `count` entries after `after` (exclusive; `None` = from the start), in
/// order, whatever their settlement state.
pub async fn range_after(
    conn: &mut impl ConnectionLike,
    stream: &str,
    after: Option<StreamId>,
    count: usize,
) -> redis::RedisResult<Vec<RawEntry>> {
    let reply: Vec<Value> = redis::cmd("XRANGE")
        .arg(stream)
        .arg(after.map_or("-".to_owned(), |a| format!("({a}")))
        .arg("+")
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await?;
    Ok(reply.into_iter().filter_map(entry).collect())
}

/// Takes over entries pending on any consumer for longer than `min_idle_ms`.
pub async fn claim_idle(
    conn: &mut impl ConnectionLike,
    stream: &str,
    consumer: &str,
    min_idle_ms: u64,
    count: usize,
) -> redis::RedisResult<Vec<RawEntry>> {
    let mut out = Vec::new();
    let mut cursor = "0-0".to_owned();
    // Bounded: at most 100 rounds of `count` entries per call.
    for _ in 0..100 {
        let reply: (String, Vec<Value>, Value) = redis::cmd("XAUTOCLAIM")
            .arg(stream)
            .arg(GROUP)
            .arg(consumer)
            .arg(min_idle_ms)
            .arg(&cursor)
            .arg("COUNT")
            .arg(count)
            .query_async(conn)
            .await?;
        out.extend(reply.1.into_iter().filter_map(entry));
        cursor = reply.0;
        if cursor == "0-0" || out.len() >= count {
            break;
        }
    }
    Ok(out)
}

pub async fn ack(
    conn: &mut impl ConnectionLike,
    stream: &str,
    ids: &[impl redis::ToRedisArgs + Sync],
) -> redis::RedisResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let _: i64 = redis::cmd("XACK")
        .arg(stream)
        .arg(GROUP)
        .arg(ids)
        .query_async(conn)
        .await?;
    Ok(())
}

/// Copies an unparseable entry to `dead` with the reason.
pub async fn dead_letter(
    conn: &mut impl ConnectionLike,
    dead: &str,
    id: &str,
    reason: &str,
    fields: &Fields,
) -> redis::RedisResult<()> {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(dead)
        .arg("*")
        .arg("source_id")
        .arg(id)
        .arg("reason")
        .arg(reason);
    for (k, v) in fields {
        cmd.arg([b"f:".as_slice(), k].concat()).arg(v.as_slice());
    }
    let _: String = cmd.query_async(conn).await?;
    Ok(())
}

/// How far settlement is behind on one stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    /// Delivered to a settler but not acknowledged.
    pub pending: u64,
    /// Not yet delivered to any settler.
    pub undelivered: u64,
    /// The oldest unsettled entry's id, if any.
    pub oldest: Option<StreamId>,
    /// Where the group has read up to.
    pub last_delivered: Option<StreamId>,
}

impl Lag {
    pub fn unsettled(&self) -> u64 {
        self.pending + self.undelivered
    }

    /// Age of the oldest unsettled entry at `now_ms`.
    pub fn oldest_age_ms(&self, now_ms: i64) -> i64 {
        self.oldest.map_or(0, |id| (now_ms - id.ms).max(0))
    }
}

pub async fn lag(conn: &mut impl ConnectionLike, stream: &str) -> redis::RedisResult<Lag> {
    let groups: Vec<HashMap<String, Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(conn)
        .await?;
    let Some(g) = groups
        .iter()
        .find(|g| text(g.get("name")).as_deref() == Some(GROUP))
    else {
        // No settler has joined yet: the whole stream is undelivered, from its
        // first entry on.
        let len: u64 = redis::cmd("XLEN").arg(stream).query_async(conn).await?;
        let first: Vec<(String, HashMap<String, Value>)> = redis::cmd("XRANGE")
            .arg(stream)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(conn)
            .await?;
        return Ok(Lag {
            undelivered: len,
            oldest: first.first().and_then(|(id, _)| StreamId::parse(id)),
            ..Lag::default()
        });
    };
    let pending = int(g.get("pending"));
    let last_delivered = text(g.get("last-delivered-id")).and_then(|s| StreamId::parse(&s));
    let oldest_pending = if pending > 0 {
        let summary: (u64, Option<String>, Option<String>, Value) = redis::cmd("XPENDING")
            .arg(stream)
            .arg(GROUP)
            .query_async(conn)
            .await?;
        summary.1.and_then(|s| StreamId::parse(&s))
    } else {
        None
    };
    let after = last_delivered.map_or("-".to_owned(), |id| format!("({id}"));
    let next: Vec<(String, HashMap<String, Value>)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg(&after)
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    let first_undelivered = next.first().and_then(|(id, _)| StreamId::parse(id));
    // Nothing past the last delivered id is nothing undelivered, whatever the
    // group's `lag` says: Redis derives it from an `entries-read` counter that
    // drifts (seen here after a run with restarts and trims: lag 32,955 on an
    // empty, fully delivered stream). Otherwise `lag` is the cheap answer on
    // Redis 7+; without it, count.
    let undelivered = match g.get("lag") {
        _ if first_undelivered.is_none() => 0,
        Some(Value::Int(n)) => (*n as u64).max(1),
        _ => {
            let rest: Vec<(String, HashMap<String, Value>)> = redis::cmd("XRANGE")
                .arg(stream)
                .arg(&after)
                .arg("+")
                .query_async(conn)
                .await?;
            rest.len() as u64
        }
    };
    let oldest = [oldest_pending, first_undelivered]
        .into_iter()
        .flatten()
        .min();
    Ok(Lag {
        pending,
        undelivered,
        oldest,
        last_delivered,
    })
}

/// Trims entries that are settled for sure: delivered and no longer pending.
/// `XTRIM` (before Redis 8.2) deletes pending entries too, so the threshold is
/// the oldest pending entry, or just past the last delivered one.
pub async fn trim_settled(conn: &mut impl ConnectionLike, stream: &str) -> redis::RedisResult<u64> {
    let lag = lag(conn, stream).await?;
    let Some(last) = lag.last_delivered else {
        return Ok(0);
    };
    let pending_floor = if lag.pending > 0 { lag.oldest } else { None };
    let threshold = match pending_floor {
        Some(p) if p <= last => p,
        _ => last.next(),
    };
    redis::cmd("XTRIM")
        .arg(stream)
        .arg("MINID")
        .arg(threshold.to_string())
        .query_async(conn)
        .await
}

fn text(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::BulkString(b)) => String::from_utf8(b.clone()).ok(),
        Some(Value::SimpleString(s)) => Some(s.clone()),
        _ => None,
    }
}

fn int(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::Int(n)) => *n as u64,
        _ => 0,
    }
}
