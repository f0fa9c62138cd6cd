//! Auditing a campaign's ledger: replay every settled draw, grant and
//! revocation, in draw order, through the reference model with the config that
//! held at that moment, and check each recorded prize is the one its `R` draws,
//! each draw was one the shopper had a spin for (window, quotas, earned spins),
//! and each revocation split the grant's spins as the model does. Prize codes:
//! a reward carries a code exactly when its prize was a code prize (`stock:
//! codes`) in the version that drew it, and no code is in the ledger twice.
//! `prize.exhausted`: every one the outbox announced is a reward that took its
//! prize's last unit (of a prize whose stock the replay knows: not a code
//! prize, whose pool the ledger does not hold).

use crate::campaign::parse_campaign;
use crate::domain::CampaignId;
use crate::domain::StreamId;
use crate::draw::model::{Held, Model};
use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// How many mismatches are listed (all are counted).
const LISTED: usize = 20;

#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub campaign_id: String,
    pub rewards: u64,
    pub applies: u64,
    pub grants: u64,
    pub revocations: u64,
    /// Rewards with a prize code.
    pub codes: u64,
    /// Draws whose `R` fell on a code prize and that the ledger gives the
    /// fallback: that prize's pool was empty then (or, evenly released, its
    /// next unit not out). The codes loaded are not in the ledger, so the
    /// audit cannot tell; counted, not failed.
    pub code_pool_fallbacks: u64,
    /// Rewards that took the last unit of a stock prize, by the replay.
    pub exhausted: u64,
    /// Of those, the ones the outbox announced as `prize.exhausted` (only
    /// while a sink subscribed to it).
    pub exhausted_announced: u64,
    /// Rewards whose prize is not the one their `R` draws, that took a unit of
    /// a prize with none left or a spin the shopper did not have, whose code is
    /// missing, unexpected or another reward's; grants and revocations the
    /// model decides otherwise.
    pub mismatches: u64,
    /// The first mismatches and every other failed check, readable.
    pub problems: Vec<String>,
    /// Units per prize after the replay.
    pub replayed_awarded: HashMap<String, u64>,
    pub elapsed_ms: u64,
    pub ok: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("postgres: {0}")]
    Pg(#[from] sqlx::Error),
    #[error("{0}")]
    Ledger(String),
}

/// The replay's state: the model with the version that holds, and what it found.
struct Replay {
    versions: HashMap<i64, String>,
    model: Option<Model>,
    version: i64,
    rewards: u64,
    applies: u64,
    grants: u64,
    revocations: u64,
    codes: u64,
    code_pool_fallbacks: u64,
    /// Spin ids of the outbox's `prize.exhausted` events.
    announced: HashSet<uuid::Uuid>,
    exhausted: u64,
    exhausted_announced: u64,
    mismatches: u64,
    problems: Vec<String>,
}

/// The pool the replay gives a code prize: more codes than any campaign loads
/// (see [`Replay::apply`]), small enough that the model's sums of stock
/// (`configured + n`, the release curve's products in u128) never overflow.
const UNKNOWN_POOL: u64 = 1 << 62;

/// One entry of the draw order, as the ledger holds it.
#[derive(sqlx::FromRow)]
struct Settled {
    kind: String,
    stream_ms: i64,
    stream_seq: i64,
    /// The apply's version, or the reward's config version.
    version: Option<i64>,
    spin_id: Option<uuid::Uuid>,
    prize_id: Option<String>,
    r: Option<i64>,
    user_id: Option<String>,
    /// When it happened (the spin, the grant, the revocation), unix ms.
    at_ms: Option<i64>,
    grant_id: Option<String>,
    spins: Option<i32>,
    grant_day: Option<i32>,
    revoked: Option<i32>,
    already_used: Option<i32>,
    lapsed: Option<i32>,
    /// The reward's prize code.
    code: Option<String>,
}

/// Rewards, grants, revocations and applies merged in draw order (each table
/// is read in its draw-order index; PostgreSQL merges them).
const DRAW_ORDER: &str = "
    SELECT 'reward' AS kind, stream_ms, stream_seq, config_version AS version, spin_id, prize_id, r,
           user_id, (extract(epoch FROM spun_at) * 1000)::bigint AS at_ms, NULL::text AS grant_id,
           NULL::int AS spins, NULL::int AS grant_day, NULL::int AS revoked,
           NULL::int AS already_used, NULL::int AS lapsed, code
    FROM rewards WHERE campaign_id = $1
    UNION ALL
    SELECT 'apply', stream_ms, stream_seq, version, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL
    FROM ledger_applies WHERE campaign_id = $1
    UNION ALL
    SELECT 'grant', stream_ms, stream_seq, NULL, NULL, NULL, NULL, user_id,
           (extract(epoch FROM granted_at) * 1000)::bigint, grant_id, spins, grant_day, NULL,
           NULL, NULL, NULL
    FROM grants WHERE campaign_id = $1
    UNION ALL
    SELECT 'revoke', stream_ms, stream_seq, NULL, NULL, NULL, NULL, NULL,
           (extract(epoch FROM revoked_at) * 1000)::bigint, grant_id, NULL, NULL, revoked,
           already_used, lapsed, NULL
    FROM grant_revocations WHERE campaign_id = $1
    ORDER BY stream_ms, stream_seq";

impl Replay {
    /// An apply in the draw order: the model takes that version's odds and stock.
    fn apply(&mut self, v: i64) -> Result<(), AuditError> {
        let yaml = self.versions.get(&v).ok_or_else(|| {
            AuditError::Ledger(format!(
                "version {v} is in the draw order but not in campaign_versions"
            ))
        })?;
        let c = parse_campaign(yaml).map_err(|_| {
            AuditError::Ledger(format!("version {v}: the recorded YAML no longer parses"))
        })?;
        let m = match self.model.as_mut() {
            Some(m) => {
                m.apply(&c);
                m
            }
            None => self.model.insert(Model::new(&c)),
        };
        // A code prize's stock is its pool, which the ledger does not know:
        // codes are loaded (and withdrawn) at any time, outside the draw
        // order. Giving it the pool of the rewards the ledger has of it would
        // not do: a pool that ran dry and was loaded again later gave the
        // fallback in between, which that model would call a mismatch, and
        // an even release spreads the codes loaded, not those awarded (fewer
        // units out: false `NotReleased`). So the replay gives every code
        // prize, once, a pool larger than any loaded (`load_codes` with
        // UNKNOWN_POOL; kept across applies, as Redis keeps the pool): its
        // stock is never a reason to refuse a ledger draw, a per-day or
        // scheduled release and the budget are still checked exactly, and
        // `reward` accepts the fallback where `R` fell on a code prize (its
        // pool may have been empty), counting it in `code_pool_fallbacks`.
        let unknown: Vec<String> = m
            .prizes
            .iter()
            .filter(|p| p.entry.c.is_some() && !m.codes.contains_key(&p.entry.id))
            .map(|p| p.entry.id.clone())
            .collect();
        for id in unknown {
            m.load_codes(&id, UNKNOWN_POOL);
        }
        if self.version != 0 && v != self.version + 1 {
            self.problems.push(format!(
                "versions jump from {} to {v} in the draw order",
                self.version
            ));
        }
        self.version = v;
        self.applies += 1;
        Ok(())
    }

    fn mismatch(&mut self, msg: String) {
        self.mismatches += 1;
        if self.problems.len() < LISTED {
            self.problems.push(msg);
        }
    }

    /// A settled draw: the shopper had a spin, its `R` draws the recorded
    /// prize, which had stock, and it carries a code exactly when that prize
    /// is a code prize.
    #[allow(clippy::too_many_arguments)]
    fn reward(
        &mut self,
        spin_id: uuid::Uuid,
        prize_id: &str,
        r: u64,
        v: i64,
        user: &str,
        spun_ms: i64,
        at: StreamId,
        code: Option<&str>,
    ) -> Result<(), AuditError> {
        self.rewards += 1;
        let version = self.version;
        let Some(m) = self.model.as_mut() else {
            return Err(AuditError::Ledger(format!(
                "reward {spin_id} at {at} comes before any apply"
            )));
        };
        let mut c = m.users.get(user).copied().unwrap_or_default();
        let admitted = m.admits(&c, spun_ms);
        if let Ok(today) = admitted {
            c.record_spin(today, m.earned);
        } else {
            // Counted all the same: the ledger says it happened.
            c.count(crate::draw::model::day_index(&m.day_starts, spun_ms));
        }
        m.users.insert(user.to_owned(), c);
        let chosen = m.choose(r, spun_ms);
        let recorded = m.prizes.iter().position(|p| p.entry.id == prize_id);
        // `R` fell on a code prize the model could award, Redis gave the
        // fallback: its pool was empty then (see `apply`).
        let pool_ran_dry = chosen != m.fallback
            && m.prizes[chosen].entry.c.is_some()
            && recorded == Some(m.fallback);
        let expected = if pool_ran_dry {
            m.prizes[m.fallback].entry.id.clone()
        } else {
            m.prizes[chosen].entry.id.clone()
        };
        let code_prize = recorded.map(|i| m.prizes[i].entry.c.is_some());
        let fallback_paid = m.budget_pays_fallback();
        let drawable = recorded.map(|i| m.held(i, spun_ms));
        let announced = self.announced.contains(&spin_id);
        if let Some(i) = recorded {
            m.award(i);
            if m.prizes[i].entry.c.is_none() {
                let ran_out = m.ran_out(i);
                self.exhausted += u64::from(ran_out);
                self.exhausted_announced += u64::from(ran_out && announced);
                if announced && !ran_out {
                    let left = m.prizes[i].remaining;
                    self.mismatch(format!(
                        "reward {spin_id} at {at}: announced as `prize.exhausted`, but `{prize_id}` had {left:?} units left"
                    ));
                }
            }
        }
        if pool_ran_dry {
            self.code_pool_fallbacks += 1;
        }
        if code.is_some() {
            self.codes += 1;
        }
        match (code_prize, code) {
            (Some(true), None) => self.mismatch(format!(
                "reward {spin_id} at {at}: `{prize_id}` is a code prize in version {version}, but the ledger has no code for it"
            )),
            (Some(false), Some(code)) => self.mismatch(format!(
                "reward {spin_id} at {at}: `{prize_id}` has no codes in version {version}, but the ledger gives it code `{code}`"
            )),
            _ => {}
        }
        if v != version {
            self.mismatch(format!(
                "reward {spin_id} at {at}: recorded under version {v}, but version {version} held"
            ));
        }
        if expected != prize_id {
            self.mismatch(format!(
                "reward {spin_id} at {at}: R = {r} draws `{expected}`, the ledger says `{prize_id}`"
            ));
        }
        match drawable {
            None => self.mismatch(format!(
                "reward {spin_id} at {at}: unknown prize `{prize_id}`"
            )),
            Some(Err(Held::NoStock)) => self.mismatch(format!(
                "reward {spin_id} at {at}: `{prize_id}` had no stock left"
            )),
            Some(Err(Held::NotReleased)) => self.mismatch(format!(
                "reward {spin_id} at {at}: `{prize_id}` had no unit released at {spun_ms} ms"
            )),
            Some(Err(Held::OverBudget)) => self.mismatch(format!(
                "reward {spin_id} at {at}: `{prize_id}` is worth more than the budget had left"
            )),
            Some(Ok(())) => {}
        }
        if !fallback_paid {
            self.mismatch(format!(
                "reward {spin_id} at {at}: the budget could not pay for the fallback: the spin should have been refused"
            ));
        }
        if let Err(refused) = admitted {
            self.mismatch(format!(
                "reward {spin_id} at {at}: {user} had no spin to make ({refused:?})"
            ));
        }
        Ok(())
    }

    /// A settled grant: the model makes it, on the recorded campaign day.
    fn grant(&mut self, e: &Settled, at: StreamId) -> Result<(), AuditError> {
        self.grants += 1;
        let (Some(user), Some(id), Some(spins), Some(ms), Some(day)) = (
            e.user_id.as_deref(),
            e.grant_id.as_deref(),
            e.spins,
            e.at_ms,
            e.grant_day,
        ) else {
            return Err(AuditError::Ledger(format!(
                "grant at {at}: a field is missing"
            )));
        };
        let Some(m) = self.model.as_mut() else {
            return Err(AuditError::Ledger(format!(
                "grant {id} at {at} comes before any apply"
            )));
        };
        let model_day = crate::draw::model::day_index(&m.day_starts, ms);
        if let Err(refused) = m.grant(user, id, spins.max(0) as u32, ms) {
            self.mismatch(format!(
                "grant {id} at {at}: the model refuses it ({refused:?})"
            ));
        } else if model_day != i64::from(day) {
            self.mismatch(format!(
                "grant {id} at {at}: recorded on campaign day {day}, made on day {model_day}"
            ));
        }
        Ok(())
    }

    /// A settled revocation: the grant's spins split as the model splits them.
    fn revoke(&mut self, e: &Settled, at: StreamId) -> Result<(), AuditError> {
        self.revocations += 1;
        let (Some(id), Some(ms)) = (e.grant_id.as_deref(), e.at_ms) else {
            return Err(AuditError::Ledger(format!(
                "revocation at {at}: a field is missing"
            )));
        };
        let recorded = (
            e.revoked.unwrap_or(-1),
            e.already_used.unwrap_or(-1),
            e.lapsed.unwrap_or(-1),
        );
        let replayed = self.model.as_mut().and_then(|m| m.revoke(id, ms));
        match replayed {
            None => self.mismatch(format!(
                "revocation of {id} at {at}: no such grant before it"
            )),
            Some(split) => {
                let model = (
                    split.revoked as i32,
                    split.already_used as i32,
                    split.lapsed as i32,
                );
                if model != recorded {
                    self.mismatch(format!(
                        "revocation of {id} at {at}: the ledger says (revoked, used, lapsed) = {recorded:?}, the model {model:?}"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Every code the ledger holds more than once (read in the partial index
/// `rewards_by_code`, so only the rewards with a code): each reward after the
/// first that handed it out is a mismatch.
async fn duplicate_codes(
    pg: &PgPool,
    campaign: &CampaignId,
    replay: &mut Replay,
) -> Result<(), AuditError> {
    let mut dups = sqlx::query_as::<_, (String, Vec<uuid::Uuid>, Vec<String>)>(
        "SELECT code, array_agg(spin_id ORDER BY stream_ms, stream_seq),
                array_agg(stream_id ORDER BY stream_ms, stream_seq)
         FROM rewards WHERE campaign_id = $1 AND code IS NOT NULL
         GROUP BY code HAVING count(*) > 1
         ORDER BY min(stream_ms), code",
    )
    .bind(campaign.as_str())
    .fetch(pg);
    while let Some((code, spins, ats)) = dups.try_next().await? {
        let first = spins[0];
        for (spin, at) in spins.iter().zip(&ats).skip(1) {
            replay.mismatch(format!(
                "reward {spin} at {at}: code `{code}` was handed out before, by reward {first}"
            ));
        }
    }
    Ok(())
}

/// Replays the ledger of `campaign`. `live_awarded` (units per prize counted in
/// Redis), when given, must equal the replay's totals.
pub async fn audit(
    pg: &PgPool,
    campaign: &CampaignId,
    live_awarded: Option<&HashMap<String, i64>>,
) -> Result<AuditReport, AuditError> {
    let started = Instant::now();
    let versions: HashMap<i64, String> = sqlx::query_as::<_, (i64, String)>(
        "SELECT version, yaml FROM campaign_versions WHERE campaign_id = $1",
    )
    .bind(campaign.as_str())
    .fetch_all(pg)
    .await?
    .into_iter()
    .collect();
    let mut replay = Replay {
        versions,
        model: None,
        version: 0,
        rewards: 0,
        applies: 0,
        grants: 0,
        revocations: 0,
        codes: 0,
        code_pool_fallbacks: 0,
        announced: sqlx::query_scalar(
            "SELECT (payload->>'spin_id')::uuid FROM outbox_events
             WHERE type = 'prize.exhausted' AND campaign_id = $1",
        )
        .bind(campaign.as_str())
        .fetch_all(pg)
        .await?
        .into_iter()
        .collect(),
        exhausted: 0,
        exhausted_announced: 0,
        mismatches: 0,
        problems: Vec::new(),
    };
    let mut rows = sqlx::query_as::<_, Settled>(DRAW_ORDER)
        .bind(campaign.as_str())
        .fetch(pg);
    while let Some(e) = rows.try_next().await? {
        let at = StreamId {
            ms: e.stream_ms,
            seq: e.stream_seq,
        };
        match e.kind.as_str() {
            "apply" => replay.apply(e.version.unwrap_or(0))?,
            "grant" => replay.grant(&e, at)?,
            "revoke" => replay.revoke(&e, at)?,
            _ => {
                let (Some(spin_id), Some(prize_id), Some(r), Some(v), Some(user), Some(ms)) = (
                    e.spin_id,
                    e.prize_id.as_deref(),
                    e.r,
                    e.version,
                    e.user_id.as_deref(),
                    e.at_ms,
                ) else {
                    return Err(AuditError::Ledger(format!(
                        "reward at {at}: a field is missing"
                    )));
                };
                replay.reward(
                    spin_id,
                    prize_id,
                    r as u64,
                    v,
                    user,
                    ms,
                    at,
                    e.code.as_deref(),
                )?;
            }
        }
    }
    drop(rows);
    duplicate_codes(pg, campaign, &mut replay).await?;
    let Replay {
        model,
        rewards,
        applies,
        grants,
        revocations,
        codes,
        code_pool_fallbacks,
        exhausted,
        exhausted_announced,
        mismatches,
        mut problems,
        ..
    } = replay;

    let replayed_awarded: HashMap<String, u64> = model
        .as_ref()
        .map(|m| {
            m.prizes
                .iter()
                .map(|p| (p.entry.id.clone(), p.awarded))
                .collect()
        })
        .unwrap_or_default();
    if let Some(live) = live_awarded {
        for (prize, &n) in live {
            let replayed = replayed_awarded.get(prize).copied().unwrap_or(0);
            if replayed != n as u64 {
                problems.push(format!(
                    "{prize}: {replayed} in the ledger, {n} counted live in Redis"
                ));
            }
        }
    }
    if mismatches as usize > LISTED {
        problems.push(format!(
            "… and {} more mismatches",
            mismatches as usize - LISTED
        ));
    }
    Ok(AuditReport {
        campaign_id: campaign.to_string(),
        rewards,
        applies,
        grants,
        revocations,
        codes,
        code_pool_fallbacks,
        exhausted,
        exhausted_announced,
        mismatches,
        ok: problems.is_empty(),
        problems,
        replayed_awarded,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}
