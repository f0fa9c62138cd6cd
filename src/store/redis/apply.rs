//! Calling lua/apply.lua: one atomic install or change of a campaign.

use super::keys::{CampaignKeys, bucket_count};
use super::reply::Reply;
use super::scripts::APPLY;
use super::table::{StockSetting, TableEntry};
use super::{RedisStore, StoreError};
use crate::campaign::canonical;
use crate::campaign::days::day_starts;
use crate::campaign::model::{Campaign, Release, Stock};

/// The outcome of an apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// A new version is live.
    Applied { version: u64 },
    /// The live config already equals this one; nothing was written.
    Unchanged { version: u64 },
    /// The live config changed since it was read (another apply won the race).
    Conflict { live_hash: String },
    /// Earned spins lapse by the live rule `live`, fixed by the apply that first
    /// set one; this config names the other.
    ExpireFixed { live: String },
}

/// `expected_hash`: the live hash the change was planned against (`None`: the
/// campaign did not exist).
pub struct ApplyCall<'a> {
    pub campaign: &'a Campaign,
    pub yaml: &'a str,
    pub expected_hash: Option<&'a str>,
    pub table: &'a [(TableEntry, StockSetting)],
    pub fallback: usize,
}

impl RedisStore {
    pub async fn apply(&self, call: &ApplyCall<'_>) -> Result<Applied, StoreError> {
        let c = call.campaign;
        let k = CampaignKeys::new(&c.id);
        let entries: Vec<&TableEntry> = call.table.iter().map(|(e, _)| e).collect();
        let table_json = serde_json::to_string(&entries)
            .map_err(|e| StoreError::Protocol(format!("prize table: {e}")))?;
        let total_weight: u64 = entries.iter().map(|e| e.w).sum();

        let mut inv = APPLY.prepare_invoke();
        inv.key(&k.meta)
            .key(&k.stock)
            .key(&k.awarded)
            .key(&k.initial)
            .key(&k.days)
            .key(&k.results)
            .arg(call.expected_hash.unwrap_or(""))
            .arg(canonical::hash(c))
            .arg(canonical::to_json(c).to_string())
            .arg(table_json)
            .arg(call.yaml)
            .arg(c.starts_at.timestamp_millis())
            .arg(c.ends_at.timestamp_millis())
            .arg(u8::from(c.paused))
            .arg(c.limits.spins_per_user)
            .arg(c.limits.spins_per_user_per_day.unwrap_or(0))
            .arg(call.fallback + 1)
            .arg(total_weight)
            .arg(bucket_count(c.expected_users))
            .arg(c.earned_spins.map_or(-1, |e| i64::from(e.free)))
            .arg(c.earned_spins.map_or("", |e| e.expire.as_str()))
            .arg(c.budget.as_ref().map_or(-1, |b| b.units() as i64))
            .arg(call.table.len());
        for (entry, setting) in call.table {
            let configured = match setting {
                StockSetting::Configured(Stock::Limited(n)) => *n as i64,
                StockSetting::Configured(Stock::Unlimited) => -1,
                StockSetting::Retired => -2,
                StockSetting::Configured(Stock::Codes) => -3,
            };
            inv.arg(&entry.id).arg(configured);
        }
        // Release schedules: (prize id, steps, then (instant, units released by then) per step).
        let schedules: Vec<(&str, &[crate::campaign::model::ReleaseStep])> = c
            .prizes
            .iter()
            .filter_map(|p| match &p.release {
                Release::Schedule(steps) => Some((p.id.as_str(), steps.as_slice())),
                _ => None,
            })
            .collect();
        inv.arg(schedules.len());
        for (id, steps) in schedules {
            inv.arg(id).arg(steps.len());
            let mut cumulative = 0u64;
            for s in steps {
                cumulative += s.units;
                inv.arg(s.at).arg(cumulative);
            }
        }
        for start in day_starts(c) {
            inv.arg(start);
        }
        let r = Reply(self.run_script("apply", &inv, &mut self.conn()).await?);
        match r.str(0)? {
            "applied" => Ok(Applied::Applied {
                version: r.int(1)? as u64,
            }),
            "unchanged" => Ok(Applied::Unchanged {
                version: r.int(1)? as u64,
            }),
            "conflict" => Ok(Applied::Conflict {
                live_hash: r.str(1)?.to_owned(),
            }),
            "expire_fixed" => Ok(Applied::ExpireFixed {
                live: r.str(1)?.to_owned(),
            }),
            other => Err(StoreError::Protocol(format!(
                "unknown apply status `{other}`"
            ))),
        }
    }
}
