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
        let reply: redis::Value = self.run_script("spin", &inv, &mut conn).await?;
        let drawn = parse(reply)?;
        if fsync_wins && matches!(&drawn, Ok(d) if d.bounded) {
            self.await_fsync(&mut conn, &k.meta).await?;
        }
        Ok(drawn)
    }
}

/// The script's answer: a draw packed in one string (see lua/spin.lua's
/// header), or a refusal as an array.
fn parse(reply: redis::Value) -> Result<Result<Drawn, Rejection>, StoreError> {
    let r = match reply {
        redis::Value::BulkString(b) => return packed_draw(&b).map(Ok),
        redis::Value::Array(items) => Reply(items),
        other => {
            return Err(StoreError::Protocol(format!("a spin answered {other:?}")));
        }
    };
    let rejection = match r.str(0)? {
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

/// A draw as lua/spin.lua packs it: status ('ok' or 'rp'), spin id (16 bytes),
/// spins left (u32), bounded (u8), last (u8), the prize's entry as apply.lua
/// packs it (three doubles and two bytes, then id, name, amount and currency,
/// each a u16 length and the text), then the prize code (empty for none).
fn packed_draw(b: &[u8]) -> Result<Drawn, StoreError> {
    let bad = |what: &str| StoreError::Protocol(format!("a packed draw: {what}"));
    let mut at = Cursor { b, at: 0 };
    let replayed = match at.take(2) {
        Some(b"ok") => false,
        Some(b"rp") => true,
        _ => return Err(bad("no status")),
    };
    let spin_id = Uuid::from_slice(at.take(16).ok_or_else(|| bad("no spin id"))?)
        .map_err(|_| bad("spin id"))?;
    let head = at.take(6).ok_or_else(|| bad("no counts"))?;
    let spins_left = u64::from(u32::from_be_bytes([head[0], head[1], head[2], head[3]]));
    // The entry's value, pacing and code fields: the draw has used them.
    at.take(26).ok_or_else(|| bad("no entry"))?;
    let mut text = || -> Result<String, StoreError> {
        let len = at.take(2).ok_or_else(|| bad("no length"))?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let t = at.take(len).ok_or_else(|| bad("short text"))?;
        String::from_utf8(t.to_vec()).map_err(|_| bad("text is not UTF-8"))
    };
    let (prize_id, prize_name, amount, currency) = (text()?, text()?, text()?, text()?);
    let code = std::str::from_utf8(&b[at.at..]).map_err(|_| bad("code is not UTF-8"))?;
    Ok(Drawn {
        spin_id,
        prize_id,
        prize_name,
        amount,
        currency,
        spins_left,
        replayed,
        bounded: head[4] == 1,
        code: Some(code).filter(|c| !c.is_empty()).map(str::to_owned),
        exhausted: head[5] == 1,
    })
}

/// Reads a byte string front to back.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    /// The next `n` bytes, or `None` past the end.
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let t = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A draw packed as lua/spin.lua packs it (the entry as apply.lua does).
    fn packed(status: &[u8], left: u32, bounded: u8, last: u8, code: &str) -> Vec<u8> {
        let mut b = status.to_vec();
        b.extend_from_slice(&[7; 16]);
        b.extend_from_slice(&left.to_be_bytes());
        b.extend_from_slice(&[bounded, last]);
        for d in [1_000_000.0_f64, -1.0, 10.0] {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(&[0, 1]);
        for t in ["coupon", "Rs 200 off", "200.00", "INR"] {
            b.extend_from_slice(&(t.len() as u16).to_be_bytes());
            b.extend_from_slice(t.as_bytes());
        }
        b.extend_from_slice(code.as_bytes());
        b
    }

    #[test]
    fn a_packed_draw_reads_back_field_by_field() {
        let d = packed_draw(&packed(b"ok", 70_000, 1, 1, "CODE-1")).unwrap();
        assert_eq!(d.spin_id, Uuid::from_bytes([7; 16]));
        assert_eq!(
            (d.prize_id.as_str(), d.prize_name.as_str()),
            ("coupon", "Rs 200 off")
        );
        assert_eq!((d.amount.as_str(), d.currency.as_str()), ("200.00", "INR"));
        assert_eq!(d.spins_left, 70_000);
        assert!(d.bounded && d.exhausted && !d.replayed);
        assert_eq!(d.code.as_deref(), Some("CODE-1"));
        let r = packed_draw(&packed(b"rp", 0, 0, 0, "")).unwrap();
        assert!(r.replayed && !r.bounded && !r.exhausted && r.code.is_none());
    }

    #[test]
    fn a_cut_or_unknown_packed_draw_is_a_protocol_error() {
        let whole = packed(b"ok", 1, 0, 0, "");
        for cut in 0..whole.len() {
            assert!(
                matches!(packed_draw(&whole[..cut]), Err(StoreError::Protocol(_))),
                "cut at {cut}"
            );
        }
        let mut odd = whole.clone();
        odd[0] = b'x';
        assert!(matches!(packed_draw(&odd), Err(StoreError::Protocol(_))));
    }
}
