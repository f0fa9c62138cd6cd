//! Recording events and their deliveries inside the settler's transaction.
//!
//! Each event is built in SQL from the ledger rows the same transaction has
//! just written (so the payload is exactly what finance sees) and inserted with
//! `ON CONFLICT (event_id) DO NOTHING`: a batch settled twice records nothing
//! new and creates no second delivery. A delivery is created for every
//! sink whose event types and campaign filter match, disabled ones included
//! (they queue until enabled again: a paused endpoint misses nothing). When no
//! sink subscribes, nothing is written at all (one small read per batch).

use super::{CAMPAIGN_APPLIED, GRANT_RECORDED, GRANT_REVOKED, PRIZE_EXHAUSTED, REWARD_SETTLED};
use sqlx::PgConnection;
use uuid::Uuid;

/// The ledger facts of one batch of one campaign, by key.
#[derive(Debug, Default)]
pub struct Facts {
    /// Spin ids of the rewards.
    pub rewards: Vec<Uuid>,
    /// Grant ids of the grants.
    pub grants: Vec<String>,
    /// Grant ids of the revocations.
    pub revocations: Vec<String>,
    /// Stream ids (`ms-seq`) of the applies.
    pub applies: Vec<String>,
    /// Spin ids of the rewards that took their prize's last unit.
    pub exhausted: Vec<Uuid>,
}

impl Facts {
    fn is_empty(&self) -> bool {
        self.rewards.is_empty()
            && self.grants.is_empty()
            && self.revocations.is_empty()
            && self.applies.is_empty()
            && self.exhausted.is_empty()
    }
}

/// The event of each reward: its id is the spin id. Every select starts from
/// the batch's keys (`unnest`) and probes the table's primary key: `key =
/// ANY($2)` can be planned as a scan of the campaign's rows (a generic plan
/// made while the table was small), which grows with the ledger.
macro_rules! rewards_select {
    () => {
        "
    SELECT r.spin_id::text, 'reward.settled', r.campaign_id, r.spun_at,
           jsonb_build_object(
             'spin_id', r.spin_id, 'campaign_id', r.campaign_id, 'user_id', r.user_id,
             'prize', jsonb_build_object(
                'id', r.prize_id, 'name', p.name,
                'value', jsonb_build_object('amount', r.amount::text, 'currency', r.currency),
                'code', r.code),
             'context', r.context, 'spun_at', r.spun_at, 'stream_id', r.stream_id)
    FROM unnest($2::uuid[]) AS k(spin_id)
    JOIN rewards r ON r.spin_id = k.spin_id AND r.campaign_id = $1
    LEFT JOIN prizes p ON p.campaign_id = r.campaign_id AND p.prize_id = r.prize_id
    ORDER BY r.stream_ms, r.stream_seq"
    };
}

/// A prize ran out with the reward that took its last unit: one event per such
/// reward (a prize topped up and emptied again is announced again).
macro_rules! exhausted_select {
    () => {
        "
    SELECT 'exhausted:' || r.campaign_id || ':' || r.spin_id, 'prize.exhausted', r.campaign_id,
           r.spun_at,
           jsonb_build_object(
             'campaign_id', r.campaign_id, 'prize_id', r.prize_id, 'prize_name', p.name,
             'codes', r.code IS NOT NULL, 'spin_id', r.spin_id, 'exhausted_at', r.spun_at,
             'stream_id', r.stream_id)
    FROM unnest($2::uuid[]) AS k(spin_id)
    JOIN rewards r ON r.spin_id = k.spin_id AND r.campaign_id = $1
    LEFT JOIN prizes p ON p.campaign_id = r.campaign_id AND p.prize_id = r.prize_id
    ORDER BY r.stream_ms, r.stream_seq"
    };
}

macro_rules! grants_select {
    () => {
        "
    SELECT 'grant:' || g.campaign_id || ':' || g.grant_id, 'grant.recorded', g.campaign_id,
           g.granted_at,
           jsonb_build_object(
             'campaign_id', g.campaign_id, 'grant_id', g.grant_id, 'user_id', g.user_id,
             'spins', g.spins, 'reason', g.reason, 'granted_at', g.granted_at)
    FROM unnest($2::text[]) AS k(grant_id)
    JOIN grants g ON g.campaign_id = $1 AND g.grant_id = k.grant_id
    ORDER BY g.stream_ms, g.stream_seq"
    };
}

macro_rules! revocations_select {
    () => {
        "
    SELECT 'revoke:' || v.campaign_id || ':' || v.grant_id, 'grant.revoked', v.campaign_id,
           v.revoked_at,
           jsonb_build_object(
             'campaign_id', v.campaign_id, 'grant_id', v.grant_id, 'user_id', g.user_id,
             'spins', g.spins, 'revoked', v.revoked, 'already_used', v.already_used,
             'lapsed', v.lapsed, 'revoked_at', v.revoked_at)
    FROM unnest($2::text[]) AS k(grant_id)
    JOIN grant_revocations v ON v.campaign_id = $1 AND v.grant_id = k.grant_id
    JOIN grants g ON g.campaign_id = v.campaign_id AND g.grant_id = v.grant_id
    ORDER BY v.stream_ms, v.stream_seq"
    };
}

/// An apply's id is its stream id: unique in the ledger, as versions need not be.
macro_rules! applies_select {
    () => {
        "
    SELECT 'apply:' || a.campaign_id || ':' || a.stream_id, 'campaign.applied', a.campaign_id,
           a.applied_at,
           jsonb_build_object(
             'campaign_id', a.campaign_id, 'version', a.version, 'config_hash', a.config_hash,
             'applied_at', a.applied_at, 'stream_id', a.stream_id)
    FROM ledger_applies a
    WHERE a.campaign_id = $1 AND a.stream_id = ANY($2::text[])
    ORDER BY a.stream_ms, a.stream_seq"
    };
}

/// The statement inserting the events a select yields ($1 is the campaign, $2
/// the keys) and a delivery of each new one per matching sink.
macro_rules! with_deliveries {
    ($($select:tt)*) => {
        concat!(
            "WITH ev AS (
               INSERT INTO outbox_events (event_id, type, campaign_id, occurred_at, payload)",
            $($select)*,
            "  ON CONFLICT (event_id) DO NOTHING
               RETURNING seq, type, campaign_id)
             INSERT INTO outbox_deliveries (sink, event_seq)
             SELECT s.sink, ev.seq FROM ev
             JOIN outbox_sinks s ON ev.type = ANY(s.events)
                                AND (s.campaigns = '{}' OR ev.campaign_id = ANY(s.campaigns))"
        )
    };
}

/// Records the events of `facts` and their deliveries, in the caller's
/// transaction, after the ledger rows are written.
pub async fn record(
    tx: &mut PgConnection,
    campaign: &str,
    facts: &Facts,
) -> Result<(), sqlx::Error> {
    if facts.is_empty() {
        return Ok(());
    }
    let subscribed: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT unnest(events) FROM outbox_sinks
         WHERE campaigns = '{}' OR $1 = ANY(campaigns)",
    )
    .bind(campaign)
    .fetch_all(&mut *tx)
    .await?;
    let wanted = |t: &str| subscribed.iter().any(|s| s == t);
    for (kind, statement, spins) in [
        (
            REWARD_SETTLED,
            with_deliveries!(rewards_select!()),
            &facts.rewards,
        ),
        (
            PRIZE_EXHAUSTED,
            with_deliveries!(exhausted_select!()),
            &facts.exhausted,
        ),
    ] {
        if wanted(kind) && !spins.is_empty() {
            sqlx::query(statement)
                .bind(campaign)
                .bind(spins)
                .execute(&mut *tx)
                .await?;
        }
    }
    for (kind, statement, keys) in [
        (
            GRANT_RECORDED,
            with_deliveries!(grants_select!()),
            &facts.grants,
        ),
        (
            GRANT_REVOKED,
            with_deliveries!(revocations_select!()),
            &facts.revocations,
        ),
        (
            CAMPAIGN_APPLIED,
            with_deliveries!(applies_select!()),
            &facts.applies,
        ),
    ] {
        if wanted(kind) && !keys.is_empty() {
            sqlx::query(statement)
                .bind(campaign)
                .bind(keys)
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(())
}
