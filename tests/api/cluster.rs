//! A real Redis Cluster (three primaries, started by scripts/test.sh): the CLI
//! applies, three service replicas spin, a settler settles, and nothing is
//! oversold, drawn twice or lost, on campaigns that live on different shards.

use crate::support::cluster::{owner, owner_of};
use crate::support::helpers::{Spec, TestApp, client, cluster_seeds, spawn_server, spin, token};
use crate::support::rush::{assert_no_oversell, burst, gold_rush};
use prizewheel::config::Settings;
use prizewheel::domain::CampaignId;
use prizewheel::store::redis::keys::CampaignKeys;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::process::{Command, Output};
use std::time::Duration;

const USERS: usize = 1000;
const SPINS: usize = 2000;

/// One campaign per primary, so every shard draws.
fn one_campaign_per_shard(seeds: &[String]) -> Vec<(Spec, String)> {
    one_per_shard(seeds, || gold_rush("cluster"))
}

/// One campaign made by `make` (each with a fresh id) per primary, with the
/// node that owns it.
fn one_per_shard(seeds: &[String], make: impl Fn() -> Spec) -> Vec<(Spec, String)> {
    let mut chosen: Vec<(Spec, String)> = Vec::new();
    for _ in 0..200 {
        let spec = make();
        let node = owner(seeds, &spec.id);
        if chosen.iter().all(|(_, n)| *n != node) {
            chosen.push((spec, node));
        }
        if chosen.len() == seeds.len() {
            return chosen;
        }
    }
    panic!("no campaign ids found for every shard in 200 tries");
}

fn prizewheel(args: &[&str], seeds: &[String], database_url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prizewheel"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("REDIS_CLUSTER_NODES", seeds.join(","))
        .env("DATABASE_URL", database_url)
        .output()
        .unwrap()
}

fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn on_cluster(s: &mut Settings, seeds: &[String]) {
    s.redis.cluster_nodes = seeds.iter().map(|u| u.clone().into()).collect();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_a_cluster_never_oversell_and_settle_everything() {
    let seeds = cluster_seeds();
    let app = TestApp::spawn_with(|s| on_cluster(s, &seeds)).await;
    let campaigns = one_campaign_per_shard(&seeds);

    // The CLI applies the first campaign, the library the others.
    let file = crate::support::helpers::TempDir::new();
    let path = file.0.join("campaign.yaml");
    std::fs::write(&path, campaigns[0].0.yaml()).unwrap();
    let out = prizewheel(
        &["campaign", "apply", path.to_str().unwrap()],
        &seeds,
        &app.db.url,
    );
    assert_success(&out, "campaign apply on the cluster");
    for (spec, _) in &campaigns[1..] {
        app.apply(&spec.yaml()).await;
    }

    let mut addresses = vec![app.address.clone()];
    for _ in 0..2 {
        let mut s =
            crate::support::helpers::settings(&app.db, &crate::support::helpers::redis_url());
        on_cluster(&mut s, &seeds);
        addresses.push(spawn_server(s).await);
    }

    // Scripts vanish from every primary (a restart or failover): EVALSHA gets
    // NOSCRIPT on whichever shard and the script is loaded there again.
    for seed in &seeds {
        let mut c = redis::Client::open(seed.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut c).unwrap();
    }

    let results: Vec<Vec<(u16, Value)>> = futures::future::join_all(
        campaigns
            .iter()
            .map(|(spec, _)| burst(&addresses, &spec.id, USERS, SPINS, 96)),
    )
    .await;

    // A retry with the same key, on any replica, returns the original draw.
    let client = client();
    for ((spec, _), results) in campaigns.iter().zip(&results) {
        let refused: Vec<_> = results.iter().filter(|(s, _)| *s != 200).take(3).collect();
        assert!(refused.is_empty(), "every spin answered 200: {refused:?}");
        let drawn: HashMap<&str, &Value> = results
            .iter()
            .map(|(_, b)| (b["spin_id"].as_str().unwrap(), &b["prize"]["id"]))
            .collect();
        for i in 0..50 {
            let res = spin(
                &client,
                &addresses[(i + 1) % addresses.len()],
                &spec.id,
                &token(&format!("user-{}", i % USERS), &[]),
                &format!("key-{i}"),
                None,
            )
            .await;
            assert_eq!(res.status(), 200);
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["replayed"], true, "{body}");
            let spin_id = body["spin_id"].as_str().unwrap();
            assert_eq!(
                drawn.get(spin_id).copied(),
                Some(&body["prize"]["id"]),
                "a replay is the original draw"
            );
        }
    }
    for ((spec, _), results) in campaigns.iter().zip(&results) {
        assert_no_oversell(&app, spec, results).await;
    }

    // Settlement (started now: it trims the outbox the checks above read):
    // every draw once in PostgreSQL, then reconcile and audit agree.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let settler = tokio::spawn(
        prizewheel::settle::Settler::new(
            app.redis.target().clone(),
            app.db.pool.clone(),
            crate::support::settling::fast(),
            "cluster".into(),
        )
        .run(stopped),
    );
    for (spec, _) in &campaigns {
        let mut settled = 0;
        for _ in 0..600 {
            settled = rewards(&app, &spec.id).await;
            if settled >= SPINS as i64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            settled, SPINS as i64,
            "{}: every draw settled once",
            spec.id
        );
        let id = CampaignId::parse(&spec.id).unwrap();
        let mut report = None;
        // The settler acknowledges right after committing: wait for the ack.
        for _ in 0..50 {
            let r = prizewheel::finance::reconcile::reconcile(
                &app.redis,
                &app.db.pool,
                Duration::from_secs(30),
                &id,
                &prizewheel::settle::Thresholds {
                    stuck_after_ms: 60_000,
                    max_lag_ms: 60_000,
                },
            )
            .await
            .unwrap()
            .unwrap();
            let done = r.ok;
            report = Some(r);
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let report = report.unwrap();
        assert!(report.ok, "{}: {:?}", spec.id, report.problems);
        assert_eq!(report.duplicates, 0);
    }
    stop.send(true).unwrap();
    settler.await.unwrap();
    let first = &campaigns[0].0.id;
    assert_success(
        &prizewheel(&["reconcile", first], &seeds, &app.db.url),
        "reconcile on the cluster",
    );
    assert_success(
        &prizewheel(&["audit", first], &seeds, &app.db.url),
        "audit on the cluster",
    );

    // The campaigns' keys were on their own shards; clean them up there.
    let shards: HashSet<&String> = campaigns.iter().map(|(_, n)| n).collect();
    assert_eq!(shards.len(), 3, "the campaigns covered three shards");
    for (spec, node) in &campaigns {
        let mut c = redis::Client::open(node.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let id = CampaignId::parse(&spec.id).unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(CampaignKeys::new(&id).pattern())
            .query(&mut c)
            .unwrap();
        let _: () = redis::cmd("DEL").arg(keys).query(&mut c).unwrap();
    }
}

async fn rewards(app: &TestApp, campaign: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM rewards WHERE campaign_id = $1")
        .bind(campaign)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

/// Grants, spins and revocations on a cluster: the grant and revoke scripts
/// stay in the campaign's slot, on every shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_work_on_every_shard_of_a_cluster() {
    use crate::support::helpers::{grant, revoke};
    let seeds = cluster_seeds();
    let app = TestApp::spawn_with(|s| on_cluster(s, &seeds)).await;
    for (mut spec, node) in one_campaign_per_shard(&seeds) {
        spec.earned = Some((0, "campaign_end"));
        app.apply(&spec.yaml()).await;
        let body = serde_json::json!({"user_id": "shopper", "spins": 2}).to_string();
        let r = grant(&app.client, &app.address, &spec.id, "order-1", &body).await;
        assert_eq!(r.status(), 200, "{node}");
        let t = token("shopper", &[]);
        for (k, expected) in [("k1", 200), ("k2", 200), ("k3", 429)] {
            let r = spin(&app.client, &app.address, &spec.id, &t, k, None).await;
            assert_eq!(r.status(), expected, "{node} {k}");
        }
        let r: Value = revoke(&app.client, &app.address, &spec.id, "order-1")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            (&r["revoked"], &r["already_used"]),
            (&0.into(), &2.into()),
            "{node}: {r}"
        );
    }
}

/// A code prize on campaigns of different shards: codes loaded by the CLI on
/// one and over HTTP on the others, three replicas spin; on every shard each
/// code is handed out once and all of them come from that campaign's loaded
/// set, a replay returns its code, and the ledger keeps each code once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_prize_on_campaigns_of_different_shards() {
    const CODES: usize = 60;
    let seeds = cluster_seeds();
    let app = TestApp::spawn_with(|s| on_cluster(s, &seeds)).await;
    let campaigns = one_per_shard(&seeds, || crate::codes::coupons("cluster-codes", 5));
    let loaded: Vec<Vec<String>> = (0..campaigns.len())
        .map(|c| (0..CODES).map(|i| format!("S{c}-CODE-{i:03}")).collect())
        .collect();
    let file = crate::support::helpers::TempDir::new();
    for (n, (spec, node)) in campaigns.iter().enumerate() {
        app.apply(&spec.yaml()).await;
        if n == 0 {
            let path = file.0.join("codes.txt");
            std::fs::write(&path, loaded[n].join("\n")).unwrap();
            let out = prizewheel(
                &[
                    "campaign",
                    "codes",
                    "add",
                    &spec.id,
                    "coupon",
                    path.to_str().unwrap(),
                ],
                &seeds,
                &app.db.url,
            );
            assert_success(&out, "campaign codes add on the cluster");
            assert!(
                String::from_utf8_lossy(&out.stdout).contains(&format!("{CODES} added")),
                "{node}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        } else {
            let up = crate::codes::upload(&app, &spec.id, "coupon", loaded[n].join("\n")).await;
            assert_eq!(up["added"], CODES, "{node}: {up}");
        }
    }

    let mut addresses = vec![app.address.clone()];
    for _ in 0..2 {
        let mut s =
            crate::support::helpers::settings(&app.db, &crate::support::helpers::redis_url());
        on_cluster(&mut s, &seeds);
        addresses.push(spawn_server(s).await);
    }
    // Half the draws land on the coupon: 400 spins hand out all 60 codes.
    let results: Vec<Vec<(u16, Value)>> = futures::future::join_all(
        campaigns
            .iter()
            .map(|(spec, _)| burst(&addresses, &spec.id, 200, 400, 48)),
    )
    .await;

    let client = client();
    for (n, ((spec, node), results)) in campaigns.iter().zip(&results).enumerate() {
        assert!(
            results.iter().all(|(s, _)| *s == 200),
            "{node}: every spin answered 200"
        );
        let wins: Vec<&Value> = results
            .iter()
            .map(|(_, b)| b)
            .filter(|b| b["prize"]["id"] == "coupon")
            .collect();
        assert_eq!(
            wins.len(),
            CODES,
            "{node}: exactly the codes loaded are won"
        );
        let codes: HashSet<&str> = wins
            .iter()
            .map(|b| b["prize"]["code"].as_str().expect("a win carries its code"))
            .collect();
        assert_eq!(codes.len(), CODES, "{node}: each code handed out once");
        let mine: HashSet<&str> = loaded[n].iter().map(String::as_str).collect();
        assert_eq!(
            codes, mine,
            "{node}: every code from the campaign's own set"
        );
        let (status, counts) = crate::codes::codes_call(
            &app,
            reqwest::Method::GET,
            &spec.id,
            "coupon",
            String::new(),
        )
        .await;
        assert_eq!(status, 200, "{counts}");
        assert_eq!(
            (&counts["loaded"], &counts["awarded"], &counts["available"]),
            (&CODES.into(), &CODES.into(), &0.into()),
            "{node}: {counts}"
        );
        // A retry of every spin on another replica returns its original
        // answer: each win its code. (The burst's answers come back in the
        // order they finished; spin `i` was user `user-{i % 200}`, key `key-{i}`.)
        let by_spin: HashMap<&str, &Value> = results
            .iter()
            .map(|(_, b)| (b["spin_id"].as_str().unwrap(), &b["prize"]))
            .collect();
        let mut replayed_wins = 0;
        for i in 0..results.len() {
            let again = spin(
                &client,
                &addresses[(i + 1) % addresses.len()],
                &spec.id,
                &token(&format!("user-{}", i % 200), &[]),
                &format!("key-{i}"),
                None,
            )
            .await;
            assert_eq!(again.status(), 200);
            let again: Value = again.json().await.unwrap();
            assert_eq!(again["replayed"], true, "{again}");
            let first = by_spin[again["spin_id"].as_str().unwrap()];
            assert_eq!(
                &again["prize"], first,
                "{node}: a replay is the original answer"
            );
            replayed_wins += usize::from(first["id"] == "coupon");
        }
        assert_eq!(
            replayed_wins, CODES,
            "{node}: every win replayed with its code"
        );
    }

    // Settled: each campaign's ledger holds its codes, each once.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let settler = tokio::spawn(
        prizewheel::settle::Settler::new(
            app.redis.target().clone(),
            app.db.pool.clone(),
            crate::support::settling::fast(),
            "cluster-codes".into(),
        )
        .run(stopped),
    );
    for (n, (spec, node)) in campaigns.iter().enumerate() {
        let mut settled = 0;
        for _ in 0..600 {
            settled = rewards(&app, &spec.id).await;
            if settled >= 400 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(settled, 400, "{node}: every draw settled once");
        let codes: Vec<String> = sqlx::query_scalar(
            "SELECT code FROM rewards WHERE campaign_id = $1 AND code IS NOT NULL ORDER BY code",
        )
        .bind(&spec.id)
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
        let mut want = loaded[n].clone();
        want.sort();
        assert_eq!(codes, want, "{node}: the ledger keeps each code once");
    }
    stop.send(true).unwrap();
    settler.await.unwrap();

    let shards: HashSet<&String> = campaigns.iter().map(|(_, n)| n).collect();
    assert_eq!(shards.len(), 3, "the campaigns covered three shards");
    for (spec, node) in &campaigns {
        let mut c = redis::Client::open(node.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let id = CampaignId::parse(&spec.id).unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(CampaignKeys::new(&id).pattern())
            .query(&mut c)
            .unwrap();
        let _: () = redis::cmd("DEL").arg(keys).query(&mut c).unwrap();
    }
}

/// Sub-pools on the project's three-primary cluster: the three pools of a
/// campaign land one on each primary, whatever its id, and the slot the
/// service computes for a tag is the one Redis computes (CLUSTER KEYSLOT).
#[test]
fn the_three_pools_of_a_campaign_land_one_on_each_primary() {
    use prizewheel::domain::{Pool, cluster_slot};
    let seeds = cluster_seeds();
    let mut c = redis::Client::open(seeds[0].as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    for n in 0..20 {
        let id = CampaignId::parse(&crate::support::helpers::unique(&format!("pools{n}"))).unwrap();
        let mut owners = HashSet::new();
        for pool in Pool::all(3) {
            let keys = CampaignKeys::of(&id, pool);
            let slot: u16 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(&keys.meta)
                .query(&mut c)
                .unwrap();
            assert_eq!(slot, cluster_slot(&pool.tag(&id)), "{}", keys.meta);
            owners.insert(owner_of(&seeds, &keys.meta));
        }
        assert_eq!(owners.len(), 3, "{id}: {owners:?}");
    }
}
