//! `prizewheel healthcheck`: probe a running service's `GET /healthz` and exit 0
//! on a 200, 1 otherwise. It is the container HEALTHCHECK: the slim runtime image
//! has no curl or wget.
//!
//! One plain HTTP/1.1 request over `std::net::TcpStream` (no TLS: the probe runs
//! beside the service), under one deadline that covers connecting, sending and
//! reading the status line.

use anyhow::{Context, bail};
use clap::Args;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// URL to probe, `http://host:port[/path]` (the path defaults to /healthz).
    /// Default: `http://LISTEN/healthz`, LISTEN being PRIZEWHEEL_LISTEN, else
    /// PRIZEWHEEL__LISTEN, else the config file's `listen`; a wildcard host
    /// (0.0.0.0, [::]) is probed on loopback.
    #[arg(long)]
    url: Option<String>,
    /// Give up after this many milliseconds, connecting and reading included.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
}

/// Probes once; `Ok` only for a 200. Every failure is one line.
pub fn run(a: HealthcheckArgs, config: &Path) -> anyhow::Result<()> {
    let url = match a.url {
        Some(u) => u,
        None => format!("http://{}/healthz", loopback(&listen_address(config)?)),
    };
    let target = Target::parse(&url)?;
    let url = format!("http://{}{}", target.authority, target.path);
    let deadline = Instant::now() + Duration::from_millis(a.timeout_ms);
    let status = probe(&target, deadline).with_context(|| format!("healthcheck {url}"))?;
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("healthcheck {url}: answered {status}");
    }
    println!("healthy: {url} answered {status}");
    Ok(())
}

/// Where the service listens, as `serve` would read it.
fn listen_address(config: &Path) -> anyhow::Result<String> {
    for var in ["PRIZEWHEEL_LISTEN", "PRIZEWHEEL__LISTEN"] {
        if let Ok(v) = std::env::var(var)
            && !v.trim().is_empty()
        {
            return Ok(v.trim().to_owned());
        }
    }
    #[derive(serde::Deserialize)]
    struct ListenOnly {
        listen: Option<String>,
    }
    let text = std::fs::read_to_string(config).with_context(|| {
        format!(
            "no address to probe: PRIZEWHEEL_LISTEN is not set and {} cannot be read (or pass --url)",
            config.display()
        )
    })?;
    let file: ListenOnly = serde_saphyr::from_str(&text).map_err(|e| {
        anyhow::anyhow!("{}: {}", config.display(), e.to_string().replace('\n', " "))
    })?;
    file.listen
        .with_context(|| format!("{} has no `listen` (or pass --url)", config.display()))
}

/// A listen address made probe-able: the wildcard hosts become loopback.
fn loopback(listen: &str) -> String {
    if let Some(port) = listen.strip_prefix("0.0.0.0:") {
        format!("127.0.0.1:{port}")
    } else if let Some(port) = listen.strip_prefix("[::]:") {
        format!("[::1]:{port}")
    } else {
        listen.to_owned()
    }
}

/// An `http://` URL split into what the request needs.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// `host:port` as written (also the Host header).
    authority: String,
    /// Path and query, starting with `/`.
    path: String,
}

impl Target {
    fn parse(url: &str) -> anyhow::Result<Self> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("healthcheck: `{url}` is not an http:// URL");
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() {
            bail!("healthcheck: `{url}` names no host");
        }
        let path = if path.is_empty() || path == "/" {
            "/healthz"
        } else {
            path
        };
        Ok(Target {
            authority: authority.to_owned(),
            path: path.to_owned(),
        })
    }

    fn addresses(&self) -> anyhow::Result<Vec<SocketAddr>> {
        let addrs = match self.authority.to_socket_addrs() {
            Ok(a) => a.collect(),
            // No port given: HTTP's own.
            Err(_) => format!("{}:80", self.authority)
                .to_socket_addrs()
                .with_context(|| format!("cannot resolve {}", self.authority))?
                .collect(),
        };
        Ok(addrs)
    }
}

/// Sends the request and returns the response's status line.
fn probe(target: &Target, deadline: Instant) -> anyhow::Result<String> {
    let mut stream = connect(target, deadline)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: prizewheel-healthcheck\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    );
    stream.set_write_timeout(Some(left(deadline)?))?;
    stream
        .write_all(request.as_bytes())
        .map_err(|e| timed_out(e, "sending the request"))?;
    let mut head = Vec::with_capacity(128);
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") {
        if head.len() > 4096 {
            bail!("the status line is longer than 4 KiB");
        }
        stream.set_read_timeout(Some(left(deadline)?))?;
        match stream.read(&mut buf) {
            Ok(0) => bail!("the connection closed before a status line"),
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(timed_out(e, "reading the answer")),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.split("\r\n").next().unwrap_or_default().trim();
    if !line.starts_with("HTTP/") {
        bail!("not an HTTP answer: {line:.80}");
    }
    Ok(line.to_owned())
}

fn connect(target: &Target, deadline: Instant) -> anyhow::Result<TcpStream> {
    let mut last = None;
    for addr in target.addresses()? {
        match TcpStream::connect_timeout(&addr, left(deadline)?) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some((addr, e)),
        }
    }
    match last {
        Some((addr, e)) => Err(timed_out(e, &format!("connecting to {addr}"))),
        None => bail!("{} resolves to no address", target.authority),
    }
}

/// Time left before the deadline; an error once it has passed.
fn left(deadline: Instant) -> anyhow::Result<Duration> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => bail!("no answer within the timeout"),
    }
}

fn timed_out(e: std::io::Error, doing: &str) -> anyhow::Error {
    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
        anyhow::anyhow!("no answer within the timeout ({doing})")
    } else {
        anyhow::anyhow!("{doing}: {e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_path() {
        let t = Target::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("127.0.0.1:8080", "/healthz")
        );
        let t = Target::parse("http://app:9000/readyz?x=1").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("app:9000", "/readyz?x=1")
        );
        assert!(Target::parse("https://app:8080/healthz").is_err());
        assert!(Target::parse("http:///healthz").is_err());
    }

    #[test]
    fn wildcard_listen_addresses_are_probed_on_loopback() {
        assert_eq!(loopback("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(loopback("[::]:8080"), "[::1]:8080");
        assert_eq!(loopback("10.1.2.3:8080"), "10.1.2.3:8080");
    }
}
