//! Writing a batch of stream entries into PostgreSQL: one statement per table,
//! one transaction, `ON CONFLICT DO NOTHING` so a batch settled twice (after a
//! crash between commit and ack) changes nothing the second time. A batch that
//! PostgreSQL refuses for its data is split until the refused entries stand
//! alone ([`write_isolating`]): no entry can hold back the others.
//!
//! A whole batch's rewards first go in by one binary `COPY` into `rewards`
//! (src/settle/copy.rs, [`Rewards::Copy`]): no `ON CONFLICT` there, so a batch with a spin the
//! ledger already holds, or one PostgreSQL refuses for any other value, fails
//! and rolls back whole, and is written again as before, by the `INSERT … ON
//! CONFLICT DO NOTHING` ([`Rewards::Insert`]), which decides what is settled
//! and what is refused exactly as it did without the COPY. The halves of an
//! isolation go straight to the `INSERT`.

use super::entry::{self, Entry};
use super::stream::Fields;
use sqlx::{Connection, PgConnection, PgExecutor, PgPool};
use std::ops::Range;
use std::time::Duration;

/// What [`write_isolating`] did.
#[derive(Debug, Default)]
pub struct Written {
    /// Rewards that were new.
    pub inserted: u64,
    /// Entries PostgreSQL refused on their own (index into the entries given),
    /// with its reason; everything else is written.
    pub refused: Vec<(usize, String)>,
}

/// [`write_isolating`] over entries as the streams hold them (id, fields):
/// each is parsed (`entry::parse`) and may be changed by `edit` (e.g. a spin's
/// context dropped); one without fields (deleted while pending) is skipped.
/// Every entry not written, because it does not parse or because PostgreSQL
/// refused it, comes back in `refused` with its reason, by index into `entries`,
/// in order. Serves the settler, the dead-letter retry and recovery's drain.
pub async fn write_stream_entries<'a>(
    pg: &PgPool,
    limit: Duration,
    campaign: &str,
    entries: impl IntoIterator<Item = (&'a str, &'a Fields)>,
    edit: impl Fn(&mut Entry),
) -> Result<Written, sqlx::Error> {
    let mut rows = Vec::new();
    // For each row, its index in `entries`.
    let mut sources = Vec::new();
    let mut unparsed = Vec::new();
    for (i, (id, fields)) in entries.into_iter().enumerate() {
        if fields.is_empty() {
            continue;
        }
        match entry::parse(id, fields) {
            Entry::Poison(reason) => unparsed.push((i, reason)),
            mut row => {
                edit(&mut row);
                rows.push(row);
                sources.push(i);
            }
        }
    }
    let mut written = write_isolating(pg, limit, campaign, &rows).await?;
    unparsed.extend(
        written
            .refused
            .drain(..)
            .map(|(row, reason)| (sources[row], reason)),
    );
    unparsed.sort_by_key(|(i, _)| *i);
    written.refused = unparsed;
    Ok(written)
}

/// Writes `entries` (spins and applies; anything else is skipped) and commits,
/// each attempt within `limit`. When PostgreSQL refuses a batch for its data
/// ([`is_data_error`]), the batch is halved and each half written on its own,
/// down to single entries: those that still fail are returned as refused, for
/// the caller to dead-letter. Any other error (PostgreSQL unreachable, late, a
/// transient conflict) is returned: nothing is refused because a store is down.
/// Halves already committed before such an error are written again harmlessly.
pub async fn write_isolating(
    pg: &PgPool,
    limit: Duration,
    campaign: &str,
    entries: &[Entry],
) -> Result<Written, sqlx::Error> {
    let mut written = Written::default();
    // Parts still to write, as ranges of `entries`; the last is written next.
    let mut todo: Vec<Range<usize>> = Vec::new();
    todo.push(0..entries.len());
    while let Some(part) = todo.pop() {
        if part.is_empty() {
            continue;
        }
        // COPY first for the whole batch only: once it is being split, a
        // refusal is expected and the halves skip the attempt.
        let first = if part.len() == entries.len() {
            Rewards::Copy
        } else {
            Rewards::Insert
        };
        let outcome = write_within(pg, limit, campaign, &entries[part.clone()], first).await;
        match outcome {
            Ok(n) => written.inserted += n,
            Err(e) if is_data_error(&e) && part.len() == 1 => {
                written.refused.push((part.start, refusal(&e)));
            }
            Err(e) if is_data_error(&e) => {
                let mid = part.start + part.len() / 2;
                // Popped left half first: entries are written in stream order.
                todo.push(mid..part.end);
                todo.push(part.start..mid);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// How a batch's rewards go in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewards {
    /// Binary `COPY` into `rewards` (src/settle/copy.rs); any data error, a
    /// spin the ledger already holds included, is retried as
    /// [`Rewards::Insert`].
    Copy,
    /// `INSERT … SELECT FROM UNNEST(…) ON CONFLICT (spin_id) DO NOTHING`.
    Insert,
}

/// [`write_batch`] on a connection of `pg`, all within `limit` (the wait for a
/// connection included; `store::pg::within` says why). With [`Rewards::Copy`],
/// a data error of the COPY's transaction (rolled back) is followed by the same
/// batch with [`Rewards::Insert`], on the same connection and deadline.
async fn write_within(
    pg: &PgPool,
    limit: Duration,
    campaign: &str,
    entries: &[Entry],
    first: Rewards,
) -> Result<u64, sqlx::Error> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut held = CloseUnlessDone(Some(crate::store::pg::acquire_by(pg, deadline).await?));
    let conn = held.0.as_mut().expect("held until done");
    let written = tokio::time::timeout_at(deadline, async {
        if first == Rewards::Copy {
            match write_batch(conn, campaign, entries, Rewards::Copy).await {
                Err(e) if is_data_error(&e) => {
                    tracing::debug!(campaign.id = %campaign, error = %e, "COPY refused; the batch goes in by INSERT");
                }
                done => return done,
            }
        }
        write_batch(conn, campaign, entries, Rewards::Insert).await
    })
    .await;
    crate::store::pg::unless_late(held.done(), written)
}

/// A pooled connection that is closed, not returned to the pool, when the write
/// using it is dropped half-way (its task aborted): sqlx hands a connection
/// whose COPY was cut off back to the pool in a state its next user fails on
/// ("expected ParseComplete, got ReadyForQuery", seen in
/// `settlers_killed_at_random_points_lose_and_double_nothing`).
struct CloseUnlessDone(Option<sqlx::pool::PoolConnection<sqlx::Postgres>>);

impl CloseUnlessDone {
    /// The write ended (well or not): the connection may go back to the pool.
    fn done(mut self) -> sqlx::pool::PoolConnection<sqlx::Postgres> {
        self.0.take().expect("held until done")
    }
}

impl Drop for CloseUnlessDone {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(conn.detach());
        }
    }
}

/// PostgreSQL refused the statement for the values it carries: SQLSTATE class
/// 22 (data exception: a NUL in text or jsonb, a number out of range) or 23
/// (integrity constraint violation), or a value sqlx could not encode. The same
/// batch would fail again however often it is retried. Everything else (I/O,
/// timeouts, a pool that is closed or exhausted, serialization failures, an
/// undefined table) may pass on a retry, or fails for every entry alike.
pub fn is_data_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("22") || c.starts_with("23")),
        sqlx::Error::Encode(_) => true,
        _ => false,
    }
}

/// Why PostgreSQL refused an entry, for the dead-letter stream (bounded).
fn refusal(e: &sqlx::Error) -> String {
    let text = match e {
        sqlx::Error::Database(db) => {
            format!(
                "{} (SQLSTATE {})",
                db.message(),
                db.code().unwrap_or_default()
            )
        }
        other => other.to_string(),
    };
    let short: String = text.chars().take(300).collect();
    format!("the ledger refused the entry: {short}")
}

/// Inserts the spins (by `how`), grants, revocations and applies among
/// `entries` of `campaign`, and their outbox events and deliveries
/// (src/outbox), and commits. Returns how many rewards were new. On an error
/// the transaction is rolled back (when the connection is next used).
pub async fn write_batch(
    pg: &mut PgConnection,
    campaign: &str,
    entries: &[Entry],
    how: Rewards,
) -> Result<u64, sqlx::Error> {
    let rewards: Vec<&super::entry::Reward> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Spin(r) => Some(r),
            _ => None,
        })
        .collect();
    let applies = entries.iter().filter_map(|e| match e {
        Entry::Apply(a) => Some(a),
        _ => None,
    });
    let mut tx = pg.begin().await?;
    let mut inserted = 0;
    if !rewards.is_empty() && how == Rewards::Copy {
        let data = super::copy::rewards(campaign, &rewards)?;
        let mut copy = tx.copy_in_raw(super::copy::STATEMENT).await?;
        let sent = copy.send(data).await.map(|_| ());
        if let Err(e) = sent {
            // End the COPY so that the connection is usable (if it still is),
            // and report the first error.
            copy.abort("send failed").await.ok();
            return Err(e);
        }
        // A spin already settled fails here (unique violation).
        inserted = copy.finish().await?;
    } else if !rewards.is_empty() {
        let col = |f: fn(&super::entry::Reward) -> String| {
            rewards.iter().map(|r| f(r)).collect::<Vec<_>>()
        };
        let result = sqlx::query(
            "INSERT INTO rewards (spin_id, campaign_id, user_id, prize_id, amount, currency, r,
                                  stream_id, stream_ms, stream_seq, config_version, idempotency_key,
                                  context, spun_at, code)
             SELECT spin_id, $1, user_id, prize_id, amount, currency, r,
                    stream_ms || '-' || stream_seq, stream_ms, stream_seq, ver, key,
                    NULLIF(ctx, '')::jsonb, spun_at, code
             FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::numeric[], $6::text[], $7::bigint[],
                         $8::bigint[], $9::bigint[], $10::bigint[], $11::text[], $12::text[],
                         $13::timestamptz[], $14::text[])
                  AS b(spin_id, user_id, prize_id, amount, currency, r, stream_ms, stream_seq, ver,
                       key, ctx, spun_at, code)
             ON CONFLICT (spin_id) DO NOTHING",
        )
        .bind(campaign)
        .bind(rewards.iter().map(|r| r.spin_id).collect::<Vec<_>>())
        .bind(col(|r| r.user_id.clone()))
        .bind(col(|r| r.prize_id.clone()))
        .bind(rewards.iter().map(|r| r.amount).collect::<Vec<_>>())
        .bind(col(|r| r.currency.clone()))
        .bind(rewards.iter().map(|r| r.r).collect::<Vec<_>>())
        .bind(rewards.iter().map(|r| r.stream.ms).collect::<Vec<_>>())
        .bind(rewards.iter().map(|r| r.stream.seq).collect::<Vec<_>>())
        .bind(rewards.iter().map(|r| r.config_version).collect::<Vec<_>>())
        .bind(col(|r| r.idempotency_key.clone()))
        .bind(col(|r| r.context.clone()))
        .bind(rewards.iter().map(|r| r.spun_at).collect::<Vec<_>>())
        .bind(rewards.iter().map(|r| r.code.clone()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        inserted = result.rows_affected();
    }
    for a in applies {
        sqlx::query(
            "INSERT INTO ledger_applies (campaign_id, stream_id, stream_ms, stream_seq, version, config_hash, applied_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(campaign)
        .bind(a.stream.to_string())
        .bind(a.stream.ms)
        .bind(a.stream.seq)
        .bind(a.version)
        .bind(&a.config_hash)
        .bind(a.applied_at)
        .execute(&mut *tx)
        .await?;
    }
    write_grants(&mut tx, campaign, entries).await?;
    crate::outbox::record::record(&mut tx, campaign, &facts(entries)).await?;
    tx.commit().await?;
    Ok(inserted)
}

/// The keys of the ledger rows `entries` write, for their outbox events.
fn facts(entries: &[Entry]) -> crate::outbox::record::Facts {
    let mut facts = crate::outbox::record::Facts::default();
    for e in entries {
        match e {
            Entry::Spin(r) => {
                facts.rewards.push(r.spin_id);
                if r.exhausted {
                    facts.exhausted.push(r.spin_id);
                }
            }
            Entry::Grant(g) => facts.grants.push(g.grant_id.clone()),
            Entry::Revoke(r) => facts.revocations.push(r.grant_id.clone()),
            Entry::Apply(a) => facts.applies.push(a.stream.to_string()),
            Entry::Poison(_) => {}
        }
    }
    facts
}

/// The grants among `entries`, then their revocations (a grant and its
/// revocation in one batch: the grant first). A revocation of a grant the ledger
/// does not hold violates `grant_revocations`' foreign key: a data error, so it
/// is isolated and dead-lettered, not lost.
async fn write_grants(
    tx: &mut PgConnection,
    campaign: &str,
    entries: &[Entry],
) -> Result<(), sqlx::Error> {
    let grants: Vec<&super::entry::GrantEvent> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Grant(g) => Some(g),
            _ => None,
        })
        .collect();
    let revokes: Vec<&super::entry::RevokeEvent> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Revoke(r) => Some(r),
            _ => None,
        })
        .collect();
    if !grants.is_empty() {
        sqlx::query(
            "INSERT INTO grants (campaign_id, grant_id, user_id, spins, reason, granted_at,
                                 grant_day, stream_ms, stream_seq)
             SELECT $1, grant_id, user_id, spins, NULLIF(reason, '')::jsonb, granted_at, day,
                    stream_ms, stream_seq
             FROM UNNEST($2::text[], $3::text[], $4::int[], $5::text[], $6::timestamptz[],
                         $7::int[], $8::bigint[], $9::bigint[])
                  AS b(grant_id, user_id, spins, reason, granted_at, day, stream_ms, stream_seq)
             ON CONFLICT (campaign_id, grant_id) DO NOTHING",
        )
        .bind(campaign)
        .bind(
            grants
                .iter()
                .map(|g| g.grant_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(grants.iter().map(|g| g.user_id.clone()).collect::<Vec<_>>())
        .bind(grants.iter().map(|g| g.spins).collect::<Vec<_>>())
        .bind(grants.iter().map(|g| g.reason.clone()).collect::<Vec<_>>())
        .bind(grants.iter().map(|g| g.granted_at).collect::<Vec<_>>())
        .bind(grants.iter().map(|g| g.day).collect::<Vec<_>>())
        .bind(grants.iter().map(|g| g.stream.ms).collect::<Vec<_>>())
        .bind(grants.iter().map(|g| g.stream.seq).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    if !revokes.is_empty() {
        let ids: Vec<String> = revokes.iter().map(|r| r.grant_id.clone()).collect();
        sqlx::query(
            "INSERT INTO grant_revocations (campaign_id, grant_id, revoked, already_used, lapsed,
                                            revoked_at, stream_ms, stream_seq)
             SELECT $1, grant_id, revoked, used, lapsed, revoked_at, stream_ms, stream_seq
             FROM UNNEST($2::text[], $3::int[], $4::int[], $5::int[], $6::timestamptz[],
                         $7::bigint[], $8::bigint[])
                  AS b(grant_id, revoked, used, lapsed, revoked_at, stream_ms, stream_seq)
             ON CONFLICT (campaign_id, grant_id) DO NOTHING",
        )
        .bind(campaign)
        .bind(&ids)
        .bind(revokes.iter().map(|r| r.revoked).collect::<Vec<_>>())
        .bind(revokes.iter().map(|r| r.already_used).collect::<Vec<_>>())
        .bind(revokes.iter().map(|r| r.lapsed).collect::<Vec<_>>())
        .bind(revokes.iter().map(|r| r.revoked_at).collect::<Vec<_>>())
        .bind(revokes.iter().map(|r| r.stream.ms).collect::<Vec<_>>())
        .bind(revokes.iter().map(|r| r.stream.seq).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE grants g SET revoked = r.revoked, already_used = r.already_used,
                                 lapsed = r.lapsed, revoked_at = r.revoked_at
             FROM grant_revocations r
             WHERE r.campaign_id = $1 AND r.grant_id = ANY($2)
               AND g.campaign_id = r.campaign_id AND g.grant_id = r.grant_id
               AND g.revoked IS NULL",
        )
        .bind(campaign)
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Campaigns whose streams the settler follows: every recorded campaign that has
/// not been over for a week.
pub async fn active_campaigns<'e>(pg: impl PgExecutor<'e>) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT campaign_id FROM campaigns WHERE ends_at > now() - interval '7 days' ORDER BY campaign_id")
        .fetch_all(pg)
        .await
}
