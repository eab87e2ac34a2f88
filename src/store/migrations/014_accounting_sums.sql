-- Share sums for accounting, so crediting an hour of 10,000 workers or a PPLNS window of a million shares reads
-- thousands of rows, not millions. Accounting (not ingest: the share hot path stays as it is) folds stored shares
-- into them behind the ingest watermark, a few seconds of shares at a time, exactly once: the cursor moves in the
-- same transaction as the sums. A share is summed per distinct float difficulty (a worker's vardiff gives it a
-- handful of values), so the exact value is still Σ difficulty::numeric × count.
--
-- A share stored after the cursor passed its time (a pool process the watermark did not know) is not in the
-- sums: FPPS finds it by the period's share count and credits it from the raw shares (an adjustment).

CREATE TABLE accounting_cursor (
  singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  -- Every share with time < aggregated_to that was stored when the cursor passed it is in the sums.
  aggregated_to  timestamptz NOT NULL
);

-- Per credit period, for FPPS. nbits 0 = the share was stored without its job's nbits.
CREATE TABLE share_sums_period (
  period_start     timestamptz NOT NULL,
  account_id       bigint NOT NULL,
  nbits            integer NOT NULL,
  height           integer NOT NULL,
  pool_difficulty  double precision NOT NULL,
  n                bigint NOT NULL,
  PRIMARY KEY (period_start, account_id, nbits, height, pool_difficulty)
);

-- Per PPLNS bucket (min(60 s, period): never across a scheme change), for the windows.
CREATE TABLE share_sums_bucket (
  bucket           timestamptz NOT NULL,
  account_id       bigint NOT NULL,
  pool_difficulty  double precision NOT NULL,
  n                bigint NOT NULL,
  first_time       timestamptz NOT NULL,
  PRIMARY KEY (bucket, account_id, pool_difficulty)
);

-- The BRIN index on shares.time (migration 011) only helps over page ranges that are summarized, and a new range
-- is not summarized until a VACUUM reaches it: the newest shares, exactly the ones accounting reads, would be
-- scanned whole. Accounting summarizes the new ranges of the day partitions it is about to read (each range once:
-- inserts keep a summarized range's summary current).
CREATE FUNCTION hashhub_summarize_shares(p_from timestamptz, p_to timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  n integer := 0;
BEGIN
  FOR r IN
    SELECT i.indexrelid::regclass AS idx
    FROM hashhub_partition_days('shares') p
    JOIN pg_index i ON i.indrelid = p.name::regclass
    JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_am am ON am.oid = c.relam AND am.amname = 'brin'
    WHERE p.day BETWEEN hashhub_utc_day(p_from) AND hashhub_utc_day(p_to)
  LOOP
    n := n + brin_summarize_new_values(r.idx);
  END LOOP;
  RETURN n;
END
$$;
