//! Calling lua/spin.lua: the one Redis round trip of a spin, followed, under
//! durability `fsync-wins` and only for a stock-bounded prize, by the `WAITAOF`
//! that confirms the draw is on disk before it is answered.

use super::durability::Durability;
use super::keys::CampaignKeys;
use super::reply::Reply;
use super::scripts::SPIN;
use super::{RedisStore, StoreError};
use crate::domain::{CampaignId, IdempotencyKey, UserId};
use uuid::Uuid;

/// Everything the draw script needs, computed before the call.
pub struct SpinCall<'a> {
    pub campaign: &'a CampaignId,
    pub user: &'a UserId,
    pub key: &'a IdempotencyKey,
    /// Selects the user's counter and idempotency buckets.
    pub user_hash: u32,
    /// Names the idempotency record of (user, key).
    pub record_field: [u8; 8],
    /// Tells a retry of the same request from a reuse of the key.
    pub fingerprint: [u8; 8],
    /// The random input, below 2^53.
    pub r: u64,
    pub spin_id: Uuid,
    /// Client context as canonical JSON, or empty.
    pub context: &'a str,
}

/// A drawn (or replayed) prize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drawn {
    pub spin_id: Uuid,
    pub prize_id: String,
    pub prize_name: String,
    pub amount: String,
    pub currency: String,
    pub spins_left: u64,
    pub replayed: bool,
    /// The prize is stock-bounded (not the fallback, not unlimited).
    pub bounded: bool,
    /// The prize code handed out with a win of a code prize.
    pub code: Option<String>,
    /// This draw took the prize's last unit (never on a replay).
    pub exhausted: bool,
}

/// Why the script drew nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    NoCampaign,
    NotStarted,
    Ended,
    Paused,
    QuotaExhausted,
    /// With earned spins: the user has spent every spin they have (they can
    /// earn more), within the limits.
    NoSpinsLeft,
    /// Until the next day of the campaign starts.
    DailyQuotaExhausted {
        retry_after_ms: u64,
    },
    /// The key was used before with another request body.
    KeyReused,
    /// The budget left cannot pay for the fallback prize: no spin can be
    /// answered until a re-apply raises the budget.
    BudgetExhausted,
    /// Redis restarted or failed over and may have lost draws the ledger holds:
    /// new draws wait until the campaign is rebuilt from it (src/recover).
    Recovering,
}

impl RedisStore {
    /// Runs one draw. Under `fsync-wins`, a bounded prize (drawn or replayed)
    /// is returned only once its fsync is confirmed, else
    /// [`StoreError::NotDurable`]: the draw stands and a retry replays it.
    pub async fn spin(&self, call: &SpinCall<'_>) -> Result<Result<Drawn, Rejection>, StoreError> {
        let k = CampaignKeys::new(call.campaign);
        let fsync_wins = self.durability == Durability::FsyncWins;
        let _slot = self.slot().await?;
        // One connection for the script and the WAITAOF after it: Redis counts
        // the writes to wait for per connection.
        let mut conn = self.conn();
        let mut inv = SPIN.prepare_invoke();
        inv.key(&k.meta)
            .key(&k.stock)
            .key(&k.awarded)
            .key(&k.days)
            .key(&k.results)
            .arg(call.user.as_str())
            .arg(call.user_hash)
            .arg(&call.record_field[..])
            .arg(&call.fingerprint[..])
            .arg(call.r)
            .arg(&call.spin_id.as_bytes()[..])
            .arg(call.spin_id.to_string())
            .arg(call.context)
            .arg(call.key.as_str())
            .arg(if fsync_wins { "1" } else { "0" });
        let reply: Vec<redis::Value> = self.run_script("spin", &inv, &mut conn).await?;
        let drawn = parse(Reply(reply))?;
        if fsync_wins && matches!(&drawn, Ok(d) if d.bounded) {
            self.await_fsync(&mut conn, &k.meta).await?;
        }
        Ok(drawn)
    }
}

fn parse(r: Reply) -> Result<Result<Drawn, Rejection>, StoreError> {
    let rejection = match r.str(0)? {
        status @ ("ok" | "replay") => {
            let spin_id = Uuid::from_slice(r.bytes(1)?)
                .map_err(|_| StoreError::Protocol("spin id is not 16 bytes".into()))?;
            return Ok(Ok(Drawn {
                spin_id,
                prize_id: r.str(2)?.to_owned(),
                prize_name: r.str(3)?.to_owned(),
                amount: r.str(4)?.to_owned(),
                currency: r.str(5)?.to_owned(),
                spins_left: u64::try_from(r.int(6)?).unwrap_or(0),
                replayed: status == "replay",
                bounded: r.int(7)? == 1,
                code: Some(r.str(8)?).filter(|c| !c.is_empty()).map(str::to_owned),
                exhausted: r.int(9)? == 1,
            }));
        }
        "no_campaign" => Rejection::NoCampaign,
        "not_started" => Rejection::NotStarted,
        "ended" => Rejection::Ended,
        "paused" => Rejection::Paused,
        "quota_exhausted" => Rejection::QuotaExhausted,
        "no_spins_left" => Rejection::NoSpinsLeft,
        "daily_quota_exhausted" => Rejection::DailyQuotaExhausted {
            retry_after_ms: u64::try_from(r.int(1)?).unwrap_or(0),
        },
        "key_reused" => Rejection::KeyReused,
        "recovering" => Rejection::Recovering,
        "budget_exhausted" => Rejection::BudgetExhausted,
        other => {
            return Err(StoreError::Protocol(format!(
                "unknown spin status `{other}`"
            )));
        }
    };
    Ok(Err(rejection))
}
