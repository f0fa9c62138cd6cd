//! The draw script held to the reference model, spin for spin: random campaigns
//! (tiny and huge stocks and weights, limits, a live re-apply in the middle) and
//! random spins go through Redis and through `draw::model`, and must agree.

use crate::support::helpers::{Spec, TestApp};
use prizewheel::campaign::parse_campaign;
use prizewheel::domain::{CampaignId, IdempotencyKey, UserId};
use prizewheel::draw::model::Model;
use prizewheel::store::redis::spin::{Rejection, SpinCall};
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
        Rejection::DailyQuotaExhausted { .. } => "daily_quota",
        Rejection::KeyReused => "key_reused",
        Rejection::Recovering => "recovering",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_script_decides_exactly_as_the_model() {
    let app = TestApp::spawn().await;
    let seed: u64 = std::env::var("PRIZEWHEEL_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
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
            let key = IdempotencyKey::parse(&format!("k{n}")).unwrap();
            let call = SpinCall {
                campaign: &id,
                user,
                key: &key,
                user_hash: prizewheel::draw::user_hash(user.as_str()),
                record_field: n.to_be_bytes(),
                fingerprint: [0; 8],
                r: rv,
                spin_id: uuid::Uuid::now_v7(),
                context: "",
            };
            let script = app.redis.spin(&call).await.unwrap();
            let expected = model.spin(user.as_str(), chrono::Utc::now().timestamp_millis(), rv);
            let context = format!(
                "seed {seed}, round {round}, spin {n}, user {}, R {rv}\n{}",
                user.as_str(),
                spec.yaml()
            );
            match (&script, &expected) {
                (Ok(d), Ok(m)) => {
                    assert_eq!(d.prize_id, m.prize_id, "{context}");
                    assert_eq!(d.spins_left, m.spins_left, "{context}");
                }
                (Err(a), Err(b)) => assert_eq!(kind(a), kind(b), "{context}"),
                _ => panic!("script {script:?} but model {expected:?}\n{context}"),
            }
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
