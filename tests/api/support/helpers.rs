//! Test fixtures: a private database per test, the service on port 0, tokens,
//! unique campaigns and direct Redis access for assertions.
//!
//! Redis and PostgreSQL are real: scripts/test.sh starts a project Redis on
//! `PRIZEWHEEL_TEST_REDIS_URL` and points `PRIZEWHEEL_TEST_DATABASE_URL` at the
//! local server. Each test uses its own campaign ids (so tests run in parallel on
//! one Redis) and its own database, dropped at the end.

use prizewheel::admission::AdmissionSettings;
use prizewheel::campaign::parse_campaign;
use prizewheel::config::Settings;
use prizewheel::domain::CampaignId;
use prizewheel::http::HttpSettings;
use prizewheel::http::auth::{AuthSettings, Claims, JwtAlgorithm, sign_hs256};
use prizewheel::rollout::apply::{ApplyReport, apply};
use prizewheel::startup::Application;
use prizewheel::store::pg::{self, PgSettings};
use prizewheel::store::redis::keys::CampaignKeys;
use prizewheel::store::redis::{RedisSettings, RedisStore};
use prizewheel::telemetry::LogSettings;
use sqlx::{Connection, PgConnection, PgPool};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use crate::support::private_redis::PrivateRedis;

pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";
pub const AUDIENCE: &str = "prizewheel-tests";

pub fn redis_url() -> String {
    std::env::var("PRIZEWHEEL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6391".into())
}

/// The test Redis, for components that open their own connections (settlers).
pub fn redis_target() -> prizewheel::store::redis::connection::RedisTarget {
    prizewheel::store::redis::connection::RedisTarget::Single(
        redis::Client::open(redis_url()).unwrap(),
    )
}

/// Seed nodes of the test Redis Cluster that scripts/test.sh starts.
pub fn cluster_seeds() -> Vec<String> {
    std::env::var("PRIZEWHEEL_TEST_REDIS_CLUSTER")
        .expect("PRIZEWHEEL_TEST_REDIS_CLUSTER names the test Redis Cluster (run scripts/test.sh)")
        .split(',')
        .map(str::to_owned)
        .collect()
}

fn maintenance_url() -> String {
    std::env::var("PRIZEWHEEL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A unique lowercase id with a readable prefix.
pub fn unique(prefix: &str) -> String {
    format!(
        "t-{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A database of its own, migrated; dropped when the value is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    pub async fn new() -> Self {
        let name = format!("pw_test_{}", uuid::Uuid::new_v4().simple());
        let maintenance = maintenance_url();
        let mut conn = PgConnection::connect(&maintenance).await.expect(
            "PostgreSQL is reachable at PRIZEWHEEL_TEST_DATABASE_URL (run scripts/test.sh)",
        );
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let base = maintenance
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap()
            .to_owned();
        let url = format!("{base}/{name}");
        let pool = pg::pool(&pg_settings(&url)).unwrap();
        pg::migrate(&pool).await.expect("migrations apply");
        TestDb { name, url, pool }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let url = maintenance_url();
        // Drop runs outside async context: use a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut c) = PgConnection::connect(&url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut c)
                        .await;
                }
            });
        })
        .join();
    }
}

fn pg_settings(url: &str) -> PgSettings {
    PgSettings {
        url: url.to_owned().into(),
        max_connections: 4,
        acquire_timeout_ms: 5000,
        query_timeout_ms: std::num::NonZeroU64::new(30_000).unwrap(),
    }
}

pub fn redis_settings(url: &str) -> RedisSettings {
    RedisSettings {
        url: Some(url.to_owned().into()),
        cluster_nodes: Vec::new(),
        connections: 2,
        response_timeout_ms: 2000,
        connect_timeout_ms: 2000,
        max_in_flight: 256,
        in_flight_wait_ms: 2000,
        durability: Default::default(),
        waitaof_timeout_ms: 500,
    }
}

/// The tests' token settings (HS256 with [`SECRET`], audience [`AUDIENCE`]).
pub fn settings_for_auth() -> AuthSettings {
    AuthSettings {
        algorithm: JwtAlgorithm::HS256,
        secret: Some(SECRET.to_owned().into()),
        public_key_file: None,
        issuer: None,
        audience: Some(AUDIENCE.into()),
        leeway_seconds: 5,
        max_token_lifetime_secs: prizewheel::http::auth::default_max_token_lifetime(),
    }
}

pub fn settings(db: &TestDb, redis_url: &str) -> Settings {
    Settings {
        listen: "127.0.0.1:0".into(),
        redis: redis_settings(redis_url),
        database: pg_settings(&db.url),
        auth: settings_for_auth(),
        http: HttpSettings {
            workers: 2,
            ..HttpSettings::default()
        },
        log: LogSettings::default(),
        settle: prizewheel::settle::SettleSettings {
            enabled: false,
            ..Default::default()
        },
        admission: without_rate_limits(),
        webhooks: Vec::new(),
        deliver: Default::default(),
    }
}

/// The service's admission defaults with the rate limiters off: most tests
/// hammer a few users from one address on purpose. The quota cache stays on, so
/// every quota test also holds it to Redis's answers. tests/api/admission.rs
/// turns the limiters on.
pub fn without_rate_limits() -> AdmissionSettings {
    let mut a = AdmissionSettings::default();
    a.per_ip.enabled = false;
    a.per_user.enabled = false;
    a.per_granter.enabled = false;
    a.global.enabled = false;
    a
}

/// A running service on port 0 with its own database, plus a Redis handle of the
/// test's own for setup and assertions.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub redis: RedisStore,
    pub db: TestDb,
    /// Campaigns whose keys are deleted when the app is dropped.
    campaigns: std::sync::Mutex<Vec<CampaignId>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns with settings adjusted by `adjust`.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> Self {
        init_logs();
        let db = TestDb::new().await;
        let mut s = settings(&db, &redis_url());
        adjust(&mut s);
        let address = spawn_server(s.clone()).await;
        let redis = RedisStore::connect(&s.redis)
            .await
            .expect("test Redis is up (run scripts/test.sh)");
        TestApp {
            address,
            client: client(),
            redis,
            db,
            campaigns: Default::default(),
        }
    }

    /// Applies a campaign through the library (as `campaign apply` does).
    pub async fn apply(&self, yaml: &str) -> ApplyReport {
        let c = parse_campaign(yaml).unwrap_or_else(|e| panic!("test campaign is valid: {e:?}"));
        self.track(&c.id);
        apply(
            &self.redis,
            &self.db.pool,
            Duration::from_secs(30),
            &c,
            yaml,
            "tests",
        )
        .await
        .expect("apply")
    }

    pub fn track(&self, id: &CampaignId) {
        self.campaigns.lock().unwrap().push(id.clone());
    }

    /// `GET path` (e.g. `/readyz`) on the service, no token.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn spin(&self, campaign: &str, user: &str, key: &str) -> reqwest::Response {
        spin(
            &self.client,
            &self.address,
            campaign,
            &token(user, &[]),
            key,
            None,
        )
        .await
    }

    /// A connection of the test's own to the Redis at `url`.
    pub async fn redis_conn_to(&self, url: &str) -> redis::aio::MultiplexedConnection {
        redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    pub async fn redis_conn(&self) -> redis::aio::MultiplexedConnection {
        // No response timeout: assertions may read large keys while other tests
        // keep Redis busy.
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
        redis::Client::open(redis_url())
            .unwrap()
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let ids = std::mem::take(&mut *self.campaigns.lock().unwrap());
        if let Ok(client) = redis::Client::open(redis_url())
            && let Ok(mut c) = client.get_connection()
        {
            for id in ids {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(CampaignKeys::new(&id).pattern())
                    .query(&mut c)
                    .unwrap_or_default();
                if !keys.is_empty() {
                    let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut c);
                }
            }
        }
    }
}

/// Starts the service in the background; returns its base URL.
pub async fn spawn_server(s: Settings) -> String {
    let app = Application::build(s).await.expect("the service starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    address
}

pub fn client() -> reqwest::Client {
    prizewheel::telemetry::install_tls_provider();
    reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        // Below actix's 5 s keep-alive: never reuse a connection the server may
        // be closing at that moment (the request would fail with IncompleteMessage).
        .pool_idle_timeout(std::time::Duration::from_secs(2))
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A valid HS256 token for `sub` with `roles`.
pub fn token(sub: &str, roles: &[&str]) -> String {
    sign_hs256(
        SECRET,
        &Claims {
            sub: sub.into(),
            exp: now_secs() + 600,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            iss: None,
            aud: Some(AUDIENCE.into()),
        },
    )
    .unwrap()
}

/// A spin; `body` is JSON text sent exactly as given (serde_json's `Value`
/// would round numbers through f64: a test of the canonical form needs them as
/// written).
pub async fn spin(
    client: &reqwest::Client,
    address: &str,
    campaign: &str,
    token: &str,
    key: &str,
    body: Option<&str>,
) -> reqwest::Response {
    let mut req = client
        .post(format!("{address}/v1/campaigns/{campaign}/spins"))
        .bearer_auth(token)
        .header("Idempotency-Key", key);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_owned());
    }
    send(req).await
}

/// `POST /v1/campaigns/{campaign}/grants` as the order service (role
/// `grants`); `body` is JSON text sent as given.
pub async fn grant(
    client: &reqwest::Client,
    address: &str,
    campaign: &str,
    grant_id: &str,
    body: &str,
) -> reqwest::Response {
    let req = client
        .post(format!("{address}/v1/campaigns/{campaign}/grants"))
        .bearer_auth(token("order-service", &["grants"]))
        .header("Idempotency-Key", grant_id)
        .header("content-type", "application/json")
        .body(body.to_owned());
    send(req).await
}

/// `DELETE /v1/campaigns/{campaign}/grants/{grant_id}` as the order service.
pub async fn revoke(
    client: &reqwest::Client,
    address: &str,
    campaign: &str,
    grant_id: &str,
) -> reqwest::Response {
    let req = client
        .delete(format!(
            "{address}/v1/campaigns/{campaign}/grants/{grant_id}"
        ))
        .bearer_auth(token("order-service", &["grants"]));
    send(req).await
}

/// Sends `req`, and sends it again (twice at most) when it was never written.
/// actix answers 408 on a connection that has carried no request for its
/// `client_request_timeout` (5 s); in a burst, hyper's pool opens connections
/// it ends up not using, and on a loaded machine one can be that old when a
/// request is queued on it: hyper then fails that request ("received
/// unexpected message from connection") before writing a byte of it. Any
/// client sends it again; for a spin the Idempotency-Key would make even a
/// repeat of a delivered request safe.
pub async fn send(req: reqwest::RequestBuilder) -> reqwest::Response {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let again = req.try_clone().expect("a request that can be sent again");
        match again.send().await {
            Ok(res) => return res,
            Err(e) if attempts < 3 && never_written(&e) => {
                eprintln!("sending again, never written: {e}");
            }
            Err(e) => panic!("request sent: {e:?}"),
        }
    }
}

/// hyper's error for bytes that arrived on an idle connection, in `e`'s chain.
fn never_written(e: &reqwest::Error) -> bool {
    let mut cause: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cause {
        if c.to_string() == "received unexpected message from connection" {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Campaign YAML with sensible defaults, shaped by the caller.
pub struct Spec {
    pub id: String,
    pub starts_at: String,
    pub ends_at: String,
    pub timezone: &'static str,
    pub spins_per_user: u32,
    pub per_day: Option<u32>,
    pub paused: bool,
    pub expected_users: u64,
    /// (id, weight, stock) ; stock `None` = unlimited. The last one is the fallback.
    pub prizes: Vec<(&'static str, u64, Option<u64>)>,
    /// `earned_spins`: (free, expire), e.g. (1, "campaign_end").
    pub earned: Option<(u32, &'static str)>,
    /// `budget` amount in INR, e.g. "55.50".
    pub budget: Option<String>,
    /// A prize's value amount in INR (default "1.50").
    pub amounts: std::collections::HashMap<&'static str, String>,
    /// A prize's `release` (its YAML value, e.g. "even" or "{ per_day: 3 }").
    pub releases: std::collections::HashMap<&'static str, String>,
    /// Prizes with `stock: codes` (their stock in `prizes` is ignored).
    pub code_prizes: Vec<&'static str>,
}

impl Spec {
    pub fn new(prefix: &str) -> Self {
        let now = chrono::Utc::now();
        Spec {
            id: unique(prefix),
            starts_at: (now - chrono::Duration::hours(1)).to_rfc3339(),
            ends_at: (now + chrono::Duration::days(30)).to_rfc3339(),
            timezone: "UTC",
            spins_per_user: 1000,
            per_day: None,
            paused: false,
            expected_users: 10_000,
            prizes: vec![("gold", 1, Some(10)), ("none", 9, None)],
            earned: None,
            budget: None,
            amounts: Default::default(),
            releases: Default::default(),
            code_prizes: Vec::new(),
        }
    }

    /// Moves the start to today's first instant in the campaign's time zone
    /// when the default (an hour ago) falls on the day before: campaign day 0
    /// is then today, whatever the hour the test runs at. Per-day releases and
    /// limits count days from the start (a test run at 00:30 local time would
    /// otherwise already be on day 1). Call it after setting `timezone`.
    pub fn start_within_today(&mut self) {
        let tz: chrono_tz::Tz = self.timezone.parse().unwrap();
        let now = chrono::Utc::now();
        let midnight = now
            .with_timezone(&tz)
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_local_timezone(tz)
            .earliest()
            .unwrap()
            .with_timezone(&chrono::Utc);
        self.starts_at = (now - chrono::Duration::hours(1))
            .max(midnight)
            .to_rfc3339();
    }

    pub fn yaml(&self) -> String {
        let mut y = format!(
            "id: {}\nname: Test {}\ntimezone: {}\nstarts_at: {}\nends_at: {}\npaused: {}\nexpected_users: {}\nlimits:\n  spins_per_user: {}\n",
            self.id,
            self.id,
            self.timezone,
            self.starts_at,
            self.ends_at,
            self.paused,
            self.expected_users,
            self.spins_per_user
        );
        if let Some(d) = self.per_day {
            y.push_str(&format!("  spins_per_user_per_day: {d}\n"));
        }
        if let Some((free, expire)) = self.earned {
            y.push_str(&format!(
                "earned_spins:\n  free: {free}\n  expire: {expire}\n"
            ));
        }
        if let Some(b) = &self.budget {
            y.push_str(&format!("budget: {{ amount: \"{b}\", currency: INR }}\n"));
        }
        y.push_str(&format!(
            "fallback: {}\nprizes:\n",
            self.prizes.last().unwrap().0
        ));
        for (id, w, stock) in &self.prizes {
            let stock = if self.code_prizes.contains(id) {
                "codes".to_owned()
            } else {
                stock.map_or("unlimited".to_owned(), |s| s.to_string())
            };
            let amount = self.amounts.get(id).map_or("1.50", String::as_str);
            y.push_str(&format!(
                "  - id: {id}\n    name: Prize {id}\n    weight: {w}\n    stock: {stock}\n    value: {{ amount: \"{amount}\", currency: INR }}\n"
            ));
            if let Some(r) = self.releases.get(id) {
                y.push_str(&format!("    release: {r}\n"));
            }
        }
        y
    }
}

fn init_logs() {
    if std::env::var("TEST_LOG").is_ok() {
        prizewheel::telemetry::init(&LogSettings::default());
    }
}

/// Redis hash of per-prize counts as a map.
pub async fn hash_counts(
    conn: &mut impl redis::aio::ConnectionLike,
    key: &str,
) -> std::collections::HashMap<String, i64> {
    redis::cmd("HGETALL")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap()
}

/// The (spin id, prize) of every spin entry in the campaign's results stream,
/// in order. Read in pages: one reply of a whole 5,000-entry stream could
/// outlast the service connection's response timeout on a loaded machine.
pub async fn stream_prizes(
    conn: &mut impl redis::aio::ConnectionLike,
    campaign: &str,
) -> Vec<(String, String)> {
    type Page = Vec<(String, std::collections::HashMap<String, String>)>;
    let keys = CampaignKeys::new(&CampaignId::parse(campaign).unwrap());
    let mut out = Vec::new();
    let mut start = "-".to_owned();
    loop {
        let page: Page = redis::cmd("XRANGE")
            .arg(&keys.results)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(500)
            .query_async(conn)
            .await
            .unwrap();
        let Some((last, _)) = page.last() else {
            return out;
        };
        start = format!("({last}");
        let full = page.len() == 500;
        out.extend(
            page.into_iter()
                .filter(|(_, f)| f.get("type").map(String::as_str) == Some("spin"))
                .map(|(_, f)| (f["spin"].clone(), f["prize"].clone())),
        );
        if !full {
            return out;
        }
    }
}

/// A temporary folder removed on drop.
/// Runs the `prizewheel` binary with `args` against the given stores; returns
/// whether it succeeded and its stdout and stderr.
pub fn cli(args: &[&str], redis_url: &str, database_url: &str) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_prizewheel"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("REDIS_URL", redis_url)
        .env("DATABASE_URL", database_url)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let p = std::env::temp_dir().join(format!("pw-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One draw with a chosen `R`; `n` makes the request unique.
pub async fn draw(
    app: &TestApp,
    campaign: &CampaignId,
    user: &prizewheel::domain::UserId,
    n: u64,
    r: u64,
) -> prizewheel::store::redis::spin::Drawn {
    let key = prizewheel::domain::IdempotencyKey::parse(&format!("k{n}")).unwrap();
    let call = prizewheel::store::redis::spin::SpinCall {
        campaign,
        user,
        key: &key,
        user_hash: prizewheel::draw::user_hash(user.as_str()),
        record_field: n.to_be_bytes(),
        fingerprint: [0; 8],
        r,
        spin_id: uuid::Uuid::now_v7(),
        context: "",
    };
    app.redis.spin(&call).await.expect("redis").expect("drawn")
}
