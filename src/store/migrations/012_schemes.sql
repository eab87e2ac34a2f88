-- Payout schemes: FPPS credits per period, PPLNS splits per block, SOLO bookkeeping. Everything here is computed
-- from stored shares and blocks (never from a process's memory) and frozen once computed, so a restart or a
-- second process reaches the same books. Money itself moves only in the ledger (migration 010).
--
-- Units. A share's FPPS value is pool_difficulty / network_difficulty(job nbits) × block_value × (1 − fee).
-- network_difficulty = diff1 / target with diff1 = 0xFFFF × 2^208, so the value is exactly
--   pool_difficulty × (target / 2^208) × block_value × (10000 − fee_bps) / (65535 × 10000)   satoshis.
-- target / 2^208 is a finite decimal (hashhub_bits_ratio), pool_difficulty enters as its float8 value rounded to
-- 15 significant digits (PostgreSQL's float8 → numeric), and block_value is whole satoshis: the numerator is an
-- exact numeric and the denominator the constant 655,350,000 (FPPS_DENOM). Amounts "in FPPS units" below are
-- such numerators; dividing by FPPS_DENOM gives satoshis.

-- ---- parameters, versioned: the row in force at time t is the latest with effective_from <= t -----------------
CREATE TABLE accounting_params (
  effective_from            timestamptz PRIMARY KEY,
  fpps_fee_bps              integer NOT NULL CHECK (fpps_fee_bps BETWEEN 0 AND 10000),
  pplns_fee_bps             integer NOT NULL CHECK (pplns_fee_bps BETWEEN 0 AND 10000),
  solo_fee_bps              integer NOT NULL CHECK (solo_fee_bps BETWEEN 0 AND 10000),
  default_scheme            text NOT NULL CHECK (default_scheme IN ('fpps', 'pplns')),
  -- PPLNS window: N × the block's network difficulty of accepted pooled shares, but never older than this.
  pplns_n                   numeric NOT NULL CHECK (pplns_n > 0),
  pplns_max_window_seconds  integer NOT NULL CHECK (pplns_max_window_seconds > 0),
  recorded_at               timestamptz NOT NULL DEFAULT now(),
  source                    text NOT NULL
);

-- Fixed for the life of the books: the credit period and where crediting starts.
CREATE TABLE accounting_state (
  singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  -- Divides a day, and either divides a minute or is whole minutes (so PPLNS buckets never straddle a period).
  period_seconds  integer NOT NULL CHECK (period_seconds BETWEEN 1 AND 86400 AND 86400 % period_seconds = 0
                    AND (60 % period_seconds = 0 OR period_seconds % 60 = 0)),
  -- The first credited period starts here (a period boundary); shares and blocks before it are not accounted.
  started_at      timestamptz NOT NULL,
  network         text NOT NULL CHECK (network IN ('mainnet', 'testnet', 'signet', 'regtest')),
  created_at      timestamptz NOT NULL DEFAULT now()
);

-- An account's scheme, versioned; a change takes effect at the next period boundary. No row: the default.
CREATE TABLE account_schemes (
  account_id      bigint NOT NULL REFERENCES accounts (id),
  effective_from  timestamptz NOT NULL,
  scheme          text NOT NULL CHECK (scheme IN ('fpps', 'pplns', 'solo')),
  changed_at      timestamptz NOT NULL DEFAULT now(),
  source          text,
  PRIMARY KEY (account_id, effective_from)
);

CREATE FUNCTION hashhub_params_at(p_t timestamptz) RETURNS accounting_params
LANGUAGE sql STABLE AS $$
  SELECT * FROM accounting_params WHERE effective_from <= p_t ORDER BY effective_from DESC LIMIT 1
$$;

CREATE FUNCTION hashhub_scheme_at(p_account bigint, p_t timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    (SELECT scheme FROM account_schemes WHERE account_id = p_account AND effective_from <= p_t
      ORDER BY effective_from DESC LIMIT 1),
    (SELECT default_scheme FROM accounting_params WHERE effective_from <= p_t ORDER BY effective_from DESC LIMIT 1))
$$;

-- target / 2^208 for a compact target, exactly: target = mantissa × 2^(8(e−3)), so the ratio is the mantissa
-- times a power of two (a finite decimal). Bitcoin's rule for e <= 3 (mantissa shifted right) is followed.
CREATE FUNCTION hashhub_bits_ratio(p_bits integer) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
  mantissa bigint := p_bits & 8388607;   -- 0x007fffff
  e integer := (p_bits >> 24) & 255;
  k integer;
  r numeric;
BEGIN
  IF (p_bits & 8388608) <> 0 THEN        -- 0x00800000: a negative target
    RAISE EXCEPTION 'compact target % is negative', p_bits;
  END IF;
  IF e <= 3 THEN
    mantissa := mantissa >> (8 * (3 - e));
    k := -208;
  ELSE
    k := 8 * (e - 3) - 208;
  END IF;
  IF mantissa = 0 THEN
    RAISE EXCEPTION 'compact target % is zero', p_bits;
  END IF;
  r := mantissa;
  -- Repeated exact multiplication: numeric ^ with a negative exponent would round.
  FOR i IN 1..abs(k) LOOP
    r := r * CASE WHEN k > 0 THEN 2::numeric ELSE 0.5 END;
  END LOOP;
  RETURN r;
END
$$;

-- ---- the chain as accounting saw it --------------------------------------------------------------------------
-- Fees of each block, learned from the node (getblockstats totalfee, or coinbase − subsidy where the node has no
-- getblockstats), and the expected block value at each height: subsidy + the mean fees of the 144 blocks before
-- it (fewer on a young chain), the mean rounded down to whole satoshis. Frozen when first recorded.
CREATE TABLE chain_block_fees (
  height       integer PRIMARY KEY,
  hash         text NOT NULL,
  bits         integer NOT NULL,
  total_fee    bigint NOT NULL CHECK (total_fee >= 0),
  source       text NOT NULL CHECK (source IN ('getblockstats', 'coinbase')),
  recorded_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE chain_block_values (
  height       integer PRIMARY KEY,
  subsidy      bigint NOT NULL CHECK (subsidy >= 0),
  fee_blocks   integer NOT NULL CHECK (fee_blocks BETWEEN 0 AND 144),
  fee_sum      bigint NOT NULL CHECK (fee_sum >= 0),
  value        bigint NOT NULL CHECK (value >= 0),
  -- For shares stored without their job's nbits: the bits of the chain's block at this height (or the one before).
  bits         integer NOT NULL,
  recorded_at  timestamptz NOT NULL DEFAULT now(),
  CHECK (value = subsidy + CASE WHEN fee_blocks = 0 THEN 0 ELSE fee_sum / fee_blocks END)
);

-- ---- FPPS --------------------------------------------------------------------------------------------------
CREATE TABLE fpps_periods (
  period_start  timestamptz PRIMARY KEY,
  period_end    timestamptz NOT NULL,
  fee_bps       integer NOT NULL,
  -- Accepted shares of every account in the period when it was credited: a later count that differs means
  -- shares arrived late (a source unknown at crediting time); they are credited by an adjustment revision.
  shares        bigint NOT NULL,
  fpps_shares   bigint NOT NULL,
  credited      bigint NOT NULL,
  revisions     integer NOT NULL DEFAULT 0,
  credited_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE fpps_credits (
  period_start  timestamptz NOT NULL REFERENCES fpps_periods (period_start) DEFERRABLE INITIALLY DEFERRED,
  account_id    bigint NOT NULL REFERENCES accounts (id),
  -- 0: the period's crediting; n > 0: the n-th late-share adjustment (only the shares it added).
  revision      integer NOT NULL,
  shares        bigint NOT NULL,
  difficulty    numeric NOT NULL,
  -- The net amount in FPPS units (satoshis × 655,350,000), exact; the carry before and after, same units.
  exact         numeric NOT NULL CHECK (exact >= 0),
  carry_in      numeric NOT NULL,
  credited      bigint NOT NULL CHECK (credited >= 0),
  carry_out     numeric NOT NULL CHECK (carry_out >= 0 AND carry_out < 655350000),
  PRIMARY KEY (period_start, account_id, revision),
  CHECK (carry_in + exact = credited * 655350000::numeric + carry_out)
);
CREATE INDEX fpps_credits_account_idx ON fpps_credits (account_id, period_start DESC);

-- The fraction of a satoshi each account is owed but not yet credited, in FPPS units (< 1 sat): carried into its
-- next credit, never dropped.
CREATE TABLE fpps_carry (
  account_id  bigint PRIMARY KEY REFERENCES accounts (id),
  carry       numeric NOT NULL CHECK (carry >= 0 AND carry < 655350000),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- ---- blocks: PPLNS splits and SOLO records, computed once when the block is found, credited at maturity --------
CREATE TABLE block_splits (
  block_hash        text PRIMARY KEY REFERENCES blocks (hash),
  kind              text NOT NULL CHECK (kind IN ('pooled', 'solo')),
  finder_account    bigint NOT NULL REFERENCES accounts (id),
  height            integer NOT NULL,
  block_time        timestamptz NOT NULL,
  reward            bigint NOT NULL CHECK (reward >= 0),
  bits              integer NOT NULL,
  fee_bps           integer NOT NULL,
  -- pooled: the window, in difficulty × hashhub_bits_ratio(bits) units: target = N × 65535.
  window_target     numeric,
  window_weight     numeric,
  window_shares     bigint,
  window_start      timestamptz,
  capped_by_time    boolean,
  -- What is not a line: the pool fee, and (pooled) the part earned by FPPS miners' shares (to pool_revenue).
  fee               bigint NOT NULL CHECK (fee >= 0),
  to_pool_revenue   bigint NOT NULL CHECK (to_pool_revenue >= 0),
  -- solo: the coinbase paid the finder itself (then the pool holds only the fee output).
  paid_in_coinbase  boolean NOT NULL DEFAULT false,
  coinbase_to_finder bigint NOT NULL DEFAULT 0,
  computed_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE block_split_lines (
  block_hash  text NOT NULL REFERENCES block_splits (block_hash),
  account_id  bigint NOT NULL REFERENCES accounts (id),
  weight      numeric NOT NULL,
  shares      bigint NOT NULL,
  amount      bigint NOT NULL CHECK (amount >= 0),
  PRIMARY KEY (block_hash, account_id)
);
CREATE INDEX block_split_lines_account_idx ON block_split_lines (account_id);

-- Every satoshi of a split is somewhere: lines + fee + pool revenue = reward (a SOLO finder's line is what the
-- coinbase paid it, or what the pool owes it when the coinbase paid the pool). Checked at COMMIT, once per split.
CREATE FUNCTION hashhub_split_complete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  s block_splits%ROWTYPE;
  lines numeric;
BEGIN
  SELECT * INTO s FROM block_splits WHERE block_hash = NEW.block_hash;
  SELECT coalesce(sum(amount), 0) INTO lines FROM block_split_lines WHERE block_hash = NEW.block_hash;
  IF lines + s.fee + s.to_pool_revenue <> s.reward THEN
    RAISE EXCEPTION 'split of block % does not add up: lines % + fee % + pool revenue % <> reward %',
      s.block_hash, lines, s.fee, s.to_pool_revenue, s.reward USING ERRCODE = 'HH006';
  END IF;
  RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER block_splits_complete AFTER INSERT ON block_splits
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hashhub_split_complete();

CREATE FUNCTION hashhub_splits_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% rows are frozen once computed (% refused)', TG_TABLE_NAME, TG_OP USING ERRCODE = 'HH002';
END
$$;
CREATE TRIGGER block_splits_frozen BEFORE UPDATE OR DELETE ON block_splits
  FOR EACH ROW EXECUTE FUNCTION hashhub_splits_immutable();
CREATE TRIGGER block_split_lines_frozen BEFORE UPDATE OR DELETE ON block_split_lines
  FOR EACH ROW EXECUTE FUNCTION hashhub_splits_immutable();
CREATE TRIGGER fpps_credits_frozen BEFORE UPDATE OR DELETE ON fpps_credits
  FOR EACH ROW EXECUTE FUNCTION hashhub_splits_immutable();
