-- Spins earned by orders: one row per grant the order service made, written by
-- the settler from the campaign's results stream (exactly once: the grant id is
-- the key within the campaign), and its revocation when the order was cancelled.

CREATE TABLE grants (
    campaign_id   text         NOT NULL,
    -- The grant's Idempotency-Key, e.g. the order id.
    grant_id      text         NOT NULL,
    -- The shopper, as the subject of their tokens.
    user_id       text         NOT NULL,
    spins         integer      NOT NULL CHECK (spins BETWEEN 1 AND 100),
    -- What the order service said about it, e.g. {"order_id": "…"}.
    reason        jsonb,
    granted_at    timestamptz  NOT NULL,
    -- The campaign day it was granted on (-1: before the first), and its place in
    -- the draw order (the results stream id `ms-seq`).
    grant_day     integer      NOT NULL,
    stream_ms     bigint       NOT NULL,
    stream_seq    bigint       NOT NULL,
    -- Set by the revocation: spins taken back, already used, lapsed unused (they
    -- add up to `spins`), and when; NULL while the grant stands.
    revoked       integer      CHECK (revoked >= 0),
    already_used  integer      CHECK (already_used >= 0),
    lapsed        integer      CHECK (lapsed >= 0),
    revoked_at    timestamptz,
    settled_at    timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, grant_id),
    CHECK (revoked IS NULL OR revoked + already_used + lapsed = spins)
);

CREATE UNIQUE INDEX grants_draw_order ON grants (campaign_id, stream_ms, stream_seq);
CREATE INDEX grants_by_user ON grants (campaign_id, user_id, stream_ms, stream_seq);

-- Revocations in the draw order, as they appear in the results stream. A
-- revocation whose grant is not in the ledger is refused (the foreign key) and
-- dead-lettered, never lost: retried once its grant is settled.
CREATE TABLE grant_revocations (
    campaign_id   text         NOT NULL,
    grant_id      text         NOT NULL,
    revoked       integer      NOT NULL CHECK (revoked >= 0),
    already_used  integer      NOT NULL CHECK (already_used >= 0),
    lapsed        integer      NOT NULL CHECK (lapsed >= 0),
    revoked_at    timestamptz  NOT NULL,
    stream_ms     bigint       NOT NULL,
    stream_seq    bigint       NOT NULL,
    PRIMARY KEY (campaign_id, grant_id),
    FOREIGN KEY (campaign_id, grant_id) REFERENCES grants (campaign_id, grant_id)
);

CREATE UNIQUE INDEX grant_revocations_draw_order ON grant_revocations (campaign_id, stream_ms, stream_seq);

-- Per campaign: spins granted, revoked (taken back), and used, next to the rewards.
CREATE VIEW spin_totals AS
SELECT c.campaign_id,
       COALESCE(g.granted, 0)  AS spins_granted,
       COALESCE(g.revoked, 0)  AS spins_revoked,
       COALESCE(g.lapsed, 0)   AS spins_lapsed,
       COALESCE(r.used, 0)     AS spins_used
FROM campaigns c
LEFT JOIN (SELECT campaign_id, sum(spins) AS granted, sum(revoked) AS revoked, sum(lapsed) AS lapsed
           FROM grants GROUP BY campaign_id) g USING (campaign_id)
LEFT JOIN (SELECT campaign_id, count(*) AS used FROM rewards GROUP BY campaign_id) r USING (campaign_id);
