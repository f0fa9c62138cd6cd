//! A headless Chromium driven through WebDriver (Debian's `chromium` and
//! `chromium-driver`, which scripts/test.sh installs and names in
//! `PRIZEWHEEL_TEST_CHROMIUM` and `PRIZEWHEEL_TEST_CHROMEDRIVER`), for the
//! console's tests: chromedriver on a free port in a process group of its own,
//! killed with everything it started when the [`Browser`] is dropped (also on
//! a failed assertion); one browser at a time in the test binary; bounded
//! polling for what the page shows; screenshots checked not to be blank.

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for anything the page should show: the suite runs many tests
/// at once on two cores, and a debug build serves slowly then.
pub const PATIENCE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

/// Chromium is heavy: the tests of one binary take turns.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// 1280×800, the console's desktop target.
pub const DESKTOP: (u32, u32) = (1280, 800);

fn binary(var: &str, default: &str) -> String {
    let path = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: run bash scripts/test.sh, which installs chromium and chromium-driver \
         and names them in PRIZEWHEEL_TEST_CHROMIUM and PRIZEWHEEL_TEST_CHROMEDRIVER"
    );
    path
}

/// chromedriver and every process it started, killed when dropped: the
/// browser and its helpers share the driver's process group; Chromium's crash
/// handlers leave it (a session of their own) but name the profile's folder in
/// their command line (`--database=<profile>/config/chromium/Crash Reports`,
/// from `XDG_CONFIG_HOME`), and are found by it.
struct Driver {
    child: Child,
    /// The profile's folder, unique to this browser.
    profile: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group's id is the driver's pid (`process_group(0)`).
        let group = self.child.id();
        let mut pids: Vec<String> = vec![format!("-{group}")];
        pids.extend(processes_naming(&self.profile).iter().map(u32::to_string));
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg("--")
            .args(&pids)
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Browser {
    pub client: Client,
    // Dropped in this order: the session, the processes, the profile, the turn.
    driver: Driver,
    profile: crate::support::helpers::TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Browser {
    /// A new headless Chromium at 1280×800 with an empty profile.
    pub async fn start() -> Self {
        let turn = TURN.lock().await;
        let chromium = binary("PRIZEWHEEL_TEST_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = binary("PRIZEWHEEL_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
        let profile = crate::support::helpers::TempDir::new();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = profile.0.join("config");
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .env("XDG_CONFIG_HOME", &config)
                .env("XDG_CACHE_HOME", profile.0.join("cache"))
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {chromedriver}: {e}"))
        };
        let driver = Driver {
            child,
            profile: profile.0.display().to_string(),
        };
        let url = format!("http://127.0.0.1:{port}");
        wait_until_ready(&url).await;
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                    format!("--user-data-dir={}", profile.0.join("data").display()),
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-extensions",
                    "--hide-scrollbars",
                ],
                // Downloads (the finance page's CSV) land in the profile's
                // folder, without asking.
                "prefs": {
                    "download.default_directory": profile.0.join("downloads").display().to_string(),
                    "download.prompt_for_download": false,
                },
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("no WebDriver session from {chromedriver}: {e}"));
        Browser {
            client,
            driver,
            profile,
            _turn: turn,
        }
    }

    /// Ends the session (Chromium quits), then the driver goes with the value.
    pub async fn close(self) {
        let Browser {
            client,
            driver,
            profile,
            _turn,
        } = self;
        let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        drop(driver);
        drop(profile);
    }

    /// The process group of chromedriver and the browser it started.
    pub fn process_group(&self) -> u32 {
        self.driver.child.id()
    }

    /// Where the browser saves downloads.
    pub fn downloads(&self) -> std::path::PathBuf {
        std::path::Path::new(&self.driver.profile).join("downloads")
    }

    /// The folder of this browser's profile (its data, config and cache).
    pub fn profile(&self) -> String {
        self.driver.profile.clone()
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    pub async fn resize(&self, (width, height): (u32, u32)) {
        self.client.set_window_size(width, height).await.unwrap();
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// The text of the first element matching `css` once `ready` holds for
    /// it, polling every 100 ms for at most [`PATIENCE`].
    pub async fn text_when(&self, css: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut last = None;
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = e.text().await
            {
                if ready(&text) {
                    return text;
                }
                last = Some(text);
            }
            assert!(
                Instant::now() < deadline,
                "`{css}` did not show what was expected within {PATIENCE:?}; last seen: {last:?}; at {}",
                self.client
                    .current_url()
                    .await
                    .map(|u| u.to_string())
                    .unwrap_or_default()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for `css` to show text containing `part`.
    pub async fn text_containing(&self, css: &str, part: &str) -> String {
        self.text_when(css, |t| t.contains(part)).await
    }

    /// Waits for the page's URL path to become `path`.
    pub async fn at_path(&self, path: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let now = self.client.current_url().await.unwrap();
            if now.path() == path {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "still at {now} after {PATIENCE:?}, expected {path}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Whether the element with id `id` exists and is hidden (`hidden` on it
    /// or an ancestor, or not rendered).
    pub async fn hidden(&self, id: &str) -> bool {
        let v = self
            .js(
                "const e = document.getElementById(arguments[0]); \
                 return e === null || e.closest('[hidden]') !== null || e.getClientRects().length === 0;",
                vec![json!(id)],
            )
            .await;
        v.as_bool().unwrap()
    }

    /// Saves a screenshot as `target/console-screenshots/NAME.png` and checks
    /// that it shows something: more than a few colours, and a meaningful part
    /// of the pixels other than the background (the most common colour).
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{name}.png"));
        std::fs::write(&file, &png).unwrap();
        let look = Look::of(&png);
        assert!(
            look.colours >= 8 && look.foreground >= 0.02,
            "{} looks blank: {} colours, {:.1} % of pixels off the background",
            file.display(),
            look.colours,
            look.foreground * 100.0
        );
    }
}

/// What a screenshot holds, roughly.
pub struct Look {
    /// Distinct colours.
    pub colours: usize,
    /// The share of pixels that are not the most common colour.
    pub foreground: f64,
}

impl Look {
    pub fn of(png_bytes: &[u8]) -> Look {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info().expect("the screenshot is a PNG");
        let mut buf = vec![0; reader.output_buffer_size().expect("a PNG of sane size")];
        let info = reader.next_frame(&mut buf).expect("the PNG decodes");
        let samples = info.color_type.samples();
        let pixels = &buf[..info.buffer_size()];
        let mut counts = std::collections::HashMap::<&[u8], usize>::new();
        for px in pixels.chunks_exact(samples) {
            *counts.entry(px).or_default() += 1;
        }
        let total: usize = counts.values().sum();
        let background = counts.values().copied().max().unwrap_or(0);
        Look {
            colours: counts.len(),
            foreground: (total - background) as f64 / total.max(1) as f64,
        }
    }
}

/// The processes of process group `group`, from `/proc/<pid>/stat` (the
/// group is the fifth field, the third after the command's closing parenthesis).
pub fn processes_in_group(group: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        // state, ppid, pgrp; a zombie (already dead, not yet reaped) does not count.
        if fields.get(2) == Some(&group.to_string().as_str()) && fields.first() != Some(&"Z") {
            found.push(pid);
        }
    }
    found
}

/// The live processes whose command line contains `text`, from `/proc`.
pub fn processes_naming(text: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if pid != me && String::from_utf8_lossy(&cmdline).contains(text) {
            found.push(pid);
        }
    }
    found
}

/// Polls chromedriver's `/status` until it says ready (at most 20 s).
async fn wait_until_ready(url: &str) {
    let client = crate::support::helpers::client();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client.get(format!("{url}/status")).send().await
            && let Ok(v) = r.json::<Value>().await
            && v["value"]["ready"] == json!(true)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver at {url} was not ready within 20 s"
        );
        tokio::time::sleep(POLL).await;
    }
}
