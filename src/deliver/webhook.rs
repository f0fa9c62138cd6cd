//! One webhook endpoint: an attempt at delivering an event, signed, bounded by
//! the endpoint's timeout, and its outcome for the queue.

use super::settings::WebhookSettings;
use super::sign::signature;
use crate::outbox::queue::{Claimed, Outcome};
use chrono::SecondsFormat;
use secrecy::{ExposeSecret, SecretSlice};
use std::time::Duration;

/// The outcome label of `prizewheel_webhook_deliveries_total`.
pub const OUTCOMES: &[&str] = &["delivered", "http_error", "timeout", "connect", "gone"];

/// A configured endpoint, ready to send.
pub struct Endpoint {
    pub id: String,
    url: reqwest::Url,
    secret: SecretSlice<u8>,
    client: reqwest::Client,
    pub settings: WebhookSettings,
}

impl std::fmt::Debug for Endpoint {
    // The URL may carry a token in its query; the secret never shows.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("id", &self.id).finish()
    }
}

/// An attempt's result: the queue's outcome and the metrics' label.
pub struct Attempt {
    pub outcome: Outcome,
    pub label: &'static str,
}

impl Endpoint {
    /// Checks `settings` and reads its secret from the environment.
    pub fn new(settings: &WebhookSettings) -> anyhow::Result<Self> {
        Self::with_secret(settings, settings.secret()?)
    }

    /// Checks `settings`; signs with `secret`.
    pub fn with_secret(
        settings: &WebhookSettings,
        secret: SecretSlice<u8>,
    ) -> anyhow::Result<Self> {
        settings.sink()?;
        let url = settings.parsed_url()?;
        crate::telemetry::install_tls_provider();
        let client = reqwest::Client::builder()
            .timeout(settings.timeout())
            .connect_timeout(settings.timeout())
            // A redirect would carry the signed body somewhere unconfigured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("prizewheel/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(settings.concurrency.get())
            .build()
            .map_err(|e| {
                anyhow::anyhow!("webhook {}: cannot build its HTTP client: {e}", settings.id)
            })?;
        Ok(Endpoint {
            id: settings.id.clone(),
            url,
            secret,
            client,
            settings: settings.clone(),
        })
    }

    /// One attempt at `delivery`; `retry_in` is the delay before the next one
    /// should it fail.
    pub async fn send(&self, delivery: &Claimed, retry_in: Duration) -> Attempt {
        let body = body(delivery);
        let timestamp = chrono::Utc::now().timestamp();
        let sent = self
            .client
            .post(self.url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", &delivery.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                signature(
                    self.secret.expose_secret(),
                    &delivery.event_id,
                    timestamp,
                    body.as_bytes(),
                ),
            )
            .body(body)
            .send()
            .await;
        let failed = |label, status: Option<i32>, error: String| Attempt {
            outcome: Outcome::Failed {
                status,
                error,
                retry_in,
            },
            label,
        };
        match sent {
            Ok(answer) => {
                let status = answer.status();
                let code = Some(i32::from(status.as_u16()));
                // The body is not read: the connection is closed or reused,
                // and a receiver cannot make us hold its answer.
                drop(answer);
                if status.is_success() {
                    Attempt {
                        outcome: Outcome::Delivered { status: code },
                        label: "delivered",
                    }
                } else if status == reqwest::StatusCode::GONE {
                    Attempt {
                        outcome: Outcome::Released {
                            status: code,
                            error: format!(
                                "the receiver answered 410 Gone at {}",
                                chrono::Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
                            ),
                        },
                        label: "gone",
                    }
                } else {
                    failed("http_error", code, format!("HTTP {status}"))
                }
            }
            Err(e) if e.is_timeout() => failed(
                "timeout",
                None,
                format!("no answer within {} ms", self.settings.timeout_ms),
            ),
            Err(e) if e.is_connect() => failed("connect", None, short(e)),
            Err(e) => failed("http_error", None, short(e)),
        }
    }
}

/// The request body: `{"type", "timestamp", "data"}`, `data` as recorded.
pub fn body(delivery: &Claimed) -> String {
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        r#"{{"type":{},"timestamp":{},"data":{}}}"#,
        quote(&delivery.event_type),
        quote(
            &delivery
                .occurred_at
                .to_rfc3339_opts(SecondsFormat::Millis, true)
        ),
        delivery.payload
    )
}

/// An error for the delivery's `last_error`, without the URL (it may hold a
/// token in its query) and bounded.
fn short(e: reqwest::Error) -> String {
    use std::error::Error;
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.chars().take(300).collect()
}
