//! Auditing a campaign's ledger: replay every settled draw, in draw order,
//! through the reference model with the odds and stock that held at that moment,
//! and check each recorded prize is the one its `R` draws.

use crate::campaign::parse_campaign;
use crate::domain::CampaignId;
use crate::domain::StreamId;
use crate::draw::model::Model;
use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::PgPool;
use std::collections::HashMap;
use std::time::Instant;

/// How many mismatches are listed (all are counted).
const LISTED: usize = 20;

#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub campaign_id: String,
    pub rewards: u64,
    pub applies: u64,
    /// Rewards whose prize is not the one their `R` draws, or that took a unit of
    /// a prize with none left.
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
    mismatches: u64,
    problems: Vec<String>,
}

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
        match self.model.as_mut() {
            Some(m) => m.apply(&c),
            None => self.model = Some(Model::new(&c)),
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

    /// A settled draw: its `R` must draw the recorded prize, which must have had stock.
    fn reward(
        &mut self,
        spin_id: uuid::Uuid,
        prize_id: &str,
        r: u64,
        v: i64,
        at: StreamId,
    ) -> Result<(), AuditError> {
        self.rewards += 1;
        let version = self.version;
        let Some(m) = self.model.as_mut() else {
            return Err(AuditError::Ledger(format!(
                "reward {spin_id} at {at} comes before any apply"
            )));
        };
        let expected = m.prizes[m.choose(r)].entry.id.clone();
        let recorded = m.prizes.iter().position(|p| p.entry.id == prize_id);
        let had_stock = recorded.map(|i| m.prizes[i].remaining != Some(0));
        if let Some(i) = recorded {
            m.award(i);
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
        match had_stock {
            None => self.mismatch(format!(
                "reward {spin_id} at {at}: unknown prize `{prize_id}`"
            )),
            Some(false) => self.mismatch(format!(
                "reward {spin_id} at {at}: `{prize_id}` had no stock left"
            )),
            Some(true) => {}
        }
        Ok(())
    }
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
    let applies: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT stream_ms, stream_seq, version FROM ledger_applies WHERE campaign_id = $1 ORDER BY stream_ms, stream_seq",
    )
    .bind(campaign.as_str())
    .fetch_all(pg)
    .await?;

    let mut replay = Replay {
        versions,
        model: None,
        version: 0,
        rewards: 0,
        applies: 0,
        mismatches: 0,
        problems: Vec::new(),
    };
    let mut pending_applies = applies.into_iter().peekable();
    let mut rows = sqlx::query_as::<_, (uuid::Uuid, String, i64, i64, i64, i64)>(
        "SELECT spin_id, prize_id, r, config_version, stream_ms, stream_seq FROM rewards
         WHERE campaign_id = $1 ORDER BY stream_ms, stream_seq",
    )
    .bind(campaign.as_str())
    .fetch(pg);
    while let Some((spin_id, prize_id, r, v, ms, seq)) = rows.try_next().await? {
        let at = StreamId { ms, seq };
        // Applies that precede this reward in the draw order come first.
        while let Some(&(ams, aseq, av)) = pending_applies.peek() {
            if (StreamId { ms: ams, seq: aseq }) >= at {
                break;
            }
            pending_applies.next();
            replay.apply(av)?;
        }
        replay.reward(spin_id, &prize_id, r as u64, v, at)?;
    }
    for (_, _, av) in pending_applies {
        replay.apply(av)?;
    }
    let Replay {
        model,
        rewards,
        applies,
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
        mismatches,
        ok: problems.is_empty(),
        problems,
        replayed_awarded,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}
