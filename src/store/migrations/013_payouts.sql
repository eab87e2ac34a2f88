-- Account settings, payout batches and their transactions, and account tokens.

-- ---- settings -------------------------------------------------------------------------------------------------
-- The payout address is stored exactly as validated (no stray whitespace can reach a transaction); NULL means
-- "the account name, when it is an address of the network". threshold NULL = the operator's default.
CREATE TABLE account_settings (
  account_id                 bigint PRIMARY KEY REFERENCES accounts (id),
  payout_address             text CHECK (payout_address IS NULL OR (payout_address = btrim(payout_address)
                               AND payout_address !~ '\s' AND length(payout_address) BETWEEN 14 AND 90)),
  payout_address_changed_at  timestamptz,
  threshold                  bigint CHECK (threshold IS NULL OR threshold > 0),
  updated_at                 timestamptz NOT NULL DEFAULT now()
);

-- Every change of a payout address, with when and by whom; the next payout waits (accounting.payouts
-- addressChangeDelaySeconds) after a change, as exchanges do.
CREATE TABLE payout_address_changes (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  account_id   bigint NOT NULL REFERENCES accounts (id),
  old_address  text,
  new_address  text,
  changed_at   timestamptz NOT NULL DEFAULT now(),
  source       text NOT NULL
);
CREATE INDEX payout_address_changes_account_idx ON payout_address_changes (account_id, changed_at DESC);

-- ---- tokens -----------------------------------------------------------------------------------------------------
-- Owner tokens (issued when the account is created) and read-only watcher tokens. Only a SHA-256 of the token is
-- stored: tokens are 256-bit random, so a fast hash is enough and the database never holds a usable secret.
CREATE TABLE account_tokens (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  account_id  bigint NOT NULL REFERENCES accounts (id),
  role        text NOT NULL CHECK (role IN ('owner', 'watcher')),
  token_hash  bytea NOT NULL UNIQUE,
  label       text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);
CREATE INDEX account_tokens_account_idx ON account_tokens (account_id);

-- ---- payouts ----------------------------------------------------------------------------------------------------
-- A batch: pending (being built: its lines follow the balances, no money moved) → signed (transaction built,
-- signed and stored, its amounts reserved in the ledger: balances → payouts_in_flight) → broadcast → confirmed
-- (payouts_in_flight and the network fee leave the wallet). External-signer batches wait in awaiting_signature
-- (reserved) until `payouts confirm <txid>`. cancelled: reserved amounts returned, only when no transaction of the
-- batch can confirm any more.
CREATE TABLE payout_batches (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  status            text NOT NULL CHECK (status IN ('pending', 'signed', 'broadcast', 'confirmed', 'awaiting_signature', 'cancelled')),
  mode              text NOT NULL CHECK (mode IN ('wallet', 'external')),
  -- Why the batch is not moving on (wallet locked, unreachable, out of funds, broadcast refused, …).
  reason            text,
  reason_code       text,
  attempts          integer NOT NULL DEFAULT 0,
  total             bigint NOT NULL DEFAULT 0 CHECK (total >= 0),
  -- The transaction in force (the latest RBF replacement) and, once confirmed, the one that confirmed.
  txid              text,
  confirmed_txid    text,
  network_fee       bigint,
  confirmations     integer NOT NULL DEFAULT 0,
  psbt              text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  signed_at         timestamptz,
  broadcast_at      timestamptz,
  confirmed_at      timestamptz
);
-- One batch being built at a time (the builder also holds an advisory lock).
CREATE UNIQUE INDEX payout_batches_one_pending ON payout_batches ((true)) WHERE status = 'pending';
CREATE INDEX payout_batches_status_idx ON payout_batches (status, id);

CREATE TABLE payout_lines (
  batch_id    bigint NOT NULL REFERENCES payout_batches (id),
  account_id  bigint NOT NULL REFERENCES accounts (id),
  address     text NOT NULL CHECK (address = btrim(address) AND address !~ '\s'),
  amount      bigint NOT NULL CHECK (amount > 0),
  PRIMARY KEY (batch_id, account_id)
);
CREATE INDEX payout_lines_account_idx ON payout_lines (account_id, batch_id DESC);

-- Every transaction built for a batch (the first, and each RBF replacement over the same inputs).
CREATE TABLE payout_txs (
  txid           text PRIMARY KEY,
  batch_id       bigint NOT NULL REFERENCES payout_batches (id),
  hex            text NOT NULL,
  fee            bigint NOT NULL CHECK (fee > 0),
  vsize          integer NOT NULL,
  fee_rate       numeric NOT NULL,
  -- [{"txid","vout","value","script"}]: excluded from coin selection while the batch is unconfirmed, and the
  -- inputs an RBF replacement must spend again.
  inputs         jsonb NOT NULL,
  change_index   integer NOT NULL DEFAULT -1,
  -- Whether the transaction is only unsigned (external signer: the PSBT's transaction, signed elsewhere).
  signed         boolean NOT NULL DEFAULT true,
  replaces       text REFERENCES payout_txs (txid),
  created_at     timestamptz NOT NULL DEFAULT now(),
  -- Set before the first sendrawtransaction: from then on the transaction may be out there.
  broadcast_at   timestamptz,
  confirmations  integer NOT NULL DEFAULT 0,
  block_hash     text
);
CREATE INDEX payout_txs_batch_idx ON payout_txs (batch_id);

-- Lines of a batch that has moved money are frozen; its transactions are never rewritten (only their
-- confirmation fields move).
CREATE FUNCTION hashhub_payout_lines_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  st text;
BEGIN
  SELECT status INTO st FROM payout_batches WHERE id = coalesce(OLD.batch_id, NEW.batch_id);
  IF st <> 'pending' THEN
    RAISE EXCEPTION 'payout batch % is %: its lines are frozen', coalesce(OLD.batch_id, NEW.batch_id), st USING ERRCODE = 'HH002';
  END IF;
  RETURN coalesce(NEW, OLD);
END
$$;
CREATE TRIGGER payout_lines_frozen BEFORE INSERT OR UPDATE OR DELETE ON payout_lines
  FOR EACH ROW EXECUTE FUNCTION hashhub_payout_lines_frozen();

CREATE FUNCTION hashhub_payout_txs_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' OR NEW.hex <> OLD.hex OR NEW.fee <> OLD.fee OR NEW.batch_id <> OLD.batch_id OR NEW.inputs <> OLD.inputs THEN
    RAISE EXCEPTION 'payout transaction % is stored once and never rewritten', OLD.txid USING ERRCODE = 'HH002';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER payout_txs_guard BEFORE UPDATE OR DELETE ON payout_txs
  FOR EACH ROW EXECUTE FUNCTION hashhub_payout_txs_guard();
