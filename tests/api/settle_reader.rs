//! The settler's own stream reader (src/settle/reader.rs): it reads what the
//! redis crate reads, a read dropped half-way never hands its reply to the
//! next, and the batch read ahead while a write fails is neither acked nor
//! lost.

use crate::support::helpers::{Spec, TestApp, redis_url};
use crate::support::settling::{assert_exactly, draws, lag, settle_all, settled_ids, settler};
use prizewheel::domain::CampaignId;
use prizewheel::settle::reader::Reader;
use prizewheel::settle::stream::{self, RawEntry};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::watch;

fn reader() -> Reader {
    let client = redis::Client::open(redis_url()).unwrap();
    Reader::new(&client, Duration::from_secs(2), Duration::from_secs(5)).expect("a TCP URL")
}

/// A stream of `n` entries with the fields a spin has, of varied sizes.
async fn filled(conn: &mut impl redis::aio::ConnectionLike, n: usize) -> String {
    let key = format!("pw:{{reader-{}}}:results", uuid::Uuid::new_v4());
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.cmd("XADD")
            .arg(&key)
            .arg("*")
            .arg("type")
            .arg("spin")
            .arg("user")
            .arg(format!("u{i}"))
            .arg("ctx")
            .arg("x".repeat(i % 700))
            .arg("empty")
            .arg("")
            .ignore();
    }
    let () = pipe.query_async(conn).await.unwrap();
    stream::ensure_group(conn, &key).await.unwrap();
    key
}

#[tokio::test]
async fn the_reader_reads_what_the_crate_reads() {
    let app = TestApp::spawn().await;
    let mut conn = app.redis.conn();
    let key = filled(&mut conn, 3000).await;
    let mut own = reader();
    // New entries, in two batches: the first by the reader, the second by the crate.
    let first = own.read(&key, "a", ">", 1000, None).await.unwrap();
    let second = stream::read(&mut conn, &key, "a", ">", 1000, None)
        .await
        .unwrap();
    assert_eq!((first.len(), second.len()), (1000, 1000));
    // As ids, not strings: "5-999" sorts after "5-1000" as text.
    let id = |e: &RawEntry| prizewheel::domain::StreamId::parse(&e.0).unwrap();
    assert!(
        id(first.last().unwrap()) < id(&second[0]),
        "in stream order"
    );
    // One pending entry deleted: both give it without fields.
    let _: i64 = redis::cmd("XDEL")
        .arg(&key)
        .arg(&first[7].0)
        .query_async(&mut conn)
        .await
        .unwrap();
    let theirs = stream::read(&mut conn, &key, "a", "0", 5000, None)
        .await
        .unwrap();
    let ours = own.read(&key, "a", "0", 5000, None).await.unwrap();
    assert_eq!(ours.len(), 2000);
    assert_eq!(ours, theirs, "the same entries, fields and order");
    assert!(ours[7].1.is_empty(), "deleted while pending: no fields");
    assert_eq!(ours[8].1, first[8].1);
    // Nothing new: BLOCK runs out and the reply is nil.
    let rest = own.read(&key, "a", ">", 5000, None).await.unwrap();
    assert_eq!(rest.len(), 1000);
    let none = own.read(&key, "a", ">", 10, Some(50)).await.unwrap();
    assert!(none.is_empty());
    // A group that is gone is Redis's error, with its code.
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = own.read(&key, "a", ">", 10, None).await.unwrap_err();
    assert_eq!(err.code(), Some("NOGROUP"), "{err}");
}

#[tokio::test]
async fn a_read_dropped_half_way_never_hands_its_reply_to_the_next() {
    let app = TestApp::spawn().await;
    let mut conn = app.redis.conn();
    let key = filled(&mut conn, 4000).await;
    let mut own = reader();
    let mut delivered: Vec<RawEntry> = Vec::new();
    // Reads cut off after a few microseconds, most of them half-way through
    // the reply: what they delivered is pending on the consumer, and a whole
    // read of the pending entries afterwards gives each exactly once.
    for round in 0..200u64 {
        let cut = Duration::from_micros(20 + round * 13);
        if let Ok(r) = tokio::time::timeout(cut, own.read(&key, "b", ">", 200, None)).await {
            delivered.extend(r.unwrap());
        }
    }
    // A blocking read on nothing new, dropped while it waits.
    let rest = own.read(&key, "b", ">", 5000, None).await.unwrap();
    delivered.extend(rest);
    let waiting = tokio::time::timeout(
        Duration::from_millis(50),
        own.read(&key, "b", ">", 10, Some(2_000)),
    )
    .await;
    assert!(waiting.is_err(), "nothing to read: it was still waiting");
    let pending = own.read(&key, "b", "0", 10_000, None).await.unwrap();
    assert_eq!(pending.len(), 4000, "every entry pending once");
    let ids: HashSet<&str> = pending.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), 4000);
    for (id, fields) in &delivered {
        let p = pending.iter().find(|(p, _)| p == id).unwrap();
        assert_eq!(
            &p.1, fields,
            "a whole read's entries are as Redis holds them"
        );
    }
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// PostgreSQL cut off while the settler writes one batch and reads the next
/// ahead: nothing is acked that is not in the ledger (the read-ahead batch
/// stays pending), and once PostgreSQL is back every draw is settled once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_read_ahead_is_not_acked_or_lost_when_the_write_fails() {
    let app = TestApp::spawn().await;
    let spec = Spec::new("readahead");
    app.apply(&spec.yaml()).await;
    let id = CampaignId::parse(&spec.id).unwrap();
    let key = format!("pw:{{{}}}:results", spec.id);
    let mut drawn = draws(&app, &id, 100, 3000, 0).await;

    let (proxy, pg) = crate::support::proxy::postgres_behind_proxy(&app.db.url).await;
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(settler(&pg, "ahead").run(stopped));
    // Cut nothing before the settler follows the campaign (it lists campaigns
    // in PostgreSQL, then makes the group): a cut before that would leave no
    // group to look at, and no batch in flight to test.
    let started = std::time::Instant::now();
    while lag(&app, &spec.id)
        .await
        .last_delivered
        .is_none_or(|d| d.ms == 0)
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the settler read nothing in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut conn = app.redis.conn();
    let mut outages = 0;
    let mut checks = 0;
    // Cut PostgreSQL off a few times while batches are in flight; each time,
    // every acked entry must be in the ledger.
    while lag(&app, &spec.id).await.unsettled() > 0 || outages < 3 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        if outages < 3 {
            proxy.down();
            outages += 1;
            drawn.extend(draws(&app, &id, 100, 500, 10_000 * outages).await);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // In this order: what was delivered, then what of it is still
        // pending (the rest is acked), then the ledger (an ack follows its
        // commit, so every acked entry must be there by now).
        let l = lag(&app, &spec.id).await;
        let all: Vec<(String, redis::Value)> = redis::cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
            .arg(&key)
            .arg(stream::GROUP)
            .arg("-")
            .arg("+")
            .arg(1_000_000)
            .query_async(&mut conn)
            .await
            .unwrap();
        let pending: HashSet<String> = pending.into_iter().map(|p| p.0).collect();
        let settled: HashSet<String> = sqlx::query_scalar(
            "SELECT stream_id FROM rewards WHERE campaign_id = $1
                 UNION ALL SELECT stream_id FROM ledger_applies WHERE campaign_id = $1",
        )
        .bind(&spec.id)
        .fetch_all(&app.db.pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
        let last = l.last_delivered.map(|d| d.to_string());
        for (entry, _) in &all {
            let delivered = last.as_ref().is_some_and(|last| {
                prizewheel::domain::StreamId::parse(entry)
                    <= prizewheel::domain::StreamId::parse(last)
            });
            if delivered && !pending.contains(entry) {
                assert!(
                    settled.contains(entry),
                    "{entry} acked but not in the ledger"
                );
            }
        }
        checks += 1;
        proxy.up();
        assert!(checks < 400, "settlement did not drain");
    }
    stop.send(true).unwrap();
    task.await.unwrap();
    settle_all(&app, &spec.id, "ahead").await;
    assert_exactly(&drawn, &settled_ids(&app.db.pool, &spec.id).await);
}
