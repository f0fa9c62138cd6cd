//! The files an operator deploys with, held to the binary: the config examples
//! load with the service's own loader; every environment variable that
//! docker-compose.yml and the Dockerfile give the app is one it reads; every
//! command they run is a real subcommand; every file compose mounts exists.
//! (The Grafana dashboard is checked in tests/api/dashboard.rs.)

use crate::support::repo::{repo, yaml};
use prizewheel::config::Settings;
use prizewheel::telemetry::LogFormat;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The variables the binary reads by name (see src/config.rs and docs/operations.md, "Configuration").
const CONTRACT_VARS: &[&str] = &[
    "PRIZEWHEEL_LISTEN",
    "REDIS_URL",
    "REDIS_CLUSTER_NODES",
    "DATABASE_URL",
    "PRIZEWHEEL_JWT_SECRET",
    "PRIZEWHEEL_CONFIG",
    "RUST_LOG",
];

/// Set in the child process of `environment_load_in_a_child`.
const CHILD_MARKER: &str = "deploy-files-child: settings loaded";

#[test]
fn the_config_examples_load_with_the_service_loader() {
    let dev = Settings::load(&repo("config/prizewheel.yaml")).expect("development config");
    assert_eq!(dev.log.format, LogFormat::Text);
    assert!(dev.listen.starts_with("127.0.0.1:"), "{}", dev.listen);

    let prod =
        Settings::load(&repo("config/prizewheel.production.yaml")).expect("production config");
    assert_eq!(prod.log.format, LogFormat::Json);
    assert!(prod.listen.starts_with("0.0.0.0:"), "{}", prod.listen);
    assert!(prod.settle.enabled);
    let a = &prod.admission;
    assert!(a.per_ip.enabled && a.per_user.enabled && a.global.enabled);
    assert!(a.quota_cache.enabled);
    assert!(!a.trusted_proxies.is_empty(), "shows a trusted proxy");
    assert!(
        a.global.per_second > dev.admission.per_user.per_second,
        "sized for a sale"
    );
}

/// The app's environment from docker-compose.yml (every service built from this
/// repository) and the Dockerfile's runtime stage: name → value (None: passed
/// through from the shell).
fn app_environment() -> BTreeMap<String, Option<String>> {
    let mut env = BTreeMap::new();
    for (name, service) in app_services() {
        match &service["environment"] {
            Value::Object(m) => {
                for (k, v) in m {
                    env.insert(k.clone(), scalar(v));
                }
            }
            Value::Array(list) => {
                for item in list {
                    let item = item.as_str().unwrap();
                    let (k, v) = match item.split_once('=') {
                        Some((k, v)) => (k, Some(v.to_owned())),
                        None => (item, None),
                    };
                    env.insert(k.to_owned(), v);
                }
            }
            Value::Null => {}
            other => panic!("service {name}: environment {other}"),
        }
    }
    for line in dockerfile_runtime() {
        if let Some(rest) = line.strip_prefix("ENV ") {
            for pair in rest.split_whitespace() {
                let (k, v) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("write ENV as KEY=VALUE: {line}"));
                env.insert(k.to_owned(), Some(v.trim_matches('"').to_owned()));
            }
        }
    }
    env
}

/// Compose services that run the prizewheel image.
fn app_services() -> Vec<(String, Value)> {
    let compose = yaml("docker-compose.yml");
    let services = compose["services"].as_object().unwrap().clone();
    let apps: Vec<_> = services
        .into_iter()
        .filter(|(_, s)| {
            !s["build"].is_null()
                || s["image"]
                    .as_str()
                    .is_some_and(|i| i.starts_with("prizewheel"))
        })
        .collect();
    assert!(apps.len() >= 2, "compose runs migrate and the app");
    apps
}

/// The Dockerfile's runtime stage (after the last FROM), continuation lines joined.
fn dockerfile_runtime() -> Vec<String> {
    let text = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    let mut lines: Vec<String> = Vec::new();
    let mut open = false;
    for raw in text.lines() {
        let l = raw.trim();
        if l.starts_with('#') || l.is_empty() {
            continue;
        }
        let (body, cont) = match l.strip_suffix('\\') {
            Some(b) => (b.trim(), true),
            None => (l, false),
        };
        match (open, lines.last_mut()) {
            (true, Some(last)) => {
                last.push(' ');
                last.push_str(body);
            }
            _ => lines.push(body.to_owned()),
        }
        open = cont;
    }
    let last_from = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    lines.split_off(last_from)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Compose interpolation, enough for these files: `${X:-default}` gives the
/// default, any other `${X…}` a stand-in value.
fn interpolate(v: &str) -> String {
    let mut out = String::new();
    let mut rest = v;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('}').expect("closed ${") + i;
        let inner = &rest[i + 2..end];
        match inner.split_once(":-") {
            Some((_, default)) => out.push_str(default),
            None => out.push_str("stand-in-value-of-at-least-32-bytes"),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn every_app_variable_is_one_the_binary_reads() {
    let env = app_environment();
    for must in [
        "PRIZEWHEEL_CONFIG",
        "REDIS_URL",
        "DATABASE_URL",
        "PRIZEWHEEL_LISTEN",
    ] {
        assert!(env.contains_key(must), "{must} is set for the app");
    }
    for name in env.keys() {
        assert!(
            CONTRACT_VARS.contains(&name.as_str())
                || name.starts_with("OTEL_")
                || name.starts_with("PRIZEWHEEL__"),
            "{name} is not a variable prizewheel reads"
        );
    }
    // Every value (PRIZEWHEEL__ overrides included) loads with the config file
    // that PRIZEWHEEL_CONFIG names, in a process of its own.
    let vars: Vec<(String, String)> = env
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), interpolate(v))))
        .collect();
    let (ok, out) = load_in_child(&vars);
    assert!(ok, "the app's environment does not load:\n{out}");

    // The check itself catches a variable naming no field.
    let mut bad = vars.clone();
    bad.push(("PRIZEWHEEL__REDIS__NO_SUCH_KEY".into(), "1".into()));
    let (ok, out) = load_in_child(&bad);
    assert!(!ok, "an unknown field must not load:\n{out}");
    assert!(out.contains("no_such_key"), "{out}");
}

/// Runs `load_settings_from_the_environment` in a copy of this test binary with
/// exactly `vars` as prizewheel's environment; true when it loaded.
fn load_in_child(vars: &[(String, String)]) -> (bool, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "deploy_files::load_settings_from_the_environment",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .current_dir(env!("CARGO_MANIFEST_DIR"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PRIZEWHEEL") || k.starts_with("OTEL_") || CONTRACT_VARS.contains(&&*k) {
            cmd.env_remove(k);
        }
    }
    cmd.envs(vars.iter().map(|(k, v)| (k, v)));
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains(CHILD_MARKER), text)
}

/// Run only by `every_app_variable_is_one_the_binary_reads`, in a process of
/// its own: setting variables in this multi-threaded test process is unsound.
#[test]
#[ignore = "run in a child process by every_app_variable_is_one_the_binary_reads"]
fn load_settings_from_the_environment() {
    let file = std::env::var("PRIZEWHEEL_CONFIG")
        .unwrap_or_else(|_| prizewheel::config::DEFAULT_FILE.into());
    match Settings::load(Path::new(&file)) {
        Ok(_) => println!("{CHILD_MARKER}"),
        Err(e) => panic!("{e:#}"),
    }
}

/// The subcommands compose and the Dockerfile run: `command`, the CMD, and the
/// health checks' argument after the binary.
fn app_commands() -> Vec<String> {
    let mut cmds = Vec::new();
    let after_binary = |args: &[Value]| -> Option<String> {
        let i = args
            .iter()
            .position(|a| a.as_str().is_some_and(|s| s.ends_with("prizewheel")))?;
        args.get(i + 1).and_then(Value::as_str).map(str::to_owned)
    };
    for (name, s) in app_services() {
        match &s["command"] {
            Value::Array(a) => cmds.push(a[0].as_str().unwrap().to_owned()),
            Value::String(c) => cmds.push(c.split_whitespace().next().unwrap().to_owned()),
            _ => panic!("service {name} names its command"),
        }
        if let Some(test) = s["healthcheck"]["test"].as_array() {
            cmds.push(after_binary(test).expect("the health check runs prizewheel"));
        }
    }
    for line in dockerfile_runtime() {
        let json = |l: &str| -> Vec<Value> {
            let at = l.find('[').unwrap_or_else(|| panic!("JSON form: {l}"));
            serde_json::from_str(&l[at..]).unwrap()
        };
        if line.starts_with("CMD ") {
            cmds.push(json(&line)[0].as_str().unwrap().to_owned());
        } else if line.starts_with("ENTRYPOINT ") {
            assert_eq!(json(&line), vec![Value::from("/app/prizewheel")]);
        } else if let Some(rest) = line.strip_prefix("HEALTHCHECK ") {
            cmds.push(after_binary(&json(rest)).expect("HEALTHCHECK runs prizewheel"));
        }
    }
    cmds.sort();
    cmds.dedup();
    cmds
}

fn help_of(command: &str) -> bool {
    Command::new(env!("CARGO_BIN_EXE_prizewheel"))
        .args([command, "--help"])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn every_command_run_is_a_real_subcommand() {
    let cmds = app_commands();
    for must in ["healthcheck", "migrate", "serve"] {
        assert!(cmds.iter().any(|c| c == must), "{must} is run: {cmds:?}");
    }
    for c in &cmds {
        assert!(help_of(c), "`prizewheel {c} --help` fails");
    }
    assert!(!help_of("no-such-command"), "the check can fail");
}

#[test]
fn every_file_compose_mounts_exists_and_redis_runs_the_project_conf() {
    let compose = yaml("docker-compose.yml");
    let mut mounts = 0;
    for (name, s) in compose["services"].as_object().unwrap() {
        for v in s["volumes"].as_array().into_iter().flatten() {
            let source = v.as_str().unwrap().split(':').next().unwrap();
            if let Some(path) = source.strip_prefix("./") {
                assert!(
                    repo(path).exists(),
                    "service {name} mounts missing {source}"
                );
                mounts += 1;
            }
        }
    }
    assert!(
        mounts >= 5,
        "redis.conf and the observability files are mounted"
    );

    let redis = &compose["services"]["redis"];
    let mounted = redis["volumes"].as_array().unwrap().iter().any(|v| {
        v.as_str()
            .is_some_and(|v| v.starts_with("./config/redis.conf:/usr/local/etc/redis/redis.conf"))
    });
    assert!(mounted, "compose's Redis reads config/redis.conf");
    let command: Vec<&str> = redis["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        &command[..2],
        ["redis-server", "/usr/local/etc/redis/redis.conf"]
    );
    // The persistence and eviction settings come from the file, never overridden.
    for key in [
        "--appendonly",
        "--appendfsync",
        "--maxmemory-policy",
        "--save",
    ] {
        assert!(!command.contains(&key), "compose overrides {key}");
    }
}
