-- Prize codes (`stock: codes`): a win of a code prize hands the shopper one
-- coupon code, kept with the reward.

-- The code a reward handed out; NULL for a prize without codes. The pattern is
-- the loader's: a malformed code is a data error, dead-lettered, never lost.
ALTER TABLE rewards ADD COLUMN code text CHECK (code ~ '^[A-Za-z0-9_-]{1,64}$');
-- Recovery removes the ledger's codes from the pools; audit and reconcile count them.
CREATE INDEX rewards_by_code ON rewards (campaign_id, code) WHERE code IS NOT NULL;

-- A prize whose stock is the codes loaded for it (stock is then NULL).
ALTER TABLE prizes ADD COLUMN codes boolean NOT NULL DEFAULT false;
