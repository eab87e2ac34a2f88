-- Settlement: per (tick, bid) the money (one ledger entry each), per (tick, bid, ask) the trade with its
-- delivered work, and per trade line (bid, ask) the carried sub-satoshi remainders.

CREATE TABLE market_settlements (
  tick          bigint NOT NULL REFERENCES market_ticks (tick),
  bid_id        bigint NOT NULL REFERENCES market_bids (id),
  buyer_id      bigint NOT NULL,
  delivered_hashes numeric(40, 0) NOT NULL,
  owed_sat      bigint NOT NULL CHECK (owed_sat >= 0),
  debit_sat     bigint NOT NULL CHECK (debit_sat >= 0 AND debit_sat <= owed_sat),
  credit_sat    bigint NOT NULL CHECK (credit_sat >= 0),
  fee_sat       bigint NOT NULL,
  overrun_sat   bigint NOT NULL CHECK (overrun_sat = owed_sat - debit_sat),
  ledger_key    text NOT NULL UNIQUE,
  PRIMARY KEY (tick, bid_id),
  -- Nothing created or lost: the buyer's debit is the sellers' credits plus the market's fee.
  CHECK (debit_sat = credit_sat + fee_sat)
);

-- Trades: the delivered volume per (tick, bid, ask, price). Work is billed at the price of the tick whose
-- allocation produced it: this tick's, or for late work of an assignment that ended at this tick's start, the
-- previous tick's (never above the bid's maximum when it was allocated). The index reads this table.
CREATE TABLE market_trades (
  tick              bigint NOT NULL REFERENCES market_ticks (tick),
  bid_id            bigint NOT NULL,
  ask_id            bigint NOT NULL,
  price             bigint NOT NULL,
  buyer_id          bigint NOT NULL,
  seller_id         bigint NOT NULL,
  accepted_hashes   numeric(40, 0) NOT NULL CHECK (accepted_hashes >= 0),
  accepted_shares   bigint NOT NULL,
  rejected_shares   bigint NOT NULL,
  stale_shares      bigint NOT NULL,
  self_trade        boolean NOT NULL,
  PRIMARY KEY (tick, bid_id, ask_id, price)
);
CREATE INDEX market_trades_ask_idx ON market_trades (ask_id, tick);
CREATE INDEX market_trades_bid_idx ON market_trades (bid_id, tick);
CREATE INDEX market_trades_tick_idx ON market_trades (tick);

-- The money of each trade line (bid, ask) in a tick: the seller's credit and the market's fee.
CREATE TABLE market_line_settlements (
  tick            bigint NOT NULL,
  bid_id          bigint NOT NULL,
  ask_id          bigint NOT NULL,
  seller_id       bigint NOT NULL,
  accepted_hashes numeric(40, 0) NOT NULL,
  -- Σ price × hashes (the exact value is value_num / 8.64e19 sat).
  value_num       numeric(60, 0) NOT NULL,
  credit_sat      bigint NOT NULL CHECK (credit_sat >= 0),
  fee_sat         bigint NOT NULL CHECK (fee_sat >= 0),
  PRIMARY KEY (tick, bid_id, ask_id),
  FOREIGN KEY (tick, bid_id) REFERENCES market_settlements (tick, bid_id)
);
CREATE INDEX market_line_settlements_ask_idx ON market_line_settlements (ask_id, tick);

-- Remainders of each trade line, numerators over 8.64e19 × 10,000 (0 <= r < that).
CREATE TABLE market_line_carry (
  bid_id      bigint NOT NULL,
  ask_id      bigint NOT NULL,
  seller_rem  numeric(40, 0) NOT NULL CHECK (seller_rem >= 0 AND seller_rem < 864000000000000000000000),
  fee_rem     numeric(40, 0) NOT NULL CHECK (fee_rem >= 0 AND fee_rem < 864000000000000000000000),
  last_tick   bigint NOT NULL,
  PRIMARY KEY (bid_id, ask_id)
);

-- Deliveries the meter reported for a bid and worker the market never assigned: never billed, kept for audit.
CREATE TABLE market_unassigned_work (
  tick            bigint NOT NULL,
  bid_id          bigint NOT NULL,
  worker_id       bigint NOT NULL,
  accepted_hashes numeric(40, 0) NOT NULL,
  PRIMARY KEY (tick, bid_id, worker_id)
);

-- Escrow releases (cancel, final, exhaustion), one row per ledger key.
CREATE TABLE market_releases (
  ledger_key  text PRIMARY KEY,
  bid_id      bigint NOT NULL REFERENCES market_bids (id),
  amount_sat  bigint NOT NULL CHECK (amount_sat >= 0),
  time        timestamptz NOT NULL DEFAULT now()
);
