-- bench/pg-draw.sql: schema and seed of the PostgreSQL-only spin baseline
-- (bench/pg-spin.sh, bench/pg-spin.pgbench). Load into a FRESH database:
--
--   psql -X -v ON_ERROR_STOP=1 -d prizewheel_bench_pg -f bench/pg-draw.sql
--
-- The draw is the one of lua/spin.lua, done the way an application without
-- Redis would do it: r = R mod (sum of all weights); walk the prizes in table
-- order adding weights; the first prize whose running sum exceeds r is chosen;
-- if it is a bounded prize with no stock left, the fallback is given instead
-- (so an exhausted prize's share goes to the fallback). Stock never goes below
-- zero: every decrement is guarded by `stock > 0` under a row lock, and the
-- CHECK constraint would turn a bug into an error rather than a negative count.

CREATE TABLE campaigns (
    campaign_id     text        PRIMARY KEY,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    paused          boolean     NOT NULL DEFAULT false,
    spins_per_user  integer     NOT NULL CHECK (spins_per_user > 0),
    fallback_prize  text        NOT NULL
);

CREATE TABLE prizes (
    campaign_id    text    NOT NULL REFERENCES campaigns (campaign_id),
    prize_id       text    NOT NULL,
    -- Order of the weight walk (the YAML order).
    position       integer NOT NULL,
    weight         integer NOT NULL CHECK (weight >= 0),
    -- Units left; NULL = unlimited.
    stock          bigint  CHECK (stock >= 0),
    -- Units at the start, for the conservation check after a run.
    initial_stock  bigint,
    PRIMARY KEY (campaign_id, prize_id),
    UNIQUE (campaign_id, position)
);

-- Per-user spin count (the quota). One campaign in this bench, so keyed by user.
CREATE TABLE user_spins (
    user_id  text    PRIMARY KEY,
    spins    integer NOT NULL CHECK (spins >= 0)
);

-- One row per drawn spin: the reward ledger and the idempotency record at once.
CREATE TABLE spins (
    spin_id          uuid        PRIMARY KEY,
    campaign_id      text        NOT NULL,
    user_id          text        NOT NULL,
    prize_id         text        NOT NULL,
    r                bigint      NOT NULL CHECK (r >= 0),
    idempotency_key  text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, idempotency_key)
);

-- The campaign of bench/spin.sh: open now, a quota that never refuses, one
-- scarce prize, one plentiful prize and an unlimited fallback.
INSERT INTO campaigns (campaign_id, starts_at, ends_at, spins_per_user, fallback_prize)
VALUES ('bench', now() - interval '1 hour', now() + interval '30 days', 1000000, 'none');

INSERT INTO prizes (campaign_id, prize_id, position, weight, stock, initial_stock) VALUES
    ('bench', 'phone',  1,    1,    1000,    1000),
    ('bench', 'coupon', 2, 2000, 1000000, 1000000),
    ('bench', 'none',   3, 7999,    NULL,    NULL);

-- The whole spin in one round trip: the same steps as bench/pg-spin.pgbench's
-- per-statement path, run inside the server. Called as a single autocommit
-- statement, so the function is the transaction.
--
-- p_lock_all = true:  lock every prize row of the campaign (SELECT … FOR UPDATE,
--                     in position order) before choosing; the usual design.
-- p_lock_all = false: choose from an unlocked read, then lock only the chosen
--                     bounded prize with a guarded UPDATE; the fallback (80 % of
--                     spins here) locks no prize row at all.
CREATE FUNCTION pw_spin(p_campaign text, p_user text, p_key text, p_r bigint,
                        p_lock_all boolean DEFAULT true,
                        OUT outcome text, OUT won text, OUT spin uuid, OUT used integer)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_fallback  text;
    v_limit     integer;
    v_open      boolean;
    v_counted   boolean;
    v_stock     bigint;
BEGIN
    SELECT c.fallback_prize, c.spins_per_user,
           now() >= c.starts_at AND now() < c.ends_at AND NOT c.paused
    INTO v_fallback, v_limit, v_open
    FROM campaigns c
    WHERE c.campaign_id = p_campaign;
    IF NOT FOUND THEN
        outcome := 'no_campaign';
        RETURN;
    END IF;

    -- 1. Lock the user's count row (creating it) and count this spin while under
    -- the limit. The lock serializes one user's spins, which makes the replay
    -- check below exact even when a client retries while its first try runs.
    INSERT INTO user_spins AS u (user_id, spins)
    SELECT p_user, 1 WHERE v_open
    ON CONFLICT (user_id) DO UPDATE SET spins = u.spins + 1 WHERE u.spins < v_limit
    RETURNING u.spins INTO used;
    v_counted := FOUND;

    -- 2. Replay: the same (user, key) answers with the stored result, uncounted.
    SELECT s.spin_id, s.prize_id INTO spin, won
    FROM spins s
    WHERE s.user_id = p_user AND s.idempotency_key = p_key;
    IF FOUND THEN
        IF v_counted THEN
            UPDATE user_spins u SET spins = u.spins - 1 WHERE u.user_id = p_user;
        END IF;
        outcome := 'replay';
        used := NULL;
        RETURN;
    END IF;

    -- 3. The campaign is open and the user under quota.
    IF NOT v_open THEN
        outcome := 'closed';
        RETURN;
    END IF;
    IF NOT v_counted THEN
        outcome := 'quota_exhausted';
        RETURN;
    END IF;

    -- 4. Choose.
    IF p_lock_all THEN
        WITH locked AS (
            SELECT p.prize_id, p.position, p.weight, p.stock
            FROM prizes p
            WHERE p.campaign_id = p_campaign
            ORDER BY p.position
            FOR UPDATE
        ), walk AS (
            SELECT l.prize_id, l.position, l.stock,
                   sum(l.weight) OVER (ORDER BY l.position) AS upto,
                   sum(l.weight) OVER () AS total
            FROM locked l
        )
        SELECT w.prize_id, w.stock INTO won, v_stock
        FROM walk w
        WHERE w.upto > p_r % w.total
        ORDER BY w.position
        LIMIT 1;
    ELSE
        SELECT w.prize_id, w.stock INTO won, v_stock
        FROM (
            SELECT p.prize_id, p.position, p.stock,
                   sum(p.weight) OVER (ORDER BY p.position) AS upto,
                   sum(p.weight) OVER () AS total
            FROM prizes p
            WHERE p.campaign_id = p_campaign
        ) w
        WHERE w.upto > p_r % w.total
        ORDER BY w.position
        LIMIT 1;
    END IF;

    -- 5. Take the unit: only while stock > 0; none left means the fallback.
    IF v_stock = 0 THEN
        won := v_fallback;
    ELSIF v_stock > 0 THEN
        UPDATE prizes p SET stock = p.stock - 1
        WHERE p.campaign_id = p_campaign AND p.prize_id = won AND p.stock > 0;
        IF NOT FOUND THEN
            won := v_fallback;
        END IF;
    END IF;

    -- 6. The ledger row, which is also the idempotency record.
    spin := gen_random_uuid();
    INSERT INTO spins (spin_id, campaign_id, user_id, prize_id, r, idempotency_key)
    VALUES (spin, p_campaign, p_user, won, p_r, p_key);
    outcome := 'ok';
END
$fn$;

-- Samples pg_stat_activity every p_every seconds for p_seconds and returns
-- what the benchmark's connections (those of this database, other than the
-- caller) were doing, as average numbers of connections:
--   lock_wait  waiting for a heavyweight lock (row locks: transactionid/tuple)
--   running    executing, not waiting for a lock (includes CPU, I/O, LWLocks)
--   in_tx_idle inside a transaction, waiting for the client's next statement
--   idle       between transactions (client-side time, scheduling, network)
CREATE FUNCTION pw_sample_waits(p_seconds double precision, p_every double precision,
                                OUT samples integer, OUT lock_wait numeric,
                                OUT running numeric, OUT in_tx_idle numeric,
                                OUT idle numeric)
LANGUAGE plpgsql AS $fn$
DECLARE
    t_end  timestamptz := clock_timestamp() + make_interval(secs => p_seconds);
    n_lock bigint := 0;
    n_run  bigint := 0;
    n_itx  bigint := 0;
    n_idle bigint := 0;
    a record;
BEGIN
    samples := 0;
    WHILE clock_timestamp() < t_end LOOP
        PERFORM pg_stat_clear_snapshot();
        SELECT count(*) FILTER (WHERE state = 'active' AND wait_event_type = 'Lock') AS l,
               count(*) FILTER (WHERE state = 'active' AND wait_event_type IS DISTINCT FROM 'Lock') AS r,
               count(*) FILTER (WHERE state LIKE 'idle in transaction%') AS t,
               count(*) FILTER (WHERE state = 'idle') AS i
        INTO a
        FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid()
          AND backend_type = 'client backend';
        n_lock := n_lock + a.l;
        n_run := n_run + a.r;
        n_itx := n_itx + a.t;
        n_idle := n_idle + a.i;
        samples := samples + 1;
        PERFORM pg_sleep(p_every);
    END LOOP;
    lock_wait := round(n_lock::numeric / greatest(samples, 1), 2);
    running := round(n_run::numeric / greatest(samples, 1), 2);
    in_tx_idle := round(n_itx::numeric / greatest(samples, 1), 2);
    idle := round(n_idle::numeric / greatest(samples, 1), 2);
END
$fn$;
