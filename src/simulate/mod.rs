//! Monte Carlo of a whole sale on the reference model, before it goes live:
//! when each prize's units are released and run out, when the budget runs
//! out, what the campaign costs, how many shoppers win.
//!
//! Every attempt is decided by [`Model::decide`] at its instant, so the
//! simulation follows the release curves and the budget exactly as the draw
//! script does (a prize not yet released or above the budget left gives its
//! turn to the fallback; an attempt the budget cannot pay the fallback for is
//! refused as `budget_exhausted`).
//!
//! A code prize's stock (`stock: codes`) is the codes loaded for it, which the
//! YAML does not say: [`Options::codes`] gives them (`--codes PRIZE=N`), loaded
//! into the model with [`Model::load_codes`]; a code prize without them is
//! simulated with none, and the report lists it in `codes_not_given`.

pub mod plot;
pub mod progress;
mod wheel;

use crate::campaign::model::{Campaign, EarnedSpins, Expiry, Release, Stock};
use crate::campaign::pools::{BUDGET_SALT, prize_salt};
use crate::domain::Pool;
use crate::draw::model::{Counters, Model, day_index};
use crate::draw::release::{Window, next_release, released};
use crate::store::redis::spin::Rejection;
use chrono::{DateTime, SecondsFormat};
use chrono_tz::Tz;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;
use wheel::Wheel;

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

    /// Its name, as `--arrival` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Arrival::Uniform => "uniform",
            Arrival::Burst => "burst",
        }
    }

    /// What it means, for people.
    pub fn description(self) -> &'static str {
        match self {
            Arrival::Uniform => "spin attempts spread evenly over the window",
            Arrival::Burst => "half of all spin attempts in the first eighth of the window",
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
    /// Points of each curve (awarded, released, budget spent): a point each
    /// time a curve passes another 1/`samples` of its prize's stock (or of the
    /// budget), so a curve is drawn as finely in a sale's first second as
    /// over its whole window.
    pub samples: usize,
    /// With the campaign's `earned_spins`: orders per user on average, each a
    /// grant to a random user, arriving over the window like the spins (and
    /// independently of them). Without `earned_spins` no grants are made (the
    /// service refuses them as `not_enabled`).
    pub grants_per_user: f64,
    /// Spins each grant gives.
    pub spins_per_grant: u32,
    /// Per code prize (`stock: codes`), the codes its pool holds at the start
    /// (`--codes PRIZE=N`): its stock, which the YAML cannot say. A code prize
    /// missing here is simulated with none ([`Report::codes_not_given`]).
    /// Checked against the campaign by [`codes_for`].
    pub codes: BTreeMap<String, u64>,
}

impl Options {
    /// The model of `c` at the start of a run: its first apply, then each code
    /// prize's codes loaded (lua/codes.lua `add`), and with `resume` the sale
    /// as it stands at its instant: each prize's units awarded and left, the
    /// budget spent.
    fn model_at(&self, c: &Campaign, resume: Option<&Resume>) -> Model {
        self.pool_model(c, Pool::ONLY, resume)
    }

    /// The model of each pool of `c` at the start of a run, in pool order.
    fn pool_models(&self, c: &Campaign, resume: Option<&Resume>) -> Vec<Model> {
        Pool::all(c.pools.clamp(1, Pool::MAX_COUNT))
            .map(|pool| self.pool_model(c, pool, resume))
            .collect()
    }

    /// [`Self::model_at`] of pool `pool`: its share of the first apply, of the
    /// codes loaded and, with `resume`, of the sale as it stands (a pool's own
    /// counts are not known to the projection, so it takes its share of the
    /// campaign's). The share of the only pool is the whole.
    fn pool_model(&self, c: &Campaign, pool: Pool, resume: Option<&Resume>) -> Model {
        let mut m = Model::new(&c.pool_share(pool));
        for (id, &n) in &self.codes {
            m.load_codes(id, pool.share(n, prize_salt(id)));
        }
        if let Some(r) = resume {
            for p in &mut m.prizes {
                if let Some(&(awarded, remaining)) = r.prizes.get(&p.entry.id) {
                    let salt = prize_salt(&p.entry.id);
                    p.awarded = pool.share(awarded, salt);
                    if p.remaining.is_some() {
                        p.remaining = Some(pool.share(remaining.unwrap_or(0), salt));
                    }
                }
            }
            m.spent = pool.share(r.spent, BUDGET_SALT);
        }
        m
    }

    /// Grants made in each run.
    fn grants(&self, c: &Campaign) -> u64 {
        match c.earned_spins {
            Some(_) => (self.users.max(1) as f64 * self.grants_per_user.max(0.0)).round() as u64,
            None => 0,
        }
    }
}

/// A sale under way, to project from ([`simulate_from`]): what the live
/// campaign holds at `at_ms`.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    /// Unix ms of the instant the projection starts at.
    pub at_ms: i64,
    /// Per prize id: units awarded so far, and units left (None = unlimited).
    pub prizes: BTreeMap<String, (u64, Option<u64>)>,
    /// Value units awarded so far (`Money::units`).
    pub spent: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PrizeOutcome {
    pub id: String,
    /// Configured units (of a code prize, the codes simulated); null = unlimited.
    pub stock: Option<u64>,
    /// Only for a code prize (`stock: codes`): the codes it was simulated
    /// with (`--codes`, or 0 when not given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codes: Option<u64>,
    /// How its units are released (`all_at_start`, `even`, `per_day N`,
    /// `schedule (K steps)`); null for an unlimited prize.
    pub release: Option<String>,
    /// Units released by the end of the window (the whole stock unless a
    /// paced release ends first); null = unlimited.
    pub released_at_end: Option<u64>,
    /// Median units awarded over the runs.
    pub awarded_median: u64,
    /// Share of runs in which the prize ran out.
    pub ran_out_share: f64,
    /// Median spin attempt (1-based) at which it ran out, over the runs where it did.
    pub ran_out_at_spin: Option<u64>,
    /// Median time into the sale, seconds, at which it ran out.
    pub ran_out_at_secs: Option<f64>,
    /// The same instant in the campaign's time zone (RFC 3339).
    pub ran_out_at: Option<String>,
    /// With `pools` above 1, over the runs in which a pool gave out its share
    /// of the prize: the median time into the sale (seconds) at which the
    /// first pool did, from when that pool's shoppers no longer win it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_pool_out_at_secs: Option<f64>,
    /// ... and the median units the other pools still had then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left_in_other_pools: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    pub currency: String,
    pub expected: Decimal,
    pub p5: Decimal,
    pub p50: Decimal,
    pub p95: Decimal,
}

/// A stock-bounded prize over the sale, medians over the runs.
#[derive(Debug, Clone, Serialize)]
pub struct BurnDown {
    pub id: String,
    pub stock: u64,
    /// (seconds into the sale, units remaining): from (0, stock), a point each
    /// time the median run awards another step of the stock, the median
    /// remaining at the end at `last_award_secs` (where it is not on a step),
    /// and again at the end of the window.
    pub points: Vec<(f64, u64)>,
    /// For a paced prize, (seconds into the sale, units released by then), a
    /// point per step of the stock; empty when every unit is out at the start.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub released: Vec<(f64, u64)>,
    /// Median time into the sale, seconds, of its last award (null: never awarded).
    pub last_award_secs: Option<f64>,
}

/// The campaign's budget over the sale, for a campaign with one.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetOutcome {
    pub amount: Decimal,
    pub currency: String,
    /// Median value awarded per run (every prize is in the budget's currency).
    pub awarded_median: Decimal,
    /// Share of runs in which the budget ran out: what it had left paid for
    /// no unit of any prize worth something that still had units, so nothing
    /// of value was awarded after that.
    pub ran_out_share: f64,
    /// Median spin attempt (1-based; 0 = before the first) at which it ran
    /// out, over the runs where it did.
    pub ran_out_at_spin: Option<u64>,
    /// Median time into the sale, seconds, at which it ran out.
    pub ran_out_at_secs: Option<f64>,
    /// The same instant in the campaign's time zone (RFC 3339); null = never.
    pub ran_out_at: Option<String>,
    /// Median spin attempts per run refused as `budget_exhausted` (the budget
    /// left could not pay for the fallback).
    pub budget_exhausted_median: u64,
    /// (seconds into the sale, share of the budget spent), medians over the
    /// runs: a point per step of the budget, and the median share at the end
    /// at `last_spend_secs`.
    pub spent: Vec<(f64, f64)>,
    /// Median time into the sale, seconds, of the last award worth something.
    pub last_spend_secs: Option<f64>,
}

/// Earned spins over a run, for a campaign with `earned_spins`.
#[derive(Debug, Clone, Serialize)]
pub struct EarnedOutcome {
    /// The campaign's free spins per user.
    pub free: u32,
    pub expire: Expiry,
    pub grants_per_user: f64,
    pub spins_per_grant: u32,
    /// Grants (orders) made in each run.
    pub grants: u64,
    /// Spins those grants gave, in each run.
    pub spins_granted: u64,
    /// Median spins drawn per run, free and earned.
    pub spins_drawn_median: u64,
    /// Median spin attempts per run refused as `no_spins_left`.
    pub no_spins_left_median: u64,
    /// Median earned spins per run never spun: under end_of_day they lapsed
    /// with their day, under campaign_end they were left when it ended.
    pub earned_unused_median: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub campaign_id: String,
    pub campaign_name: String,
    /// The campaign's time zone (IANA name): every instant of the report is in it.
    pub timezone: String,
    /// The window, RFC 3339 in the campaign's time zone.
    pub starts_at: String,
    pub ends_at: String,
    /// The campaign's sub-pools (only when above 1: `PrizeOutcome` then says
    /// when the first pool ran out of each prize).
    #[serde(skip_serializing_if = "is_one")]
    pub pools: u32,
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
    /// Only for a campaign with `earned_spins`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub earned_spins: Option<EarnedOutcome>,
    /// Only for a campaign with a `budget`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetOutcome>,
    /// The code prizes no `--codes` was given for, in table order: each was
    /// simulated with 0 codes, so it awards nothing (absent when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub codes_not_given: Vec<String>,
    #[serde(skip)]
    pub tz: Tz,
    /// Unix ms of `starts_at`.
    #[serde(skip)]
    pub starts_ms: i64,
}

impl Report {
    /// The instant `ms` into the sale, in the campaign's time zone.
    pub fn local(&self, ms: i64) -> DateTime<Tz> {
        local(self.tz, self.starts_ms.saturating_add(ms))
    }
}

/// Unix ms `ms` in `tz` (clamped to the range chrono represents).
pub fn local(tz: Tz, ms: i64) -> DateTime<Tz> {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&tz)
}

fn rfc3339(t: DateTime<Tz>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// A duration for people: `0.25 s`, `42 s`, `12.5 min`, `81.7 h`, `18.2 days`.
pub fn duration_text(secs: f64) -> String {
    let secs = secs.max(0.0);
    if secs < 10.0 {
        format!("{secs:.2} s")
    } else if secs < 120.0 {
        format!("{secs:.0} s")
    } else if secs < 7200.0 {
        format!("{:.1} min", secs / 60.0)
    } else if secs < 4.0 * 86_400.0 {
        format!("{:.1} h", secs / 3600.0)
    } else {
        format!("{:.1} days", secs / 86_400.0)
    }
}

/// Where a simulation is, for a progress display: attempt `done` of
/// `attempts` in run `run` (1-based) of `runs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    pub run: u32,
    pub runs: u32,
    pub done: u64,
    pub attempts: u64,
}

/// A curve's steps are counted in `levels`: the k-th of them is reached once
/// the curve's count is at `levels[k]` or above.
fn levels(total: u64, samples: usize) -> Vec<u64> {
    let n = samples.max(1) as u128;
    let mut out: Vec<u64> = (1..=n)
        .map(|j| (u128::from(total) * j).div_ceil(n) as u64)
        .filter(|&l| l > 0)
        .collect();
    out.dedup();
    out
}

/// Instants a run records (ms into the sale, per level) are kept for every
/// run, for the medians: at most this many of them in all.
const MAX_RECORDED: usize = 4_000_000;

/// The steps each curve of a run is recorded at.
struct Steps {
    /// Per prize (empty for an unlimited one).
    prizes: Vec<Vec<u64>>,
    /// Of the budget, in value units.
    spent: Vec<u64>,
}

impl Steps {
    fn new(m: &Model, o: &Options) -> Self {
        let curves = m.prizes.iter().filter(|p| p.remaining.is_some()).count()
            + usize::from(m.budget.is_some());
        let runs = o.runs.max(1) as usize;
        let samples = o
            .samples
            .min((MAX_RECORDED / (runs * curves.max(1))).max(8));
        Steps {
            prizes: m
                .prizes
                .iter()
                .map(|p| p.remaining.map_or(Vec::new(), |s| levels(s, samples)))
                .collect(),
            spent: m.budget.map_or(Vec::new(), |b| levels(b, samples)),
        }
    }
}

/// Never reached, in a run's recorded instants.
const NEVER: i64 = i64::MAX;

/// The value of a unit of the cheapest prize worth something that still has
/// units (`None`: no such prize is left).
fn cheapest(m: &Model) -> Option<u64> {
    m.prizes
        .iter()
        .filter(|p| p.remaining != Some(0))
        .filter_map(|p| p.entry.v.filter(|&v| v > 0))
        .min()
}

/// Whether the budget left pays for no unit of value any more.
fn budget_spent(m: &Model, cheapest: Option<u64>) -> bool {
    matches!((m.budget_left(), cheapest), (Some(left), Some(c)) if left < c)
}

/// How a prize's units are released, in a word.
fn release_text(r: &Release) -> String {
    match r {
        Release::AllAtStart => "all_at_start".into(),
        Release::Even => "even".into(),
        Release::PerDay(n) => format!("per_day {n}"),
        Release::Schedule(steps) => format!("schedule ({} steps)", steps.len()),
    }
}

/// An amount of value units (ten-thousandths) as money: at least two decimals.
fn money(units: u64) -> Decimal {
    let mut d = Decimal::new(i64::try_from(units).unwrap_or(i64::MAX), 4).normalize();
    if d.scale() < 2 {
        d.rescale(2);
    }
    d
}

pub fn simulate(c: &Campaign, o: &Options) -> Report {
    simulate_with_progress(c, o, &mut |_| {})
}

/// [`simulate`], telling `progress` where it is every 65,536 attempts and at
/// the end of each run.
pub fn simulate_with_progress(c: &Campaign, o: &Options, progress: &mut dyn FnMut(Tick)) -> Report {
    simulate_inner(c, o, None, progress)
}

/// The rest of a sale under way: [`simulate`] from `resume`'s instant to the
/// end of the window, starting from its awards, stock left and budget spent.
/// `o.users × o.spins_per_user` attempts arrive over the rest of the window;
/// each shopper's own spins so far are not known, so none are counted against
/// their limits. Every instant of the report is still counted from the
/// start of the sale; a burn-down's first point is at `resume.at_ms`, with
/// `stock` the units left then, and `awarded_median` counts the awards after it.
pub fn simulate_from(c: &Campaign, o: &Options, resume: &Resume) -> Report {
    simulate_inner(c, o, Some(resume), &mut |_| {})
}

fn simulate_inner(
    c: &Campaign,
    o: &Options,
    resume: Option<&Resume>,
    progress: &mut dyn FnMut(Tick),
) -> Report {
    let started = Instant::now();
    let attempts = o.users.saturating_mul(o.spins_per_user).max(1);
    let model = o.model_at(c, resume);
    let steps = Steps::new(&model, o);
    let nruns = o.runs.max(1);
    let runs: Vec<Run> = (0..nruns)
        .map(|k| {
            let seed = o.seed.wrapping_add(u64::from(k));
            let mut tick = |done| {
                progress(Tick {
                    run: k + 1,
                    runs: nruns,
                    done,
                    attempts,
                })
            };
            run(c, o, resume, attempts, seed, &steps, &mut tick)
        })
        .collect();
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let window_ms = (model.ends_ms - model.starts_ms) as f64;
    let w = model.window();
    let tz = c.timezone;
    let at = |ms: i64| rfc3339(local(tz, model.starts_ms.saturating_add(ms)));

    let prizes: Vec<PrizeOutcome> = model
        .prizes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let ran: Vec<(u64, i64)> = runs.iter().filter_map(|r| r.ran_out[i]).collect();
            let ran_ms = (!ran.is_empty()).then(|| median_i64(ran.iter().map(|r| r.1).collect()));
            let pool_out: Vec<(i64, u64)> = runs.iter().filter_map(|r| r.pool_out[i]).collect();
            let pool_out_ms =
                (!pool_out.is_empty()).then(|| median_i64(pool_out.iter().map(|r| r.0).collect()));
            PrizeOutcome {
                id: p.entry.id.clone(),
                stock: p.remaining,
                codes: p.entry.c.map(|_| p.remaining.unwrap_or(0)),
                release: p.remaining.map(|_| release_text(&p.release)),
                released_at_end: p
                    .remaining
                    .map(|_| released(&p.release, p.configured, w, model.ends_ms - 1)),
                awarded_median: median(runs.iter().map(|r| r.awarded[i]).collect()),
                ran_out_share: ran.len() as f64 / runs.len() as f64,
                ran_out_at_spin: (!ran.is_empty())
                    .then(|| median(ran.iter().map(|r| r.0).collect())),
                ran_out_at_secs: ran_ms.map(|ms| ms as f64 / 1000.0),
                ran_out_at: ran_ms.map(at),
                first_pool_out_at_secs: pool_out_ms.map(|ms| ms as f64 / 1000.0),
                left_in_other_pools: (!pool_out.is_empty())
                    .then(|| median(pool_out.iter().map(|r| r.1).collect())),
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

    let secs = |ms: i64| ms as f64 / 1000.0;
    // The median of each level's instant over the runs, while it is reached.
    let curve = |levels: &[u64], reached: &dyn Fn(&Run) -> &[i64]| -> Vec<(f64, u64)> {
        levels
            .iter()
            .enumerate()
            .map_while(|(j, &l)| {
                let t = median_i64(runs.iter().map(|r| reached(r)[j]).collect());
                (t != NEVER).then(|| (secs(t), l))
            })
            .collect()
    };
    let burn_down = model
        .prizes
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let stock = p.remaining?;
            let mut points = vec![(
                resume.map_or(0.0, |r| secs(r.at_ms - model.starts_ms).max(0.0)),
                stock,
            )];
            points.extend(
                curve(&steps.prizes[i], &|r| &r.reached[i])
                    .into_iter()
                    .map(|(t, l)| (t, stock - l)),
            );
            let last: Vec<i64> = runs.iter().filter_map(|r| r.last_award[i]).collect();
            let last_award_secs = (!last.is_empty()).then(|| secs(median_i64(last)));
            // Between the last step and the median count at the end: at the
            // last award.
            let left = stock.saturating_sub(prizes[i].awarded_median);
            if let (Some(t), Some(&(at, l))) = (last_award_secs, points.last())
                && left < l
            {
                points.push((t.max(at), left));
            }
            points.push((secs(model.ends_ms - model.starts_ms - 1), left));
            let released = if p.release.is_paced() {
                release_points(&p.release, p.configured, &steps.prizes[i], w)
            } else {
                Vec::new()
            };
            Some(BurnDown {
                id: p.entry.id.clone(),
                stock,
                points,
                released,
                last_award_secs,
            })
        })
        .collect();

    let budget = c.budget.as_ref().map(|b| {
        let units = b.units().max(1) as f64;
        let ran: Vec<(u64, i64)> = runs.iter().filter_map(|r| r.budget_out).collect();
        let ran_ms = (!ran.is_empty()).then(|| median_i64(ran.iter().map(|r| r.1).collect()));
        let last: Vec<i64> = runs.iter().filter_map(|r| r.last_spend).collect();
        let last_spend_secs = (!last.is_empty()).then(|| secs(median_i64(last)));
        let spent_median = median(runs.iter().map(|r| r.spent).collect());
        let mut spent: Vec<(f64, f64)> = curve(&steps.spent, &|r| &r.spent_reached)
            .into_iter()
            .map(|(t, l)| (t, l as f64 / units))
            .collect();
        // Between the last step and the median value at the end: at the last
        // award worth something.
        let share = spent_median as f64 / units;
        if let Some(t) = last_spend_secs
            && spent.last().is_none_or(|&(_, s)| s < share)
        {
            spent.push((t.max(spent.last().map_or(0.0, |p| p.0)), share));
        }
        BudgetOutcome {
            amount: b.amount,
            currency: b.currency.to_string(),
            awarded_median: money(spent_median),
            ran_out_share: ran.len() as f64 / runs.len() as f64,
            ran_out_at_spin: (!ran.is_empty()).then(|| median(ran.iter().map(|r| r.0).collect())),
            ran_out_at_secs: ran_ms.map(secs),
            ran_out_at: ran_ms.map(at),
            budget_exhausted_median: median(runs.iter().map(|r| r.budget_exhausted).collect()),
            spent,
            last_spend_secs,
        }
    });

    Report {
        campaign_id: c.id.to_string(),
        campaign_name: c.name.clone(),
        timezone: tz.name().to_owned(),
        starts_at: rfc3339(c.starts_at.with_timezone(&tz)),
        ends_at: rfc3339(c.ends_at.with_timezone(&tz)),
        pools: c.pools,
        users: o.users,
        attempts_per_run: attempts,
        arrival: o.arrival,
        runs: nruns,
        seed: o.seed,
        window_secs: window_ms / 1000.0,
        prizes,
        costs,
        winners_share: runs.iter().map(|r| r.winners as f64).sum::<f64>()
            / runs.len() as f64
            / o.users.max(1) as f64,
        burn_down,
        spins_per_second: (attempts as f64 * runs.len() as f64) / elapsed,
        earned_spins: c.earned_spins.map(|e| {
            let grants = o.grants(c);
            EarnedOutcome {
                free: e.free,
                expire: e.expire,
                grants_per_user: o.grants_per_user,
                spins_per_grant: o.spins_per_grant,
                grants,
                spins_granted: grants.saturating_mul(u64::from(o.spins_per_grant)),
                spins_drawn_median: median(runs.iter().map(|r| r.drawn).collect()),
                no_spins_left_median: median(runs.iter().map(|r| r.no_spins_left).collect()),
                earned_unused_median: median(runs.iter().map(|r| r.earned_unused).collect()),
            }
        }),
        budget,
        codes_not_given: model
            .prizes
            .iter()
            .filter(|p| p.entry.c.is_some() && !o.codes.contains_key(&p.entry.id))
            .map(|p| p.entry.id.clone())
            .collect(),
        tz,
        starts_ms: model.starts_ms,
    }
}

/// (seconds into the sale, units released) of a paced prize of `stock`
/// configured units: when unit `l` of each level is released, while it is
/// within the window. Unit `l` cannot be awarded before that instant, so the
/// awarded curve, drawn at the same levels, never rises above this one.
fn release_points(release: &Release, stock: u64, levels: &[u64], w: Window) -> Vec<(f64, u64)> {
    levels
        .iter()
        .map_while(|&l| {
            let at = next_release(release, stock, l - 1, w)?;
            (at < w.end_ms).then(|| ((at - w.start_ms).max(0) as f64 / 1000.0, l))
        })
        .collect()
}

/// The grants of one run, in time order.
struct Grants {
    /// A stream of their own, so that the spin attempts (who, when, `R`) are
    /// the same whatever the grants.
    rng: ChaCha8Rng,
    total: u64,
    made: u64,
    /// Ms into the sale of the next grant; `i64::MAX` after the last.
    next_at: i64,
    spins: u32,
    arrival: Arrival,
    window: f64,
}

impl Grants {
    fn new(o: &Options, total: u64, window: f64, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(1);
        let mut g = Grants {
            rng,
            total,
            made: 0,
            next_at: i64::MAX,
            spins: o.spins_per_grant,
            arrival: o.arrival,
            window,
        };
        g.next_at = g.offset(0);
        g
    }

    /// Ms into the sale of grant `k` (0-based), spread like the spins.
    fn offset(&self, k: u64) -> i64 {
        if k >= self.total {
            return i64::MAX;
        }
        (self.arrival.at(k as f64 / self.total as f64) * self.window) as i64
    }

    /// Makes the grants due by `until` ms into the sale, each to a random user;
    /// returns the earned spins that lapsed with them.
    fn make_until(&mut self, m: &Model, users: &mut [Counters], until: i64) -> u64 {
        let Some(e) = m.earned else {
            return 0;
        };
        let mut lapsed = 0;
        while self.next_at <= until {
            let u = (self.rng.next_u64() % users.len() as u64) as usize;
            lapsed += grant(m, e, &mut users[u], self.spins, m.starts_ms + self.next_at);
            self.made += 1;
            self.next_at = self.offset(self.made);
        }
        lapsed
    }
}

/// A grant of `spins` to a user whose counters are `c`, at `now_ms`, as
/// [`Model::grant`] makes it (the simulation only grants inside the window);
/// returns the earned spins of the user's earlier pool that lapsed with it.
fn grant(m: &Model, e: EarnedSpins, c: &mut Counters, spins: u32, now_ms: i64) -> u64 {
    let today = day_index(&m.day_starts, now_ms);
    let lapsed = c.earned.map_or(0, |p| {
        c.balance(e, p.day).1.saturating_sub(c.balance(e, today).1)
    });
    c.grant(e.expire, spins, today);
    u64::from(lapsed)
}

/// One run's results.
struct Run {
    awarded: Vec<u64>,
    /// (attempt number, ms into the sale) when each prize ran out.
    ran_out: Vec<Option<(u64, i64)>>,
    /// With pools: (ms into the sale, units the other pools still had) when
    /// the first pool ran out of each prize.
    pool_out: Vec<Option<(i64, u64)>>,
    winners: u64,
    /// Per prize, ms into the sale at which its awarded count reached each of
    /// its [`Steps`] ([`NEVER`] if it did not).
    reached: Vec<Vec<i64>>,
    /// Per prize, ms into the sale of its last award (of a stock-bounded
    /// prize or one worth something; `None` for the others).
    last_award: Vec<Option<i64>>,
    /// Spins drawn.
    drawn: u64,
    /// Attempts refused as `no_spins_left`.
    no_spins_left: u64,
    /// Earned spins never spun (lapsed, or left at the end).
    earned_unused: u64,
    /// Attempts refused as `budget_exhausted`.
    budget_exhausted: u64,
    /// Value units awarded.
    spent: u64,
    /// (attempt number, ms into the sale) when the budget ran out.
    budget_out: Option<(u64, i64)>,
    /// Ms into the sale at which the value awarded reached each budget step.
    spent_reached: Vec<i64>,
    /// Ms into the sale of the last award worth something.
    last_spend: Option<i64>,
}

fn run(
    c: &Campaign,
    o: &Options,
    resume: Option<&Resume>,
    attempts: u64,
    seed: u64,
    steps: &Steps,
    tick: &mut dyn FnMut(u64),
) -> Run {
    let mut w = Wheel::new(o.pool_models(c, resume));
    let n = w.config().prizes.len();
    // Awards before the run (a resumed sale's): the curves count those after.
    let before: Vec<u64> = (0..n).map(|i| w.awarded(i)).collect();
    let mut awarded = before.clone();
    let mut spent = w.spent();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut users = vec![Counters::default(); o.users.max(1) as usize];
    let mut won = vec![false; users.len()];
    let mut ran_out = vec![None; n];
    let mut pool_out = vec![None; n];
    let mut reached: Vec<Vec<i64>> = steps.prizes.iter().map(|l| vec![NEVER; l.len()]).collect();
    let mut next_level = vec![0usize; n];
    let mut last_award = vec![None; n];
    let mut spent_reached = vec![NEVER; steps.spent.len()];
    let mut next_spent = 0usize;
    let mut last_spend = None;
    // The prizes whose draws change a curve: stock-bounded or worth something.
    let tracked: Vec<bool> = w
        .config()
        .prizes
        .iter()
        .map(|p| p.remaining.is_some() || p.entry.v.is_some_and(|v| v > 0))
        .collect();
    // Per pool: the cheapest prize it still has, and whether its budget can
    // pay for it; the campaign's budget is out once every pool's is.
    let mut cheapest_left: Vec<Option<u64>> = (0..w.count()).map(|k| cheapest(w.pool(k))).collect();
    let mut pool_budget_out: Vec<bool> = (0..w.count())
        .map(|k| budget_spent(w.pool(k), cheapest_left[k]))
        .collect();
    let mut budget_out = pool_budget_out.iter().all(|&b| b).then_some((0, 0));
    let window = (w.config().ends_ms - w.config().starts_ms - 1) as f64;
    let starts_ms = w.config().starts_ms;
    // Attempts arrive from `first` (ms into the sale) to the end.
    let first = resume.map_or(0.0, |r| ((r.at_ms - starts_ms) as f64).clamp(0.0, window));
    // A pool whose share of a prize is none from the start (fewer units than
    // pools) is out of it from the first attempt.
    for (i, out) in pool_out.iter_mut().enumerate() {
        let left = w.remaining(i).unwrap_or(0);
        let a_pool_is_out = (0..w.count()).any(|k| w.pool(k).prizes[i].remaining == Some(0));
        if w.count() > 1 && left > 0 && a_pool_is_out {
            *out = Some((first as i64, left));
        }
    }
    while next_spent < steps.spent.len() && spent >= steps.spent[next_spent] {
        spent_reached[next_spent] = first as i64;
        next_spent += 1;
    }
    let (mut drawn, mut no_spins_left, mut earned_unused) = (0u64, 0u64, 0u64);
    let mut budget_exhausted = 0u64;
    let mut grants = Grants::new(o, o.grants(c), window, seed);
    for a in 0..attempts {
        if a & 0xFFFF == 0 && a > 0 {
            tick(a);
        }
        let offset = (first + o.arrival.at(a as f64 / attempts as f64) * (window - first)) as i64;
        let now = starts_ms + offset;
        // The orders placed by now (an order comes before the spin it earns).
        if grants.next_at <= offset {
            earned_unused += grants.make_until(w.config(), &mut users, offset);
        }
        let u = (rng.next_u64() % users.len() as u64) as usize;
        let r = rng.next_u64() >> 11;
        let k = w.pool_of(u);
        let m = w.pool_mut(k);
        let spent_before = m.spent;
        match m.decide(&mut users[u], now, r) {
            Ok((i, _)) => {
                drawn += 1;
                awarded[i] += 1;
                if i != m.fallback {
                    won[u] = true;
                }
                // Most draws are of an unlimited prize worth nothing (the
                // fallback): nothing to record.
                if tracked[i] {
                    spent += m.spent - spent_before;
                    let pool_ran_out = m.prizes[i].remaining == Some(0);
                    let valued = m.prizes[i].entry.v.is_some_and(|v| v > 0);
                    last_award[i] = Some(offset);
                    let levels = &steps.prizes[i];
                    while next_level[i] < levels.len()
                        && awarded[i] - before[i] >= levels[next_level[i]]
                    {
                        reached[i][next_level[i]] = offset;
                        next_level[i] += 1;
                    }
                    if pool_ran_out {
                        cheapest_left[k] = cheapest(w.pool(k));
                        let left = w.remaining(i).unwrap_or(0);
                        if pool_out[i].is_none() && w.count() > 1 {
                            pool_out[i] = Some((offset, left));
                        }
                        if left == 0 && ran_out[i].is_none() {
                            ran_out[i] = Some((a + 1, offset));
                        }
                    }
                    if valued {
                        last_spend = Some(offset);
                        while next_spent < steps.spent.len() && spent >= steps.spent[next_spent] {
                            spent_reached[next_spent] = offset;
                            next_spent += 1;
                        }
                        if !pool_budget_out[k] && budget_spent(w.pool(k), cheapest_left[k]) {
                            pool_budget_out[k] = true;
                            if budget_out.is_none() && pool_budget_out.iter().all(|&b| b) {
                                budget_out = Some((a + 1, offset));
                            }
                        }
                    }
                }
            }
            Err(Rejection::NoSpinsLeft) => no_spins_left += 1,
            Err(Rejection::BudgetExhausted) => budget_exhausted += 1,
            Err(_) => {}
        }
    }
    tick(attempts);
    // The orders after the last attempt, then what is left in every pool.
    if let Some(e) = w.config().earned {
        earned_unused += grants.make_until(w.config(), &mut users, i64::MAX - 1);
        earned_unused += users
            .iter()
            .filter_map(|c| c.earned.map(|p| u64::from(c.balance(e, p.day).1)))
            .sum::<u64>();
    }
    // A prize configured with no stock ran out before the first spin.
    for (i, r) in ran_out.iter_mut().enumerate() {
        if w.remaining(i) == Some(0) && r.is_none() {
            *r = Some((0, 0));
        }
    }
    Run {
        awarded: awarded.iter().zip(&before).map(|(a, b)| a - b).collect(),
        ran_out,
        pool_out,
        winners: won.iter().filter(|w| **w).count() as u64,
        reached,
        last_award,
        drawn,
        no_spins_left,
        earned_unused,
        budget_exhausted,
        spent,
        budget_out,
        spent_reached,
        last_spend,
    }
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

fn median(mut v: Vec<u64>) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[v.len() / 2]
}

/// As [`median`], of instants ([`NEVER`] sorts last).
fn median_i64(mut v: Vec<i64>) -> i64 {
    if v.is_empty() {
        return NEVER;
    }
    v.sort_unstable();
    v[v.len() / 2]
}

/// A stock for people: a count or `unlimited`.
pub fn stock_text(s: Option<u64>) -> String {
    s.map_or("unlimited".into(), |n| n.to_string())
}

impl PrizeOutcome {
    /// Its stock for people: a count, `unlimited`, or `codes: N` for a code prize.
    pub fn stock_text(&self) -> String {
        match self.codes {
            Some(n) => format!("codes: {n}"),
            None => stock_text(self.stock),
        }
    }
}

/// One `--codes` value, `PRIZE=N`: the prize id and its codes (0 to
/// `Stock::MAX`). The error is one line, for the command line.
pub fn parse_codes_arg(s: &str) -> Result<(String, u64), String> {
    let malformed = || format!("--codes `{s}` must be PRIZE=N, e.g. --codes coupon-100=5000");
    let (id, n) = s.split_once('=').ok_or_else(malformed)?;
    let (id, n) = (id.trim(), n.trim());
    if id.is_empty() {
        return Err(malformed());
    }
    let n: u64 = n.replace('_', "").parse().map_err(|_| {
        format!(
            "--codes `{s}`: `{n}` is not a number of codes from 0 to {}",
            Stock::MAX
        )
    })?;
    if n > Stock::MAX {
        return Err(format!(
            "--codes `{s}`: at most {} codes per prize",
            Stock::MAX
        ));
    }
    Ok((id.to_owned(), n))
}

/// The codes of each code prize of `c` from the `--codes` values `given`
/// (`parse_codes_arg`): each must name a code prize of `c`, once. The error
/// is one line, for the command line.
pub fn codes_for(c: &Campaign, given: &[(String, u64)]) -> Result<BTreeMap<String, u64>, String> {
    let mut out = BTreeMap::new();
    for (id, n) in given {
        let Some(p) = c.prizes.iter().find(|p| p.id.as_str() == id) else {
            return Err(format!(
                "--codes {id}={n}: campaign {} has no prize `{id}`",
                c.id
            ));
        };
        if p.stock != Stock::Codes {
            return Err(format!(
                "--codes {id}={n}: prize `{id}` is not a code prize (its stock is {}); \
                 --codes is only for prizes with `stock: codes`",
                p.stock
            ));
        }
        if out.insert(id.clone(), *n).is_some() {
            return Err(format!("--codes names prize `{id}` more than once"));
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::campaign::model::Stock;

    /// A four-day campaign (UTC days), `limit` spins per user, `daily` a day,
    /// with `earned` (YAML of `earned_spins`, or empty).
    fn campaign(limit: u32, daily: Option<u32>, earned: &str) -> Campaign {
        let daily = daily.map_or(String::new(), |d| {
            format!("  spins_per_user_per_day: {d}\n")
        });
        let yaml = format!(
            "id: sim\nname: Sim\nstarts_at: 2026-11-01T00:00:00Z\nends_at: 2026-11-05T00:00:00Z\nlimits:\n  spins_per_user: {limit}\n{daily}{earned}fallback: none\nprizes:\n  - {{id: gold, name: G, weight: 1, stock: 20, value: {{amount: \"500.00\", currency: INR}}}}\n  - {{id: silver, name: S, weight: 20, stock: 1500, value: {{amount: \"10.50\", currency: INR}}}}\n  - {{id: none, name: N, weight: 79, stock: unlimited, value: {{amount: \"0\", currency: INR}}}}\n"
        );
        crate::campaign::parse_campaign(&yaml).unwrap()
    }

    pub(super) fn options(users: u64, spins_per_user: u64, arrival: Arrival) -> Options {
        Options {
            users,
            spins_per_user,
            arrival,
            runs: 3,
            seed: 7,
            samples: 4,
            grants_per_user: 1.0,
            spins_per_grant: 1,
            codes: BTreeMap::new(),
        }
    }

    /// One run as `simulate` plays it.
    fn one_run(c: &Campaign, o: &Options) -> Run {
        let steps = Steps::new(&o.model_at(c, None), o);
        run(
            c,
            o,
            None,
            o.users * o.spins_per_user,
            o.seed,
            &steps,
            &mut |_| {},
        )
    }

    /// Every key of `old` is in `new` with the same value, down the tree
    /// (arrays element by element), but for the keys in `except`.
    fn assert_kept(old: &serde_json::Value, new: &serde_json::Value, except: &[&str], at: &str) {
        use serde_json::Value;
        match (old, new) {
            (Value::Object(o), Value::Object(n)) => {
                for (k, v) in o {
                    if except.contains(&k.as_str()) {
                        continue;
                    }
                    let here = format!("{at}.{k}");
                    let Some(nv) = n.get(k) else {
                        panic!("{here} is gone");
                    };
                    assert_kept(v, nv, except, &here);
                }
            }
            (Value::Array(o), Value::Array(n)) => {
                assert_eq!(o.len(), n.len(), "{at}");
                for (k, (v, nv)) in o.iter().zip(n).enumerate() {
                    assert_kept(v, nv, except, &format!("{at}[{k}]"));
                }
            }
            _ => assert_eq!(old, new, "{at}"),
        }
    }

    fn without_speed(r: &Report) -> serde_json::Value {
        let mut v = serde_json::to_value(r).unwrap();
        v.as_object_mut().unwrap().remove("spins_per_second");
        v
    }

    /// Figures `simulate` printed before earned spins (commit 2330978), for the
    /// same campaign, options and seed: grant options change nothing without
    /// `earned_spins`, and the report has no `earned_spins` key. Fields added
    /// since are left aside, and so is `burn_down`, which was the first run's
    /// and is now the median over the runs (the run-outs it shows are checked
    /// against `prizes`).
    #[test]
    fn without_earned_spins_the_projection_is_as_before() {
        let c = campaign(5, Some(2), "");
        let before = [
            (
                Arrival::Uniform,
                r#"{"arrival":"uniform","attempts_per_run":10000,"burn_down":[{"id":"gold","points":[[0.0,20],[86399.999,0],[172799.999,0],[259199.999,0],[345599.999,0]],"stock":20},{"id":"silver","points":[[0.0,1500],[86399.999,1055],[172799.999,639],[259199.999,223],[345599.999,0]],"stock":1500}],"campaign_id":"sim","costs":[{"currency":"INR","expected":"25750.00","p5":"25750.00","p50":"25750.00","p95":"25750.00"}],"prizes":[{"awarded_median":20,"id":"gold","ran_out_at_secs":78935.039,"ran_out_at_spin":2285,"ran_out_share":1.0,"stock":20},{"awarded_median":1500,"id":"silver","ran_out_at_secs":315014.399,"ran_out_at_spin":9116,"ran_out_share":1.0,"stock":1500},{"awarded_median":6410,"id":"none","ran_out_at_secs":null,"ran_out_at_spin":null,"ran_out_share":0.0,"stock":null}],"runs":3,"seed":7,"users":2000,"window_secs":345600.0,"winners_share":0.5458333333333334}"#,
            ),
            (
                Arrival::Burst,
                r#"{"arrival":"burst","attempts_per_run":10000,"burn_down":[{"id":"gold","points":[[0.0,20],[5399.999,0],[43199.999,0],[145799.999,0],[345599.999,0]],"stock":20},{"id":"silver","points":[[0.0,1500],[5399.999,1055],[43199.999,833],[145799.999,546],[345599.999,115]],"stock":1500}],"campaign_id":"sim","costs":[{"currency":"INR","expected":"24623.00","p5":"24542.50","p50":"24574.00","p95":"24752.50"}],"prizes":[{"awarded_median":20,"id":"gold","ran_out_at_secs":4117.769,"ran_out_at_spin":2285,"ran_out_share":1.0,"stock":20},{"awarded_median":1388,"id":"silver","ran_out_at_secs":null,"ran_out_at_spin":null,"ran_out_share":0.0,"stock":1500},{"awarded_median":5498,"id":"none","ran_out_at_secs":null,"ran_out_at_spin":null,"ran_out_share":0.0,"stock":null}],"runs":3,"seed":7,"users":2000,"window_secs":345600.0,"winners_share":0.5266666666666666}"#,
            ),
        ];
        for (arrival, json) in before {
            let expected: serde_json::Value = serde_json::from_str(json).unwrap();
            for (grants, spins) in [(0.0, 1), (1.0, 1), (7.5, 100)] {
                let o = Options {
                    grants_per_user: grants,
                    spins_per_grant: spins,
                    ..options(2000, 5, arrival)
                };
                let report = simulate(&c, &o);
                let got = without_speed(&report);
                assert_kept(
                    &expected,
                    &got,
                    &["burn_down"],
                    &format!("{arrival:?}, {grants} grants"),
                );
                assert!(report.earned_spins.is_none() && report.budget.is_none());
                assert!(got.get("earned_spins").is_none() && got.get("budget").is_none());
                for (b, p) in report.burn_down.iter().zip(&report.prizes) {
                    assert_eq!(b.points[0], (0.0, b.stock));
                    let end = *b.points.last().unwrap();
                    assert_eq!(end, (345599.999, b.stock - p.awarded_median));
                    assert!(
                        b.points
                            .windows(2)
                            .all(|w| w[0].0 <= w[1].0 && w[0].1 >= w[1].1)
                    );
                    assert!(b.released.is_empty());
                    if let Some(out) = p.ran_out_at_secs {
                        // The median run's stock reaches 0 when the prize runs out.
                        let zero = b.points.iter().find(|q| q.1 == 0).unwrap();
                        assert!((zero.0 - out).abs() <= 0.001, "{} {zero:?} {out}", b.id);
                    }
                }
            }
        }
    }

    #[test]
    fn with_no_free_spins_and_no_grants_nobody_spins() {
        for expire in ["campaign_end", "end_of_day"] {
            let c = campaign(
                5,
                None,
                &format!("earned_spins: {{free: 0, expire: {expire}}}\n"),
            );
            let o = Options {
                grants_per_user: 0.0,
                ..options(500, 4, Arrival::Uniform)
            };
            let report = simulate(&c, &o);
            let e = report.earned_spins.as_ref().unwrap();
            assert_eq!((e.grants, e.spins_granted, e.spins_drawn_median), (0, 0, 0));
            assert_eq!(e.no_spins_left_median, 2000);
            assert_eq!(e.earned_unused_median, 0);
            assert!(report.prizes.iter().all(|p| p.awarded_median == 0));
            assert_eq!(report.winners_share, 0.0);
        }
    }

    /// Nobody draws more than their free spins, what they were granted and the
    /// caps; every earned spin is either drawn or counted unused.
    #[test]
    fn spins_drawn_stay_within_free_granted_and_the_caps() {
        for expire in ["campaign_end", "end_of_day"] {
            let cases: [(u32, u32, Option<u32>, f64, u32); 4] = [
                (0, 10, None, 1.0, 1),
                (0, 10, Some(3), 2.5, 2),
                (2, 4, Some(2), 0.7, 3),
                (1, 50, None, 3.0, 5),
            ];
            for (free, limit, daily, grants, spins) in cases {
                let c = campaign(
                    limit,
                    daily,
                    &format!("earned_spins: {{free: {free}, expire: {expire}}}\n"),
                );
                for arrival in [Arrival::Uniform, Arrival::Burst] {
                    let users = 300;
                    let o = Options {
                        grants_per_user: grants,
                        spins_per_grant: spins,
                        ..options(users, 12, arrival)
                    };
                    let r = one_run(&c, &o);
                    let granted = o.grants(&c) * u64::from(spins);
                    assert_eq!(o.grants(&c), (users as f64 * grants).round() as u64);
                    let case = format!("{expire} {free} {limit} {daily:?} {grants} {arrival:?}");
                    assert!(r.drawn <= u64::from(free) * users + granted, "{case}");
                    let cap = daily.map_or(limit, |d| (4 * d).min(limit));
                    assert!(r.drawn <= u64::from(cap) * users, "{case}");
                    assert_eq!(r.drawn, r.awarded.iter().sum::<u64>(), "{case}");
                    assert!(r.drawn > 0 && r.no_spins_left > 0, "{case}");
                    assert!(r.drawn + r.no_spins_left <= users * 12, "{case}");
                    if free == 0 {
                        // Every spin drawn was an earned one.
                        assert_eq!(r.drawn + r.earned_unused, granted, "{case}");
                    } else {
                        assert!(r.earned_unused <= granted, "{case}");
                    }
                }
            }
        }
    }

    /// Under end_of_day a grant counts on the day it is made: spins earned on a
    /// day with no attempts after them lapse, under campaign_end they keep.
    #[test]
    fn end_of_day_grants_lapse() {
        let o = Options {
            grants_per_user: 2.0,
            ..options(1000, 2, Arrival::Uniform)
        };
        let unused = |expire: &str| {
            let c = campaign(
                100,
                None,
                &format!("earned_spins: {{free: 0, expire: {expire}}}\n"),
            );
            let r = one_run(&c, &o);
            assert_eq!(r.drawn + r.earned_unused, 2000);
            r.earned_unused
        };
        let (kept, lapsed) = (unused("campaign_end"), unused("end_of_day"));
        assert!(lapsed > kept + 200, "lapsed {lapsed}, kept {kept}");
    }

    /// More grants, more spins drawn.
    #[test]
    fn more_grants_draw_more_spins() {
        let c = campaign(20, None, "earned_spins: {free: 1, expire: campaign_end}\n");
        let drawn = |grants: f64| {
            let o = Options {
                grants_per_user: grants,
                ..options(1000, 6, Arrival::Burst)
            };
            let e = simulate(&c, &o).earned_spins.unwrap();
            assert_eq!(e.grants, (1000.0 * grants).round() as u64);
            e.spins_drawn_median
        };
        let d = [0.0, 0.5, 1.0, 3.0].map(drawn);
        // Without grants, each user who tries spins their one free spin (a few
        // of the 1,000 draw none of the 6,000 attempts).
        assert!((990..=1000).contains(&d[0]), "{d:?}");
        assert!(d.windows(2).all(|w| w[0] < w[1]), "{d:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_figures() {
        let c = campaign(6, Some(2), "earned_spins: {free: 1, expire: end_of_day}\n");
        let o = Options {
            grants_per_user: 1.5,
            spins_per_grant: 2,
            ..options(800, 5, Arrival::Burst)
        };
        assert_eq!(
            without_speed(&simulate(&c, &o)),
            without_speed(&simulate(&c, &o))
        );
        let other = Options {
            seed: 8,
            ..o.clone()
        };
        assert_ne!(
            without_speed(&simulate(&c, &o)),
            without_speed(&simulate(&c, &other))
        );
    }

    /// A four-day campaign in Asia/Kolkata (days from local midnight) with
    /// `top` (more campaign keys) and these prizes (YAML list items).
    pub(super) fn kolkata(top: &str, prizes: &str) -> Campaign {
        let yaml = format!(
            "id: sim\nname: Sim Sale\ntimezone: Asia/Kolkata\nstarts_at: 2026-11-01T00:00:00+05:30\nends_at: 2026-11-05T00:00:00+05:30\nlimits:\n  spins_per_user: 5\n{top}fallback: none\nprizes:\n{prizes}"
        );
        crate::campaign::parse_campaign(&yaml).unwrap_or_else(|e| panic!("{e:?}"))
    }

    pub(super) const NONE: &str = "  - {id: none, name: N, weight: 79, stock: unlimited, value: {amount: \"0\", currency: INR}}\n";

    /// Every unit of a paced prize is awarded at or after its release, in
    /// every run: awarded(t) <= released(t) at every instant. The pacing binds
    /// (more is asked for than released), and what it holds back goes to the
    /// fallback.
    #[test]
    fn a_paced_prize_is_never_awarded_beyond_its_release() {
        let prizes = format!(
            "  - {{id: gold, name: G, weight: 3, stock: 20, release: even, value: {{amount: \"500.00\", currency: INR}}}}\n  - {{id: silver, name: S, weight: 20, stock: 1500, release: {{per_day: 300}}, value: {{amount: \"10.50\", currency: INR}}}}\n  - {{id: bronze, name: B, weight: 10, stock: 300, release: {{schedule: [{{at: 2026-11-01T12:00:00+05:30, units: 100}}, {{at: 2026-11-03T20:00:00+05:30, units: 200}}]}}, value: {{amount: \"1\", currency: INR}}}}\n{NONE}"
        );
        let c = kolkata("", &prizes);
        let model = Model::new(&c);
        let w = model.window();
        for arrival in [Arrival::Uniform, Arrival::Burst] {
            let o = Options {
                samples: 5000,
                ..options(2000, 5, arrival)
            };
            let steps = Steps::new(&model, &o);
            for seed in 0..3 {
                let r = run(&c, &o, None, 10_000, seed, &steps, &mut |_| {});
                for (i, p) in model.prizes.iter().enumerate().take(3) {
                    let stock = p.configured;
                    // Every unit is a step: reached[i][k] is when unit k + 1 was awarded.
                    assert_eq!(steps.prizes[i], (1..=stock).collect::<Vec<_>>());
                    for (k, &at) in r.reached[i].iter().enumerate() {
                        if at == NEVER {
                            assert!(r.awarded[i] <= k as u64, "{arrival:?} {}", p.entry.id);
                            break;
                        }
                        let out = next_release(&p.release, stock, k as u64, w).unwrap();
                        assert!(
                            model.starts_ms + at >= out,
                            "{arrival:?} seed {seed}: unit {} of {} awarded {} ms before its release",
                            k + 1,
                            p.entry.id,
                            out - model.starts_ms - at
                        );
                        let now = model.starts_ms + at;
                        assert!((k as u64) < released(&p.release, stock, w, now));
                    }
                    let end = released(&p.release, stock, w, model.ends_ms - 1);
                    assert!(r.awarded[i] <= end);
                }
                assert_eq!(r.drawn, r.awarded.iter().sum::<u64>());
            }
            let report = simulate(&c, &o);
            let silver = &report.prizes[1];
            // 300 a day over four days: 1,200 of the 1,500 are ever released.
            // Uniform, the ~1,800 draws of silver take nearly all of them
            // (unpaced, the 1,500 would all go); a burst asks for most on the
            // first day, when 300 are out, and fewer on the next.
            assert_eq!(silver.released_at_end, Some(1200), "{arrival:?}");
            let expected = match arrival {
                Arrival::Uniform => 1100..=1200,
                Arrival::Burst => 600..=1100,
            };
            assert!(
                expected.contains(&silver.awarded_median),
                "{arrival:?} {}",
                silver.awarded_median
            );
            assert_eq!(silver.ran_out_share, 0.0);
            assert_eq!(silver.release.as_deref(), Some("per_day 300"));
            assert_eq!(report.prizes[0].release.as_deref(), Some("even"));
            assert_eq!(
                report.prizes[2].release.as_deref(),
                Some("schedule (2 steps)")
            );
            assert_eq!(report.prizes[3].released_at_end, None);
            // The median curves keep the order: awarded under released.
            for b in &report.burn_down {
                assert!(!b.released.is_empty(), "{}", b.id);
                for &(t, left) in &b.points {
                    let awarded = b.stock - left;
                    let released_by_t = b
                        .released
                        .iter()
                        .take_while(|(at, _)| *at <= t)
                        .last()
                        .map_or(0, |r| r.1);
                    let last_point = (t - 345_599.999).abs() < 1e-6;
                    if !last_point {
                        assert!(awarded <= released_by_t, "{arrival:?} {} at {t}", b.id);
                    }
                }
            }
        }
    }

    /// Without pacing or a budget nothing is held back: the same draws as a
    /// campaign that says `release: all_at_start`.
    #[test]
    fn all_at_start_is_the_behaviour_without_release() {
        let prize = |release: &str| {
            format!(
                "  - {{id: gold, name: G, weight: 21, stock: 1500{release}, value: {{amount: \"1\", currency: INR}}}}\n{NONE}"
            )
        };
        let o = options(1000, 5, Arrival::Burst);
        let plain = simulate(&kolkata("", &prize("")), &o);
        let stated = simulate(&kolkata("", &prize(", release: all_at_start")), &o);
        assert_eq!(without_speed(&plain), without_speed(&stated));
        assert_eq!(plain.prizes[0].released_at_end, Some(1500));
        assert!(plain.burn_down[0].released.is_empty());
    }

    fn budgeted(amount: &str, fallback_value: &str) -> Campaign {
        kolkata(
            &format!("budget: {{amount: \"{amount}\", currency: INR}}\n"),
            &format!(
                "  - {{id: gold, name: G, weight: 1, stock: 20, value: {{amount: \"500.00\", currency: INR}}}}\n  - {{id: silver, name: S, weight: 20, stock: 1500, value: {{amount: \"10.50\", currency: INR}}}}\n  - {{id: none, name: N, weight: 79, stock: unlimited, value: {{amount: \"{fallback_value}\", currency: INR}}}}\n"
            ),
        )
    }

    /// A budget below what the stock is worth runs out: the report gives the
    /// instant, in the campaign's time zone, and nothing of value is awarded
    /// after it.
    #[test]
    fn the_instant_the_budget_runs_out_is_reported() {
        for arrival in [Arrival::Uniform, Arrival::Burst] {
            let c = budgeted("5000.00", "0");
            let report = simulate(&c, &options(2000, 5, arrival));
            let b = report.budget.as_ref().unwrap();
            assert_eq!(
                (b.amount.to_string(), b.currency.as_str()),
                ("5000.00".into(), "INR")
            );
            assert_eq!(b.ran_out_share, 1.0, "{arrival:?}");
            let secs = b.ran_out_at_secs.unwrap();
            assert!(secs > 0.0 && secs < report.window_secs);
            let at = chrono::DateTime::parse_from_rfc3339(b.ran_out_at.as_ref().unwrap()).unwrap();
            assert_eq!(
                at.offset().local_minus_utc(),
                5 * 3600 + 1800,
                "Asia/Kolkata"
            );
            assert_eq!(
                at.timestamp_millis(),
                c.starts_at.timestamp_millis() + (secs * 1000.0).round() as i64
            );
            // What is left pays for no silver coupon (10.50), and the run-out
            // is the last award worth something.
            let awarded: Decimal = b.awarded_median;
            assert!(awarded <= Decimal::from(5000), "{awarded}");
            assert!(awarded > Decimal::new(498_950, 2), "{awarded}");
            assert_eq!(b.last_spend_secs, Some(secs));
            assert_eq!(b.budget_exhausted_median, 0, "the fallback is free");
            assert_eq!(report.costs[0].p50, awarded);
            // The spent curve ends at the value awarded.
            let (t, share) = *b.spent.last().unwrap();
            assert!(t == secs && share <= 1.0 && share > 0.99, "{t} {share}");
            assert!(
                b.spent
                    .windows(2)
                    .all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1)
            );
            assert!(report.prizes[1].ran_out_share == 0.0);
            let json = serde_json::to_value(&report).unwrap();
            assert_eq!(
                json["budget"]["ran_out_at"],
                b.ran_out_at.clone().unwrap().as_str()
            );
            assert_eq!(json["timezone"], "Asia/Kolkata");
            assert_eq!(json["starts_at"], "2026-11-01T00:00:00+05:30");
        }
    }

    #[test]
    fn a_budget_that_pays_for_everything_never_runs_out() {
        let report = simulate(
            &budgeted("30000.00", "0"),
            &options(2000, 5, Arrival::Uniform),
        );
        let b = report.budget.unwrap();
        assert_eq!((b.ran_out_share, b.ran_out_at.as_ref()), (0.0, None));
        assert_eq!((b.ran_out_at_secs, b.ran_out_at_spin), (None, None));
        assert_eq!(b.awarded_median, Decimal::new(2_575_000, 2));
        assert_eq!(b.budget_exhausted_median, 0);
    }

    /// A fallback worth something: once the budget cannot pay for it, every
    /// attempt is refused as budget_exhausted, and the report counts them.
    #[test]
    fn attempts_the_budget_cannot_pay_for_are_counted() {
        let report = simulate(
            &budgeted("300.00", "0.10"),
            &options(1000, 5, Arrival::Uniform),
        );
        let b = report.budget.unwrap();
        assert_eq!(b.ran_out_share, 1.0);
        let spin = b.ran_out_at_spin.unwrap();
        assert!(b.budget_exhausted_median > 0);
        // Every attempt after the run-out is refused (a few meet quotas first:
        // a user has 5 spins and some try more).
        assert!(b.budget_exhausted_median <= 5000 - spin);
        assert!(
            b.budget_exhausted_median + 200 >= 5000 - spin,
            "{} {spin}",
            b.budget_exhausted_median
        );
        assert!(b.awarded_median <= Decimal::from(300));
        assert!(b.awarded_median > Decimal::new(29_990, 2));
    }

    /// A budget smaller than any prize worth something runs out before the
    /// first spin.
    #[test]
    fn a_budget_below_every_prize_is_out_at_the_start() {
        let report = simulate(&budgeted("5.00", "0"), &options(100, 2, Arrival::Uniform));
        let b = report.budget.unwrap();
        assert_eq!((b.ran_out_share, b.ran_out_at_spin), (1.0, Some(0)));
        assert_eq!(b.ran_out_at.as_deref(), Some("2026-11-01T00:00:00+05:30"));
        assert_eq!(b.awarded_median, Decimal::new(0, 2));
        assert!(report.prizes[..2].iter().all(|p| p.awarded_median == 0));
    }

    #[test]
    fn progress_is_told_through_every_run() {
        let c = campaign(5, None, "");
        let o = Options {
            runs: 2,
            ..options(40_000, 2, Arrival::Uniform)
        };
        let mut ticks = Vec::new();
        simulate_with_progress(&c, &o, &mut |t| ticks.push(t));
        let at = |run, done| Tick {
            run,
            runs: 2,
            done,
            attempts: 80_000,
        };
        assert_eq!(
            ticks,
            [at(1, 65_536), at(1, 80_000), at(2, 65_536), at(2, 80_000)]
        );
    }

    /// A sale with the code prize `coupon` (weight 20 of 100, worth 100) and
    /// `extra` more YAML on it, and a limited `gold`.
    fn with_codes(extra: &str) -> Campaign {
        kolkata(
            "",
            &format!(
                "  - {{id: gold, name: G, weight: 1, stock: 5, value: {{amount: \"500.00\", currency: INR}}}}\n  - {{id: coupon, name: C, weight: 20, stock: codes{extra}, value: {{amount: \"100.00\", currency: INR}}}}\n{NONE}"
            ),
        )
    }

    /// A code prize with 100 codes awards at most 100, in every run, however
    /// many draws ask for it (2,000 attempts at 1 in 5 ask for ~400); paced
    /// evenly, what it awards stays under what its curve of 100 released.
    #[test]
    fn a_code_prize_awards_at_most_its_codes() {
        for (extra, arrival) in [
            ("", Arrival::Uniform),
            ("", Arrival::Burst),
            (", release: even", Arrival::Burst),
        ] {
            let c = with_codes(extra);
            let o = Options {
                codes: BTreeMap::from([("coupon".to_owned(), 100)]),
                ..options(400, 5, arrival)
            };
            let case = format!("{extra:?} {arrival:?}");
            for seed in 0..3 {
                let r = one_run(&c, &Options { seed, ..o.clone() });
                assert!(r.awarded[1] <= 100, "{case}: {}", r.awarded[1]);
                if extra.is_empty() {
                    assert_eq!(r.awarded[1], 100, "{case}: demand exceeds the codes");
                    assert!(r.ran_out[1].is_some(), "{case}");
                }
            }
            let report = simulate(&c, &o);
            let coupon = &report.prizes[1];
            assert_eq!(
                (coupon.stock, coupon.codes),
                (Some(100), Some(100)),
                "{case}"
            );
            assert_eq!(coupon.stock_text(), "codes: 100");
            assert!(coupon.awarded_median <= 100, "{case}");
            let released = coupon.released_at_end.unwrap();
            assert!(
                released <= 100 && coupon.awarded_median <= released,
                "{case}"
            );
            assert!(report.codes_not_given.is_empty(), "{case}");
            // gold is no code prize: its report is as before.
            assert_eq!(
                (report.prizes[0].codes, report.prizes[0].stock_text()),
                (None, "5".into())
            );
            let b = report.burn_down.iter().find(|b| b.id == "coupon").unwrap();
            assert_eq!(b.stock, 100, "{case}");
            let json = serde_json::to_value(&report).unwrap();
            assert_eq!(json["prizes"][1]["codes"], 100);
            assert!(json["prizes"][0].get("codes").is_none());
            assert!(json.get("codes_not_given").is_none());
            if extra.is_empty() {
                assert_eq!((coupon.awarded_median, coupon.ran_out_share), (100, 1.0));
                // Its cost is its codes' worth: 100 x 100.00, and the 5 gold.
                assert_eq!(report.costs[0].p50, Decimal::from(100 * 100 + 5 * 500));
            }
        }
    }

    /// A code prize without --codes is simulated with 0 codes: it awards
    /// nothing, its share goes to the fallback, and the report says so.
    #[test]
    fn a_code_prize_without_codes_is_simulated_with_none_and_said_so() {
        let c = with_codes("");
        let report = simulate(&c, &options(400, 5, Arrival::Uniform));
        let coupon = &report.prizes[1];
        assert_eq!((coupon.stock, coupon.codes), (Some(0), Some(0)));
        assert_eq!(coupon.stock_text(), "codes: 0");
        assert_eq!((coupon.awarded_median, coupon.ran_out_share), (0, 1.0));
        assert_eq!(report.codes_not_given, ["coupon"]);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["codes_not_given"], serde_json::json!(["coupon"]));
        assert!(
            report.prizes[2].awarded_median > 1500,
            "the fallback takes its share"
        );
    }

    /// `--codes` names a code prize of the campaign, once, with a count; every
    /// refusal is one line naming what is wrong.
    #[test]
    fn codes_options_are_checked_against_the_campaign() {
        let c = with_codes("");
        let given = |args: &[&str]| {
            args.iter()
                .map(|s| parse_codes_arg(s))
                .collect::<Result<Vec<_>, _>>()
                .and_then(|g| codes_for(&c, &g))
        };
        assert_eq!(
            given(&["coupon=5000"]),
            Ok(BTreeMap::from([("coupon".to_owned(), 5000)]))
        );
        assert_eq!(
            given(&["coupon=1_000_000"]).unwrap()["coupon"],
            1_000_000,
            "digits may be grouped"
        );
        assert_eq!(given(&[]), Ok(BTreeMap::new()));
        for (args, says) in [
            (
                &["gold=5"][..],
                "prize `gold` is not a code prize (its stock is 5)",
            ),
            (
                &["none=5"][..],
                "prize `none` is not a code prize (its stock is unlimited)",
            ),
            (&["ghost=5"][..], "campaign sim has no prize `ghost`"),
            (
                &["coupon=5", "coupon=6"][..],
                "names prize `coupon` more than once",
            ),
            (&["coupon"][..], "--codes `coupon` must be PRIZE=N"),
            (&["=5"][..], "--codes `=5` must be PRIZE=N"),
            (&["coupon=many"][..], "`many` is not a number of codes"),
            (&["coupon=-1"][..], "`-1` is not a number of codes"),
            (&["coupon=1000000000001"][..], "at most 1000000000000 codes"),
        ] {
            let e = given(args).unwrap_err();
            assert!(e.contains(says), "{args:?}: {e}");
            assert!(!e.contains('\n'), "{args:?}: one line: {e}");
        }
    }

    #[test]
    fn curve_steps_cover_the_stock() {
        assert_eq!(levels(10, 4), [3, 5, 8, 10]);
        assert_eq!(levels(3, 8), [1, 2, 3]);
        assert_eq!(levels(0, 8), Vec::<u64>::new());
        let big = levels(Stock::MAX, 200);
        assert_eq!((big.len(), big[199]), (200, Stock::MAX));
        assert_eq!(duration_text(0.25), "0.25 s");
        assert_eq!(duration_text(293_400.0), "81.5 h");
        assert_eq!(duration_text(31_536_000.0), "365.0 days");
    }

    #[test]
    fn a_projection_starts_from_the_sale_as_it_stands() {
        let c = campaign(1000, None, "");
        let o = options(2000, 5, Arrival::Uniform);
        let starts_ms = c.starts_at.timestamp_millis();
        // Two days in: gold 16 of 20 awarded, silver 100 of 1500.
        let resume = Resume {
            at_ms: starts_ms + 2 * 86_400_000,
            prizes: [
                ("gold".to_owned(), (16, Some(4))),
                ("silver".to_owned(), (100, Some(1400))),
            ]
            .into_iter()
            .collect(),
            spent: 16 * 5_000_000 + 100 * 105_000,
        };
        let r = simulate_from(&c, &o, &resume);
        let gold = r.burn_down.iter().find(|b| b.id == "gold").unwrap();
        assert_eq!(gold.stock, 4, "what is left");
        assert_eq!(
            gold.points[0],
            (2.0 * 86_400.0, 4),
            "from the resume instant"
        );
        assert!(
            gold.points.iter().all(|(t, _)| *t >= 2.0 * 86_400.0),
            "{gold:?}"
        );
        let awarded = r
            .prizes
            .iter()
            .find(|p| p.id == "gold")
            .unwrap()
            .awarded_median;
        assert!(awarded <= 4, "never more than is left: {awarded}");
        // 10,000 attempts at 1 in 100 over two days run gold out.
        assert_eq!(awarded, 4);
        // Without a resume, the same options simulate the whole sale.
        let whole = simulate(&c, &o);
        assert_eq!(whole.burn_down[0].points[0], (0.0, 20));
    }
}
