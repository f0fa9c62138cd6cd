//! Webhook delivery: the outbox's deliveries (src/outbox) sent over HTTP as
//! Standard Webhooks (standardwebhooks.com), signed, retried with backoff
//! until `retry_for`, at least once.
//!
//! - [`settings`]: the `webhooks:` and `deliver:` sections and their checks;
//! - [`sign`]: the signature;
//! - [`webhook`]: one endpoint's attempts and their outcomes;
//! - [`dispatcher`]: the loops that claim, send and record, inside `serve` or
//!   alone as `prizewheel deliver`.

pub mod dispatcher;
pub mod settings;
pub mod sign;
pub mod webhook;

use crate::store::pg::PgSettings;
use dispatcher::{Dispatcher, Options};
use settings::{DeliverSettings, WebhookSettings};
use std::time::Duration;
use webhook::Endpoint;

/// A dispatcher ready to start: its endpoints checked, their secrets read.
pub struct Delivery {
    pg: sqlx::PgPool,
    endpoints: Vec<Endpoint>,
    sinks: Vec<crate::outbox::sinks::SinkSpec>,
    options: Options,
}

impl Delivery {
    /// Checks `webhooks` (their secrets included) and prepares a PostgreSQL
    /// pool of the dispatcher's own; `None` when there are none.
    pub fn prepare(
        webhooks: &[WebhookSettings],
        deliver: &DeliverSettings,
        database: &PgSettings,
    ) -> anyhow::Result<Option<Self>> {
        if webhooks.is_empty() {
            return Ok(None);
        }
        let sinks = settings::sinks(webhooks)?;
        let endpoints = webhooks
            .iter()
            .map(Endpoint::new)
            .collect::<anyhow::Result<Vec<_>>>()?;
        // Two connections per endpoint (its claims, its recorder), one to sample
        // the backlog and prune.
        let own = PgSettings {
            max_connections: u32::try_from(2 * endpoints.len() + 1).unwrap_or(u32::MAX),
            ..database.clone()
        };
        Ok(Some(Delivery {
            pg: crate::store::pg::pool(&own)?,
            endpoints,
            sinks,
            options: Options {
                poll: Duration::from_millis(deliver.poll_ms.get()),
                retention: deliver.retention(),
            },
        }))
    }

    /// Starts delivering, until [`Dispatcher::stop`].
    pub fn start(self) -> Dispatcher {
        Dispatcher::start(self.pg, self.endpoints, self.sinks, self.options)
    }
}
