//! The whole `serve` process killed with SIGKILL under HTTP load, restarted:
//! every spin answered 200 is in PostgreSQL exactly once.

use crate::support::helpers::{Spec, TestApp, TestDb, client, redis_url, token};
use crate::support::settling::{lag, settled_ids};
use futures::stream::{self, StreamExt};
use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use uuid::Uuid;

fn serve(db: &TestDb, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_prizewheel"))
        .arg("serve")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PRIZEWHEEL_LISTEN", format!("127.0.0.1:{port}"))
        .env("REDIS_URL", redis_url())
        .env("DATABASE_URL", &db.url)
        .env("PRIZEWHEEL_JWT_SECRET", crate::support::helpers::SECRET)
        .env(
            "PRIZEWHEEL__AUTH__AUDIENCE",
            crate::support::helpers::AUDIENCE,
        )
        .env("PRIZEWHEEL__SETTLE__BATCH_WAIT_MS", "50")
        .env("PRIZEWHEEL__SETTLE__CLAIM_IDLE_MS", "500")
        .env("PRIZEWHEEL__SETTLE__REFRESH_MS", "200")
        .env("PRIZEWHEEL__LOG__FILTER", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_up(address: &str) {
    let c = client();
    for _ in 0..200 {
        if c.get(format!("{address}/healthz")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("serve did not come up at {address}");
}

/// Spins from `offset`; returns the spin ids of the 200 answers.
async fn load(address: &str, campaign: &str, offset: usize, n: usize) -> Vec<Uuid> {
    let c = client();
    let tokens: Vec<String> = (0..200).map(|u| token(&format!("k9-{u}"), &[])).collect();
    let answers: Vec<Option<Uuid>> = stream::iter(offset..offset + n)
        .map(|i| {
            let (c, t) = (c.clone(), tokens[i % 200].clone());
            async move {
                let r = c
                    .post(format!("{address}/v1/campaigns/{campaign}/spins"))
                    .bearer_auth(&t)
                    .header("Idempotency-Key", format!("k{i}"))
                    .send()
                    .await
                    .ok()?; // cut by the kill: the outcome is unknown to the client
                if r.status() != 200 {
                    return None;
                }
                let body: serde_json::Value = r.json().await.ok()?;
                body["spin_id"].as_str()?.parse().ok()
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    answers.into_iter().flatten().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_serve_under_load_loses_no_answered_spin() {
    // The TestApp only applies campaigns and reads; the service under test is the binary.
    let app = TestApp::spawn().await;
    let mut spec = Spec::new("sigkill");
    spec.spins_per_user = 1000;
    app.apply(&spec.yaml()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("http://127.0.0.1:{port}");

    let mut answered = Vec::new();
    let mut child = serve(&app.db, port);
    wait_up(&address).await;
    answered.extend(load(&address, &spec.id, 0, 2000).await);
    // Kill in the middle of a load: requests in flight fail (the client never
    // learns their outcome); settlement is cut wherever it was.
    let killer = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    };
    let (during, ()) = tokio::join!(load(&address, &spec.id, 2000, 3000), killer);
    assert!(
        during.len() < 3000,
        "the kill landed in the middle of the load"
    );
    answered.extend(during);

    let mut child = serve(&app.db, port);
    wait_up(&address).await;
    answered.extend(load(&address, &spec.id, 5000, 2000).await);
    // Graceful stop in the middle of a load: SIGTERM, the process drains and exits
    // by itself, and its settler leaves nothing pending behind it.
    let pid = child.id();
    let stopper = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        for _ in 0..100 {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    };
    let (during, status) = tokio::join!(load(&address, &spec.id, 7000, 3000), stopper);
    answered.extend(during);
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("serve did not stop on SIGTERM within 10 s")
    });
    assert!(status.success(), "{status:?}");
    let mut conn = app.redis_conn().await;
    let consumers: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(format!("pw:{{{}}}:results", spec.id))
        .arg(prizewheel::settle::stream::GROUP)
        .query_async(&mut conn)
        .await
        .unwrap();
    let suffix = format!("-{pid}");
    let stopped = consumers
        .iter()
        .find(
            |c| matches!(&c["name"], redis::Value::BulkString(n) if n.ends_with(suffix.as_bytes())),
        )
        .expect("the stopped process's consumer");
    assert_eq!(
        stopped["pending"],
        redis::Value::Int(0),
        "the batch in hand was committed and acked"
    );

    // Whatever the killed process left pending is taken over; everything settles.
    crate::support::settling::settle_all(&app, &spec.id, "after").await;

    let settled = settled_ids(&app.db.pool, &spec.id).await;
    let settled_set: HashSet<Uuid> = settled.iter().copied().collect();
    assert_eq!(settled.len(), settled_set.len(), "no spin twice");
    let missing = answered
        .iter()
        .filter(|id| !settled_set.contains(id))
        .count();
    assert_eq!(
        missing,
        0,
        "every spin answered 200 is in the ledger ({} answered)",
        answered.len()
    );
    assert!(answered.len() >= 4000, "the load ran: {}", answered.len());
    assert_eq!(
        lag(&app, &spec.id).await.unsettled(),
        0,
        "nothing left pending"
    );
}
