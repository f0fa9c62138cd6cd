//! A TCP proxy for fault injection between the service and a store.
//!
//! It forwards to a target until told otherwise:
//! - [`Proxy::down`]: refuses new connections and cuts the open ones (an
//!   unreachable server); [`Proxy::up`] accepts again.
//! - [`Proxy::latency`]: every chunk is held that long before it is forwarded,
//!   both ways.
//! - [`Proxy::black_hole`]: connections stay open and new ones are accepted, but
//!   no byte is forwarded either way. A chunk read at that moment is held, and
//!   the rest waits in the kernel's socket buffers (the sender sees them fill
//!   up): a network partition. TCP never loses bytes inside a connection, so
//!   nothing is discarded: [`Proxy::heal`] delivers what was held, as
//!   retransmission does after a short partition.
//! - [`Proxy::strand`]: the connections open now stay silent for good, while new
//!   ones are forwarded: the server host vanished (its address moved to a
//!   replacement) without a reset, so nothing ever answers the old
//!   connections or closes them. Only a cut ends them.
//! - [`Proxy::cut`]: resets every open connection (RST), and keeps accepting.
//!
//! Bounded: each connection holds at most a few chunks per direction, and its task
//! ends when either side closes, on a cut, or when the proxy is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// The faults in force; every connection watches it.
#[derive(Debug, Clone, Default)]
struct Faults {
    /// New connections are closed at once.
    refuse: bool,
    /// Nothing is forwarded on any connection.
    hole: bool,
    /// Connections with a serial below this are held for good.
    stranded_below: u64,
    latency: Duration,
    /// How many cuts so far: a connection ends at the first one after it opened.
    cuts: u64,
}

impl Faults {
    fn holds(&self, serial: u64) -> bool {
        self.hole || serial < self.stranded_below
    }
}

pub struct Proxy {
    pub port: u16,
    faults: watch::Sender<Faults>,
    accepted: Arc<AtomicU64>,
}

/// The test PostgreSQL's address, as the tests' database URLs name it.
pub const POSTGRES: &str = "127.0.0.1:5432";

impl Proxy {
    /// `db_url` (a URL of the test PostgreSQL) through this proxy.
    pub fn postgres_url(&self, db_url: &str) -> String {
        db_url.replace(POSTGRES, &format!("127.0.0.1:{}", self.port))
    }

    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (faults, mut watching) = watch::channel(Faults::default());
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let client = tokio::select! {
                    r = listener.accept() => match r {
                        Ok((client, _)) => client,
                        Err(_) => continue,
                    },
                    // The proxy was dropped.
                    r = watching.changed() => if r.is_err() { break } else { continue },
                };
                let now = watching.borrow_and_update().clone();
                if now.refuse {
                    let _ = client.set_zero_linger();
                    continue;
                }
                let serial = count.fetch_add(1, Ordering::SeqCst);
                let target = target.clone();
                let faults = watching.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&target).await {
                        relay(client, server, faults, serial, now.cuts).await;
                    }
                });
            }
        });
        Proxy {
            port,
            faults,
            accepted,
        }
    }

    /// Refuses new connections and cuts the open ones.
    pub fn down(&self) {
        self.faults.send_modify(|f| {
            f.refuse = true;
            f.cuts += 1;
        });
    }

    /// Accepts connections again (after [`Proxy::down`]).
    pub fn up(&self) {
        self.faults.send_modify(|f| f.refuse = false);
    }

    /// Holds every chunk for `delay` before forwarding it, both ways.
    pub fn latency(&self, delay: Duration) {
        self.faults.send_modify(|f| f.latency = delay);
    }

    /// Forwards nothing, either way, on open and new connections.
    pub fn black_hole(&self) {
        self.faults.send_modify(|f| f.hole = true);
    }

    /// The connections open now are never forwarded again; new ones are.
    pub fn strand(&self) {
        let next = self.accepted.load(Ordering::SeqCst);
        self.faults.send_modify(|f| {
            f.hole = false;
            f.stranded_below = next;
        });
    }

    /// Resets every open connection; new ones are accepted as before.
    pub fn cut(&self) {
        self.faults.send_modify(|f| f.cuts += 1);
    }

    /// Ends the hole, the latency and any refusal; held bytes are delivered.
    /// Stranded connections stay so.
    pub fn heal(&self) {
        self.faults.send_modify(|f| {
            f.refuse = false;
            f.hole = false;
            f.latency = Duration::ZERO;
        });
    }

    /// Connections accepted and forwarded so far (a reconnecting client opens new ones).
    pub fn connections(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Forwards both ways until either side closes or a cut comes; a cut resets
/// both sockets.
async fn relay(
    mut client: TcpStream,
    mut server: TcpStream,
    faults: watch::Receiver<Faults>,
    serial: u64,
    cuts_at_open: u64,
) {
    let mut cuts = faults.clone();
    let cut = {
        let (client_in, client_out) = client.split();
        let (server_in, server_out) = server.split();
        tokio::select! {
            _ = async {
                tokio::join!(
                    pump(client_in, server_out, faults.clone(), serial),
                    pump(server_in, client_out, faults, serial),
                )
            } => false,
            // Err: the proxy was dropped.
            _ = cuts.wait_for(|f| f.cuts > cuts_at_open) => true,
        }
    };
    if cut {
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
    }
}

/// Copies one direction through a delay line: each chunk is due `latency`
/// after it was read (so latency does not limit throughput), and is held while
/// the connection is black-holed or stranded. At most [`LINE`] chunks wait.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    faults: watch::Receiver<Faults>,
    serial: u64,
) {
    let (line, mut due) = mpsc::channel::<(Instant, Vec<u8>)>(LINE);
    let latency = faults.clone();
    let read = async move {
        loop {
            let mut chunk = vec![0u8; CHUNK];
            match from.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => chunk.truncate(n),
            }
            let at = Instant::now() + latency.borrow().latency;
            if line.send((at, chunk)).await.is_err() {
                break; // the writer stopped
            }
        }
    };
    let write = async move {
        let mut faults = faults;
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if faults.wait_for(|f| !f.holds(serial)).await.is_err() {
                break;
            }
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}

const CHUNK: usize = 16 * 1024;
const LINE: usize = 8;

/// A proxy in front of the local PostgreSQL and a small pool of the test
/// database `db_url` through it (short acquire timeout: faults show fast).
pub async fn postgres_behind_proxy(db_url: &str) -> (Proxy, sqlx::PgPool) {
    let proxy = Proxy::start(POSTGRES.into()).await;
    let url = proxy.postgres_url(db_url);
    let pg = prizewheel::store::pg::pool(&prizewheel::store::pg::PgSettings {
        url: url.into(),
        max_connections: 2,
        acquire_timeout_ms: 500,
        query_timeout_ms: std::num::NonZeroU64::new(1_000).unwrap(),
    })
    .unwrap();
    (proxy, pg)
}

/// A service whose connections to PostgreSQL go through a new proxy, its
/// settings shaped further by `adjust` (the test's own pool stays direct).
pub async fn service_with_postgres_behind_proxy(
    adjust: impl FnOnce(&mut prizewheel::config::Settings),
) -> (Proxy, crate::support::helpers::TestApp) {
    use secrecy::ExposeSecret;
    let proxy = Proxy::start(POSTGRES.into()).await;
    let app = crate::support::helpers::TestApp::spawn_with(|s| {
        s.database.url = proxy.postgres_url(s.database.url.expose_secret()).into();
        adjust(s);
    })
    .await;
    (proxy, app)
}

/// A connection of its own holding `table` locked (ACCESS EXCLUSIVE) in an open
/// transaction: statements on the table wait at the server until it commits.
pub async fn lock_table(db_url: &str, table: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    let mut lock = sqlx::PgConnection::connect(db_url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut lock).await.unwrap();
    sqlx::query(&format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        .execute(&mut lock)
        .await
        .unwrap();
    lock
}

/// `r` is the service's answer to a store that did not answer in time: 503
/// `service_unavailable`.
pub async fn assert_store_unavailable(r: reqwest::Response) {
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "service_unavailable", "{body}");
}
