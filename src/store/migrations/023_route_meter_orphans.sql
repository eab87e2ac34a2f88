-- Metered counts for a route this database does not have: a route deleted by hand, or a process's journal read back
-- into another database or one restored from a backup older than the route. route_minutes.route_id is a foreign
-- key, so such a flush failed every time, and as it is retried first (with its id, meter.ts) it held back every
-- later flush of its process and froze that process's watermark: no routed work of it billed any more. The flush
-- now writes what it can and keeps these counts here for the operator, never billed.
CREATE TABLE route_meter_orphans (
  flush_id  text NOT NULL,
  node      text NOT NULL,
  route_id  bigint NOT NULL,
  worker    text NOT NULL,
  minute    timestamptz NOT NULL,
  -- the bucket's counts, as the route_minutes columns
  counts    jsonb NOT NULL,
  at        timestamptz NOT NULL DEFAULT now()
);
-- A flush retried after its commit (a lost reply) reports its orphans again, by its id.
CREATE INDEX route_meter_orphans_flush ON route_meter_orphans (flush_id);
