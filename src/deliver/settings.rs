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
}

impl Default for DeliverSettings {
    fn default() -> Self {
        DeliverSettings {
            enabled: true,
            poll_ms: NonZeroU64::new(250).unwrap_or(NonZeroU64::MIN),
        }
    }
}

/// Most endpoints a configuration may list, and the longest list of events or
/// campaigns per endpoint.
const MAX_ENDPOINTS: usize = 64;
const MAX_CAMPAIGNS: usize = 1_000;

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
