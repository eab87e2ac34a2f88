-- The oldest bucket a meter flush added to a market route (a route with a bid), so the market can tell when routed
-- work reached the database after the tick it belongs to was settled: a process that was down or could not write
-- for more than an hour drops out of the market's watermark, the market settles without it, and what its journal
-- sends later lands in ticks already billed (src/market/late-delivery.ts records and logs those flushes).
ALTER TABLE route_meter_flushes ADD COLUMN oldest_market_minute timestamptz;
-- Read in (at, flush_id) order, page by page.
CREATE INDEX route_meter_flushes_market ON route_meter_flushes (at, flush_id) WHERE oldest_market_minute IS NOT NULL;
