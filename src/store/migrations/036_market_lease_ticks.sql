-- A tick the market never cleared (its process was down from before the tick's start to after its end) still had
-- work in it: the routes of the last clearing go on until their lease runs out (market.routeLeaseSeconds past that
-- tick's end), and their answers come in up to market.answerTimeoutSeconds later. The next clearing gives each tick
-- that work can fall in a row of its own carrying the last clearing (its price, fee and fills; lease_of names it),
-- so the work is settled at the price it was routed for. Before, those ticks had no row and their work was never
-- settled: the sellers were never paid for it, the buyers never charged.
ALTER TABLE market_ticks ADD COLUMN lease_of bigint REFERENCES market_ticks (tick);
ALTER TABLE market_ticks ADD CHECK (lease_of IS NULL OR lease_of < tick);
