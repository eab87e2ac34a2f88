-- Retention (migration 002) dropped a day of raw shares by the clock alone, whatever the books still needed from
-- it. Raw shares are what accounting folds into the share sums (FPPS periods, PPLNS buckets) behind the ingest
-- watermark, and what a PPLNS window reads its newest and oldest buckets from. With the watermark held back past
-- the retention (a pool process down, the database unreachable for one process) or the pool's clock stepping days
-- ahead (p_now is the pool's clock), the shares were dropped before they were ever summed: never credited.
--
-- Now, while the books run (accounting_cursor has its row), a day is also kept until the sums' cursor has passed
-- it by the longest PPLNS window any parameters allowed: every share the sums still have to take, and every share
-- a window still to be computed (blocks at or after the cursor) may read, stays. Books stopped for good hold
-- retention back with them (their cursor no longer moves): delete the accounting_cursor row to let it go.
CREATE OR REPLACE FUNCTION hashhub_drop_expired_shares(p_keep_days integer, p_now timestamptz DEFAULT now()) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  dropped integer := 0;
  horizon timestamptz;
  cursor_at timestamptz;
  window_secs integer;
BEGIN
  IF p_keep_days < 1 THEN
    RAISE EXCEPTION 'hashhub_drop_expired_shares: keep_days must be >= 1, got %', p_keep_days;
  END IF;
  horizon := p_now - make_interval(days => p_keep_days);
  SELECT aggregated_to INTO cursor_at FROM accounting_cursor;
  IF cursor_at IS NOT NULL THEN
    SELECT coalesce(max(pplns_max_window_seconds), 0) INTO window_secs FROM accounting_params;
    horizon := least(horizon, cursor_at - make_interval(secs => window_secs));
  END IF;
  FOR r IN
    SELECT p.name FROM hashhub_partition_days('shares') p
      WHERE hashhub_day_start(p.day + 1) <= horizon
    UNION ALL
    SELECT p.name FROM hashhub_partition_days('share_rejects') p
      WHERE hashhub_day_start(p.day + 1) <= horizon
  LOOP
    EXECUTE format('DROP TABLE %I', r.name);
    dropped := dropped + 1;
  END LOOP;
  RETURN dropped;
END
$$;
