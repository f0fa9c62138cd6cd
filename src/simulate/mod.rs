//! Monte Carlo of a whole sale on the reference model, before it goes live:
//! when each prize runs out, what the campaign costs, how many shoppers win.

pub mod plot;

use crate::campaign::model::Campaign;
use crate::draw::model::{Counters, Model};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// How spins arrive over the campaign window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// Evenly over the window.
    Uniform,
    /// A sale opening: about half of all spins in the first 1/8 of the window.
    Burst,
}

impl Arrival {
    /// Time into the window, as a fraction of it, of the spin at fraction `u` of all spins.
    fn at(self, u: f64) -> f64 {
        match self {
            Arrival::Uniform => u,
            Arrival::Burst => u * u * u,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub users: u64,
    /// Spin attempts per user on average (users draw at random, so some try more
    /// and meet their quota).
    pub spins_per_user: u64,
    pub arrival: Arrival,
    pub runs: u32,
    pub seed: u64,
    /// Points of the burn-down curves.
    pub samples: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct PrizeOutcome {
    pub id: String,
    /// Configured units; null = unlimited.
    pub stock: Option<u64>,
    /// Median units awarded over the runs.
    pub awarded_median: u64,
    /// Share of runs in which the prize ran out.
    pub ran_out_share: f64,
    /// Median spin attempt (1-based) at which it ran out, over the runs where it did.
    pub ran_out_at_spin: Option<u64>,
    /// Median time into the sale, seconds, at which it ran out.
    pub ran_out_at_secs: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    pub currency: String,
    pub expected: Decimal,
    pub p5: Decimal,
    pub p50: Decimal,
    pub p95: Decimal,
}

/// Remaining units of a prize over time in the first run.
#[derive(Debug, Clone, Serialize)]
pub struct BurnDown {
    pub id: String,
    pub stock: u64,
    /// (seconds into the sale, units remaining)
    pub points: Vec<(f64, u64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub campaign_id: String,
    pub users: u64,
    pub attempts_per_run: u64,
    pub arrival: Arrival,
    pub runs: u32,
    pub seed: u64,
    pub window_secs: f64,
    pub prizes: Vec<PrizeOutcome>,
    pub costs: Vec<Cost>,
    /// Mean share of users who won a prize other than the fallback.
    pub winners_share: f64,
    pub burn_down: Vec<BurnDown>,
    pub spins_per_second: f64,
}

/// One run's results.
struct Run {
    awarded: Vec<u64>,
    /// (attempt number, ms into the sale) when each prize ran out.
    ran_out: Vec<Option<(u64, i64)>>,
    winners: u64,
    burn_down: Vec<Vec<(f64, u64)>>,
}

pub fn simulate(c: &Campaign, o: &Options) -> Report {
    let started = Instant::now();
    let attempts = o.users.saturating_mul(o.spins_per_user).max(1);
    let runs: Vec<Run> = (0..o.runs.max(1))
        .map(|k| run(c, o, attempts, o.seed.wrapping_add(u64::from(k)), k == 0))
        .collect();
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let model = Model::new(c);
    let window_ms = (model.ends_ms - model.starts_ms) as f64;

    let prizes: Vec<PrizeOutcome> = model
        .prizes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let ran: Vec<(u64, i64)> = runs.iter().filter_map(|r| r.ran_out[i]).collect();
            PrizeOutcome {
                id: p.entry.id.clone(),
                stock: p.remaining,
                awarded_median: median(runs.iter().map(|r| r.awarded[i]).collect()),
                ran_out_share: ran.len() as f64 / runs.len() as f64,
                ran_out_at_spin: (!ran.is_empty())
                    .then(|| median(ran.iter().map(|r| r.0).collect())),
                ran_out_at_secs: (!ran.is_empty())
                    .then(|| median(ran.iter().map(|r| r.1 as u64).collect()) as f64 / 1000.0),
            }
        })
        .collect();

    // Cost per currency and run: units times value.
    let mut per_currency: BTreeMap<String, Vec<Decimal>> = BTreeMap::new();
    for r in &runs {
        let mut run_cost: BTreeMap<&str, Decimal> = BTreeMap::new();
        for (i, p) in model.prizes.iter().enumerate() {
            let amount: Decimal = p.entry.amt.parse().unwrap_or_default();
            *run_cost.entry(p.entry.cur.as_str()).or_default() +=
                amount * Decimal::from(r.awarded[i]);
        }
        for (cur, v) in run_cost {
            per_currency.entry(cur.to_owned()).or_default().push(v);
        }
    }
    let costs = per_currency
        .into_iter()
        .map(|(currency, mut v)| {
            v.sort();
            let pct = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
            let expected = v.iter().sum::<Decimal>() / Decimal::from(v.len());
            Cost {
                currency,
                expected: expected.round_dp(2),
                p5: pct(0.05),
                p50: pct(0.5),
                p95: pct(0.95),
            }
        })
        .collect();

    let burn_down = model
        .prizes
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            Some(BurnDown {
                id: p.entry.id.clone(),
                stock: p.remaining?,
                points: runs[0].burn_down[i].clone(),
            })
        })
        .collect();

    Report {
        campaign_id: c.id.to_string(),
        users: o.users,
        attempts_per_run: attempts,
        arrival: o.arrival,
        runs: o.runs.max(1),
        seed: o.seed,
        window_secs: window_ms / 1000.0,
        prizes,
        costs,
        winners_share: runs.iter().map(|r| r.winners as f64).sum::<f64>()
            / runs.len() as f64
            / o.users.max(1) as f64,
        burn_down,
        spins_per_second: (attempts as f64 * runs.len() as f64) / elapsed,
    }
}

fn run(c: &Campaign, o: &Options, attempts: u64, seed: u64, sample: bool) -> Run {
    let mut m = Model::new(c);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = m.prizes.len();
    let mut users = vec![Counters::default(); o.users.max(1) as usize];
    let mut won = vec![false; users.len()];
    let mut ran_out = vec![None; n];
    let mut burn_down = vec![Vec::new(); n];
    let window = (m.ends_ms - m.starts_ms - 1) as f64;
    let every = (attempts / o.samples.max(1) as u64).max(1);
    for a in 0..attempts {
        let offset = (o.arrival.at(a as f64 / attempts as f64) * window) as i64;
        let now = m.starts_ms + offset;
        if sample && a % every == 0 {
            for (i, p) in m.prizes.iter().enumerate() {
                if let Some(left) = p.remaining {
                    burn_down[i].push((offset as f64 / 1000.0, left));
                }
            }
        }
        let u = (rng.next_u64() % users.len() as u64) as usize;
        let r = rng.next_u64() >> 11;
        if let Ok((i, _)) = m.decide(&mut users[u], now, r) {
            if i != m.fallback {
                won[u] = true;
            }
            if m.prizes[i].remaining == Some(0) && ran_out[i].is_none() {
                ran_out[i] = Some((a + 1, offset));
            }
        }
    }
    if sample {
        for (i, p) in m.prizes.iter().enumerate() {
            if let Some(left) = p.remaining {
                burn_down[i].push((window / 1000.0, left));
            }
        }
    }
    // A prize configured with no stock ran out before the first spin.
    for (i, p) in m.prizes.iter().enumerate() {
        if p.remaining == Some(0) && ran_out[i].is_none() {
            ran_out[i] = Some((0, 0));
        }
    }
    Run {
        awarded: m.prizes.iter().map(|p| p.awarded).collect(),
        ran_out,
        winners: won.iter().filter(|w| **w).count() as u64,
        burn_down,
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[v.len() / 2]
}

/// A stock for people: a count or `unlimited`.
pub fn stock_text(s: Option<u64>) -> String {
    s.map_or("unlimited".into(), |n| n.to_string())
}
