// Every statement the store runs, as plain SQL, so review sees the SQL. The same text runs on Postgres 14..18
// and PGlite. Timestamps travel as ISO strings and are cast here; bigint results are cast to text or float8 so
// both drivers return the same JS types.

// ---- share batches (SqlShareWriter.writeShares) ------------------------------------------------------------

/** Per-connection staging tables; ON COMMIT DELETE ROWS empties them after every batch. */
export const CREATE_STAGING = `
CREATE TEMP TABLE IF NOT EXISTS share_staging (
  id text, time timestamptz, account text, worker text, outcome text, pool_difficulty float8,
  share_difficulty float8, job_id text, height integer, block_hash text, user_agent text, nbits integer,
  tag text, session_id text, remote_address text, block text
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS share_inserted (
  time timestamptz, account_id bigint, worker_id bigint, outcome text, pool_difficulty float8, share_difficulty float8
) ON COMMIT DELETE ROWS`;

export const COPY_STAGING = `COPY share_staging (id, time, account, worker, outcome, pool_difficulty, share_difficulty,
  job_id, height, block_hash, nbits, user_agent) FROM STDIN`;

/** The same table from spool lines as they are (ingest/codec.ts 's3' lines: the tag, then store/copy.ts shareRowLine's row). */
export const COPY_STAGING_ROWS = `COPY share_staging (tag, id, time, account, worker, outcome, pool_difficulty,
  share_difficulty, job_id, height, block_hash, nbits, session_id, remote_address, block) FROM STDIN`;

// Only names not already there: ON CONFLICT alone would burn an identity value per conflicting row.
export const UPSERT_ACCOUNTS = `
INSERT INTO accounts (name)
SELECT DISTINCT s.account FROM share_staging s
WHERE s.account <> '' AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.name = s.account)
ORDER BY 1
ON CONFLICT (name) DO NOTHING`;

export const UPSERT_WORKERS = `
INSERT INTO workers (account_id, name, first_seen, last_seen)
SELECT a.id, s.worker, min(s.time), max(s.time)
FROM share_staging s JOIN accounts a ON a.name = s.account
WHERE s.account <> '' AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.account_id = a.id AND w.name = s.worker)
GROUP BY a.id, s.worker
ORDER BY 1, 2
ON CONFLICT (account_id, name) DO NOTHING`;

/**
 * The exactly-once step: insert the batch, skipping ids already stored, and keep only the rows actually
 * inserted (RETURNING) in share_inserted. (An id twice in one batch is skipped the second time too: DO NOTHING
 * sees rows inserted earlier by the same statement.) Rollups are computed from share_inserted alone, so a replayed share
 * adds nothing anywhere. Shares without an authorized worker go to the sentinel account/worker 0.
 */
export const INSERT_SHARES = `
WITH s AS (
  SELECT st.*, coalesce(w.account_id, 0) AS account_id, coalesce(w.id, 0) AS worker_id
  FROM share_staging st
  LEFT JOIN accounts a ON a.name = st.account AND st.account <> ''
  LEFT JOIN workers w ON w.account_id = a.id AND w.name = st.worker
), acc AS (
  INSERT INTO shares (id, time, account_id, worker_id, pool_difficulty, share_difficulty, job_id, height, block_hash, nbits)
  SELECT id, time, account_id, worker_id, pool_difficulty, share_difficulty, job_id, height, block_hash, nbits
  FROM s WHERE outcome = 'accepted'
  ON CONFLICT (id, time) DO NOTHING
  RETURNING time, account_id, worker_id, 'accepted'::text AS outcome, pool_difficulty, share_difficulty
), rej AS (
  INSERT INTO share_rejects (id, time, account_id, worker_id, outcome, pool_difficulty, job_id)
  SELECT id, time, account_id, worker_id, outcome::share_outcome, pool_difficulty, job_id
  FROM s WHERE outcome <> 'accepted'
  ON CONFLICT (id, time) DO NOTHING
  RETURNING time, account_id, worker_id, outcome::text, pool_difficulty, NULL::float8
)
INSERT INTO share_inserted SELECT * FROM acc UNION ALL SELECT * FROM rej`;

/** Rows the batch actually inserted (share_inserted, after INSERT_SHARES). */
export const COUNT_INSERTED = 'SELECT count(*)::int AS n FROM share_inserted';

/** Sums per class over share_inserted; shared by both rollup upserts below. */
const ROLLUP_AGGREGATES = `
  count(*) FILTER (WHERE outcome = 'accepted'),
  coalesce(sum(pool_difficulty) FILTER (WHERE outcome = 'accepted'), 0),
  coalesce(sum(pool_difficulty) FILTER (WHERE outcome <> 'accepted'), 0),
  coalesce(max(share_difficulty) FILTER (WHERE outcome = 'accepted'), 0),
  count(*) FILTER (WHERE outcome = 'low-difficulty'),
  count(*) FILTER (WHERE outcome = 'stale'),
  count(*) FILTER (WHERE outcome = 'unknown-job'),
  count(*) FILTER (WHERE outcome = 'duplicate'),
  count(*) FILTER (WHERE outcome = 'bad-ntime'),
  count(*) FILTER (WHERE outcome = 'bad-version'),
  count(*) FILTER (WHERE outcome = 'bad-extranonce2'),
  count(*) FILTER (WHERE outcome = 'malformed'),
  count(*) FILTER (WHERE outcome = 'unauthorized')`;

const ROLLUP_COLUMNS = `accepted, accepted_difficulty, rejected_difficulty, best_difficulty, low_difficulty, stale,
  unknown_job, duplicate, bad_ntime, bad_version, bad_extranonce2, malformed, unauthorized`;

const ROLLUP_ADD = `
  accepted = r.accepted + EXCLUDED.accepted,
  accepted_difficulty = r.accepted_difficulty + EXCLUDED.accepted_difficulty,
  rejected_difficulty = r.rejected_difficulty + EXCLUDED.rejected_difficulty,
  best_difficulty = greatest(r.best_difficulty, EXCLUDED.best_difficulty),
  low_difficulty = r.low_difficulty + EXCLUDED.low_difficulty,
  stale = r.stale + EXCLUDED.stale,
  unknown_job = r.unknown_job + EXCLUDED.unknown_job,
  duplicate = r.duplicate + EXCLUDED.duplicate,
  bad_ntime = r.bad_ntime + EXCLUDED.bad_ntime,
  bad_version = r.bad_version + EXCLUDED.bad_version,
  bad_extranonce2 = r.bad_extranonce2 + EXCLUDED.bad_extranonce2,
  malformed = r.malformed + EXCLUDED.malformed,
  unauthorized = r.unauthorized + EXCLUDED.unauthorized`;

export const UPSERT_WORKER_ROLLUPS = `
INSERT INTO worker_rollups_minute AS r (bucket, account_id, worker_id, ${ROLLUP_COLUMNS})
SELECT date_trunc('minute', time, 'UTC'), account_id, worker_id, ${ROLLUP_AGGREGATES}
FROM share_inserted
GROUP BY 1, 2, 3
ORDER BY 3, 1
ON CONFLICT (worker_id, bucket) DO UPDATE SET ${ROLLUP_ADD}`;

export const UPSERT_POOL_ROLLUPS = `
INSERT INTO pool_rollups_minute AS r (bucket, ${ROLLUP_COLUMNS})
SELECT date_trunc('minute', time, 'UTC'), ${ROLLUP_AGGREGATES}
FROM share_inserted
GROUP BY 1
ORDER BY 1
ON CONFLICT (bucket) DO UPDATE SET ${ROLLUP_ADD}`;

/**
 * Last/first seen and current difficulty, from the rows actually inserted (a replay changes nothing). The
 * difficulty is the newest share's, and only if it is newer than what the row already has.
 */
export const UPDATE_WORKERS = `
UPDATE workers w SET
  last_seen = greatest(w.last_seen, x.last_time),
  first_seen = least(w.first_seen, x.first_time),
  difficulty = CASE WHEN x.last_time >= w.last_seen THEN x.difficulty ELSE w.difficulty END
FROM (
  SELECT worker_id, max(time) AS last_time, min(time) AS first_time,
    (array_agg(pool_difficulty ORDER BY time DESC))[1] AS difficulty
  FROM share_inserted WHERE worker_id <> 0
  GROUP BY worker_id
) x
WHERE w.id = x.worker_id`;

/** The session's user agent, when the ingest knew it; written only when it changed. */
export const UPDATE_USER_AGENTS = `
UPDATE workers w SET user_agent = x.user_agent
FROM (
  SELECT a.id AS account_id, s.worker, max(s.user_agent) AS user_agent
  FROM share_staging s JOIN accounts a ON a.name = s.account
  WHERE s.user_agent IS NOT NULL AND s.account <> ''
  GROUP BY 1, 2
) x
WHERE w.account_id = x.account_id AND w.name = x.worker AND w.user_agent IS DISTINCT FROM x.user_agent`;

/** UPDATE_USER_AGENTS for a batch staged from spool lines: $1 accounts, $2 workers, $3 their sessions' agents (names as staged). */
export const UPDATE_USER_AGENTS_OF = `
UPDATE workers w SET user_agent = x.user_agent
FROM (
  SELECT a.id AS account_id, u.worker, max(u.user_agent) AS user_agent
  FROM unnest($1::text[], $2::text[], $3::text[]) AS u(account, worker, user_agent)
  JOIN accounts a ON a.name = u.account
  WHERE u.account <> ''
  GROUP BY 1, 2
) x
WHERE w.account_id = x.account_id AND w.name = x.worker AND w.user_agent IS DISTINCT FROM x.user_agent`;

/** Block shares become 'submitted' block rows at once; the block event completes them (INSERT_BLOCK). */
export const INSERT_BLOCK_CANDIDATES = `
INSERT INTO blocks (hash, height, account_id, worker_id, status, time)
SELECT s.block_hash, s.height, w.account_id, w.id, 'submitted', s.time
FROM share_staging s
JOIN accounts a ON a.name = s.account
JOIN workers w ON w.account_id = a.id AND w.name = s.worker
WHERE s.block_hash IS NOT NULL AND s.outcome = 'accepted'
ON CONFLICT (hash) DO NOTHING`;

/** Create the day partitions a batch needs (for days this process has not seen yet). */
export const ENSURE_PARTITIONS = 'SELECT hashhub_ensure_partitions($1::date, $2::date) AS created';

// ---- blocks (SqlShareWriter.writeBlock) ---------------------------------------------------------------------

// Block events arrive in runs (a regtest flood makes hundreds a second): each kind is one statement per batch,
// with the batch's values as arrays (unnest), so a run costs a handful of statements, not four per event.

/** Accounts named by a run of block candidates ($1 = names). */
export const UPSERT_ACCOUNTS_OF = `
INSERT INTO accounts (name)
SELECT DISTINCT n FROM unnest($1::text[]) AS n
WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.name = n)
ORDER BY 1
ON CONFLICT (name) DO NOTHING`;

/** Workers named by a run of block candidates ($1 = accounts, $2 = workers, $3 = times). */
export const UPSERT_WORKERS_OF = `
INSERT INTO workers (account_id, name, first_seen, last_seen)
SELECT a.id, x.worker, min(x.time), max(x.time)
FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS x(account, worker, time)
JOIN accounts a ON a.name = x.account
WHERE NOT EXISTS (SELECT 1 FROM workers w WHERE w.account_id = a.id AND w.name = x.worker)
GROUP BY a.id, x.worker
ORDER BY 1, 2
ON CONFLICT (account_id, name) DO NOTHING`;

/** A block row without a finder that accounting has not split yet (a split keeps the finder it was made with). */
const NO_FINDER_UNSPLIT = 'b.account_id = 0 AND NOT EXISTS (SELECT 1 FROM block_splits s WHERE s.block_hash = b.hash)';

/**
 * Candidates, idempotent on the hash. Completes a 'submitted' row left by the block's share (which has no hex);
 * never touches the status (status events do that). A row recorded without a finder (account 0: a block the
 * start-up chain scan recovered, in a cluster possibly another process's own find) takes the finder's account and
 * worker when its candidate comes (unless accounting split it already): whichever spool reaches the database
 * first, the block is the finder's. $1..$8: hash, height, prev_hash, account, worker, reward, time,
 * hex, as arrays.
 */
export const UPSERT_BLOCK_CANDIDATES = `
INSERT INTO blocks AS b (hash, height, prev_hash, account_id, worker_id, reward, status, time, block_hex)
SELECT DISTINCT ON (c.hash) c.hash, c.height, c.prev_hash, w.account_id, w.id, c.reward, 'submitted', c.time, c.hex
FROM unnest($1::text[], $2::integer[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::timestamptz[], $8::text[])
  AS c(hash, height, prev_hash, account, worker, reward, time, hex)
JOIN accounts a ON a.name = c.account
JOIN workers w ON w.account_id = a.id AND w.name = c.worker
ORDER BY c.hash, c.time
ON CONFLICT (hash) DO UPDATE SET
  prev_hash = coalesce(b.prev_hash, EXCLUDED.prev_hash),
  reward = CASE WHEN b.block_hex IS NULL THEN EXCLUDED.reward ELSE b.reward END,
  block_hex = coalesce(b.block_hex, EXCLUDED.block_hex),
  account_id = CASE WHEN ${NO_FINDER_UNSPLIT} THEN EXCLUDED.account_id ELSE b.account_id END,
  worker_id = CASE WHEN ${NO_FINDER_UNSPLIT} THEN EXCLUDED.worker_id ELSE b.worker_id END`;

/** Node answers ($1..$4: hash, time, endpoint, answer as arrays). */
export const INSERT_BLOCK_ANSWERS = `
INSERT INTO block_answers (hash, time, endpoint, answer)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[])
ON CONFLICT DO NOTHING`;

/**
 * Status observations ($1..$6: hash, status, result, confirmations, settled, time as arrays). The latest per hash
 * in the run is applied (of two with one time, the later in the arrays), and only if it is not older than the last
 * one recorded (a replay, or two processes checking the same block, cannot roll it back) and the row is not settled
 * (final is final).
 */
export const UPDATE_BLOCK_STATUSES = `
UPDATE blocks b SET status = x.status, result = x.result, confirmations = x.confirmations, settled = x.settled,
  checked_at = x.time,
  status_changed_at = CASE WHEN b.status IS DISTINCT FROM x.status THEN x.time ELSE b.status_changed_at END
FROM (
  SELECT DISTINCT ON (hash) hash, status, result, confirmations, settled, time
  FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[], $5::boolean[], $6::timestamptz[]) WITH ORDINALITY
    AS u(hash, status, result, confirmations, settled, time, seq)
  ORDER BY hash, time DESC, seq DESC
) x
WHERE b.hash = x.hash AND NOT b.settled AND (b.checked_at IS NULL OR b.checked_at <= x.time)`;

/** Blocks not settled, for the block tracker to take up at start (oldest first). */
export const UNSETTLED_BLOCKS = `
SELECT b.hash, b.height, b.prev_hash, a.name AS account, w.name AS worker, coalesce(b.reward, 0)::text AS reward,
  b.block_hex, b.status, b.time, b.checked_at
FROM blocks b JOIN accounts a ON a.id = b.account_id JOIN workers w ON w.id = b.worker_id
WHERE NOT b.settled
ORDER BY b.time, b.height
LIMIT 10000`;

/** The ingest watermark of a spool: only ever moves forward. */
export const RECORD_WATERMARK = `
INSERT INTO ingest_watermarks AS w (source, committed_to, updated_at, description)
VALUES ($1, $2::timestamptz, now(), $3)
ON CONFLICT (source) DO UPDATE SET committed_to = greatest(w.committed_to, EXCLUDED.committed_to), updated_at = now(),
  description = coalesce(EXCLUDED.description, w.description)`;

// ---- statistics (SqlStatsReader) ----------------------------------------------------------------------------
// Windows: $1 = now, $2/$3/$4 = starts of the 5 min, 1 h and 24 h windows (minute-aligned, see stats-reader.ts).

const WINDOW_SUMS = `
  coalesce(sum(accepted_difficulty) FILTER (WHERE bucket >= $2::timestamptz), 0)::float8 AS d5m,
  coalesce(sum(accepted_difficulty) FILTER (WHERE bucket >= $3::timestamptz), 0)::float8 AS d1h,
  coalesce(sum(accepted_difficulty), 0)::float8 AS d24h,
  coalesce(sum(accepted) FILTER (WHERE bucket >= $2::timestamptz), 0)::float8 AS n5m,
  coalesce(sum(accepted) FILTER (WHERE bucket >= $3::timestamptz), 0)::float8 AS n1h,
  coalesce(sum(accepted), 0)::float8 AS accepted,
  coalesce(sum(low_difficulty), 0)::float8 AS low_difficulty,
  coalesce(sum(stale), 0)::float8 AS stale,
  coalesce(sum(unknown_job), 0)::float8 AS unknown_job,
  coalesce(sum(duplicate), 0)::float8 AS duplicate,
  coalesce(sum(bad_ntime), 0)::float8 AS bad_ntime,
  coalesce(sum(bad_version), 0)::float8 AS bad_version,
  coalesce(sum(bad_extranonce2), 0)::float8 AS bad_extranonce2,
  coalesce(sum(malformed), 0)::float8 AS malformed,
  coalesce(sum(unauthorized), 0)::float8 AS unauthorized`;

// first_seen: when the scope's first share was seen; a window never reaches back before it (see WindowRate).

export const POOL_WINDOWS = `
SELECT ${WINDOW_SUMS}, (SELECT min(first_seen) FROM workers WHERE id <> 0) AS first_seen
FROM pool_rollups_minute
WHERE bucket >= $4::timestamptz AND bucket <= $1::timestamptz`;

/** Online workers and the accounts they belong to ($1 = online since). Sentinel 0 excluded. */
export const POOL_ONLINE = `
SELECT count(*)::float8 AS workers, count(DISTINCT account_id)::float8 AS miners
FROM workers WHERE last_seen >= $1::timestamptz AND id <> 0`;

export const ACCOUNT_BY_NAME = `SELECT id::text AS id, name FROM accounts WHERE name = $1::text AND id <> 0`;

/**
 * An account's windows, a row per worker with its first share: the account's rate is the sum of its workers' (each
 * over the time it covers), so it is what its worker rows add up to, as in the live figures.
 */
export const ACCOUNT_WINDOWS = `
SELECT ${WINDOW_SUMS}, w.first_seen
FROM worker_rollups_minute r JOIN workers w ON w.id = r.worker_id
WHERE r.account_id = $5::bigint AND r.bucket >= $4::timestamptz AND r.bucket <= $1::timestamptz
GROUP BY r.worker_id, w.first_seen`;

/** $1 = account id, $2 = online since. */
export const ACCOUNT_WORKER_COUNTS = `
SELECT count(*)::float8 AS workers, (count(*) FILTER (WHERE last_seen >= $2::timestamptz))::float8 AS online
FROM workers WHERE account_id = $1::bigint`;

/** A page of an account's workers, each with its windows: $5 = account id, $6 limit, $7 offset, $8 online since. */
export const ACCOUNT_WORKERS_PAGE = `
SELECT w.name, w.first_seen, w.last_seen, w.difficulty, w.user_agent,
  (w.last_seen >= $8::timestamptz) AS online, agg.*
FROM workers w
LEFT JOIN LATERAL (
  SELECT ${WINDOW_SUMS}
  FROM worker_rollups_minute
  WHERE worker_id = w.id AND bucket >= $4::timestamptz AND bucket <= $1::timestamptz
) agg ON true
WHERE w.account_id = $5::bigint
ORDER BY w.name
LIMIT $6 OFFSET $7`;

export const WORKER_ID = `
SELECT w.id::text AS id FROM workers w JOIN accounts a ON a.id = w.account_id
WHERE a.name = $1::text AND w.name = $2::text AND a.id <> 0`;

// Series: $1 = now, $2 = start of the first bucket, $3 = bucket seconds; $4 = account or worker id.
const SERIES_SELECT = `
SELECT floor(extract(epoch FROM bucket) / $3::integer)::float8 * $3::integer AS t,
  coalesce(sum(accepted_difficulty), 0)::float8 AS difficulty,
  coalesce(sum(accepted), 0)::float8 AS accepted,
  coalesce(sum(low_difficulty + stale + unknown_job + duplicate + bad_ntime + bad_version + bad_extranonce2
    + malformed + unauthorized), 0)::float8 AS rejected`;

export const SERIES_POOL = `${SERIES_SELECT}
FROM pool_rollups_minute WHERE bucket >= $2::timestamptz AND bucket <= $1::timestamptz GROUP BY 1 ORDER BY 1`;

export const SERIES_ACCOUNT = `${SERIES_SELECT}
FROM worker_rollups_minute WHERE account_id = $4::bigint AND bucket >= $2::timestamptz AND bucket <= $1::timestamptz
GROUP BY 1 ORDER BY 1`;

export const SERIES_WORKER = `${SERIES_SELECT}
FROM worker_rollups_minute WHERE worker_id = $4::bigint AND bucket >= $2::timestamptz AND bucket <= $1::timestamptz
GROUP BY 1 ORDER BY 1`;

// The pool's accepted work per rollup row over [$1, $2): minute rows, and the hour rows that compaction folded
// older minutes into (database.retention.compactAfterDays), so a week is covered whatever the compaction age.
// A minute row written late for an hour already folded sits beside its hour row: both count (compaction adds).
export const POOL_WORK = `
SELECT extract(epoch FROM bucket)::float8 AS t, 60 AS seconds, accepted_difficulty::float8 AS difficulty, accepted::float8 AS accepted
FROM pool_rollups_minute WHERE bucket >= $1::timestamptz AND bucket < $2::timestamptz
UNION ALL
SELECT extract(epoch FROM bucket)::float8, 3600, accepted_difficulty::float8, accepted::float8
FROM pool_rollups_hour WHERE bucket >= $1::timestamptz AND bucket < $2::timestamptz
ORDER BY 1`;

export const BLOCKS_COUNT = 'SELECT count(*)::float8 AS n FROM blocks';

export const BLOCKS_PAGE = `
SELECT b.height, b.hash, a.name AS account, w.name AS worker, coalesce(b.reward, 0)::text AS reward, b.status, b.result,
  b.time, b.confirmations, b.settled
FROM blocks b JOIN accounts a ON a.id = b.account_id JOIN workers w ON w.id = b.worker_id
ORDER BY b.time DESC, b.height DESC
LIMIT $1 OFFSET $2`;

// ---- maintenance ------------------------------------------------------------------------------------------

export const MAINTAIN = 'SELECT hashhub_maintain($1::integer, $2::integer, $3::integer, $4::timestamptz)::text AS summary';

export const PING = 'SELECT 1 AS ok';
