//! The prize table the draw script walks, as stored in `pw:{C}:meta` field `tbl`.
//!
//! Its order is the draw order and never changes for a live campaign: a prize
//! keeps its position for good (idempotency records refer to prizes by
//! position), new prizes are appended, and a prize dropped from the YAML stays
//! as a retired entry with weight 0 and no stock.

use crate::campaign::model::{Campaign, Release, Stock};
use serde::{Deserialize, Serialize};

/// One prize as the draw script sees it. Short names: apply.lua also keeps
/// each entry packed (`p:<i>`, struct.pack), which spin.lua unpacks, one per draw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    pub id: String,
    pub name: String,
    /// Weight in the draw; 0 for a retired prize.
    pub w: u64,
    /// Value amount, a decimal string.
    pub amt: String,
    pub cur: String,
    /// The value in ten-thousandths (`Money::units`), counted against the
    /// budget; absent for a prize worth nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<u64>,
    /// Released evenly over the window: the configured stock the curve spreads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pe: Option<u64>,
    /// Released per campaign day: units per day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pd: Option<u64>,
    /// Released on a schedule, kept in the sorted set pw:{C}:rel:<id>
    /// (score: instant in ms, member: units released by then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ps: Option<u8>,
    /// 1 for a code prize (`stock: codes`): a win takes a code from the set
    /// pw:{C}:codes:<id>; evenly released, its curve spreads the codes loaded
    /// (pw:{C}:initial), and `pe` is 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c: Option<u8>,
}

/// What apply does to a prize's stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockSetting {
    Configured(Stock),
    /// Dropped from the YAML: no more units are awarded.
    Retired,
}

/// The table after applying `c` over the live table `live`, with the stock
/// setting of every entry, and the 0-based index of the fallback.
pub fn merge(live: &[TableEntry], c: &Campaign) -> (Vec<(TableEntry, StockSetting)>, usize) {
    let entry = |i: usize| {
        let p = &c.prizes[i];
        let stock = match p.stock {
            Stock::Limited(n) => n,
            Stock::Unlimited | Stock::Codes => 0,
        };
        TableEntry {
            id: p.id.to_string(),
            name: p.name.clone(),
            w: p.weight,
            amt: p.value.amount.to_string(),
            cur: p.value.currency.to_string(),
            v: Some(p.value.units()).filter(|&v| v > 0),
            pe: (p.release == Release::Even).then_some(stock),
            pd: match p.release {
                Release::PerDay(n) => Some(n),
                _ => None,
            },
            ps: matches!(p.release, Release::Schedule(_)).then_some(1),
            c: (p.stock == Stock::Codes).then_some(1),
        }
    };
    let mut out: Vec<(TableEntry, StockSetting)> = Vec::with_capacity(live.len() + c.prizes.len());
    for old in live {
        match c.prizes.iter().position(|p| p.id.as_str() == old.id) {
            Some(i) => out.push((entry(i), StockSetting::Configured(c.prizes[i].stock))),
            None => out.push((
                TableEntry {
                    w: 0,
                    pe: None,
                    pd: None,
                    ps: None,
                    c: None,
                    ..old.clone()
                },
                StockSetting::Retired,
            )),
        }
    }
    for (i, p) in c.prizes.iter().enumerate() {
        if !live.iter().any(|old| old.id == p.id.as_str()) {
            out.push((entry(i), StockSetting::Configured(p.stock)));
        }
    }
    let fallback_id = c.prizes[c.fallback].id.as_str();
    let fallback = out
        .iter()
        .position(|(e, _)| e.id == fallback_id)
        .unwrap_or_default();
    (out, fallback)
}
