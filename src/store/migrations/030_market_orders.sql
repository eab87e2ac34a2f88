-- The market's order book (issue 13): bids (buyers) and asks (sellers), their workers, and every state change.
-- Hashrate is integer H/s (numeric: a market passes 2^63 H/s nowhere near, but sums do not overflow either);
-- prices are integer sat/PH/day; money is integer sat.

CREATE TYPE market_order_state AS ENUM (
  'pending-probe',  -- bid: escrowed, its pool is being probed (complaint 9); not in the book yet
  'open',           -- in the book, nothing allocated in the last tick
  'active',         -- in the book, allocated in the last tick
  'paused',         -- out of the book until the reason clears (bid: the buyer's pool failed)
  'exhausted',      -- bid: its budget is spent ("filled": a bid's quantity is its budget)
  'cancelled',      -- by its owner or the operator, free and immediate
  'expired'         -- end time reached
);

-- Time priority: placement, a price change or a limit increase takes the next number (docs/market.md).
CREATE SEQUENCE market_priority_seq;

CREATE TABLE market_bids (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  account_id       bigint NOT NULL REFERENCES accounts (id),
  client_order_id  text,
  state            market_order_state NOT NULL DEFAULT 'pending-probe',
  -- Why the order is where it is (probe error, pause reason, …): a code and a human message.
  state_code       text,
  state_message    text,
  max_price        bigint NOT NULL CHECK (max_price > 0),
  limit_hs         numeric(40, 0) NOT NULL CHECK (limit_hs > 0),
  budget_sat       bigint NOT NULL CHECK (budget_sat > 0),
  -- Debited by settlement, and released back to the buyer: together never more than the budget.
  spent_sat        bigint NOT NULL DEFAULT 0 CHECK (spent_sat >= 0),
  released_sat     bigint NOT NULL DEFAULT 0 CHECK (released_sat >= 0),
  destinations     jsonb NOT NULL,
  end_time         timestamptz,
  priority         bigint NOT NULL DEFAULT nextval('market_priority_seq'),
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  CHECK (spent_sat + released_sat <= budget_sat),
  UNIQUE (account_id, client_order_id)
);
CREATE INDEX market_bids_live_idx ON market_bids (state) WHERE state IN ('pending-probe', 'open', 'active', 'paused');

CREATE TABLE market_asks (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  account_id       bigint NOT NULL REFERENCES accounts (id),
  client_order_id  text,
  state            market_order_state NOT NULL DEFAULT 'open' CHECK (state NOT IN ('pending-probe', 'exhausted')),
  state_code       text,
  state_message    text,
  min_price        bigint NOT NULL CHECK (min_price >= 0),
  cap_hs           numeric(40, 0) CHECK (cap_hs > 0),
  -- true: every worker of the account not named by another live ask; false: the rows of market_ask_workers.
  all_workers      boolean NOT NULL,
  end_time         timestamptz,
  priority         bigint NOT NULL DEFAULT nextval('market_priority_seq'),
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (account_id, client_order_id)
);
CREATE INDEX market_asks_live_idx ON market_asks (state) WHERE state IN ('open', 'active', 'paused');

CREATE TABLE market_ask_workers (
  ask_id     bigint NOT NULL REFERENCES market_asks (id),
  worker_id  bigint NOT NULL REFERENCES workers (id),
  PRIMARY KEY (ask_id, worker_id)
);
CREATE INDEX market_ask_workers_worker_idx ON market_ask_workers (worker_id);

-- Every state change and edit, with who and why: the order's history as its owner sees it.
CREATE TABLE market_order_events (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  side        text NOT NULL CHECK (side IN ('bid', 'ask')),
  order_id    bigint NOT NULL,
  time        timestamptz NOT NULL DEFAULT now(),
  kind        text NOT NULL,            -- placed, state, edit, probe
  from_state  market_order_state,
  to_state    market_order_state,
  code        text,
  message     text,
  actor       text NOT NULL             -- 'account:<id>', 'operator', 'market', 'routing'
);
CREATE INDEX market_order_events_order_idx ON market_order_events (side, order_id, id);
