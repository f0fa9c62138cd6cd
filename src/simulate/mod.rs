//! Monte Carlo of a whole sale on the reference model, before it goes live:
//! when each prize runs out, what the campaign costs, how many shoppers win.

pub mod plot;

use crate::campaign::model::{Campaign, EarnedSpins, Expiry};
use crate::draw::model::{Counters, Model, day_index};
use crate::store::redis::spin::Rejection;
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
    /// With the campaign's `earned_spins`: orders per user on average, each a
    /// grant to a random user, arriving over the window like the spins (and
    /// independently of them). Without `earned_spins` no grants are made (the
    /// service refuses them as `not_enabled`).
    pub grants_per_user: f64,
    /// Spins each grant gives.
    pub spins_per_grant: u32,
}

impl Options {
    /// Grants made in each run.
    fn grants(&self, c: &Campaign) -> u64 {
        match c.earned_spins {
            Some(_) => (self.users.max(1) as f64 * self.grants_per_user.max(0.0)).round() as u64,
            None => 0,
        }
    }
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
}

/// One run's results.
struct Run {
    awarded: Vec<u64>,
    /// (attempt number, ms into the sale) when each prize ran out.
    ran_out: Vec<Option<(u64, i64)>>,
    winners: u64,
    burn_down: Vec<Vec<(f64, u64)>>,
    /// Spins drawn.
    drawn: u64,
    /// Attempts refused as `no_spins_left`.
    no_spins_left: u64,
    /// Earned spins never spun (lapsed, or left at the end).
    earned_unused: u64,
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
    }
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
    let (mut drawn, mut no_spins_left, mut earned_unused) = (0u64, 0u64, 0u64);
    let mut grants = Grants::new(o, o.grants(c), window, seed);
    for a in 0..attempts {
        let offset = (o.arrival.at(a as f64 / attempts as f64) * window) as i64;
        let now = m.starts_ms + offset;
        // The orders placed by now (an order comes before the spin it earns).
        if grants.next_at <= offset {
            earned_unused += grants.make_until(&m, &mut users, offset);
        }
        if sample && a % every == 0 {
            for (i, p) in m.prizes.iter().enumerate() {
                if let Some(left) = p.remaining {
                    burn_down[i].push((offset as f64 / 1000.0, left));
                }
            }
        }
        let u = (rng.next_u64() % users.len() as u64) as usize;
        let r = rng.next_u64() >> 11;
        match m.decide(&mut users[u], now, r) {
            Ok((i, _)) => {
                drawn += 1;
                if i != m.fallback {
                    won[u] = true;
                }
                if m.prizes[i].remaining == Some(0) && ran_out[i].is_none() {
                    ran_out[i] = Some((a + 1, offset));
                }
            }
            Err(Rejection::NoSpinsLeft) => no_spins_left += 1,
            Err(_) => {}
        }
    }
    // The orders after the last attempt, then what is left in every pool.
    if let Some(e) = m.earned {
        earned_unused += grants.make_until(&m, &mut users, i64::MAX - 1);
        earned_unused += users
            .iter()
            .filter_map(|c| c.earned.map(|p| u64::from(c.balance(e, p.day).1)))
            .sum::<u64>();
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
        drawn,
        no_spins_left,
        earned_unused,
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

#[cfg(test)]
mod tests {
    use super::*;

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

    fn options(users: u64, spins_per_user: u64, arrival: Arrival) -> Options {
        Options {
            users,
            spins_per_user,
            arrival,
            runs: 3,
            seed: 7,
            samples: 4,
            grants_per_user: 1.0,
            spins_per_grant: 1,
        }
    }

    /// One run as `simulate` plays it.
    fn one_run(c: &Campaign, o: &Options) -> Run {
        run(c, o, o.users * o.spins_per_user, o.seed, false)
    }

    fn without_speed(r: &Report) -> serde_json::Value {
        let mut v = serde_json::to_value(r).unwrap();
        v.as_object_mut().unwrap().remove("spins_per_second");
        v
    }

    /// Figures `simulate` printed before earned spins (commit 2330978), for the
    /// same campaign, options and seed: grant options change nothing without
    /// `earned_spins`, and the report has no `earned_spins` key.
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
                assert_eq!(
                    without_speed(&report),
                    expected,
                    "{arrival:?}, {grants} grants"
                );
                assert!(report.earned_spins.is_none());
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
}
