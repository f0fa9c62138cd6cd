//! The draw script held to the reference model, spin for spin: random campaigns
//! (tiny and huge stocks and weights, limits, a live re-apply in the middle) and
//! random spins go through Redis and through `draw::model`, and must agree.

use crate::support::helpers::{Spec, TestApp};
use prizewheel::campaign::parse_campaign;
use prizewheel::domain::{CampaignId, IdempotencyKey, UserId};
use prizewheel::draw::model::{Decision, Held, Model};
use prizewheel::store::redis::spin::{Drawn, Rejection, SpinCall};
use rand::{Rng, RngExt, SeedableRng};

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
                (Ok(d), Ok(m)) => d.prize_id == m.prize_id && d.spins_left == m.spins_left,
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
