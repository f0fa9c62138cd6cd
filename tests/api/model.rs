//! The draw script held to the reference model, spin for spin: random campaigns
//! (tiny and huge stocks and weights, limits, a live re-apply in the middle) and
//! random spins go through Redis and through `draw::model`, and must agree;
//! also with prize codes loaded and withdrawn (the codes compared as sets).

use crate::support::helpers::{Spec, TestApp};
use prizewheel::campaign::parse_campaign;
use prizewheel::domain::{CampaignId, IdempotencyKey, PrizeId, UserId};
use prizewheel::draw::model::{Decision, Held, Model};
use prizewheel::store::redis::codes::CodesRejection;
use prizewheel::store::redis::spin::{Drawn, Rejection, SpinCall};
use rand::{Rng, RngExt, SeedableRng};
use std::collections::{BTreeSet, HashMap};

const IDS: [&str; 8] = ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"];

fn random_prizes(rng: &mut impl Rng) -> Vec<(&'static str, u64, Option<u64>)> {
    let n = rng.random_range(1..=6);
    let mut prizes = Vec::new();
    for id in IDS.iter().take(n) {
        if rng.random_bool(0.2) {
            continue; // some ids missing: a re-apply adds or drops prizes
        }
        let weight = match rng.random_range(0..3) {
            0 => rng.random_range(1..10),
            1 => rng.random_range(1..1_000_000),
            _ => rng.random_range(1_000_000_000_000..10_000_000_000_000),
        };
        let stock = match rng.random_range(0..4) {
            0 => Some(0),
            1 => Some(rng.random_range(1..5)),
            2 => Some(rng.random_range(100..10_000)),
            _ => None,
        };
        prizes.push((*id, weight, stock));
    }
    prizes.push(("fallback", rng.random_range(1..1_000_000), None));
    prizes
}

fn r(rng: &mut impl Rng) -> u64 {
    match rng.random_range(0..3) {
        0 => rng.random_range(0..100), // near the low boundaries
        1 => (1 << 53) - 1 - rng.random_range(0..100),
        _ => rng.random_range(0..1u64 << 53),
    }
}

fn kind(r: &Rejection) -> &'static str {
    match r {
        Rejection::NoCampaign => "no_campaign",
        Rejection::NotStarted => "not_started",
        Rejection::Ended => "ended",
        Rejection::Paused => "paused",
        Rejection::QuotaExhausted => "quota",
        Rejection::NoSpinsLeft => "no_spins_left",
        Rejection::DailyQuotaExhausted { .. } => "daily_quota",
        Rejection::KeyReused => "key_reused",
        Rejection::Recovering => "recovering",
        Rejection::BudgetExhausted => "budget_exhausted",
    }
}

/// The seed (PRIZEWHEEL_MODEL_SEED to repeat a failure) and its generator.
fn seeded() -> (u64, rand_chacha::ChaCha8Rng) {
    let seed: u64 = std::env::var("PRIZEWHEEL_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    (seed, rand_chacha::ChaCha8Rng::seed_from_u64(seed))
}

/// Spin `n` of `user` with random input `rv`, through lua/spin.lua.
async fn script_spin(
    app: &TestApp,
    id: &CampaignId,
    user: &UserId,
    n: u64,
    rv: u64,
) -> Result<Drawn, Rejection> {
    let key = IdempotencyKey::parse(&format!("k{n}")).unwrap();
    let call = SpinCall {
        campaign: id,
        user,
        key: &key,
        user_hash: prizewheel::draw::user_hash(user.as_str()),
        record_field: n.to_be_bytes(),
        fingerprint: [0; 8],
        r: rv,
        spin_id: uuid::Uuid::now_v7(),
        context: "",
    };
    app.redis.spin(&call).await.unwrap()
}

fn assert_same_spin(
    script: &Result<Drawn, Rejection>,
    expected: &Result<Decision, Rejection>,
    context: &str,
) {
    match (script, expected) {
        (Ok(d), Ok(m)) => {
            assert_eq!(d.prize_id, m.prize_id, "{context}");
            assert_eq!(d.spins_left, m.spins_left, "{context}");
            assert_eq!(d.exhausted, m.exhausted, "took the last unit? {context}");
        }
        (Err(a), Err(b)) => assert_eq!(kind(a), kind(b), "{context}"),
        _ => panic!("script {script:?} but model {expected:?}\n{context}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_script_decides_exactly_as_the_model() {
    let app = TestApp::spawn().await;
    let (seed, mut rng) = seeded();
    let mut spins = 0;
    for round in 0..25 {
        let mut spec = Spec::new("model");
        spec.prizes = random_prizes(&mut rng);
        spec.spins_per_user = rng.random_range(1..20);
        spec.per_day = rng.random_bool(0.5).then(|| rng.random_range(1..10));
        spec.expected_users = rng.random_range(1..5000);
        app.apply(&spec.yaml()).await;
        let id = CampaignId::parse(&spec.id).unwrap();
        let mut model = Model::new(&parse_campaign(&spec.yaml()).unwrap());
        let users: Vec<UserId> = (0..rng.random_range(1..30))
            .map(|u| UserId::parse(&format!("u{u}")).unwrap())
            .collect();

        for n in 0..300u64 {
            if n == 150 {
                // A live re-apply: new odds and stock, prizes added and dropped.
                let fallback_weight = spec.prizes.last().unwrap().1;
                spec.prizes = random_prizes(&mut rng);
                spec.prizes.last_mut().unwrap().1 = fallback_weight;
                spec.spins_per_user = rng.random_range(1..20);
                app.apply(&spec.yaml()).await;
                model.apply(&parse_campaign(&spec.yaml()).unwrap());
            }
            let user = &users[rng.random_range(0..users.len())];
            let rv = r(&mut rng);
            let script = script_spin(&app, &id, user, n, rv).await;
            let expected = model.spin(user.as_str(), chrono::Utc::now().timestamp_millis(), rv);
            let context = format!(
                "seed {seed}, round {round}, spin {n}, user {}, R {rv}\n{}",
                user.as_str(),
                spec.yaml()
            );
            assert_same_spin(&script, &expected, &context);
            spins += 1;
        }
        // The live counters agree too.
        let live = app.redis.live_state(&id).await.unwrap().unwrap();
        for p in &model.prizes {
            assert_eq!(
                live.awarded.get(&p.entry.id).copied().unwrap_or(0) as u64,
                p.awarded,
                "seed {seed}"
            );
            let remaining = live.stock.get(&p.entry.id).copied().unwrap_or(0);
            assert_eq!(
                if remaining < 0 {
                    None
                } else {
                    Some(remaining as u64)
                },
                p.remaining,
                "seed {seed}"
            );
        }
    }
    eprintln!("script and model agreed on {spins} spins (seed {seed})");
}

/// Random releases for the bounded prizes of `spec` (its window: an hour ago
/// to 30 days ahead, so `even` and schedules have units both out and to come)
/// and random values, a budget and a fallback worth something now and then.
fn random_pacing_and_budget(rng: &mut impl Rng, spec: &mut Spec) {
    let now = chrono::Utc::now();
    spec.ends_at = (now + chrono::Duration::hours(rng.random_range(1..48))).to_rfc3339();
    spec.releases.clear();
    spec.amounts.clear();
    let last = spec.prizes.len() - 1;
    for (i, (id, _, stock)) in spec.prizes.clone().into_iter().enumerate() {
        let amount = ["0", "0.0001", "1.50", "7", "25"][rng.random_range(0..5)];
        let amount = if i == last {
            if rng.random_bool(0.3) { "0.25" } else { "0" }
        } else {
            amount
        };
        spec.amounts.insert(id, amount.to_owned());
        let Some(stock) = stock.filter(|&s| s > 0 && i != last) else {
            continue;
        };
        let release = match rng.random_range(0..4) {
            0 => continue,
            1 => "even".to_owned(),
            2 => format!("{{ per_day: {} }}", rng.random_range(1..4)),
            _ => {
                // Up to 4 steps, some past and some to come, adding up to the stock.
                let steps = rng.random_range(1..=4u64).min(stock);
                let mut left = stock;
                let mut out = Vec::new();
                for k in 0..steps {
                    let units = if k + 1 == steps {
                        left
                    } else {
                        rng.random_range(1..=left - (steps - k - 1))
                    };
                    left -= units;
                    let at = if k < steps / 2 + u64::from(rng.random_bool(0.5)) {
                        now - chrono::Duration::minutes(59 - k as i64 * 5)
                    } else {
                        now + chrono::Duration::minutes(30 + k as i64)
                    };
                    out.push((at, units));
                }
                out.sort_by_key(|(at, _)| *at);
                let steps: Vec<String> = out
                    .iter()
                    .map(|(at, u)| format!("{{ at: \"{}\", units: {u} }}", at.to_rfc3339()))
                    .collect();
                format!("{{ schedule: [{}] }}", steps.join(", "))
            }
        };
        spec.releases.insert(id, release);
    }
    spec.budget = rng.random_bool(0.7).then(|| {
        format!(
            "{}.{:02}",
            rng.random_range(0..60),
            rng.random_range(0..100)
        )
    });
}

/// Paced prizes and a budget: the script and the model agree spin for spin,
/// across a live re-apply (new curves, a new budget). The model decides at the
/// instants just before and just after the script's call; where a release
/// falls between them, the script may take either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_and_budgeted_draws_decide_exactly_as_the_model() {
    let app = TestApp::spawn().await;
    let (seed, mut rng) = seeded();
    let mut spins = 0;
    let (mut refused_for_budget, mut held_back) = (0, 0);
    for round in 0..20 {
        let mut spec = Spec::new("model-paced");
        spec.prizes = random_prizes(&mut rng);
        spec.spins_per_user = rng.random_range(5..40);
        random_pacing_and_budget(&mut rng, &mut spec);
        app.apply(&spec.yaml()).await;
        let id = CampaignId::parse(&spec.id).unwrap();
        let mut model = Model::new(&parse_campaign(&spec.yaml()).unwrap());
        let users: Vec<UserId> = (0..rng.random_range(1..20))
            .map(|u| UserId::parse(&format!("u{u}")).unwrap())
            .collect();
        let mut spent_at_apply = 0;
        for n in 0..200u64 {
            if n == 100 {
                spent_at_apply = model.spent;
                let fallback_weight = spec.prizes.last().unwrap().1;
                spec.prizes = random_prizes(&mut rng);
                spec.prizes.last_mut().unwrap().1 = fallback_weight;
                // New stock, curves, values, budget and end of the window.
                random_pacing_and_budget(&mut rng, &mut spec);
                app.apply(&spec.yaml()).await;
                model.apply(&parse_campaign(&spec.yaml()).unwrap());
            }
            let user = &users[rng.random_range(0..users.len())];
            let rv = r(&mut rng);
            let before = chrono::Utc::now().timestamp_millis();
            let script = script_spin(&app, &id, user, n, rv).await;
            let after = chrono::Utc::now().timestamp_millis();
            let (mut early, mut late) = (model.clone(), model.clone());
            let expected_early = early.spin(user.as_str(), before, rv);
            let expected_late = late.spin(user.as_str(), after, rv);
            let context = format!(
                "seed {seed}, round {round}, spin {n}, user {}, R {rv}, between {before} and {after}\n{}",
                user.as_str(),
                spec.yaml()
            );
            let same = |a: &Result<Decision, Rejection>| match (&script, a) {
                (Ok(d), Ok(m)) => {
                    d.prize_id == m.prize_id
                        && d.spins_left == m.spins_left
                        && d.exhausted == m.exhausted
                }
                (Err(x), Err(y)) => kind(x) == kind(y),
                _ => false,
            };
            if same(&expected_early) {
                model = early;
            } else {
                assert_same_spin(&script, &expected_late, &context);
                model = late;
            }
            if matches!(script, Err(Rejection::BudgetExhausted)) {
                refused_for_budget += 1;
            }
            held_back += (0..model.prizes.len())
                .filter(|&i| model.drawable(i, after) == Err(Held::NotReleased))
                .count();
            spins += 1;
        }
        let live = app.redis.live_state(&id).await.unwrap().unwrap();
        for p in &model.prizes {
            assert_eq!(
                live.awarded.get(&p.entry.id).copied().unwrap_or(0) as u64,
                p.awarded,
                "seed {seed}"
            );
        }
        let spent: Option<u64> = redis::cmd("HGET")
            .arg(prizewheel::store::redis::keys::CampaignKeys::new(&id).meta)
            .arg("bs")
            .query_async(&mut app.redis_conn().await)
            .await
            .unwrap();
        assert_eq!(spent.unwrap_or(0), model.spent, "seed {seed}");
        // A budget set below what was awarded before it awards nothing more.
        if let Some(b) = model.budget {
            assert!(
                model.spent <= b.max(spent_at_apply),
                "seed {seed}: spent {} over budget {b}",
                model.spent
            );
        }
    }
    assert!(
        held_back > 0,
        "seed {seed}: no prize was ever held back for its release"
    );
    eprintln!(
        "script and model agreed on {spins} paced and budgeted spins, {refused_for_budget} refused as budget_exhausted, {held_back} prize-spins held back (seed {seed})"
    );
}

/// Grants, revocations and spins of earned-spin campaigns, through the three
/// scripts and through the model: every answer agrees (spins left, the prize,
/// the refusal, the split of a revocation), and so does every user's balance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_and_spins_decide_exactly_as_the_model() {
    use prizewheel::draw::grants::{grant_fingerprint, grant_hash};
    use prizewheel::store::redis::grant::GrantCall;
    let app = TestApp::spawn().await;
    let (seed, mut rng) = seeded();
    let mut ops = 0;
    for round in 0..12 {
        let mut spec = Spec::new("model-grants");
        spec.prizes = random_prizes(&mut rng);
        spec.spins_per_user = rng.random_range(1..15);
        spec.per_day = rng.random_bool(0.4).then(|| rng.random_range(1..8));
        spec.expected_users = rng.random_range(1..3000);
        let expire = if rng.random_bool(0.5) {
            "campaign_end"
        } else {
            "end_of_day"
        };
        spec.earned = Some((rng.random_range(0..3), expire));
        app.apply(&spec.yaml()).await;
        let id = CampaignId::parse(&spec.id).unwrap();
        let mut model = Model::new(&parse_campaign(&spec.yaml()).unwrap());
        let users: Vec<UserId> = (0..rng.random_range(1..8))
            .map(|u| UserId::parse(&format!("u{u}")).unwrap())
            .collect();
        let mut grant_ids: Vec<String> = Vec::new();
        for n in 0..250u64 {
            if n == 125 {
                // A live change of the free spins and the caps.
                spec.earned = Some((rng.random_range(0..4), expire));
                spec.spins_per_user = rng.random_range(1..15);
                app.apply(&spec.yaml()).await;
                model.apply(&parse_campaign(&spec.yaml()).unwrap());
            }
            let user = &users[rng.random_range(0..users.len())];
            let now = || chrono::Utc::now().timestamp_millis();
            let context = format!(
                "seed {seed}, round {round}, op {n}, user {}\n{}",
                user.as_str(),
                spec.yaml()
            );
            match rng.random_range(0..10) {
                0..=5 => {
                    let rv = r(&mut rng);
                    let script = script_spin(&app, &id, user, n, rv).await;
                    let expected = model.spin(user.as_str(), now(), rv);
                    assert_same_spin(&script, &expected, &context);
                }
                6..=8 => {
                    let gid = format!("g{n}");
                    let key = IdempotencyKey::parse(&gid).unwrap();
                    let spins = rng.random_range(1..4);
                    let call = GrantCall {
                        campaign: &id,
                        user,
                        grant_id: &key,
                        user_hash: prizewheel::draw::user_hash(user.as_str()),
                        grant_hash: grant_hash(&gid),
                        fingerprint: grant_fingerprint(user.as_str(), spins, ""),
                        spins,
                        reason: "",
                    };
                    let script = app.redis.grant(&call).await.unwrap();
                    let expected = model.grant(user.as_str(), &gid, spins, now());
                    match (&script, &expected) {
                        (Ok(g), Ok(left)) => assert_eq!(g.spins_left, *left, "{context}"),
                        (Err(a), Err(b)) => assert_eq!(a, b, "{context}"),
                        _ => panic!("grant: script {script:?} but model {expected:?}\n{context}"),
                    }
                    grant_ids.push(gid);
                }
                _ => {
                    let gid = if grant_ids.is_empty() || rng.random_bool(0.1) {
                        format!("none{n}")
                    } else {
                        grant_ids[rng.random_range(0..grant_ids.len())].clone()
                    };
                    let key = IdempotencyKey::parse(&gid).unwrap();
                    let script = app.redis.revoke(&id, &key, grant_hash(&gid)).await.unwrap();
                    let expected = model.revoke(&gid, now());
                    match (&script, &expected) {
                        (Ok((split, _)), Some(m)) => assert_eq!(split, m, "{context}"),
                        (Err(_), None) => {}
                        _ => panic!("revoke: script {script:?} but model {expected:?}\n{context}"),
                    }
                }
            }
            ops += 1;
        }
        // Every user's balance agrees too.
        let today = prizewheel::draw::model::day_index(
            &model.day_starts,
            chrono::Utc::now().timestamp_millis(),
        );
        for user in &users {
            let view = app
                .redis
                .client_view(&id, user, prizewheel::draw::user_hash(user.as_str()))
                .await
                .unwrap()
                .unwrap();
            let c = model.users.get(user.as_str()).copied().unwrap_or_default();
            let expected = c.spins_left_on(
                model.spins_per_user,
                model.spins_per_user_per_day,
                model.earned,
                today,
            );
            assert_eq!(
                view.spins_left,
                expected,
                "seed {seed}, user {}",
                user.as_str()
            );
        }
    }
    eprintln!("scripts and model agreed on {ops} grants, revocations and spins (seed {seed})");
}

/// The codes of one campaign as the test loaded, withdrew and saw them
/// awarded, per prize (sorted sets: a seed picks the same codes again).
#[derive(Default)]
struct CodeBook {
    loaded: HashMap<&'static str, BTreeSet<String>>,
    /// Loaded, not yet awarded nor withdrawn: what pw:{C}:codes:<prize> must hold.
    pool: HashMap<&'static str, BTreeSet<String>>,
    awarded: HashMap<&'static str, BTreeSet<String>>,
    withdrawn: HashMap<&'static str, BTreeSet<String>>,
    /// Codes made so far (each new code is `<tag>-<n>`).
    made: u64,
}

impl CodeBook {
    fn all<'a>(
        sets: &'a HashMap<&'static str, BTreeSet<String>>,
    ) -> impl Iterator<Item = &'a String> {
        sets.values().flatten()
    }

    fn pick(rng: &mut impl Rng, from: impl Iterator<Item = String>, n: usize) -> Vec<String> {
        let all: Vec<String> = from.collect();
        (0..n.min(all.len()))
            .map(|_| all[rng.random_range(0..all.len())].clone())
            .collect()
    }

    /// A batch for `prize`: `fresh` new codes and a few the campaign has seen
    /// (twice in the batch, in a pool of this prize or another, awarded,
    /// withdrawn), which lua/codes.lua counts as duplicates. Returns the batch
    /// and the new codes.
    fn batch(
        &mut self,
        rng: &mut impl Rng,
        tag: &str,
        fresh: usize,
    ) -> (Vec<String>, BTreeSet<String>) {
        let new: Vec<String> = (0..fresh)
            .map(|_| {
                self.made += 1;
                format!("{tag}-{:05}", self.made)
            })
            .collect();
        let mut seen = Self::pick(rng, new.iter().cloned(), 1);
        seen.extend(Self::pick(rng, Self::all(&self.pool).cloned(), 3));
        seen.extend(Self::pick(rng, Self::all(&self.awarded).cloned(), 2));
        seen.extend(Self::pick(rng, Self::all(&self.withdrawn).cloned(), 2));
        let mut batch = new.clone();
        for code in seen {
            batch.insert(rng.random_range(0..=batch.len()), code);
        }
        (batch, new.into_iter().collect())
    }

    /// What withdrawing `codes` from `prize` does, code by code as
    /// lua/codes.lua does: (withdrawn, already awarded, unknown).
    fn withdraw(&mut self, prize: &'static str, codes: &[String]) -> (u64, u64, u64) {
        let mut out = (0, 0, 0);
        for code in codes {
            if self.pool.entry(prize).or_default().remove(code) {
                self.withdrawn
                    .entry(prize)
                    .or_default()
                    .insert(code.clone());
                out.0 += 1;
            } else if Self::all(&self.awarded).any(|c| c == code) {
                out.1 += 1;
            } else {
                out.2 += 1;
            }
        }
        out
    }
}

/// Loads a batch of `fresh` new codes (and some duplicates) into `prize`'s
/// pool through lua/codes.lua, and into the model with the count the script
/// reports; a prize that is not a code prize now refuses it, and the model
/// is not told.
#[allow(clippy::too_many_arguments)]
async fn load_codes(
    app: &TestApp,
    id: &CampaignId,
    model: &mut Model,
    book: &mut CodeBook,
    rng: &mut impl Rng,
    prize: &'static str,
    is_code_prize: bool,
    fresh: usize,
    context: &str,
) {
    let (batch, new) = book.batch(rng, prize, fresh);
    let answer = app
        .redis
        .add_codes(id, &PrizeId::parse(prize).unwrap(), &batch)
        .await
        .unwrap();
    if !is_code_prize {
        assert_eq!(answer, Err(CodesRejection::NotCodePrize), "{context}");
        return;
    }
    let added = answer.unwrap_or_else(|e| panic!("{prize}: {e:?}\n{context}"));
    let pool = book.pool.entry(prize).or_default();
    pool.extend(new.iter().cloned());
    assert_eq!(
        (added.added, added.duplicates, added.available),
        (
            new.len() as u64,
            (batch.len() - new.len()) as u64,
            pool.len() as u64
        ),
        "{prize}: added, duplicates, available\n{context}"
    );
    book.loaded.entry(prize).or_default().extend(new);
    model.load_codes(prize, added.added);
}

/// Withdraws from `prize` some codes of its pool, some awarded ones, one of
/// another prize's pool and one never loaded, through lua/codes.lua and the
/// model (with the count withdrawn the script reports).
async fn withdraw_codes(
    app: &TestApp,
    id: &CampaignId,
    model: &mut Model,
    book: &mut CodeBook,
    rng: &mut impl Rng,
    prize: &'static str,
    context: &str,
) {
    let own = book.pool.get(prize).cloned().unwrap_or_default();
    let mut codes: Vec<String> = CodeBook::pick(rng, own.iter().cloned(), own.len() / 3 + 1)
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    codes.extend(CodeBook::pick(
        rng,
        CodeBook::all(&book.awarded).cloned(),
        2,
    ));
    let others = book
        .pool
        .iter()
        .filter(|(p, _)| **p != prize)
        .flat_map(|(_, s)| s.iter().cloned());
    codes.extend(CodeBook::pick(rng, others, 1));
    codes.push(format!("never-{}", book.made));
    let expected = book.withdraw(prize, &codes);
    let w = app
        .redis
        .withdraw_codes(id, &PrizeId::parse(prize).unwrap(), &codes)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{prize}: {e:?}\n{context}"));
    assert_eq!(
        (w.withdrawn, w.already_awarded, w.unknown, w.available),
        (
            expected.0,
            expected.1,
            expected.2,
            book.pool.get(prize).map_or(0, |p| p.len() as u64)
        ),
        "{prize}: withdrawn, already awarded, unknown, available\n{context}"
    );
    model.withdraw_codes(prize, w.withdrawn);
}

/// The prizes of the code rounds: `coupon` and `voucher` are code prizes,
/// `gold` a limited one, `none` the fallback. `voucher` is paced as
/// `release` says (none, `even` or per day), and on a re-apply `variant`
/// also changes the kinds: 1 retires `coupon`, 2 makes `gold` a code prize,
/// 3 makes `voucher` a limited prize of 6.
fn code_spec(rng: &mut impl Rng, spec: &mut Spec, release: usize, variant: Option<usize>) {
    let w = |rng: &mut dyn rand::Rng| rng.random_range(1..8);
    let fallback = spec
        .prizes
        .last()
        .map_or_else(|| rng.random_range(3..12), |p| p.1);
    spec.prizes = vec![
        ("coupon", w(rng), None),
        ("voucher", w(rng), None),
        ("gold", rng.random_range(1..3), Some(rng.random_range(1..8))),
        ("none", fallback, None),
    ];
    spec.code_prizes = vec!["coupon", "voucher"];
    match variant {
        Some(1) => {
            spec.prizes.remove(0);
            spec.code_prizes = vec!["voucher"];
        }
        Some(2) => spec.code_prizes.push("gold"),
        Some(3) => {
            spec.code_prizes = vec!["coupon"];
            spec.prizes[1].2 = Some(6);
        }
        _ => {}
    }
    spec.releases.clear();
    match release {
        1 => {
            spec.releases.insert("voucher", "even".to_owned());
        }
        2 => {
            spec.releases.insert(
                "voucher",
                format!("{{ per_day: {} }}", rng.random_range(2..12)),
            );
        }
        _ => {}
    }
    spec.amounts = [
        ("coupon", "5"),
        ("voucher", "2.50"),
        ("gold", "25"),
        ("none", if rng.random_bool(0.3) { "0.25" } else { "0" }),
    ]
    .into_iter()
    .map(|(p, a)| (p, a.to_owned()))
    .collect();
    spec.budget = rng
        .random_bool(0.6)
        .then(|| format!("{}.00", rng.random_range(40..400)));
}

/// Code prizes (`stock: codes`) through lua/codes.lua and lua/spin.lua, and
/// through the model fed the same loads and withdrawals (the counts the script
/// reports: `Model::load_codes` with `added`, `Model::withdraw_codes` with
/// `withdrawn`): every decision agrees (the prize, the spins left, the
/// refusal), across a second load mid-way (by when coupon's first pool has
/// mostly run dry),
/// a withdrawal, a live re-apply (new weights, pacing, budget, and a prize
/// retired, made a code prize or made a limited one), and a third load.
/// The paced `voucher` spreads the codes loaded (even) or a count per day;
/// decisions are checked as in `paced_and_budgeted_draws_decide_exactly_as_the_model`
/// (just before and just after the script's call).
///
/// It compares the SET of codes, not which code each win gets: spin.lua takes
/// a code with SPOP, which picks a member of the pool at random, so neither
/// the model nor the test can know which code comes next. What it holds
/// instead: every win of a code prize carries a code (`Drawn.code`), one
/// loaded for that prize and neither awarded before nor withdrawn; a win of
/// any other prize carries none; and at the end the pool left in Redis
/// (SMEMBERS pw:{C}:codes:<prize>) and the codes awarded are disjoint and
/// together exactly the codes loaded minus those withdrawn, and the pool is
/// as large as the model's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_prizes_decide_exactly_as_the_model() {
    let app = TestApp::spawn().await;
    let (seed, mut rng) = seeded();
    let (mut spins, mut code_wins, mut dry, mut held_back) = (0, 0, 0, 0);
    let mut refused: std::collections::BTreeMap<&str, u64> = Default::default();
    for round in 0..12usize {
        let mut spec = Spec::new("model-codes");
        spec.spins_per_user = rng.random_range(40..200);
        spec.per_day = rng.random_bool(0.3).then(|| rng.random_range(30..100));
        spec.ends_at =
            (chrono::Utc::now() + chrono::Duration::hours(rng.random_range(1..6))).to_rfc3339();
        code_spec(&mut rng, &mut spec, round % 3, None);
        app.apply(&spec.yaml()).await;
        let id = CampaignId::parse(&spec.id).unwrap();
        let mut model = Model::new(&parse_campaign(&spec.yaml()).unwrap());
        let mut book = CodeBook::default();
        let users: Vec<UserId> = (0..rng.random_range(2..10))
            .map(|u| UserId::parse(&format!("u{u}")).unwrap())
            .collect();
        let ctx = |spec: &Spec, what: &str| {
            format!("seed {seed}, round {round}, {what}\n{}", spec.yaml())
        };
        // The pools before the first draw (voucher's is paced: large enough
        // that its curve, not its pool, holds it back).
        let c = ctx(&spec, "first load");
        let fresh = rng.random_range(5..20);
        load_codes(
            &app, &id, &mut model, &mut book, &mut rng, "coupon", true, fresh, &c,
        )
        .await;
        let fresh = rng.random_range(30..90);
        load_codes(
            &app, &id, &mut model, &mut book, &mut rng, "voucher", true, fresh, &c,
        )
        .await;
        // gold has no codes: loading some is refused.
        load_codes(
            &app, &id, &mut model, &mut book, &mut rng, "gold", false, 3, &c,
        )
        .await;

        for n in 0..320u64 {
            let c = ctx(&spec, &format!("before spin {n}"));
            match n {
                // A second load, once coupon has most likely run dry.
                80 => {
                    for prize in ["coupon", "voucher"] {
                        let fresh = rng.random_range(5..25);
                        load_codes(
                            &app, &id, &mut model, &mut book, &mut rng, prize, true, fresh, &c,
                        )
                        .await;
                    }
                }
                140 => {
                    for prize in ["coupon", "voucher"] {
                        withdraw_codes(&app, &id, &mut model, &mut book, &mut rng, prize, &c).await;
                    }
                }
                // A live re-apply: new weights, pacing and budget, and the kinds changed.
                200 => {
                    let release = rng.random_range(0..3);
                    code_spec(&mut rng, &mut spec, release, Some(round % 4));
                    app.apply(&spec.yaml()).await;
                    model.apply(&parse_campaign(&spec.yaml()).unwrap());
                }
                260 => {
                    for prize in ["coupon", "voucher", "gold"] {
                        let code = spec.code_prizes.contains(&prize);
                        let fresh = rng.random_range(1..15);
                        load_codes(
                            &app, &id, &mut model, &mut book, &mut rng, prize, code, fresh, &c,
                        )
                        .await;
                    }
                }
                // A prize that is (or was) a code prize gives up codes.
                290 => {
                    let had: Vec<&'static str> = book.loaded.keys().copied().collect();
                    for prize in had {
                        withdraw_codes(&app, &id, &mut model, &mut book, &mut rng, prize, &c).await;
                    }
                }
                _ => {}
            }
            let user = &users[rng.random_range(0..users.len())];
            let rv = r(&mut rng);
            let before = chrono::Utc::now().timestamp_millis();
            let script = script_spin(&app, &id, user, n, rv).await;
            let after = chrono::Utc::now().timestamp_millis();
            let (mut early, mut late) = (model.clone(), model.clone());
            let expected_early = early.spin(user.as_str(), before, rv);
            let expected_late = late.spin(user.as_str(), after, rv);
            let context = format!(
                "seed {seed}, round {round}, spin {n}, user {}, R {rv}, between {before} and {after}\n{}",
                user.as_str(),
                spec.yaml()
            );
            let same = |a: &Result<Decision, Rejection>| match (&script, a) {
                (Ok(d), Ok(m)) => {
                    d.prize_id == m.prize_id
                        && d.spins_left == m.spins_left
                        && d.exhausted == m.exhausted
                }
                (Err(x), Err(y)) => kind(x) == kind(y),
                _ => false,
            };
            // Counted before the draw: a code prize without a code left, the
            // paced one held back.
            for (i, p) in model.prizes.iter().enumerate() {
                if p.entry.c.is_some() {
                    match model.drawable(i, after) {
                        Err(Held::NoStock) => dry += 1,
                        Err(Held::NotReleased) => held_back += 1,
                        _ => {}
                    }
                }
            }
            if same(&expected_early) {
                model = early;
            } else {
                assert_same_spin(&script, &expected_late, &context);
                model = late;
            }
            // The code, against the sets.
            match &script {
                Ok(d) if spec.code_prizes.contains(&d.prize_id.as_str()) => {
                    let prize = spec.code_prizes.iter().find(|p| **p == d.prize_id).unwrap();
                    let code = d
                        .code
                        .as_ref()
                        .unwrap_or_else(|| panic!("a win of {prize} carries a code\n{context}"));
                    assert!(
                        book.pool.entry(prize).or_default().remove(code),
                        "{code} is in {prize}'s pool: loaded {}, awarded {}, withdrawn {}\n{context}",
                        book.loaded.get(prize).is_some_and(|s| s.contains(code)),
                        CodeBook::all(&book.awarded).any(|c| c == code),
                        CodeBook::all(&book.withdrawn).any(|c| c == code),
                    );
                    book.awarded.entry(prize).or_default().insert(code.clone());
                    code_wins += 1;
                }
                Ok(d) => assert_eq!(
                    d.code, None,
                    "a win of {} carries no code\n{context}",
                    d.prize_id
                ),
                Err(e) => *refused.entry(kind(e)).or_default() += 1,
            }
            spins += 1;
        }

        // The pools left, the codes awarded, and the counters, against the model.
        let mut conn = app.redis_conn().await;
        for (&prize, loaded) in &book.loaded {
            let context = format!("seed {seed}, round {round}, prize {prize}\n{}", spec.yaml());
            let key = format!("pw:{{{id}}}:codes:{prize}");
            let left: BTreeSet<String> = redis::cmd("SMEMBERS")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            let (empty, pool) = (BTreeSet::new(), &book.pool[prize]);
            let awarded = book.awarded.get(prize).unwrap_or(&empty);
            let withdrawn = book.withdrawn.get(prize).unwrap_or(&empty);
            assert_eq!(&left, pool, "{context}");
            assert!(left.is_disjoint(awarded), "{context}");
            let kept: BTreeSet<String> = loaded.difference(withdrawn).cloned().collect();
            assert_eq!(
                left.union(awarded).cloned().collect::<BTreeSet<_>>(),
                kept,
                "pool ∪ awarded = loaded − withdrawn\n{context}"
            );
            assert_eq!(
                model.codes.get(prize).copied().unwrap_or(0),
                left.len() as u64,
                "{context}"
            );
            let counts = app
                .redis
                .count_codes(&id, &PrizeId::parse(prize).unwrap())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (
                    counts.loaded,
                    counts.awarded,
                    counts.withdrawn,
                    counts.available
                ),
                (
                    loaded.len() as u64,
                    awarded.len() as u64,
                    withdrawn.len() as u64,
                    left.len() as u64
                ),
                "{context}"
            );
        }
        let live = app.redis.live_state(&id).await.unwrap().unwrap();
        for p in &model.prizes {
            let context = format!(
                "seed {seed}, round {round}, prize {}\n{}",
                p.entry.id,
                spec.yaml()
            );
            let awarded = live.awarded.get(&p.entry.id).copied().unwrap_or(0) as u64;
            assert_eq!(awarded, p.awarded, "{context}");
            let remaining = live.stock.get(&p.entry.id).copied().unwrap_or(0);
            assert_eq!(u64::try_from(remaining).ok(), p.remaining, "{context}");
            if p.entry.c.is_some() {
                // Configured = awarded + pool: what the even curve spreads.
                assert_eq!(
                    live.initial.get(&p.entry.id).copied().unwrap_or(0) as u64,
                    p.configured,
                    "{context}"
                );
                assert_eq!(
                    p.remaining,
                    model.codes.get(&p.entry.id).copied(),
                    "{context}"
                );
            }
        }
        let spent: Option<u64> = redis::cmd("HGET")
            .arg(prizewheel::store::redis::keys::CampaignKeys::new(&id).meta)
            .arg("bs")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            spent.unwrap_or(0),
            model.spent,
            "seed {seed}, round {round}"
        );
    }
    assert!(
        code_wins > 0 && dry > 0 && held_back > 0,
        "seed {seed}: {code_wins} code wins, {dry} draws with a code prize dry, {held_back} held back"
    );
    eprintln!(
        "script and model agreed on {spins} spins with code prizes (seed {seed}): {code_wins} codes awarded, each once; {dry} prize-spins with a pool dry, {held_back} held back by the curve; refused {refused:?}"
    );
}

/// A campaign applied by an apply.lua from before the packed prize table (no
/// `num`, `ws`, `p:<i>`, `np`, `pfb` in meta, only the text fields and the
/// JSON `tbl`) still draws as the model says, and a re-apply gives it the
/// packed form without a change of outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_with_only_the_json_table_draws_as_the_model() {
    let app = TestApp::spawn().await;
    let (seed, mut rng) = seeded();
    let mut conn = app.redis_conn().await;
    for round in 0..6 {
        let mut spec = Spec::new("model-json");
        spec.prizes = random_prizes(&mut rng);
        app.apply(&spec.yaml()).await;
        let id = CampaignId::parse(&spec.id).unwrap();
        let meta = prizewheel::store::redis::keys::CampaignKeys::new(&id).meta;
        let np: usize = redis::cmd("HGET")
            .arg(&meta)
            .arg("np")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(np, spec.prizes.len(), "seed {seed}");
        let mut packed: Vec<String> = (1..=np).map(|i| format!("p:{i}")).collect();
        packed.extend(["ws", "np", "num", "pfb"].map(String::from));
        let removed: usize = redis::cmd("HDEL")
            .arg(&meta)
            .arg(&packed)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(removed, packed.len(), "seed {seed}");
        let mut model = Model::new(&parse_campaign(&spec.yaml()).unwrap());
        let user = UserId::parse("u1").unwrap();
        for n in 0..200u64 {
            if n == 100 {
                spec.spins_per_user += 1;
                app.apply(&spec.yaml()).await;
                model.apply(&parse_campaign(&spec.yaml()).unwrap());
            }
            let rv = r(&mut rng);
            let script = script_spin(&app, &id, &user, n, rv).await;
            let expected = model.spin(user.as_str(), chrono::Utc::now().timestamp_millis(), rv);
            assert_same_spin(
                &script,
                &expected,
                &format!("seed {seed}, round {round}, spin {n}"),
            );
        }
    }
}
