-- The ledger: double-entry bookkeeping in integer satoshis, enforced by the database itself.
--
-- * ledger_accounts: one row per (kind, owner). Pool-level kinds have no owner; per-account kinds belong to a row
--   of accounts. Each row carries a running `balance` kept by a trigger from the postings, in the account's
--   natural sign (normal_sign × Σ amount: positive = the account holds value of its kind), with
--   CHECK (allow_negative OR balance >= 0): no miner balance below zero, no payout above the balance.
-- * journal_entries: one per money event, with a UNIQUE idempotency key (the natural key of the event: per block,
--   per credit period, per payout batch step). Running a step twice finds the key and changes nothing.
-- * postings: the entry's lines. amount > 0 is a debit, < 0 a credit; an entry's postings sum to zero, checked at
--   COMMIT by a deferred constraint trigger (so the lines of one entry may be inserted in any order).
-- * Append-only: postings and entries cannot be updated, deleted or truncated; a balance cannot be set by hand.
--   A correction is a new entry.
--
-- Written for PostgreSQL 14..18 (PGlite is 18): xid8/pg_current_xact_id (13+), transition tables (10+).

CREATE TABLE ledger_account_kinds (
  kind            text PRIMARY KEY,
  -- +1: debit-normal (assets, expenses): balance = Σ amount. -1: credit-normal (what is owed, revenue, equity):
  -- balance = −Σ amount.
  normal_sign     smallint NOT NULL CHECK (normal_sign IN (-1, 1)),
  allow_negative  boolean NOT NULL,
  per_account     boolean NOT NULL,
  description     text NOT NULL
);

INSERT INTO ledger_account_kinds (kind, normal_sign, allow_negative, per_account, description) VALUES
  ('wallet', 1, false, false, 'Coins the node wallet holds that the ledger accounts for: matured pooled block rewards and confirmed deposits, less confirmed payouts and their network fees'),
  ('network_fees', 1, false, false, 'Network (miner) fees paid by payout transactions: an expense of the pool'),
  ('solo_coinbase', 1, false, false, 'Memo asset: SOLO block rewards the coinbase paid straight to the finder; the pool never held them'),
  ('pool_revenue', -1, true, false, 'The pool''s mining result: pooled block rewards not owed to PPLNS miners, less FPPS credits. Negative after bad luck under FPPS'),
  ('pool_fee', -1, false, false, 'Pool fees taken from PPLNS and SOLO block rewards'),
  ('balance', -1, false, true, 'What the pool owes an account (mining credits, market earnings, deposits): what payouts pay'),
  ('payouts_in_flight', -1, false, false, 'Payouts signed (and possibly broadcast) but not yet confirmed on chain'),
  ('solo_earnings', -1, false, true, 'Memo: SOLO block rewards paid to this account by the coinbase itself'),
  ('buyer_escrow', -1, false, true, 'Market: a buyer''s budget held for open bids'),
  ('seller_earnings', -1, false, true, 'Market: a seller''s earnings before they move to its balance'),
  ('market_fee', -1, true, false, 'Market fees taken at settlement; negative when delivery went beyond a budget (the market bears it, never the seller)'),
  ('deposits_pending', -1, false, true, 'Market: on-chain deposits seen but not yet confirmed enough to credit'),
  ('operator_adjustments', -1, true, false, 'Operator credits and corrections (who and why in the entry)');

CREATE TABLE ledger_accounts (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind            text NOT NULL REFERENCES ledger_account_kinds (kind),
  account_id      bigint REFERENCES accounts (id),
  normal_sign     smallint NOT NULL,
  allow_negative  boolean NOT NULL,
  balance         bigint NOT NULL DEFAULT 0,
  created_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT ledger_balance_not_negative CHECK (allow_negative OR balance >= 0)
);
-- One ledger account per (kind, owner); pool-level kinds have a NULL owner (-1 here: PG 14 has no NULLS NOT DISTINCT).
CREATE UNIQUE INDEX ledger_accounts_kind_owner ON ledger_accounts (kind, (coalesce(account_id, -1)));
CREATE INDEX ledger_accounts_owner ON ledger_accounts (account_id) WHERE account_id IS NOT NULL;

CREATE TABLE journal_entries (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  idempotency_key  text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
  kind             text NOT NULL,
  -- The time the entry is about (the credit period's end, the block's time, the payout's signing).
  effective_at     timestamptz NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  memo             text,
  refs             jsonb NOT NULL DEFAULT '{}'::jsonb,
  -- The transaction that created the entry: postings may only be added in that same transaction.
  xact             xid8 NOT NULL DEFAULT pg_current_xact_id(),
  CONSTRAINT journal_entries_key UNIQUE (idempotency_key)
);
CREATE INDEX journal_entries_kind_idx ON journal_entries (kind, id);

CREATE TABLE postings (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  entry_id           bigint NOT NULL REFERENCES journal_entries (id),
  ledger_account_id  bigint NOT NULL REFERENCES ledger_accounts (id),
  amount             bigint NOT NULL CHECK (amount <> 0),
  -- One net line per account and entry (the API merges); also the index for "the postings of an entry".
  CONSTRAINT postings_entry_account UNIQUE (entry_id, ledger_account_id)
);
CREATE INDEX postings_account_idx ON postings (ledger_account_id, id);

-- ---- ledger accounts: attributes come from the kind; only the postings trigger moves a balance ----------------

CREATE FUNCTION hashhub_ledger_account_init() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  k ledger_account_kinds%ROWTYPE;
BEGIN
  SELECT * INTO k FROM ledger_account_kinds WHERE kind = NEW.kind;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'unknown ledger account kind %', NEW.kind USING ERRCODE = 'HH004';
  END IF;
  IF k.per_account AND NEW.account_id IS NULL THEN
    RAISE EXCEPTION 'ledger account kind % belongs to an account: account_id is required', NEW.kind USING ERRCODE = 'HH004';
  END IF;
  IF NOT k.per_account AND NEW.account_id IS NOT NULL THEN
    RAISE EXCEPTION 'ledger account kind % is pool-level: account_id must be NULL', NEW.kind USING ERRCODE = 'HH004';
  END IF;
  NEW.normal_sign := k.normal_sign;
  NEW.allow_negative := k.allow_negative;
  NEW.balance := 0;
  RETURN NEW;
END
$$;
CREATE TRIGGER ledger_accounts_init BEFORE INSERT ON ledger_accounts
  FOR EACH ROW EXECUTE FUNCTION hashhub_ledger_account_init();

CREATE FUNCTION hashhub_ledger_account_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'ledger accounts are never deleted' USING ERRCODE = 'HH002';
  END IF;
  IF NEW.kind <> OLD.kind OR NEW.account_id IS DISTINCT FROM OLD.account_id OR NEW.normal_sign <> OLD.normal_sign
     OR NEW.allow_negative <> OLD.allow_negative OR NEW.id <> OLD.id THEN
    RAISE EXCEPTION 'ledger account % attributes are immutable', OLD.id USING ERRCODE = 'HH002';
  END IF;
  -- Depth 1 = an UPDATE from outside; the postings trigger runs at depth 1, so its UPDATE arrives here at 2.
  IF NEW.balance <> OLD.balance AND pg_trigger_depth() < 2 THEN
    RAISE EXCEPTION 'ledger account % balance is kept from its postings; post an entry instead', OLD.id USING ERRCODE = 'HH005';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER ledger_accounts_guard BEFORE UPDATE OR DELETE ON ledger_accounts
  FOR EACH ROW EXECUTE FUNCTION hashhub_ledger_account_guard();

-- ---- postings move balances (one statement-level pass per INSERT, in account id order: no deadlocks) --------

CREATE FUNCTION hashhub_postings_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (
    SELECT 1 FROM new_postings p JOIN journal_entries e ON e.id = p.entry_id WHERE e.xact <> pg_current_xact_id()
  ) THEN
    RAISE EXCEPTION 'postings may only be added in the transaction that created their journal entry'
      USING ERRCODE = 'HH003';
  END IF;
  -- Lock the touched accounts in a fixed order first: two entries touching the same accounts wait, never
  -- deadlock. NO KEY UPDATE (what the balance UPDATE takes anyway) does not conflict with the KEY SHARE locks the
  -- postings' foreign keys already hold, so the order here is the only order that matters.
  PERFORM 1 FROM ledger_accounts
    WHERE id IN (SELECT DISTINCT ledger_account_id FROM new_postings) ORDER BY id FOR NO KEY UPDATE;
  UPDATE ledger_accounts a SET balance = a.balance + a.normal_sign * d.delta
  FROM (SELECT ledger_account_id, sum(amount)::bigint AS delta FROM new_postings GROUP BY ledger_account_id) d
  WHERE a.id = d.ledger_account_id AND d.delta <> 0;
  RETURN NULL;
END
$$;
CREATE TRIGGER postings_apply AFTER INSERT ON postings
  REFERENCING NEW TABLE AS new_postings FOR EACH STATEMENT EXECUTE FUNCTION hashhub_postings_apply();

-- ---- an entry balances: checked at COMMIT (deferred), once per entry --------------------------------------------

CREATE FUNCTION hashhub_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  total numeric;
  lines bigint;
BEGIN
  SELECT coalesce(sum(amount), 0), count(*) INTO total, lines FROM postings WHERE entry_id = NEW.id;
  IF lines < 2 OR total <> 0 THEN
    RAISE EXCEPTION 'journal entry % (%) does not balance: % posting(s) summing to %', NEW.id, NEW.idempotency_key, lines, total
      USING ERRCODE = 'HH001';
  END IF;
  RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER journal_entries_balanced AFTER INSERT ON journal_entries
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hashhub_entry_balanced();

-- ---- append-only --------------------------------------------------------------------------------------------

CREATE FUNCTION hashhub_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only (% refused): post a correcting entry instead', TG_TABLE_NAME, TG_OP USING ERRCODE = 'HH002';
END
$$;
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
  FOR EACH ROW EXECUTE FUNCTION hashhub_ledger_append_only();
CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON postings
  FOR EACH STATEMENT EXECUTE FUNCTION hashhub_ledger_append_only();
CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
  FOR EACH ROW EXECUTE FUNCTION hashhub_ledger_append_only();
CREATE TRIGGER journal_entries_no_truncate BEFORE TRUNCATE ON journal_entries
  FOR EACH STATEMENT EXECUTE FUNCTION hashhub_ledger_append_only();
CREATE TRIGGER ledger_accounts_no_truncate BEFORE TRUNCATE ON ledger_accounts
  FOR EACH STATEMENT EXECUTE FUNCTION hashhub_ledger_append_only();

-- ---- get-or-create ledger accounts for (kind, owner) pairs, in input order ---------------------------------

CREATE FUNCTION hashhub_ledger_accounts(p_kinds text[], p_owners bigint[])
RETURNS TABLE (ord integer, id bigint) LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO ledger_accounts (kind, account_id, normal_sign, allow_negative)
  SELECT DISTINCT k, o, 0, false FROM unnest(p_kinds, p_owners) AS x(k, o)
  WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts la WHERE la.kind = x.k AND coalesce(la.account_id, -1) = coalesce(x.o, -1))
  ORDER BY 1, 2
  ON CONFLICT (kind, (coalesce(account_id, -1))) DO NOTHING;
  RETURN QUERY
    SELECT x.ord::integer, la.id
    FROM unnest(p_kinds, p_owners) WITH ORDINALITY AS x(k, o, ord)
    JOIN ledger_accounts la ON la.kind = x.k AND coalesce(la.account_id, -1) = coalesce(x.o, -1)
    ORDER BY x.ord;
END
$$;
