//! Writing a batch of stream entries into PostgreSQL: one statement per table,
//! one transaction, `ON CONFLICT DO NOTHING` so a batch settled twice (after a
//! crash between commit and ack) changes nothing the second time.

use super::entry::{ApplyEvent, Reward};
use sqlx::{Connection, PgConnection, PgExecutor};

/// Inserts `rewards` and `applies` of `campaign` and commits. Returns how many
/// rewards were new.
pub async fn write_batch(
    pg: &mut PgConnection,
    campaign: &str,
    rewards: &[Reward],
    applies: &[ApplyEvent],
) -> Result<u64, sqlx::Error> {
    let mut tx = pg.begin().await?;
    let mut inserted = 0;
    if !rewards.is_empty() {
        let col = |f: fn(&Reward) -> String| rewards.iter().map(f).collect::<Vec<_>>();
        let result = sqlx::query(
            "INSERT INTO rewards (spin_id, campaign_id, user_id, prize_id, amount, currency, r,
                                  stream_id, stream_ms, stream_seq, config_version, idempotency_key,
                                  context, spun_at)
             SELECT spin_id, $1, user_id, prize_id, amount, currency, r,
                    stream_ms || '-' || stream_seq, stream_ms, stream_seq, ver, key,
                    NULLIF(ctx, '')::jsonb, spun_at
             FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::numeric[], $6::text[], $7::bigint[],
                         $8::bigint[], $9::bigint[], $10::bigint[], $11::text[], $12::text[],
                         $13::timestamptz[])
                  AS b(spin_id, user_id, prize_id, amount, currency, r, stream_ms, stream_seq, ver,
                       key, ctx, spun_at)
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
    tx.commit().await?;
    Ok(inserted)
}

/// Campaigns whose streams the settler follows: every recorded campaign that has
/// not been over for a week.
pub async fn active_campaigns<'e>(pg: impl PgExecutor<'e>) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT campaign_id FROM campaigns WHERE ends_at > now() - interval '7 days' ORDER BY campaign_id")
        .fetch_all(pg)
        .await
}
