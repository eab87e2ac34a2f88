-- What accounting needs from ingest.
--
-- 1. The compact target (nbits) of each share's job: FPPS pays a share its pool difficulty over the network
--    difficulty *of that share's job*, and a job's target is what its template said, whatever the chain did
--    since. NULL for shares written before this column existed (accounting falls back to the bits of the chain's
--    block at the share's height, see chain_block_values). nbits of a valid target is < 2^31 (exponent <= 0x20),
--    so integer holds it.
ALTER TABLE shares ADD COLUMN nbits integer;

-- 2. Accounting reads shares by time range (an FPPS period, a PPLNS window). Shares arrive in time order, so a
--    BRIN index is a few pages per day partition and costs ingest next to nothing (unlike a B-tree).
CREATE INDEX shares_time_brin ON shares USING brin (time) WITH (pages_per_range = 32);

-- 3. The ingest watermark: each spool (one per pool process) records, after each committed batch and while idle,
--    a time before which every share it accepted is in the database. A credit period or PPLNS window is computed
--    only once every live source has passed its end, so shares replayed after a database outage still land in
--    their own period. A source that is gone for good is retired by the operator (retired_at), or it holds
--    crediting back (visibly: the API and metrics show which source and since when).
CREATE TABLE ingest_watermarks (
  source        text PRIMARY KEY,
  committed_to  timestamptz NOT NULL,
  updated_at    timestamptz NOT NULL DEFAULT now(),
  retired_at    timestamptz,
  -- Free text for operators: host, spool directory.
  description   text
);
