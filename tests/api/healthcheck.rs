//! `prizewheel healthcheck`, the container health check: exit 0 on a 200 from
//! the running service, 1 with one line on stderr when the port is closed, the
//! answer is not a 200 or no answer comes in time.

use crate::support::helpers::{TempDir, TestApp};
use std::time::{Duration, Instant};

/// Runs the binary's `healthcheck` with `args` and `env`; PRIZEWHEEL_LISTEN is
/// taken from `env` only. Returns (exit code, stdout, stderr).
async fn healthcheck(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_prizewheel"));
    cmd.arg("healthcheck")
        .args(args)
        .env_remove("PRIZEWHEEL_LISTEN")
        .env_remove("PRIZEWHEEL__LISTEN")
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn port_of(address: &str) -> &str {
    address.rsplit_once(':').unwrap().1
}

/// A port nothing listens on: bound once by the OS, then released.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_running_service_is_healthy() {
    let app = TestApp::spawn().await;
    let (code, out, err) = healthcheck(&["--url", &app.address], &[]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("/healthz") && out.contains("200"), "{out}");
    assert!(err.is_empty(), "{err}");

    // Default address: PRIZEWHEEL_LISTEN, its wildcard host probed on loopback.
    let listen = format!("0.0.0.0:{}", port_of(&app.address));
    let (code, out, err) = healthcheck(&[], &[("PRIZEWHEEL_LISTEN", &listen)]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("http://127.0.0.1:"), "{out}");

    // Without PRIZEWHEEL_LISTEN: the config file's `listen`.
    let dir = TempDir::new();
    let config = dir.0.join("service.yaml");
    std::fs::write(&config, format!("listen: {listen}\nredis: {{}}\n")).unwrap();
    let config = config.to_str().unwrap();
    let (code, _, err) = healthcheck(&["--config", config], &[]).await;
    assert_eq!(code, 0, "{err}");
}

#[tokio::test]
async fn a_closed_port_fails_with_one_line() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let (code, out, err) = healthcheck(&["--url", &url], &[]).await;
    assert_eq!(code, 1);
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("prizewheel: error: healthcheck") && err.contains(&url),
        "{err}"
    );
}

#[tokio::test]
async fn an_answer_other_than_200_fails() {
    let app = TestApp::spawn().await;
    let url = format!("{}/no/such/path", app.address);
    let (code, _, err) = healthcheck(&["--url", &url], &[]).await;
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("answered HTTP/1.1 404"), "{err}");
}

#[tokio::test]
async fn a_silent_service_fails_within_the_timeout() {
    // Accepted by the kernel's backlog, never answered.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/healthz", listener.local_addr().unwrap());
    let started = Instant::now();
    let (code, _, err) = healthcheck(&["--url", &url, "--timeout-ms", "300"], &[]).await;
    assert_eq!(code, 1);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no answer within the timeout"), "{err}");
    drop(listener);
}
