-- Partition maintenance, retention and rollup compaction, in the database where the catalog is. The app calls
-- hashhub_maintain() at start and periodically; each function is also safe to call by hand (psql) or from
-- pg_cron. Days are UTC days, whatever the session's TimeZone.

CREATE FUNCTION hashhub_day_start(d date) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$ SELECT d::timestamp AT TIME ZONE 'UTC' $$;

CREATE FUNCTION hashhub_utc_day(t timestamptz) RETURNS date
LANGUAGE sql IMMUTABLE AS $$ SELECT (t AT TIME ZONE 'UTC')::date $$;

-- The day partitions of a parent, by the naming convention <parent>_pYYYYMMDD (ours create no others).
CREATE FUNCTION hashhub_partition_days(p_parent text) RETURNS TABLE (name text, day date)
LANGUAGE sql STABLE AS $$
  SELECT c.relname::text, to_date(substring(c.relname FROM '_p([0-9]{8})$'), 'YYYYMMDD')
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
  WHERE i.inhparent = p_parent::regclass AND c.relname ~ '_p[0-9]{8}$'
$$;

-- Create the day partitions of shares, share_rejects and worker_rollups_minute for p_from..p_to (inclusive).
-- Returns how many tables it created. The writer calls it for the days of a batch it has not seen before, so a
-- share is never refused for a missing partition (there is no DEFAULT partition: one would have to be scanned
-- and emptied before each new day could be attached).
CREATE FUNCTION hashhub_ensure_partitions(p_from date, p_to date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  d date;
  parent text;
  part text;
  created integer := 0;
BEGIN
  IF p_to < p_from THEN
    RETURN 0;
  END IF;
  IF p_to - p_from > 400 THEN
    RAISE EXCEPTION 'hashhub_ensure_partitions: % days requested (% .. %); refusing more than 400 (clock skew?)',
      p_to - p_from + 1, p_from, p_to;
  END IF;
  -- Two pool processes creating the same partition at once would collide in the catalog: serialize the DDL.
  PERFORM pg_advisory_xact_lock(4841526031);
  d := p_from;
  WHILE d <= p_to LOOP
    FOREACH parent IN ARRAY ARRAY['shares', 'share_rejects', 'worker_rollups_minute'] LOOP
      part := parent || '_p' || to_char(d, 'YYYYMMDD');
      IF to_regclass(quote_ident(part)) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
          part, parent, hashhub_day_start(d), hashhub_day_start(d + 1));
        created := created + 1;
      END IF;
    END LOOP;
    d := d + 1;
  END LOOP;
  RETURN created;
END
$$;

-- Retention: drop the day partitions of shares and share_rejects whose whole day is older than p_keep_days.
-- Rollups are not touched: they are the long-term record.
CREATE FUNCTION hashhub_drop_expired_shares(p_keep_days integer, p_now timestamptz DEFAULT now()) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  dropped integer := 0;
BEGIN
  IF p_keep_days < 1 THEN
    RAISE EXCEPTION 'hashhub_drop_expired_shares: keep_days must be >= 1, got %', p_keep_days;
  END IF;
  FOR r IN
    SELECT p.name FROM hashhub_partition_days('shares') p
      WHERE hashhub_day_start(p.day + 1) <= p_now - make_interval(days => p_keep_days)
    UNION ALL
    SELECT p.name FROM hashhub_partition_days('share_rejects') p
      WHERE hashhub_day_start(p.day + 1) <= p_now - make_interval(days => p_keep_days)
  LOOP
    EXECUTE format('DROP TABLE %I', r.name);
    dropped := dropped + 1;
  END LOOP;
  RETURN dropped;
END
$$;

-- Compaction: minute rollups older than p_after_days become hourly rows. Per-worker minutes move a whole day
-- partition at a time (fold, then DROP: no row-by-row DELETE on the biggest rollup table); the pool's minutes
-- are one row per minute and are moved with DELETE ... RETURNING. Sums add up (ON CONFLICT ... +), so a day
-- that is compacted twice (a late replay recreated its partition) is still counted once per share.
-- Returns how many minute partitions were folded.
CREATE FUNCTION hashhub_compact_rollups(p_after_days integer, p_now timestamptz DEFAULT now()) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  cutoff timestamptz;
  folded integer := 0;
BEGIN
  IF p_after_days < 2 THEN
    -- The 24 h windows read minute rows; an hour row would blur the window edges.
    RAISE EXCEPTION 'hashhub_compact_rollups: after_days must be >= 2, got %', p_after_days;
  END IF;
  cutoff := hashhub_day_start(hashhub_utc_day(p_now - make_interval(days => p_after_days)));
  -- Writers wait while a day is folded and dropped; otherwise a row committed between the fold's snapshot
  -- and the DROP would vanish. Readers are not blocked until the DROP itself.
  FOR r IN
    SELECT p.name FROM hashhub_partition_days('worker_rollups_minute') p
      WHERE hashhub_day_start(p.day + 1) <= cutoff ORDER BY p.day
  LOOP
    IF folded = 0 THEN
      LOCK TABLE worker_rollups_minute IN SHARE ROW EXCLUSIVE MODE;
    END IF;
    EXECUTE format($f$
      INSERT INTO worker_rollups_hour AS h (bucket, account_id, worker_id, accepted, accepted_difficulty,
        rejected_difficulty, best_difficulty, low_difficulty, stale, unknown_job, duplicate, bad_ntime,
        bad_version, bad_extranonce2, malformed, unauthorized)
      SELECT date_trunc('hour', bucket, 'UTC'), account_id, worker_id, sum(accepted), sum(accepted_difficulty),
        sum(rejected_difficulty), max(best_difficulty), sum(low_difficulty), sum(stale), sum(unknown_job),
        sum(duplicate), sum(bad_ntime), sum(bad_version), sum(bad_extranonce2), sum(malformed), sum(unauthorized)
      FROM %I GROUP BY 1, 2, 3
      ON CONFLICT (worker_id, bucket) DO UPDATE SET
        accepted = h.accepted + EXCLUDED.accepted,
        accepted_difficulty = h.accepted_difficulty + EXCLUDED.accepted_difficulty,
        rejected_difficulty = h.rejected_difficulty + EXCLUDED.rejected_difficulty,
        best_difficulty = greatest(h.best_difficulty, EXCLUDED.best_difficulty),
        low_difficulty = h.low_difficulty + EXCLUDED.low_difficulty,
        stale = h.stale + EXCLUDED.stale,
        unknown_job = h.unknown_job + EXCLUDED.unknown_job,
        duplicate = h.duplicate + EXCLUDED.duplicate,
        bad_ntime = h.bad_ntime + EXCLUDED.bad_ntime,
        bad_version = h.bad_version + EXCLUDED.bad_version,
        bad_extranonce2 = h.bad_extranonce2 + EXCLUDED.bad_extranonce2,
        malformed = h.malformed + EXCLUDED.malformed,
        unauthorized = h.unauthorized + EXCLUDED.unauthorized
    $f$, r.name);
    EXECUTE format('DROP TABLE %I', r.name);
    folded := folded + 1;
  END LOOP;

  WITH moved AS (
    DELETE FROM pool_rollups_minute WHERE bucket < cutoff RETURNING *
  )
  INSERT INTO pool_rollups_hour AS h (bucket, accepted, accepted_difficulty, rejected_difficulty, best_difficulty,
    low_difficulty, stale, unknown_job, duplicate, bad_ntime, bad_version, bad_extranonce2, malformed, unauthorized)
  SELECT date_trunc('hour', bucket, 'UTC'), sum(accepted), sum(accepted_difficulty), sum(rejected_difficulty),
    max(best_difficulty), sum(low_difficulty), sum(stale), sum(unknown_job), sum(duplicate), sum(bad_ntime),
    sum(bad_version), sum(bad_extranonce2), sum(malformed), sum(unauthorized)
  FROM moved GROUP BY 1
  ON CONFLICT (bucket) DO UPDATE SET
    accepted = h.accepted + EXCLUDED.accepted,
    accepted_difficulty = h.accepted_difficulty + EXCLUDED.accepted_difficulty,
    rejected_difficulty = h.rejected_difficulty + EXCLUDED.rejected_difficulty,
    best_difficulty = greatest(h.best_difficulty, EXCLUDED.best_difficulty),
    low_difficulty = h.low_difficulty + EXCLUDED.low_difficulty,
    stale = h.stale + EXCLUDED.stale,
    unknown_job = h.unknown_job + EXCLUDED.unknown_job,
    duplicate = h.duplicate + EXCLUDED.duplicate,
    bad_ntime = h.bad_ntime + EXCLUDED.bad_ntime,
    bad_version = h.bad_version + EXCLUDED.bad_version,
    bad_extranonce2 = h.bad_extranonce2 + EXCLUDED.bad_extranonce2,
    malformed = h.malformed + EXCLUDED.malformed,
    unauthorized = h.unauthorized + EXCLUDED.unauthorized;
  RETURN folded;
END
$$;

-- One call for the periodic job: partitions for today and p_days_ahead more, retention, compaction.
CREATE FUNCTION hashhub_maintain(p_keep_days integer, p_compact_after_days integer, p_days_ahead integer DEFAULT 2,
  p_now timestamptz DEFAULT now()) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  today date := hashhub_utc_day(p_now);
  created integer;
  dropped integer;
  folded integer;
BEGIN
  created := hashhub_ensure_partitions(today, today + p_days_ahead);
  dropped := hashhub_drop_expired_shares(p_keep_days, p_now);
  folded := hashhub_compact_rollups(p_compact_after_days, p_now);
  RETURN jsonb_build_object('created', created, 'dropped', dropped, 'compacted', folded);
END
$$;
