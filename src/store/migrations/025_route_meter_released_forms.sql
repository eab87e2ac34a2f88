-- Migrations 022, 023 and 024 were changed after commits on main had applied them, and a database keeps what it
-- applied (migrate() records a migration once). This brings a database that applied an earlier form to the shape
-- those files give now; on a database that applied the current ones it changes nothing.
--   022 as of dfded21: route_meter_flushes keyed by (node, flush_id). A meter journal read back under another node
--       name (stratum.nodeId changed before a restart) sent its flushes again under new keys, and they were billed
--       twice. Now keyed by flush_id alone; of one id under several node names the first applied is kept.
--   022 as of 775e2df: its age index on (at); flushes are pruned per node, on (node, at).
--   023 as of f2f720c: route_meter_orphans indexed on (at); every flush counts its orphans by flush_id.
--   024 as of 8036ad7: the late-delivery index on (at); flushes are read in (at, flush_id) order.
DO $$
BEGIN
  IF (SELECT pg_get_constraintdef(oid) FROM pg_constraint
       WHERE conrelid = 'route_meter_flushes'::regclass AND contype = 'p') <> 'PRIMARY KEY (flush_id)' THEN
    DELETE FROM route_meter_flushes f USING route_meter_flushes g
     WHERE f.flush_id = g.flush_id AND (f.at, f.node) > (g.at, g.node);
    ALTER TABLE route_meter_flushes DROP CONSTRAINT route_meter_flushes_pkey;
    ALTER TABLE route_meter_flushes ADD CONSTRAINT route_meter_flushes_pkey PRIMARY KEY (flush_id);
  END IF;
  IF pg_get_indexdef('route_meter_flushes_age'::regclass) NOT LIKE '%(node, at)' THEN
    DROP INDEX route_meter_flushes_age;
    CREATE INDEX route_meter_flushes_age ON route_meter_flushes (node, at);
  END IF;
  IF pg_get_indexdef('route_meter_flushes_market'::regclass) NOT LIKE '%(at, flush_id) WHERE%' THEN
    DROP INDEX route_meter_flushes_market;
    CREATE INDEX route_meter_flushes_market ON route_meter_flushes (at, flush_id) WHERE oldest_market_minute IS NOT NULL;
  END IF;
END
$$;
DROP INDEX IF EXISTS route_meter_orphans_at;
CREATE INDEX IF NOT EXISTS route_meter_orphans_flush ON route_meter_orphans (flush_id);
