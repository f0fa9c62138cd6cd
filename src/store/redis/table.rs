//! The prize table the draw script walks, as stored in `pw:{C}:meta` field `tbl`.
//!
//! Its order is the draw order and never changes for a live campaign: a prize
//! keeps its position for good (idempotency records refer to prizes by
//! position), new prizes are appended, and a prize dropped from the YAML stays
//! as a retired entry with weight 0 and no stock.

use crate::campaign::model::{Campaign, Stock};
use serde::{Deserialize, Serialize};

/// One prize as the draw script sees it. Short names: the script decodes this
/// JSON on every draw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    pub id: String,
    pub name: String,
    /// Weight in the draw; 0 for a retired prize.
    pub w: u64,
    /// Value amount, a decimal string.
    pub amt: String,
    pub cur: String,
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
        TableEntry {
            id: p.id.to_string(),
            name: p.name.clone(),
            w: p.weight,
            amt: p.value.amount.to_string(),
            cur: p.value.currency.to_string(),
        }
    };
    let mut out: Vec<(TableEntry, StockSetting)> = Vec::with_capacity(live.len() + c.prizes.len());
    for old in live {
        match c.prizes.iter().position(|p| p.id.as_str() == old.id) {
            Some(i) => out.push((entry(i), StockSetting::Configured(c.prizes[i].stock))),
            None => out.push((
                TableEntry {
                    w: 0,
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
