//! The settler's COPY path (src/settle/copy.rs, `ledger::Rewards::Copy`): the
//! rows it writes are the rows the `INSERT … ON CONFLICT` path writes, a batch
//! written twice (or one holding spins already settled) changes nothing, and a
//! poison entry inside a COPY batch is still isolated and refused alone.

use crate::support::helpers::TestDb;
use prizewheel::settle::entry::{self, Entry};
use prizewheel::settle::ledger::{self, Rewards};
use prizewheel::settle::stream::Fields;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(10);

/// A spin entry as lua/spin.lua writes it: `n` picks the spin id and stream id.
fn spin(n: u64, amount: &str, ctx: &str, code: Option<&str>) -> (String, Fields) {
    let mut pairs: Vec<(String, String)> = vec![
        ("type".into(), "spin".into()),
        ("spin".into(), format!("00000000-0000-7000-8000-{n:012x}")),
        ("user".into(), format!("u{}", n % 7)),
        ("prize".into(), "coupon".into()),
        ("amount".into(), amount.into()),
        ("currency".into(), "INR".into()),
        ("r".into(), (n * 7919).to_string()),
        ("t".into(), (1_795_000_000_000 + n).to_string()),
        ("ver".into(), "2".into()),
        ("key".into(), format!("k{n}")),
        ("ctx".into(), ctx.into()),
    ];
    if let Some(c) = code {
        pairs.push(("code".into(), c.into()));
        pairs.push(("last".into(), "1".into()));
    }
    let fields = pairs
        .into_iter()
        .map(|(k, v)| (k.into_bytes(), v.into_bytes()))
        .collect();
    (format!("{}-{}", 1_795_000_000_000 + n, n % 3), fields)
}

/// A mixed batch: amounts with every scale (one rounded by numeric(20,4)),
/// contexts, codes, and an apply between the spins.
fn batch(from: u64, to: u64) -> Vec<(String, Fields)> {
    let amounts = [
        "100.00",
        "0",
        "79900.5",
        "0.0001",
        "12.34565",
        "1234567890123456.7",
    ];
    let mut out: Vec<(String, Fields)> = (from..to)
        .map(|n| {
            let ctx = match n % 3 {
                0 => "",
                1 => r#"{"order_id":"o1","n":12345678901234567890123}"#,
                _ => r#"["a",{"b":null}]"#,
            };
            let code = (n % 4 == 0).then(|| format!("CODE-{n}"));
            spin(n, amounts[n as usize % amounts.len()], ctx, code.as_deref())
        })
        .collect();
    out.push((
        format!("{}-9", 1_795_000_000_000 + to),
        [
            ("type", "apply"),
            ("ver", "2"),
            ("hash", "h"),
            ("t", "1795000000"),
        ]
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect(),
    ));
    out
}

fn parsed(entries: &[(String, Fields)]) -> Vec<Entry> {
    entries.iter().map(|(id, f)| entry::parse(id, f)).collect()
}

/// Every column of the campaign's rewards but `settled_at`, as text, in draw order.
async fn rows(pg: &sqlx::PgPool, campaign: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT concat_ws('|', spin_id, campaign_id, user_id, prize_id, amount, currency, r,
                          stream_id, stream_ms, stream_seq, config_version, idempotency_key,
                          coalesce(context::text, 'NULL'), spun_at, coalesce(code, 'NULL'))
         FROM rewards WHERE campaign_id = $1 ORDER BY stream_ms, stream_seq",
    )
    .bind(campaign)
    .fetch_all(pg)
    .await
    .unwrap()
}

async fn write(pg: &sqlx::PgPool, campaign: &str, entries: &[Entry], how: Rewards) -> u64 {
    let mut conn = pg.acquire().await.unwrap();
    ledger::write_batch(&mut conn, campaign, entries, how)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_copy_path_writes_what_the_insert_path_writes() {
    let db = TestDb::new().await;
    let entries = parsed(&batch(0, 60));
    assert_eq!(
        write(&db.pool, "by-copy", &entries, Rewards::Copy).await,
        60
    );
    assert_eq!(
        write(&db.pool, "by-insert", &entries, Rewards::Insert).await,
        0,
        "the spin ids are the keys: the same spins under another campaign are already settled"
    );
    // The same rows through the INSERT path, compared column by column.
    sqlx::query("DELETE FROM rewards")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        write(&db.pool, "by-insert", &entries, Rewards::Insert).await,
        60
    );
    let by_insert = rows(&db.pool, "by-insert").await;
    sqlx::query("DELETE FROM rewards")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        write(&db.pool, "by-insert", &entries, Rewards::Copy).await,
        60
    );
    assert_eq!(rows(&db.pool, "by-insert").await, by_insert);
    assert!(
        by_insert.iter().any(|r| r.contains("12.3457")),
        "numeric(20,4) rounds alike: {by_insert:?}"
    );
}

#[tokio::test]
async fn a_batch_settled_twice_through_the_copy_path_changes_nothing() {
    let db = TestDb::new().await;
    let entries = batch(0, 50);
    let refs = || entries.iter().map(|(id, f)| (id.as_str(), f));
    let first = ledger::write_stream_entries(&db.pool, LIMIT, "twice", refs(), |_| {})
        .await
        .unwrap();
    assert_eq!((first.inserted, first.refused.len()), (50, 0));
    let snapshot: Vec<(uuid::Uuid, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT spin_id, settled_at FROM rewards ORDER BY spin_id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let before = rows(&db.pool, "twice").await;

    // Again, whole (a crash between commit and ack): the COPY fails on the
    // first spin already there, the INSERT skips them all.
    let again = ledger::write_stream_entries(&db.pool, LIMIT, "twice", refs(), |_| {})
        .await
        .unwrap();
    assert_eq!((again.inserted, again.refused.len()), (0, 0));
    // Half of it settled, half new (a batch read ahead across the crash).
    let wider = batch(25, 80);
    let wider_refs = wider.iter().map(|(id, f)| (id.as_str(), f));
    let mixed = ledger::write_stream_entries(&db.pool, LIMIT, "twice", wider_refs, |_| {})
        .await
        .unwrap();
    assert_eq!((mixed.inserted, mixed.refused.len()), (30, 0));

    let after: Vec<(uuid::Uuid, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT spin_id, settled_at FROM rewards WHERE spin_id = ANY($1) ORDER BY spin_id",
    )
    .bind(snapshot.iter().map(|(id, _)| *id).collect::<Vec<_>>())
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(after, snapshot, "rows settled first are untouched");
    assert_eq!(rows(&db.pool, "twice").await[..50], before[..]);
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM rewards")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(total, 80, "every spin once");
    let applies: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger_applies")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(applies, 2, "each apply once");
}

#[tokio::test]
async fn a_poison_entry_inside_a_copy_batch_is_isolated_and_refused_alone() {
    let db = TestDb::new().await;
    let mut entries = batch(0, 40);
    // Valid JSON the ledger refuses (jsonb has no \u0000): parses, then the
    // COPY fails, the INSERT fails, the halving finds it.
    entries.insert(17, spin(1000, "1.00", r#"{"x":"\u0000"}"#, None));
    // An amount beyond numeric(20,4): refused alike.
    entries.insert(30, spin(1001, "123456789012345678.00", "", None));
    let refs = entries.iter().map(|(id, f)| (id.as_str(), f));
    let written = ledger::write_stream_entries(&db.pool, LIMIT, "poisoned", refs, |_| {})
        .await
        .unwrap();
    assert_eq!(written.inserted, 40, "every good spin");
    let refused: Vec<usize> = written.refused.iter().map(|(i, _)| *i).collect();
    assert_eq!(refused, vec![17, 30], "{:?}", written.refused);
    assert!(
        written.refused[0].1.contains("22P05"),
        "{:?}",
        written.refused
    );
    assert!(
        written.refused[1].1.contains("22003"),
        "{:?}",
        written.refused
    );
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM rewards")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(total, 40);
}
