//! `prizewheel serve` as a child process, configured the way an operator does
//! it (the contract environment variables and `PRIZEWHEEL__…` overrides): wait
//! for it to come up, or for it to refuse to start.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Serve {
    pub port: u16,
    child: Child,
}

impl Serve {
    /// `serve` on a free port against `redis_url` and the database `db_url`,
    /// logging at `warn`, with `env` on top.
    pub fn start(redis_url: &str, db_url: &str, env: &[(&str, &str)]) -> Self {
        Self::command(&["serve"], redis_url, db_url, env)
    }

    /// `prizewheel ARGS` (e.g. `deliver --config FILE`), set up as [`Serve::start`]
    /// sets up `serve`.
    pub fn command(args: &[&str], redis_url: &str, db_url: &str, env: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_prizewheel"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("PRIZEWHEEL_LISTEN", format!("127.0.0.1:{port}"))
            .env("REDIS_URL", redis_url)
            .env("DATABASE_URL", db_url)
            .env("PRIZEWHEEL_JWT_SECRET", crate::support::helpers::SECRET)
            .env("PRIZEWHEEL__LOG__FILTER", "warn")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Serve { port, child }
    }

    /// True once GET /healthz answers 200 (within 10 s); false when the
    /// process exits or never answers.
    pub async fn up(&mut self) -> bool {
        let client = crate::support::helpers::client();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return false;
            }
            if let Ok(r) = client
                .get(format!("http://127.0.0.1:{}/healthz", self.port))
                .send()
                .await
            {
                return r.status() == 200;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Waits (up to 20 s) for `serve` to give up, and returns its output, which
    /// must hold exactly one `prizewheel: error:` line.
    pub async fn refusal(mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not refuse to start within 20 s: {}",
                self.stop()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let err = self.stop();
        assert!(!status.success(), "serve exited successfully: {err}");
        let errors = err
            .lines()
            .filter(|l| l.starts_with("prizewheel: error:"))
            .count();
        assert_eq!(errors, 1, "one error line: {err}");
        err
    }

    /// The CPU time the process has used so far, all its threads, user and
    /// system (`/proc/PID/stat`, in clock ticks of `getconf CLK_TCK`, 10 ms).
    /// Unlike the wall-clock time of a request, it does not grow while other
    /// processes hold the cores.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // After the command name in parentheses: state, then fields 4..; utime
        // and stime are fields 14 and 15.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second() as f64)
    }

    /// Sends `signal` (a name `kill` knows, e.g. `INT`, `TERM`) to the process.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal}");
    }

    /// Its exit status once it has exited by itself, waiting up to `limit`.
    pub async fn exited_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Stops it (if still running) and returns everything it wrote: its logs
    /// (stdout), then its errors (stderr). At `warn` both stay far below a pipe's
    /// buffer, so the child never blocks on them.
    pub fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut out = String::new();
        if let Some(mut pipe) = self.child.stdout.take() {
            let _ = pipe.read_to_string(&mut out);
        }
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut out);
        }
        out
    }
}

/// `getconf CLK_TCK`: the unit of the times in `/proc/PID/stat`.
fn clock_ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    })
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
