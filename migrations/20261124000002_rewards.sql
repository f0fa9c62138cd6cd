-- The reward ledger: one row per drawn spin, written by the settler from each
-- campaign's results stream (exactly once: spin_id is the key), plus the apply
-- events that sit between draws in the same stream. Finance reads these tables
-- and the views below.

CREATE TABLE rewards (
    -- UUID v7 minted by the service for the spin; the idempotent key of settlement.
    spin_id          uuid          PRIMARY KEY,
    campaign_id      text          NOT NULL,
    -- The token subject of the shopper who spun.
    user_id          text          NOT NULL,
    prize_id         text          NOT NULL,
    amount           numeric(20,4) NOT NULL CHECK (amount >= 0),
    currency         char(3)       NOT NULL,
    -- The draw's random input R (< 2^53) and its place in the draw order: the
    -- Redis stream id `ms-seq` of the results stream.
    r                bigint        NOT NULL CHECK (r >= 0),
    stream_id        text          NOT NULL,
    stream_ms        bigint        NOT NULL,
    stream_seq       bigint        NOT NULL,
    -- The campaign version whose odds and stock held for this draw.
    config_version   bigint        NOT NULL,
    idempotency_key  text          NOT NULL,
    -- The client context sent with the spin (e.g. the order that earned it).
    context          jsonb,
    spun_at          timestamptz   NOT NULL,
    settled_at       timestamptz   NOT NULL DEFAULT now()
);

-- Draw order within a campaign (replay, audit).
CREATE UNIQUE INDEX rewards_draw_order ON rewards (campaign_id, stream_ms, stream_seq);
-- Finance filters: by prize, by user, by time, with keyset pagination on spun_at, spin_id.
CREATE INDEX rewards_by_time ON rewards (campaign_id, spun_at, spin_id);
CREATE INDEX rewards_by_prize ON rewards (campaign_id, prize_id, spun_at, spin_id);
CREATE INDEX rewards_by_user ON rewards (campaign_id, user_id, spun_at, spin_id);

-- Applies of a campaign in draw order, as they appear in the results stream.
CREATE TABLE ledger_applies (
    campaign_id  text        NOT NULL,
    stream_id    text        NOT NULL,
    stream_ms    bigint      NOT NULL,
    stream_seq   bigint      NOT NULL,
    version      bigint      NOT NULL,
    config_hash  text        NOT NULL,
    applied_at   timestamptz NOT NULL,
    PRIMARY KEY (campaign_id, stream_ms, stream_seq)
);

-- Per campaign and prize: units settled and their total value.
CREATE VIEW reward_totals AS
SELECT campaign_id, prize_id, currency, count(*) AS rewards, sum(amount) AS total_amount
FROM rewards
GROUP BY campaign_id, prize_id, currency;

-- Per campaign, UTC day and prize: units settled and their total value.
CREATE VIEW reward_daily AS
SELECT campaign_id, (spun_at AT TIME ZONE 'UTC')::date AS day, prize_id, currency,
       count(*) AS rewards, sum(amount) AS total_amount
FROM rewards
GROUP BY campaign_id, (spun_at AT TIME ZONE 'UTC')::date, prize_id, currency;
