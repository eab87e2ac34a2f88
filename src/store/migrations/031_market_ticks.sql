-- One row per cleared tick (tick = floor(epoch ms / tick length)), the assignments of workers to bids as
-- intervals of ticks (churn is minimised, so one row covers many ticks), fills per order and tick, and each
-- live order's latest explanation.

CREATE TABLE market_ticks (
  tick            bigint PRIMARY KEY,
  starts_at       timestamptz NOT NULL,
  ends_at         timestamptz NOT NULL,
  -- The clearing: price and the range it came from (null: the book did not cross).
  price           bigint,
  range_lo        bigint,
  range_hi        bigint,
  demand_hs       numeric(40, 0) NOT NULL,
  supply_hs       numeric(40, 0) NOT NULL,
  matched_hs      numeric(40, 0) NOT NULL,
  allocated_hs    numeric(40, 0) NOT NULL,
  -- Book depth, shown apart: all bids' demand, all asks' offer, available = offer not sold.
  depth_bid_hs    numeric(40, 0) NOT NULL,
  depth_ask_hs    numeric(40, 0) NOT NULL,
  available_hs    numeric(40, 0) NOT NULL,
  best_bid        bigint,
  best_ask        bigint,
  bids            integer NOT NULL,
  asks            integer NOT NULL,
  workers_kept    integer NOT NULL,
  workers_moved   integer NOT NULL,
  workers_started integer NOT NULL,
  workers_stopped integer NOT NULL,
  fee_bps         integer NOT NULL,
  -- sha256 of the auction's canonical input: the same input always clears the same way.
  input_digest    text NOT NULL,
  cleared_at      timestamptz NOT NULL DEFAULT now(),
  -- Settlement (after the tick's end plus the upstream answer timeout).
  settled_at      timestamptz,
  delivered_hashes numeric(40, 0),
  debit_sat       bigint,
  credit_sat      bigint,
  fee_sat         bigint,
  overrun_sat     bigint,
  CHECK (ends_at > starts_at),
  CHECK (settled_at IS NULL OR (debit_sat = credit_sat + fee_sat))
);
CREATE INDEX market_ticks_unsettled_idx ON market_ticks (tick) WHERE settled_at IS NULL;
CREATE INDEX market_ticks_time_idx ON market_ticks (starts_at);

-- worker → bid from from_tick until to_tick (exclusive; null while it lasts).
CREATE TABLE market_assignments (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  worker_id    bigint NOT NULL,
  bid_id       bigint NOT NULL REFERENCES market_bids (id),
  ask_id       bigint NOT NULL REFERENCES market_asks (id),
  from_tick    bigint NOT NULL,
  to_tick      bigint,
  capacity_hs  numeric(40, 0) NOT NULL,
  CHECK (to_tick IS NULL OR to_tick > from_tick)
);
-- A worker has one open assignment at most: no rig sold twice, enforced by the database too.
CREATE UNIQUE INDEX market_assignments_open_idx ON market_assignments (worker_id) WHERE to_tick IS NULL;
CREATE INDEX market_assignments_bid_idx ON market_assignments (bid_id, worker_id, from_tick);

-- Per order and tick where it traded (fill > 0): the fill and how it came about.
CREATE TABLE market_fills (
  tick             bigint NOT NULL REFERENCES market_ticks (tick),
  side             text NOT NULL CHECK (side IN ('bid', 'ask')),
  order_id         bigint NOT NULL,
  price            bigint NOT NULL,
  demand_hs        numeric(40, 0) NOT NULL,   -- bid: demand; ask: offered
  fill_hs          numeric(40, 0) NOT NULL CHECK (fill_hs > 0),
  workers          integer NOT NULL,
  PRIMARY KEY (side, order_id, tick)
);
CREATE INDEX market_fills_tick_idx ON market_fills (tick);

-- Each order's explanation from the latest tick it was in the book (complaint 4: never a silent zero fill).
CREATE TABLE market_order_status (
  side             text NOT NULL CHECK (side IN ('bid', 'ask')),
  order_id         bigint NOT NULL,
  tick             bigint NOT NULL,
  price            bigint,
  demand_hs        numeric(40, 0) NOT NULL,
  fill_hs          numeric(40, 0) NOT NULL,
  workers          integer NOT NULL,
  queue_position   integer,
  ahead_hs         numeric(40, 0),
  ahead_at_price_hs numeric(40, 0),
  reason           jsonb,
  PRIMARY KEY (side, order_id)
);

-- Each offered worker's latest measurement and what the auction did with it (the seller's view: capacity with
-- its share count, so its error ≈ 1/√shares, and which bid it serves or why not).
CREATE TABLE market_worker_status (
  worker_id    bigint PRIMARY KEY,
  ask_id       bigint NOT NULL,
  tick         bigint NOT NULL,
  capacity_hs  numeric(40, 0) NOT NULL,
  shares       integer NOT NULL,
  status       text NOT NULL,
  bid_id       bigint
);
CREATE INDEX market_worker_status_ask_idx ON market_worker_status (ask_id);
