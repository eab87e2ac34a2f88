-- Routed work that reached the database after its tick was settled (src/market/late-delivery.ts): one row per meter
-- flush, with the first settled tick it reached back into. Such work is not billed: the operator sees it here and
-- in the log, and settles it by hand if at all.
CREATE TABLE market_late_deliveries (
  flush_id      text PRIMARY KEY,
  node          text NOT NULL,
  applied_at    timestamptz NOT NULL,
  oldest_minute timestamptz NOT NULL,
  first_tick    bigint NOT NULL REFERENCES market_ticks (tick),
  found_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX market_late_deliveries_applied ON market_late_deliveries (applied_at);
