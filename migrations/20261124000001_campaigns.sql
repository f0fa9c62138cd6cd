-- Campaigns and every applied version of their YAML: who applied what, when, and
-- what it changed. Never edit a migration once applied; add a new one.

CREATE TABLE campaigns (
    campaign_id  text        PRIMARY KEY CHECK (campaign_id ~ '^[a-z0-9-]{1,64}$'),
    name         text        NOT NULL,
    timezone     text        NOT NULL,
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL,
    -- Live version in Redis as of the last recorded apply.
    version      bigint      NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE campaign_versions (
    campaign_id  text        NOT NULL REFERENCES campaigns (campaign_id),
    -- The version number Redis gave this apply (1, 2, …); draws carry it too.
    version      bigint      NOT NULL CHECK (version > 0),
    -- SHA-256 of the canonical config JSON: equal hashes mean equal configs.
    config_hash  text        NOT NULL,
    config       jsonb       NOT NULL,
    -- The YAML exactly as applied, and its SHA-256.
    yaml         text        NOT NULL,
    yaml_sha256  text        NOT NULL,
    applied_at   timestamptz NOT NULL DEFAULT now(),
    applied_by   text        NOT NULL,
    -- What the apply changed against the version before it (see `campaign plan`).
    changes      jsonb       NOT NULL,
    PRIMARY KEY (campaign_id, version)
);

-- Prizes as last applied; finance joins rewards to them.
CREATE TABLE prizes (
    campaign_id  text          NOT NULL REFERENCES campaigns (campaign_id),
    prize_id     text          NOT NULL CHECK (prize_id ~ '^[a-z0-9-]{1,32}$'),
    name         text          NOT NULL,
    amount       numeric(20,4) NOT NULL CHECK (amount >= 0),
    currency     char(3)       NOT NULL,
    weight       bigint        NOT NULL CHECK (weight >= 0),
    -- Configured units; NULL = unlimited.
    stock        bigint        CHECK (stock >= 0),
    -- Dropped from the YAML by a later version: no more units are drawn.
    retired      boolean       NOT NULL DEFAULT false,
    updated_at   timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, prize_id)
);
