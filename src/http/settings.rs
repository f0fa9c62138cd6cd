//! The HTTP server's settings (`http:` in the service configuration).

use serde::Deserialize;
use std::num::NonZeroU64;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// actix worker threads; 0 = one per core.
    pub workers: usize,
    /// Largest spin request body (client context), bytes.
    pub max_spin_body_bytes: usize,
    /// Largest campaign YAML accepted by the admin API, bytes.
    pub max_campaign_bytes: usize,
    /// On SIGTERM/SIGINT: stop accepting, then give requests in flight this long
    /// to finish before their connections are closed (the settler then finishes
    /// its batch).
    pub shutdown_timeout_secs: u64,
    /// Longest the reading of a request body (spin, campaign YAML) may take,
    /// once the handler starts reading it; then 408 `body_timeout` and the
    /// connection is closed. actix bounds the headers (5 s) but not the body:
    /// without this a client sending a byte now and then holds a connection.
    pub body_timeout_ms: NonZeroU64,
    /// Largest upload of prize codes (POST/DELETE …/prizes/{prize}/codes), bytes.
    pub max_codes_upload_bytes: usize,
    /// Longest an upload of codes may take, reading and loading together; then
    /// 408 `body_timeout` (the codes loaded so far stay; sending the file again
    /// adds only the rest).
    pub codes_upload_timeout_ms: NonZeroU64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            workers: 0,
            max_spin_body_bytes: 4096,
            max_campaign_bytes: crate::campaign::tree::MAX_FILE_BYTES,
            shutdown_timeout_secs: 10,
            body_timeout_ms: NonZeroU64::new(5000).unwrap_or(NonZeroU64::MIN),
            max_codes_upload_bytes: 16 << 20,
            codes_upload_timeout_ms: NonZeroU64::new(120_000).unwrap_or(NonZeroU64::MIN),
        }
    }
}

impl HttpSettings {
    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms.get())
    }
}
