//! The `webhooks:` and `deliver:` sections of the service configuration, and
//! their checks. A webhook's secret is named by an environment variable
//! (`secret_env`) and read from it; it is never in a file, in `Debug` output,
//! in logs or in metrics.

use crate::outbox::EVENT_TYPES;
use crate::outbox::sinks::SinkSpec;
use anyhow::{Context, bail};
use base64::Engine;
use secrecy::SecretSlice;
use serde::Deserialize;
use std::collections::HashSet;
use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

/// One endpoint of `webhooks:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// The sink's id: `webhooks status` and the metrics name it by this.
    pub id: String,
    /// `http://` or `https://`, without user or password.
    pub url: String,
    /// The environment variable holding the secret, `whsec_<base64>`.
    pub secret_env: String,
    /// Event types sent to it.
    pub events: Vec<String>,
    /// Only these campaigns' events; empty or absent: every campaign.
    #[serde(default)]
    pub campaigns: Vec<String>,
    /// One attempt's limit, connecting included.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: NonZeroU64,
    /// How long a delivery is retried before it is dead.
    #[serde(default = "default_retry_for_secs")]
    pub retry_for_secs: NonZeroU64,
    /// Most attempts in flight to it at once, per dispatcher.
    #[serde(default = "default_concurrency")]
    pub concurrency: NonZeroUsize,
    /// The first retry's delay; each failure doubles it (with jitter) up to `backoff_max_ms`.
    #[serde(default = "default_backoff_initial_ms")]
    pub backoff_initial_ms: NonZeroU64,
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: NonZeroU64,
}

fn default_timeout_ms() -> NonZeroU64 {
    NonZeroU64::new(5_000).unwrap_or(NonZeroU64::MIN)
}
fn default_retry_for_secs() -> NonZeroU64 {
    NonZeroU64::new(86_400).unwrap_or(NonZeroU64::MIN)
}
fn default_concurrency() -> NonZeroUsize {
    NonZeroUsize::new(8).unwrap_or(NonZeroUsize::MIN)
}
fn default_backoff_initial_ms() -> NonZeroU64 {
    NonZeroU64::new(1_000).unwrap_or(NonZeroU64::MIN)
}
fn default_backoff_max_ms() -> NonZeroU64 {
    NonZeroU64::new(600_000).unwrap_or(NonZeroU64::MIN)
}

/// The `deliver:` section: the dispatcher inside `serve`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverSettings {
    /// Run a dispatcher inside `serve` when webhooks are configured.
    pub enabled: bool,
    /// How often an idle endpoint looks for due deliveries.
    pub poll_ms: NonZeroU64,
    /// Events whose deliveries are all finished (delivered or dead) are removed
    /// this long after they were recorded; 0 keeps them for good.
    pub retention_hours: u64,
}

impl Default for DeliverSettings {
    fn default() -> Self {
        DeliverSettings {
            enabled: true,
            poll_ms: NonZeroU64::new(250).unwrap_or(NonZeroU64::MIN),
            retention_hours: 168,
        }
    }
}

/// Most endpoints a configuration may list, and the longest list of events or
/// campaigns per endpoint.
const MAX_ENDPOINTS: usize = 64;
const MAX_CAMPAIGNS: usize = 1_000;

impl DeliverSettings {
    /// The retention, `None` when events are kept for good.
    pub fn retention(&self) -> Option<Duration> {
        (self.retention_hours > 0)
            .then(|| Duration::from_secs(self.retention_hours.saturating_mul(3600)))
    }
}

impl WebhookSettings {
    /// Checks everything but the secret; the sink it declares.
    pub fn sink(&self) -> anyhow::Result<SinkSpec> {
        let valid_id = !self.id.is_empty()
            && self.id.len() <= 63
            && self
                .id
                .starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !valid_id {
            bail!(
                "webhook id {:?}: use 1 to 63 of a-z, 0-9, '_' and '-', starting with a letter or digit",
                self.id
            );
        }
        let id = &self.id;
        self.parsed_url()?;
        if self.events.is_empty() {
            bail!("webhook {id}: events is empty; list one or more of {EVENT_TYPES:?}");
        }
        let mut events = Vec::new();
        for e in &self.events {
            if !EVENT_TYPES.contains(&e.as_str()) {
                bail!("webhook {id}: unknown event type {e:?}; known: {EVENT_TYPES:?}");
            }
            if !events.contains(e) {
                events.push(e.clone());
            }
        }
        if self.campaigns.len() > MAX_CAMPAIGNS {
            bail!("webhook {id}: more than {MAX_CAMPAIGNS} campaigns");
        }
        for c in &self.campaigns {
            crate::domain::CampaignId::parse(c)
                .map_err(|e| anyhow::anyhow!("webhook {id}: campaigns: {e}"))?;
        }
        if self.backoff_initial_ms > self.backoff_max_ms {
            bail!("webhook {id}: backoff_initial_ms is above backoff_max_ms");
        }
        Ok(SinkSpec {
            id: id.clone(),
            kind: "webhook",
            events,
            campaigns: self.campaigns.clone(),
        })
    }

    /// The URL, checked: http(s), a host, no credentials (they would end up
    /// wherever URLs are shown).
    pub fn parsed_url(&self) -> anyhow::Result<reqwest::Url> {
        let id = &self.id;
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| anyhow::anyhow!("webhook {id}: url is not a valid URL: {e}"))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            bail!(
                "webhook {id}: url must be http:// or https://, not {}://",
                url.scheme()
            );
        }
        if url.host_str().is_none_or(str::is_empty) {
            bail!("webhook {id}: url has no host");
        }
        if !url.username().is_empty() || url.password().is_some() {
            bail!(
                "webhook {id}: url must not hold a user or password (the signature authenticates prizewheel)"
            );
        }
        Ok(url)
    }

    /// The secret, from the environment: `whsec_` then base64 of 24 to 64 bytes.
    pub fn secret(&self) -> anyhow::Result<SecretSlice<u8>> {
        let (id, var) = (&self.id, &self.secret_env);
        let value = std::env::var(var).with_context(|| {
            format!(
                "webhook {id}: set the environment variable {var} (secret_env) to whsec_<base64>"
            )
        })?;
        self.secret_from(&value)
    }

    /// The secret's bytes from its text `value` (what `secret_env` holds).
    pub fn secret_from(&self, value: &str) -> anyhow::Result<SecretSlice<u8>> {
        let (id, var) = (&self.id, &self.secret_env);
        let Some(encoded) = value.strip_prefix("whsec_") else {
            bail!("webhook {id}: the secret in {var} must start with whsec_");
        };
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| {
                anyhow::anyhow!(
                    "webhook {id}: the secret in {var} is not whsec_ followed by base64"
                )
            })?;
        if !(24..=64).contains(&key.len()) {
            bail!(
                "webhook {id}: the secret in {var} decodes to {} bytes; use 24 to 64 (e.g. `openssl rand -base64 32`)",
                key.len()
            );
        }
        Ok(key.into())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.get())
    }

    pub fn retry_for(&self) -> Duration {
        Duration::from_secs(self.retry_for_secs.get())
    }
}

/// Checks every endpoint (ids unique) but their secrets; their sinks.
pub fn sinks(webhooks: &[WebhookSettings]) -> anyhow::Result<Vec<SinkSpec>> {
    if webhooks.len() > MAX_ENDPOINTS {
        bail!("webhooks: more than {MAX_ENDPOINTS} endpoints");
    }
    let mut seen = HashSet::new();
    webhooks
        .iter()
        .map(|w| {
            if !seen.insert(w.id.as_str()) {
                bail!("webhook {}: the id is listed twice", w.id);
            }
            w.sink()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(yaml: &str) -> WebhookSettings {
        serde_saphyr::from_str(yaml).unwrap()
    }

    const BASE: &str =
        "id: wallet\nurl: https://wallet.internal/hooks\nsecret_env: S\nevents: [reward.settled]\n";

    fn error(extra: &str) -> String {
        let text = BASE
            .lines()
            .filter(|l| {
                !extra
                    .lines()
                    .any(|e| e.split(':').next() == l.split(':').next())
            })
            .chain(extra.lines())
            .collect::<Vec<_>>()
            .join("\n");
        format!("{:#}", hook(&text).sink().unwrap_err())
    }

    #[test]
    fn defaults_and_a_valid_endpoint() {
        let h = hook(BASE);
        let sink = h.sink().unwrap();
        assert_eq!(
            (sink.id.as_str(), sink.events, sink.campaigns.len()),
            ("wallet", vec!["reward.settled".to_owned()], 0)
        );
        assert_eq!(h.timeout(), Duration::from_secs(5));
        assert_eq!(h.retry_for(), Duration::from_secs(86_400));
        assert_eq!(
            (
                h.concurrency.get(),
                h.backoff_initial_ms.get(),
                h.backoff_max_ms.get()
            ),
            (8, 1_000, 600_000)
        );
    }

    #[test]
    fn a_bad_endpoint_says_what_to_fix() {
        assert!(error("url: ftp://x/y").contains("http:// or https://"));
        assert!(error("url: https://user:pw@x/y").contains("user or password"));
        assert!(error("url: not a url").contains("not a valid URL"));
        assert!(error("id: Wallet").contains("a-z"));
        assert!(error("events: []").contains("events is empty"));
        assert!(error("events: [reward.paid]").contains("unknown event type"));
        assert!(error("campaigns: [\"bad id!\"]").contains("campaigns"));
        assert!(
            error("backoff_initial_ms: 5000\nbackoff_max_ms: 10").contains("backoff_initial_ms")
        );
        let twice = [hook(BASE), hook(BASE)];
        assert!(format!("{:#}", sinks(&twice).unwrap_err()).contains("twice"));
        assert!(serde_saphyr::from_str::<WebhookSettings>(&format!("{BASE}secret: x\n")).is_err());
    }

    #[test]
    fn secrets_are_whsec_base64_of_24_to_64_bytes() {
        let h = hook(BASE);
        let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; n]);
        assert!(h.secret_from(&format!("whsec_{}", b64(32))).is_ok());
        assert!(h.secret_from(&format!("whsec_{}", b64(24))).is_ok());
        let short = format!(
            "{:#}",
            h.secret_from(&format!("whsec_{}", b64(8))).unwrap_err()
        );
        assert!(short.contains("8 bytes"), "{short}");
        let bare = format!("{:#}", h.secret_from(&b64(32)).unwrap_err());
        assert!(bare.contains("whsec_"), "{bare}");
        let junk = format!("{:#}", h.secret_from("whsec_***").unwrap_err());
        assert!(junk.contains("base64") && !junk.contains("***"), "{junk}");
        // A missing variable names it, and how to set it.
        let mut missing = hook(BASE);
        missing.secret_env = "PW_UNIT_TEST_NO_SUCH_SECRET".into();
        let e = format!("{:#}", missing.secret().unwrap_err());
        assert!(e.contains("PW_UNIT_TEST_NO_SUCH_SECRET"), "{e}");
    }
}
