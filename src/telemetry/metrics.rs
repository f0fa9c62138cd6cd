//! Metrics: OpenTelemetry instruments, exposed as Prometheus text on `GET /metrics`.
//!
//! Names follow the OpenTelemetry semantic conventions where one exists
//! (`http.server.request.duration` in seconds, with `http.request.method`,
//! `http.route`, `http.response.status_code`); the rest are `prizewheel.*`. The
//! Prometheus exporter turns dots into underscores and adds unit and `_total`
//! suffixes (`http_server_request_duration_seconds`, `prizewheel_spins_total`).
//!
//! Label values are bounded: routes are the registered patterns (or
//! `unmatched`), campaign and prize ids only ever come from campaigns Redis
//! knows (an unknown campaign is counted as `unknown_campaign`, without its id),
//! and layers and outcomes are fixed sets.

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, MeterProvider as _};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use std::sync::LazyLock;

/// Latency buckets in seconds: fine below 10 ms, where a healthy spin lands.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The values of `prizewheel_http_connection_errors_total`'s `kind` label
/// (`connection_errors::kind` maps actix's messages to them).
pub const CONNECTION_ERROR_KINDS: &[&str] = &["malformed", "timeout", "io", "other"];

/// Every instrument of the process, and the registry `/metrics` renders.
pub struct Metrics {
    registry: prometheus::Registry,
    /// Kept alive: dropping the provider stops collection.
    _provider: SdkMeterProvider,
    pub http_duration: Histogram<f64>,
    pub spins: Counter<u64>,
    pub grants: Counter<u64>,
    pub awarded: Counter<u64>,
    pub stock_remaining: Gauge<i64>,
    pub stock_released: Gauge<i64>,
    pub budget_spent: Gauge<f64>,
    pub budget_left: Gauge<f64>,
    pub codes_available: Gauge<i64>,
    pub codes_loaded: Gauge<i64>,
    pub campaign_live: Gauge<i64>,
    pub rejections: Counter<u64>,
    pub redis_in_flight: Gauge<i64>,
    pub script_duration: Histogram<f64>,
    pub settlement_lag_entries: Gauge<i64>,
    pub settlement_lag_age: Gauge<f64>,
    pub settlement_batch_size: Histogram<u64>,
    pub settlement_batch_duration: Histogram<f64>,
    pub dead_letters: Gauge<i64>,
    pub awaiting_recovery: Gauge<i64>,
    pub connection_errors: Counter<u64>,
    pub webhook_deliveries: Counter<u64>,
    pub webhook_lag: Histogram<f64>,
    pub webhook_dead_marked: Counter<u64>,
    pub webhook_pending: Gauge<i64>,
    pub webhook_oldest_pending: Gauge<f64>,
    pub webhook_dead: Gauge<i64>,
    pub webhook_enabled: Gauge<i64>,
}

/// Delivery lag buckets in seconds: from an instant answer to a day of retries.
const LAG_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
];

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics (created on first use).
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let registry = prometheus::Registry::new();
        let provider = match opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .scope_info_enabled(false)
            .build()
        {
            Ok(exporter) => SdkMeterProvider::builder()
                .with_resource(super::resource())
                .with_reader(exporter)
                .build(),
            Err(e) => {
                // Only a registry name clash can fail here; keep serving without metrics.
                tracing::error!(error = %e, "metrics exporter unavailable");
                SdkMeterProvider::builder().build()
            }
        };
        let m = provider.meter("prizewheel");
        let seconds = |meter: &Meter, name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build()
        };
        let connection_errors = m
            .u64_counter("prizewheel.http.connection_errors")
            .with_description(
                "Connections actix-http closed on a client error (malformed request, timeout, I/O), by kind",
            )
            .build();
        // Exposed at 0 from the start: the series exists before the first probe.
        for kind in CONNECTION_ERROR_KINDS {
            connection_errors.add(0, &[KeyValue::new("kind", *kind)]);
        }
        Metrics {
            connection_errors,
            http_duration: seconds(
                &m,
                "http.server.request.duration",
                "Duration of HTTP server requests",
            ),
            spins: m
                .u64_counter("prizewheel.spins")
                .with_description("Spins decided by Redis, by campaign and outcome")
                .build(),
            grants: m
                .u64_counter("prizewheel.grants")
                .with_description(
                    "Grants and revocations of earned spins decided by Redis, by campaign and outcome",
                )
                .build(),
            awarded: m
                .u64_counter("prizewheel.prizes.awarded")
                .with_description(
                    "Prizes drawn (first answers, not replays), by campaign and prize",
                )
                .build(),
            stock_remaining: m
                .i64_gauge("prizewheel.stock.remaining")
                .with_description("Units left per prize (-1: unlimited), sampled")
                .build(),
            stock_released: m
                .i64_gauge("prizewheel.stock.released")
                .with_description(
                    "Units per prize its release rule has released by now (the stock unless paced; -1: unlimited), sampled",
                )
                .build(),
            budget_spent: m
                .f64_gauge("prizewheel.budget.spent")
                .with_description(
                    "Value awarded per campaign, in its currency, every award counted (what a budget is held against), sampled",
                )
                .build(),
            budget_left: m
                .f64_gauge("prizewheel.budget.left")
                .with_description(
                    "What a campaign's budget has left, in its currency (0 once spent or set below what was awarded; -1: no budget), sampled",
                )
                .build(),
            codes_available: m
                .i64_gauge("prizewheel.codes.available")
                .with_description(
                    "Codes in a code prize's pool (stock: codes): what the next wins hand out (-1: a prize that is no longer a code prize), sampled",
                )
                .build(),
            codes_loaded: m
                .i64_gauge("prizewheel.codes.loaded")
                .with_description(
                    "Codes ever loaded into a code prize's pool (withdrawn and awarded ones included), sampled",
                )
                .build(),
            campaign_live: m
                .i64_gauge("prizewheel.campaign.live")
                .with_description(
                    "1 while a campaign draws (started, not ended, not paused: its status `live`), else 0, by campaign, sampled",
                )
                .build(),
            rejections: m
                .u64_counter("prizewheel.admission.rejections")
                .with_description("Requests answered before Redis, by layer")
                .build(),
            redis_in_flight: m
                .i64_gauge("prizewheel.redis.in_flight")
                .with_description("Redis calls of API requests in flight in this replica, sampled")
                .build(),
            script_duration: seconds(
                &m,
                "prizewheel.redis.script.duration",
                "Duration of Lua script calls, by script",
            ),
            settlement_lag_entries: m
                .i64_gauge("prizewheel.settlement.lag.entries")
                .with_description("Results not yet settled into PostgreSQL, by campaign")
                .build(),
            settlement_lag_age: m
                .f64_gauge("prizewheel.settlement.lag.age")
                .with_unit("s")
                .with_description("Age of the oldest unsettled result, by campaign")
                .build(),
            settlement_batch_size: m
                .u64_histogram("prizewheel.settlement.batch.size")
                .with_description("Entries per settled batch")
                .with_boundaries(vec![
                    1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0, 5000.0,
                ])
                .build(),
            settlement_batch_duration: seconds(
                &m,
                "prizewheel.settlement.batch.duration",
                "Duration of writing, committing and acknowledging one batch",
            ),
            dead_letters: m
                .i64_gauge("prizewheel.settlement.dead_letters")
                .with_description("Entries in the dead-letter stream, by campaign")
                .build(),
            awaiting_recovery: m
                .i64_gauge("prizewheel.campaign.awaiting_recovery")
                .with_description(
                    "1 while a campaign's new draws wait for a recovery from the ledger (Redis restarted or failed over), by campaign",
                )
                .build(),
            webhook_deliveries: m
                .u64_counter("prizewheel.webhook.deliveries")
                .with_description(
                    "Webhook delivery attempts, by endpoint and outcome (delivered, http_error, timeout, connect, gone)",
                )
                .build(),
            webhook_lag: m
                .f64_histogram("prizewheel.webhook.lag")
                .with_unit("s")
                .with_description(
                    "From an event's recording in the ledger to its delivery, by endpoint",
                )
                .with_boundaries(LAG_BUCKETS.to_vec())
                .build(),
            webhook_dead_marked: m
                .u64_counter("prizewheel.webhook.dead_marked")
                .with_description(
                    "Deliveries this process marked dead (retries ran out), by endpoint",
                )
                .build(),
            webhook_pending: m
                .i64_gauge("prizewheel.webhook.pending")
                .with_description("Deliveries not yet delivered, by endpoint, sampled")
                .build(),
            webhook_oldest_pending: m
                .f64_gauge("prizewheel.webhook.oldest_pending")
                .with_unit("s")
                .with_description(
                    "Age of the oldest event not yet delivered, by endpoint (0: none), sampled",
                )
                .build(),
            webhook_dead: m
                .i64_gauge("prizewheel.webhook.dead")
                .with_description(
                    "Dead deliveries (retries ran out; `webhooks replay` resends), by endpoint, sampled",
                )
                .build(),
            webhook_enabled: m
                .i64_gauge("prizewheel.webhook.enabled")
                .with_description(
                    "1 while deliveries to the endpoint go out, 0 once disabled (410 Gone or `webhooks disable`), sampled",
                )
                .build(),
            registry,
            _provider: provider,
        }
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        use prometheus::Encoder;
        let mut out = Vec::new();
        if let Err(e) = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// An endpoint's dispatcher starts: its counters appear at 0 (so that
    /// `rate()` sees the first attempt), one per outcome of `outcomes`.
    pub fn webhook_endpoint(&self, endpoint: &str, outcomes: &[&'static str]) {
        for outcome in outcomes {
            self.webhook_deliveries.add(
                0,
                &[
                    KeyValue::new("endpoint", endpoint.to_owned()),
                    KeyValue::new("outcome", *outcome),
                ],
            );
        }
        self.webhook_dead_marked
            .add(0, &[KeyValue::new("endpoint", endpoint.to_owned())]);
    }

    /// One webhook attempt (`outcome`: deliver::webhook::OUTCOMES).
    pub fn webhook_attempt(&self, endpoint: &str, outcome: &'static str) {
        self.webhook_deliveries.add(
            1,
            &[
                KeyValue::new("endpoint", endpoint.to_owned()),
                KeyValue::new("outcome", outcome),
            ],
        );
    }

    /// Outcomes recorded in the outbox: the lag of each delivery, the dead.
    pub fn webhook_settled(&self, endpoint: &str, lags_secs: &[f64], dead: u64) {
        let labels = [KeyValue::new("endpoint", endpoint.to_owned())];
        for lag in lags_secs {
            self.webhook_lag.record(lag.max(0.0), &labels);
        }
        if dead > 0 {
            self.webhook_dead_marked.add(dead, &labels);
        }
    }

    /// A sampled backlog of one endpoint.
    pub fn webhook_backlog(
        &self,
        endpoint: &str,
        enabled: bool,
        pending: i64,
        oldest_secs: f64,
        dead: i64,
    ) {
        let labels = [KeyValue::new("endpoint", endpoint.to_owned())];
        self.webhook_enabled.record(i64::from(enabled), &labels);
        self.webhook_pending.record(pending, &labels);
        self.webhook_oldest_pending
            .record(oldest_secs.max(0.0), &labels);
        self.webhook_dead.record(dead, &labels);
    }

    /// One spin decided by Redis.
    pub fn spin(&self, campaign: &str, outcome: &'static str) {
        self.spins.add(
            1,
            &[
                KeyValue::new("campaign", campaign.to_owned()),
                KeyValue::new("outcome", outcome),
            ],
        );
    }

    /// A spin of a campaign Redis does not know: counted without its id.
    pub fn unknown_campaign(&self) {
        self.spins
            .add(1, &[KeyValue::new("outcome", "unknown_campaign")]);
    }

    /// A grant or revocation Redis decided (`campaign` is `None` when Redis
    /// does not know it: a client's id never becomes a label).
    pub fn grant(&self, campaign: Option<&str>, outcome: &'static str) {
        let campaign = campaign.unwrap_or("unknown_campaign").to_owned();
        self.grants.add(
            1,
            &[
                KeyValue::new("campaign", campaign),
                KeyValue::new("outcome", outcome),
            ],
        );
    }

    pub fn prize_awarded(&self, campaign: &str, prize: &str) {
        self.awarded.add(
            1,
            &[
                KeyValue::new("campaign", campaign.to_owned()),
                KeyValue::new("prize", prize.to_owned()),
            ],
        );
    }

    /// A request answered by a layer in front of Redis.
    pub fn rejected(&self, layer: &'static str) {
        self.rejections.add(1, &[KeyValue::new("layer", layer)]);
    }

    /// A connection closed on a client error (`telemetry::connection_errors`).
    pub fn connection_error(&self, kind: &'static str) {
        self.connection_errors
            .add(1, &[KeyValue::new("kind", kind)]);
    }

    pub fn script(&self, script: &'static str, seconds: f64) {
        self.script_duration
            .record(seconds, &[KeyValue::new("script", script)]);
    }
}
