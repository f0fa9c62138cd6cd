//! A real webhook receiver for the tests: an HTTP server on a port of its own
//! that verifies every request with the `standardwebhooks` crate (the
//! specification's library, as receivers use it), fails a share of them at
//! random, can answer 410 or go down, and records what it saw: every receipt by
//! `webhook-id`, and any moment two requests of one id were in flight at once.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use rand::RngExt;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A test secret, `whsec_` and the base64 of 32 bytes.
pub const SECRET: &str = "whsec_dGhpcyBpcyBhIHRlc3Qgc2VjcmV0IG9mIDMyIGJ5dGVzIQ==";

#[derive(Default)]
pub struct Seen {
    /// Per `webhook-id`: its body on the first receipt.
    pub first: HashMap<String, Value>,
    /// Per `webhook-id`: requests received, and answered 2xx.
    pub received: HashMap<String, u32>,
    pub accepted: HashMap<String, u32>,
    /// Requests of one id that arrived while another of it was in flight.
    pub overlaps: u32,
    /// Requests whose body differed from the first of their id.
    pub changed: u32,
    /// Requests that failed verification, with why.
    pub invalid: Vec<String>,
    in_flight: HashMap<String, u32>,
}

pub struct Receiver {
    pub port: u16,
    /// Per mille of requests answered 500.
    fail_per_mille: AtomicU32,
    gone: AtomicBool,
    /// Longest random pause before answering, in microseconds.
    max_delay_us: AtomicU64,
    verifier: standardwebhooks::Webhook,
    pub seen: Mutex<Seen>,
    server: Mutex<Option<actix_web::dev::ServerHandle>>,
}

impl Receiver {
    /// Listening on a free port, answering 2xx to everything valid.
    pub async fn start() -> Arc<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let r = Arc::new(Receiver {
            port: listener.local_addr().unwrap().port(),
            fail_per_mille: AtomicU32::new(0),
            gone: AtomicBool::new(false),
            max_delay_us: AtomicU64::new(2_000),
            verifier: standardwebhooks::Webhook::new(SECRET).unwrap(),
            seen: Mutex::new(Seen::default()),
            server: Mutex::new(None),
        });
        r.listen(listener);
        r
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    fn listen(self: &Arc<Self>, listener: std::net::TcpListener) {
        let state = web::Data::new(self.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .route("/hooks", web::post().to(hook))
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)
        .unwrap()
        .run();
        *self.server.lock().unwrap() = Some(server.handle());
        tokio::spawn(server);
    }

    /// Fails `per_mille` of the requests with a 500.
    pub fn fail(&self, per_mille: u32) {
        self.fail_per_mille.store(per_mille, Ordering::SeqCst);
    }

    /// Waits up to `max_us` microseconds (at random) before answering.
    pub fn delay(&self, max_us: u64) {
        self.max_delay_us.store(max_us, Ordering::SeqCst);
    }

    /// Answers 410 Gone to everything (or not).
    pub fn gone(&self, gone: bool) {
        self.gone.store(gone, Ordering::SeqCst);
    }

    /// Stops listening: connections are refused until [`Receiver::up`].
    pub async fn down(&self) {
        let handle = self.server.lock().unwrap().take();
        if let Some(h) = handle {
            h.stop(false).await;
        }
    }

    /// Listens again on the same port.
    pub async fn up(self: &Arc<Self>) {
        let addr = format!("127.0.0.1:{}", self.port);
        for _ in 0..100 {
            if let Ok(listener) = std::net::TcpListener::bind(&addr) {
                self.listen(listener);
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("cannot listen on {addr} again");
    }

    /// Ids answered 2xx at least once.
    pub fn accepted_ids(&self) -> std::collections::HashSet<String> {
        self.seen.lock().unwrap().accepted.keys().cloned().collect()
    }

    /// The first body of `id`.
    pub fn body(&self, id: &str) -> Option<Value> {
        self.seen.lock().unwrap().first.get(id).cloned()
    }

    /// Bodies of type `kind`, first receipts.
    pub fn of_type(&self, kind: &str) -> Vec<Value> {
        let seen = self.seen.lock().unwrap();
        seen.first
            .values()
            .filter(|b| b["type"] == kind)
            .cloned()
            .collect()
    }

    /// Panics on any invalid signature, changed body or overlap.
    pub fn assert_clean(&self) {
        let seen = self.seen.lock().unwrap();
        assert!(
            seen.invalid.is_empty(),
            "invalid requests: {:?}",
            &seen.invalid[..seen.invalid.len().min(5)]
        );
        assert_eq!(
            seen.changed, 0,
            "a retry carried another body than the first"
        );
        assert_eq!(seen.overlaps, 0, "a delivery was in flight twice at once");
    }
}

async fn hook(r: web::Data<Arc<Receiver>>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let mut headers = http::HeaderMap::new();
    for (name, value) in req.headers() {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(n, v);
        }
    }
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if let Err(e) = r.verifier.verify(&body, &headers) {
        r.seen.lock().unwrap().invalid.push(format!("{id}: {e}"));
        return HttpResponse::BadRequest().finish();
    }
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            r.seen
                .lock()
                .unwrap()
                .invalid
                .push(format!("{id}: not JSON: {e}"));
            return HttpResponse::BadRequest().finish();
        }
    };
    {
        let mut seen = r.seen.lock().unwrap();
        let flying = seen.in_flight.entry(id.clone()).or_default();
        *flying += 1;
        if *flying > 1 {
            seen.overlaps += 1;
        }
        *seen.received.entry(id.clone()).or_default() += 1;
        match seen.first.get(&id) {
            Some(first) if first["data"] != parsed["data"] || first["type"] != parsed["type"] => {
                seen.changed += 1
            }
            Some(_) => {}
            None => {
                seen.first.insert(id.clone(), parsed);
            }
        }
    }
    let (delay, fail) = {
        let mut rng = rand::rng();
        let max = r.max_delay_us.load(Ordering::SeqCst);
        (
            rng.random_range(0..=max),
            rng.random_range(0..1000) < r.fail_per_mille.load(Ordering::SeqCst),
        )
    };
    tokio::time::sleep(std::time::Duration::from_micros(delay)).await;
    let answer = if r.gone.load(Ordering::SeqCst) {
        HttpResponse::Gone().finish()
    } else if fail {
        HttpResponse::InternalServerError().finish()
    } else {
        HttpResponse::NoContent().finish()
    };
    let mut seen = r.seen.lock().unwrap();
    if answer.status().is_success() {
        *seen.accepted.entry(id.clone()).or_default() += 1;
    }
    if let Some(flying) = seen.in_flight.get_mut(&id) {
        *flying -= 1;
    }
    answer
}
