//! Gauges that need a store read: stock and released units per prize, the
//! codes available and loaded per code prize, the value awarded and the budget
//! left, whether the campaign is live, settlement lag and dead letters per
//! active campaign (the campaigns PostgreSQL knows, so labels are bounded by
//! what was applied), and the replica's in-flight Redis calls. Sampled every
//! few seconds by one task per replica, off the request path.

use crate::domain::Money;
use crate::http::pacing;
use crate::settle::{ledger, stream};
use crate::store::redis::keys::CampaignKeys;
use crate::store::redis::live::DrawState;
use crate::store::redis::{RedisStore, StoreError};
use crate::telemetry::metrics;
use opentelemetry::KeyValue;
use sqlx::PgPool;
use std::collections::HashMap;
use std::time::Duration;

/// Samples until the task is aborted.
pub async fn sample_forever(redis: &RedisStore, pg: &PgPool, every: Duration) {
    loop {
        metrics()
            .redis_in_flight
            .record(redis.in_flight() as i64, &[]);
        let listed = crate::store::pg::within(pg, every, |c| Box::pin(ledger::active_campaigns(c)));
        match listed.await {
            Ok(ids) => {
                for id in ids {
                    if let Err(e) = sample_campaign(redis, &id).await {
                        tracing::debug!(campaign.id = %id, error = %e, "sampling campaign gauges");
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "sampling: cannot list campaigns"),
        }
        tokio::time::sleep(every).await;
    }
}

async fn sample_campaign(redis: &RedisStore, id: &str) -> Result<(), StoreError> {
    let Ok(campaign) = crate::domain::CampaignId::parse(id) else {
        return Ok(());
    };
    let keys = CampaignKeys::new(&campaign);
    let mut conn = redis.conn();
    let stock: HashMap<String, i64> = redis::cmd("HGETALL")
        .arg(&keys.stock)
        .query_async(&mut conn)
        .await?;
    let m = metrics();
    for (prize, left) in stock {
        m.stock_remaining.record(
            left,
            &[
                KeyValue::new("campaign", id.to_owned()),
                KeyValue::new("prize", prize),
            ],
        );
    }
    if let Some(draw) = redis.draw_state(&campaign).await? {
        let inputs = pacing::Inputs::from(&draw);
        for p in pacing::prizes_now(&inputs) {
            m.stock_released.record(
                p.released
                    .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)),
                &[
                    KeyValue::new("campaign", id.to_owned()),
                    KeyValue::new("prize", p.state.entry.id),
                ],
            );
        }
        sample_codes(redis, &campaign, id, &draw).await?;
        m.campaign_live.record(
            i64::from(pacing::Inputs::from(&draw).status() == "live"),
            &[KeyValue::new("campaign", id.to_owned())],
        );
        let in_currency = |units: u64| {
            use rust_decimal::prelude::ToPrimitive;
            Money::amount_of_units(units).to_f64().unwrap_or(f64::MAX)
        };
        let campaign_label = [KeyValue::new("campaign", id.to_owned())];
        m.budget_spent
            .record(in_currency(draw.spent), &campaign_label);
        m.budget_left.record(
            inputs.budget_left().map_or(-1.0, in_currency),
            &campaign_label,
        );
    }
    let lag = stream::lag(&mut conn, &keys.results).await?;
    let dead: i64 = redis::cmd("XLEN")
        .arg(&keys.dead)
        .query_async(&mut conn)
        .await?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let campaign_label = [KeyValue::new("campaign", id.to_owned())];
    m.settlement_lag_entries
        .record(lag.unsettled() as i64, &campaign_label);
    m.settlement_lag_age
        .record(lag.oldest_age_ms(now_ms) as f64 / 1000.0, &campaign_label);
    m.dead_letters.record(dead, &campaign_label);
    if let Ok(state) = crate::store::redis::recovery::state(&mut conn, &campaign).await {
        m.awaiting_recovery
            .record(i64::from(state.awaits_recovery()), &campaign_label);
    }
    Ok(())
}

/// The code prizes' gauges: codes available (a code prize's stock is its pool,
/// lua/codes.lua keeps them equal) from the draw state, and codes loaded from
/// `pw:{C}:codes-stats` (one `HGETALL` per campaign; empty for a campaign that
/// never had a code prize). A prize that was a code prize and is not any more
/// (retired, or given a number as its stock) reads -1 available: a gauge keeps
/// exporting the last value it was given, and an empty pool it no longer draws
/// from is no alert.
async fn sample_codes(
    redis: &RedisStore,
    campaign: &crate::domain::CampaignId,
    id: &str,
    draw: &DrawState,
) -> Result<(), StoreError> {
    let stats: HashMap<String, i64> = redis::cmd("HGETALL")
        .arg(&CampaignKeys::new(campaign).codes_stats)
        .query_async(&mut redis.conn())
        .await?;
    let m = metrics();
    for (entry, left, _) in &draw.prizes {
        let loaded = stats.get(&format!("{}:loaded", entry.id)).copied();
        let available = match (entry.c, loaded) {
            (Some(_), _) => (*left).max(0),
            (None, Some(_)) => -1,
            (None, None) => continue,
        };
        let labels = [
            KeyValue::new("campaign", id.to_owned()),
            KeyValue::new("prize", entry.id.clone()),
        ];
        m.codes_available.record(available, &labels);
        m.codes_loaded.record(loaded.unwrap_or(0), &labels);
    }
    Ok(())
}
