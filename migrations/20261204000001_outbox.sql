-- The outbox: events of the ledger that external systems (fulfilment: wallet,
-- coupons, notifications) receive, and one delivery per event and sink. The
-- settler writes both in the transaction that writes the ledger rows, so a
-- delivery exists exactly for what the ledger holds (src/outbox).

-- Where events go. Rows are kept in step with the processes' configuration
-- (`webhooks:`); `enabled` is false once a receiver answered 410 Gone or an
-- operator ran `prizewheel webhooks disable` (until `webhooks enable`).
CREATE TABLE outbox_sinks (
    sink             text        PRIMARY KEY CHECK (sink ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    kind             text        NOT NULL DEFAULT 'webhook',
    events           text[]      NOT NULL,
    -- Empty: every campaign.
    campaigns        text[]      NOT NULL DEFAULT '{}',
    enabled          boolean     NOT NULL DEFAULT true,
    disabled_reason  text,
    registered_at    timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- One event per ledger fact; `event_id` is stable (a reward's is its spin id),
-- so a batch settled twice records nothing new.
CREATE TABLE outbox_events (
    seq          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     text        NOT NULL UNIQUE,
    type         text        NOT NULL,
    campaign_id  text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    payload      jsonb       NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);

-- `webhooks replay --since` selects by it.
CREATE INDEX outbox_events_by_time ON outbox_events (recorded_at);

-- An event on its way to one sink. A dispatcher claims a pending delivery by
-- setting a lease (`lease_id`, `lease_until`); only the lease holder may mark
-- it delivered or failed, and nobody claims it again before the lease ends.
CREATE TABLE outbox_deliveries (
    sink          text        NOT NULL REFERENCES outbox_sinks (sink),
    event_seq     bigint      NOT NULL REFERENCES outbox_events (seq),
    state         text        NOT NULL DEFAULT 'pending'
                              CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts      integer     NOT NULL DEFAULT 0,
    failures      integer     NOT NULL DEFAULT 0,
    next_at       timestamptz NOT NULL DEFAULT now(),
    lease_id      uuid,
    lease_until   timestamptz,
    -- Retries end (dead) `retry_for` after this; a replay resets it.
    created_at    timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz,
    last_status   integer,
    last_error    text,
    PRIMARY KEY (sink, event_seq)
);

CREATE INDEX outbox_deliveries_due ON outbox_deliveries (sink, next_at) WHERE state = 'pending';
CREATE INDEX outbox_deliveries_dead ON outbox_deliveries (sink) WHERE state = 'dead';
