-- Funding (issue 13): on-chain deposits to a per-account address of the node wallet, and operator credits.
--
-- * deposit_addresses: the addresses the node wallet made for an account (getnewaddress "hashhub:<account>").
--   One is current per account (what the API hands out); older ones keep being watched, so a payer who reuses
--   one is still credited.
-- * deposits: every wallet receipt to one of those addresses, keyed by its outpoint (txid, vout). seen → credited
--   (balance ← wallet, at accounting.deposits.confirmations) → reversed (its block left the best chain) → credited
--   again if it is mined again (generation `credits` numbers the ledger keys). The ledger holds the money; this
--   row is where the deposit is, so it may change.
-- * deposit_scan: the wallet cursor (listsinceblock's lastblock), one row.
-- * operator_credits: an operator's credit to an account (who, why, the idempotency key), beside its ledger entry.
-- * ledger kind deposit_shortfall: a credited deposit a reorg removed after the account had spent it (escrowed in
--   the market, paid out): what the account owes the pool, an asset, never negative. The operator is alerted.

INSERT INTO ledger_account_kinds (kind, normal_sign, allow_negative, per_account, description) VALUES
  ('deposit_shortfall', 1, false, true, 'A credited deposit a reorg removed after the account had spent it: what the account owes the pool (the operator decides)');

CREATE TABLE deposit_addresses (
  address     text PRIMARY KEY CHECK (address = btrim(address) AND length(address) BETWEEN 14 AND 90),
  account_id  bigint NOT NULL REFERENCES accounts (id),
  -- The output script (hex): receipts are matched on it, since a wallet may print one address two ways (bcoin
  -- 1.0.2 returns regtest addresses in mainnet encoding from getnewaddress and in regtest encoding elsewhere).
  script      text NOT NULL UNIQUE CHECK (script ~ '^[0-9a-f]+$'),
  label       text NOT NULL,
  current     boolean NOT NULL DEFAULT true,
  created_at  timestamptz NOT NULL DEFAULT now()
);
-- One current address per account (a concurrent second request loses the insert and reads the winner's).
CREATE UNIQUE INDEX deposit_addresses_current ON deposit_addresses (account_id) WHERE current;
CREATE INDEX deposit_addresses_account ON deposit_addresses (account_id);

CREATE TABLE deposits (
  txid           text NOT NULL CHECK (txid ~ '^[0-9a-f]{64}$'),
  vout           integer NOT NULL CHECK (vout >= 0),
  address        text NOT NULL REFERENCES deposit_addresses (address),
  account_id     bigint NOT NULL REFERENCES accounts (id),
  amount         bigint NOT NULL CHECK (amount > 0),
  block_hash     text,
  block_height   integer,
  confirmations  integer NOT NULL DEFAULT 0,
  state          text NOT NULL CHECK (state IN ('seen', 'credited', 'reversed')),
  -- How many times it was credited (a deposit reorged out and mined again is credited again, under a new key).
  credits        integer NOT NULL DEFAULT 0 CHECK (credits >= 0),
  -- At the last reversal: what the account's balance could not give back (moved to deposit_shortfall).
  shortfall      bigint NOT NULL DEFAULT 0 CHECK (shortfall >= 0),
  first_seen_at  timestamptz NOT NULL DEFAULT now(),
  credited_at    timestamptz,
  reversed_at    timestamptz,
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (txid, vout),
  CHECK (state <> 'seen' OR credits = 0),
  CHECK (state <> 'credited' OR credits > 0)
);
CREATE INDEX deposits_account_idx ON deposits (account_id, first_seen_at DESC);
CREATE INDEX deposits_open_idx ON deposits (state, block_height);

CREATE TABLE deposit_scan (
  id          boolean PRIMARY KEY DEFAULT true CHECK (id),
  last_block  text,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE operator_credits (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  account_id       bigint NOT NULL REFERENCES accounts (id),
  amount           bigint NOT NULL CHECK (amount > 0),
  reason           text NOT NULL CHECK (length(btrim(reason)) > 0),
  who              text NOT NULL,
  idempotency_key  text NOT NULL UNIQUE,
  entry_id         bigint NOT NULL REFERENCES journal_entries (id),
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX operator_credits_account_idx ON operator_credits (account_id, id DESC);
