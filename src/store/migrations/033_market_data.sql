-- Market data: OHLC candles of tick prices with delivered volume, the hashprice snapshot of each day, the
-- published daily index and its corrections log.

CREATE TABLE market_candles (
  interval      text NOT NULL CHECK (interval IN ('1m', '1h', '1d')),
  starts_at     timestamptz NOT NULL,
  open          bigint NOT NULL,
  high          bigint NOT NULL,
  low           bigint NOT NULL,
  close         bigint NOT NULL,
  ticks         integer NOT NULL,
  -- Delivered, accepted hashes of the settled ticks in the candle.
  volume_hashes numeric(40, 0) NOT NULL,
  PRIMARY KEY (interval, starts_at)
);

-- The chain facts hashprice was computed from, per UTC day (taken at or after the day's end).
CREATE TABLE market_hashprice (
  day          date PRIMARY KEY,
  height       integer NOT NULL,
  bits         bigint NOT NULL,
  subsidy_sat  bigint NOT NULL,
  fees_sat     bigint NOT NULL,
  blocks       integer NOT NULL,
  value        bigint NOT NULL,
  exact_num    numeric NOT NULL,
  exact_den    numeric NOT NULL,
  taken_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE market_index (
  day             date PRIMARY KEY,
  method          text NOT NULL CHECK (method IN ('vwap', 'rolling', 'time-weighted-mid', 'scaled-previous', 'none')),
  value           bigint,
  exact_num       numeric,
  exact_den       numeric,
  volume_hashes   numeric(40, 0) NOT NULL,
  trades_used     integer NOT NULL,
  outliers        integer NOT NULL,
  outlier_hashes  numeric(40, 0) NOT NULL,
  self_trades     integer NOT NULL,
  credited        integer NOT NULL,
  median_num      numeric,
  median_den      numeric,
  note            text,
  hashprice       bigint,
  methodology     integer NOT NULL,
  params          jsonb NOT NULL,
  -- sha256 of the exact inputs (trades, mids, previous index, hashprice): recompute and compare.
  inputs_digest   text NOT NULL,
  published_at    timestamptz NOT NULL DEFAULT now(),
  corrected_at    timestamptz,
  CHECK ((method = 'none') = (value IS NULL))
);

CREATE TABLE market_index_corrections (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  day         date NOT NULL REFERENCES market_index (day),
  old_value   bigint,
  new_value   bigint,
  old_method  text NOT NULL,
  new_method  text NOT NULL,
  actor       text NOT NULL,
  reason      text NOT NULL CHECK (length(reason) > 0),
  time        timestamptz NOT NULL DEFAULT now()
);
