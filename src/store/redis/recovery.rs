//! Calling lua/recover.lua: the Redis side of rebuilding a campaign from the
//! ledger after Redis lost writes. src/recover decides what to write; these calls
//! only carry it. Each is atomic, idempotent and moves Redis towards the ledger.

use super::StoreError;
use super::keys::CampaignKeys;
use super::reply::Reply;
use super::scripts::RECOVER;
use crate::domain::CampaignId;
use crate::domain::StreamId;
use redis::ScriptInvocation;
use redis::aio::ConnectionLike;

/// Whether a campaign may draw, as Redis sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryState {
    /// The LASTSAVE of the process whose state was last certified, if any.
    pub epoch: Option<i64>,
    /// This process's LASTSAVE (its start, as the project runs Redis).
    pub lastsave: i64,
    /// The last id the results stream ever generated (entries may be trimmed).
    pub last_id: Option<StreamId>,
    /// Redis knows the campaign (an unknown one is applied, not recovered).
    pub exists: bool,
}

impl RecoveryState {
    /// New draws wait: Redis restarted (or failed over) since the last certify.
    pub fn awaits_recovery(&self) -> bool {
        self.exists && self.epoch != Some(self.lastsave)
    }
}

/// A user's counters as the ledger proves them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterFix {
    pub user: String,
    pub bucket: u64,
    pub total: u64,
    pub day_count: u64,
    pub day_index: u64,
    /// Earned spins, as lua/counters.lua writes them after the counters
    /// ("earned:used:day:free used"); `None` for a user never granted a spin.
    pub earned: Option<String>,
}

/// A grant record the ledger proves: a forgotten grant, or its revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecordFix {
    /// `pw:{C}:g:<bucket>`.
    pub key: String,
    /// The grant id.
    pub field: String,
    pub record: Vec<u8>,
}

/// An idempotency record the ledger proves (a settled draw Redis forgot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFix {
    /// `pw:{C}:i:<utc day>:<bucket>`.
    pub key: String,
    pub field: [u8; 8],
    pub record: Vec<u8>,
    /// Unix seconds, as spin.lua sets it for that day's records.
    pub expire_at: i64,
}

/// The outcome of the final step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Certified {
    /// Draws resume. `raised` units were added to awarded, `lowered` units taken
    /// from stock.
    Done { raised: i64, lowered: i64 },
    /// Redis restarted again while the recovery ran: start over.
    Restarted,
}

fn call(k: &CampaignKeys, op: &str) -> ScriptInvocation<'static> {
    let mut inv = RECOVER.prepare_invoke();
    inv.key(&k.meta)
        .key(&k.stock)
        .key(&k.awarded)
        .key(&k.initial)
        .key(&k.results)
        .arg(op);
    inv
}

async fn run<C: ConnectionLike>(
    inv: &ScriptInvocation<'_>,
    conn: &mut C,
) -> Result<Reply, StoreError> {
    let reply: Vec<redis::Value> = inv.invoke_async(conn).await?;
    Ok(Reply(reply))
}

pub async fn state<C: ConnectionLike>(
    conn: &mut C,
    id: &CampaignId,
) -> Result<RecoveryState, StoreError> {
    let r = run(&call(&CampaignKeys::new(id), "state"), conn).await?;
    Ok(RecoveryState {
        epoch: r.str(0)?.parse().ok(),
        lastsave: r.int(1)?,
        last_id: StreamId::parse(r.str(2)?),
        exists: r.int(3)? == 1,
    })
}

/// Stops new draws of `id` until the next certify (an operator's recover).
pub async fn pause<C: ConnectionLike>(conn: &mut C, id: &CampaignId) -> Result<(), StoreError> {
    run(&call(&CampaignKeys::new(id), "pause"), conn).await?;
    Ok(())
}

/// Sets users' state to the ledger's (never lowering a spin count Redis has);
/// returns how many changed.
pub async fn restore_counters<C: ConnectionLike>(
    conn: &mut C,
    id: &CampaignId,
    fixes: &[CounterFix],
) -> Result<i64, StoreError> {
    let k = CampaignKeys::new(id);
    let mut inv = call(&k, "counters");
    for f in fixes {
        inv.arg(k.users(f.bucket))
            .arg(&f.user)
            .arg(f.total)
            .arg(f.day_count)
            .arg(f.day_index)
            .arg(f.earned.as_deref().unwrap_or(""));
    }
    run(&inv, conn).await?.int(1)
}

/// Restores grant records Redis lost, and marks revoked those whose
/// revocation it lost; returns how many changed.
pub async fn restore_grant_records<C: ConnectionLike>(
    conn: &mut C,
    id: &CampaignId,
    fixes: &[GrantRecordFix],
) -> Result<i64, StoreError> {
    let mut inv = call(&CampaignKeys::new(id), "grants");
    for f in fixes {
        inv.arg(&f.key).arg(&f.field).arg(&f.record[..]);
    }
    run(&inv, conn).await?.int(1)
}

/// Takes the codes the ledger awarded (prize id, code) out of their pools for
/// good; returns how many were still in a pool.
pub async fn remove_codes<C: ConnectionLike>(
    conn: &mut C,
    id: &CampaignId,
    codes: &[(String, String)],
) -> Result<i64, StoreError> {
    let mut inv = call(&CampaignKeys::new(id), "codes");
    for (prize, code) in codes {
        inv.arg(prize).arg(code);
    }
    run(&inv, conn).await?.int(1)
}

/// Restores idempotency records Redis lost; returns how many were missing.
pub async fn restore_records<C: ConnectionLike>(
    conn: &mut C,
    id: &CampaignId,
    fixes: &[RecordFix],
) -> Result<i64, StoreError> {
    let mut inv = call(&CampaignKeys::new(id), "records");
    for f in fixes {
        inv.arg(&f.key)
            .arg(&f.field[..])
            .arg(&f.record[..])
            .arg(f.expire_at);
    }
    run(&inv, conn).await?.int(1)
}

/// The last step: awarded and stock to the ledger, the stream's last id past
/// the ledger's, draws resume. `started_under` is the LASTSAVE the recovery read
/// at its start; `settled` the units per prize the ledger holds, `spent` the
/// value units its rewards add up to (the budget's count is raised to it).
pub async fn certify<C: ConnectionLike>(
    conn: &mut C,
    id: &CampaignId,
    started_under: i64,
    ledger_last: Option<StreamId>,
    settled: &[(String, i64)],
    spent: i64,
) -> Result<Certified, StoreError> {
    let mut inv = call(&CampaignKeys::new(id), "certify");
    inv.arg(started_under)
        .arg(ledger_last.map(|s| s.to_string()).unwrap_or_default())
        .arg(spent);
    for (prize, units) in settled {
        inv.arg(prize).arg(*units);
    }
    // In a Redis process's first second, certify waits for the next one (see
    // lua/recover.lua); more than a few waits means Redis's clock is behind
    // its own LASTSAVE (stepped back), and an epoch could then repeat.
    for _ in 0..CERTIFY_WAITS {
        let r = run(&inv, conn).await?;
        match r.str(0)? {
            "certified" => {
                return Ok(Certified::Done {
                    raised: r.int(1)?,
                    lowered: r.int(2)?,
                });
            }
            "restarted" => return Ok(Certified::Restarted),
            "too_early" => {
                let micros = r.int(1)?.clamp(1_000, 1_000_000) as u64;
                tokio::time::sleep(std::time::Duration::from_micros(micros)).await;
            }
            other => {
                return Err(StoreError::Protocol(format!(
                    "unknown recover status `{other}`"
                )));
            }
        }
    }
    Err(StoreError::Protocol(format!(
        "Redis's clock stayed at or behind its LASTSAVE for {CERTIFY_WAITS} waits: not certifying {id}"
    )))
}

/// Most waits of certify for the Redis process's second second.
const CERTIFY_WAITS: usize = 4;
