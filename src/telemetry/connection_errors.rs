//! What actix-http logs about a connection rather than a request: a malformed
//! request line or header, a client too slow to send its headers, a reset. It
//! logs these at ERROR, and any client can cause them, so any client could
//! flood the error log. This layer counts them instead
//! (`prizewheel_http_connection_errors_total{kind}`) and passes at most
//! [`LINES_PER_SECOND`] of them on at DEBUG, under the target
//! [`TARGET`], with how many it held back; the log layer does not print
//! actix's own events (see [`is_actix_connection_event`]).

use std::sync::Mutex;
use std::time::Instant;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// The target of the lines passed on.
pub const TARGET: &str = "prizewheel::http::connection";

/// Lines passed on per second at most; the rest are only counted.
pub const LINES_PER_SECOND: u32 = 5;

/// actix-http's HTTP/1 and HTTP/2 connection handling.
const ACTIX_TARGETS: &[&str] = &[
    "actix_http::h1::dispatcher",
    "actix_http::h1::decoder",
    "actix_http::h2::dispatcher",
];

/// An event actix-http logs at WARN or ERROR about a connection.
pub fn is_actix_connection_event(meta: &Metadata<'_>) -> bool {
    meta.is_event() && *meta.level() <= Level::WARN && ACTIX_TARGETS.contains(&meta.target())
}

/// A bounded label for an actix message (its `Display` texts, e.g. `stream
/// error: request parse error: invalid Header provided`).
fn kind(message: &str) -> &'static str {
    if message.contains("parse error") || message.contains("MAX_BUFFER_SIZE") {
        "malformed"
    } else if message.contains("timeout") {
        "timeout"
    } else if message.contains("I/O error") {
        "io"
    } else {
        "other"
    }
}

/// The layer; see the module documentation.
pub struct ConnectionErrors {
    started: Instant,
    /// (second since `started`, lines passed on in it, lines held back since
    /// the last one passed on).
    window: Mutex<(u64, u32, u64)>,
}

impl Default for ConnectionErrors {
    fn default() -> Self {
        ConnectionErrors {
            started: Instant::now(),
            window: Mutex::new((0, 0, 0)),
        }
    }
}

impl ConnectionErrors {
    /// `Some(held back so far)` when a line may pass now.
    fn admit(&self) -> Option<u64> {
        let second = self.started.elapsed().as_secs();
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if w.0 != second {
            w.0 = second;
            w.1 = 0;
        }
        if w.1 < LINES_PER_SECOND {
            w.1 += 1;
            Some(std::mem::take(&mut w.2))
        } else {
            w.2 += 1;
            None
        }
    }
}

#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for ConnectionErrors {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if !is_actix_connection_event(event.metadata()) {
            return;
        }
        let mut message = Message::default();
        event.record(&mut message);
        crate::telemetry::metrics().connection_error(kind(&message.0));
        if !tracing::enabled!(target: TARGET, Level::DEBUG) {
            return;
        }
        if let Some(held_back) = self.admit() {
            // Dispatched from inside this layer: fine with the global
            // subscriber `telemetry::init` installs (actix's event is not
            // printed, so this is no loop).
            tracing::debug!(
                target: TARGET,
                error = %message.0,
                held_back,
                "connection closed on a client error"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_a_few_lines_a_second_pass() {
        let layer = ConnectionErrors::default();
        let passed = (0..100).filter_map(|_| layer.admit()).count();
        // All 100 within one second, or at worst straddling two.
        assert!(
            (LINES_PER_SECOND as usize..=2 * LINES_PER_SECOND as usize).contains(&passed),
            "{passed}"
        );
    }

    #[test]
    fn kinds_are_bounded() {
        assert_eq!(
            kind("stream error: request parse error: invalid Header provided"),
            "malformed"
        );
        assert_eq!(
            kind("stream error: request did not complete within the specified timeout"),
            "timeout"
        );
        assert_eq!(kind("stream error: I/O error: connection reset"), "io");
        assert_eq!(kind("anything else"), "other");
    }
}
