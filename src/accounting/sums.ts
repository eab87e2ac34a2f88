import type { Queryable } from '../store/db.ts';
import type { BooksFrame } from './params.ts';

// The share sums behind FPPS and PPLNS (migration 014): stored shares folded per credit period and per PPLNS
// bucket, behind the ingest watermark, exactly once (the cursor moves with the sums in one transaction).

/** Width of a PPLNS bucket, ms: a minute, or the period when shorter (a bucket never straddles a scheme change). */
export function bucketMs(frame: BooksFrame): number {
  return Math.min(60, frame.periodSeconds) * 1000;
}

/** Sums are kept this far back (the longest PPLNS window, plus a day). */
const EPOCH = "TIMESTAMPTZ '1970-01-01 00:00:00+00'";

const SUM_PERIOD = `
INSERT INTO share_sums_period AS s (period_start, account_id, nbits, height, pool_difficulty, n)
SELECT date_bin($3::interval, time, ${EPOCH}), account_id, coalesce(nbits, 0), height, pool_difficulty, count(*)
FROM shares WHERE time >= $1::timestamptz AND time < $2::timestamptz
GROUP BY 1, 2, 3, 4, 5
ON CONFLICT (period_start, account_id, nbits, height, pool_difficulty) DO UPDATE SET n = s.n + EXCLUDED.n`;

const SUM_BUCKET = `
INSERT INTO share_sums_bucket AS s (bucket, account_id, pool_difficulty, n, first_time)
SELECT date_bin($3::interval, time, ${EPOCH}), account_id, pool_difficulty, count(*), min(time)
FROM shares WHERE time >= $1::timestamptz AND time < $2::timestamptz
GROUP BY 1, 2, 3
ON CONFLICT (bucket, account_id, pool_difficulty) DO UPDATE SET n = s.n + EXCLUDED.n, first_time = least(s.first_time, EXCLUDED.first_time)`;

export async function readCursor(q: Queryable): Promise<number | null> {
  const r = await q.query<{ t: Date | string }>('SELECT aggregated_to AS t FROM accounting_cursor');
  return r.rows.length ? new Date(r.rows[0].t).getTime() : null;
}

/**
 * Fold the shares of [cursor, min(upTo, cursor + chunkMs)) into the sums and move the cursor, in `tx` (the
 * caller holds the accounting lock). The first call starts `lookbackMs` before the books (PPLNS windows of the
 * first blocks reach back). Returns the new cursor.
 */
export async function aggregateChunk(tx: Queryable, frame: BooksFrame, upTo: number, lookbackMs: number, chunkMs = 600_000): Promise<number> {
  let cursor = await readCursor(tx);
  if (cursor === null) {
    cursor = Math.floor((frame.startedAt - lookbackMs) / bucketMs(frame)) * bucketMs(frame);
    await tx.query('INSERT INTO accounting_cursor (singleton, aggregated_to) VALUES (true, $1::timestamptz) ON CONFLICT DO NOTHING', [new Date(cursor).toISOString()]);
    cursor = (await readCursor(tx)) as number;
  }
  const to = Math.min(upTo, cursor + chunkMs);
  if (to <= cursor) return cursor;
  const from = new Date(cursor).toISOString();
  const until = new Date(to).toISOString();
  // New BRIN ranges are unsummarized (scanned whole) until summarized: do it before reading them.
  await tx.query('SELECT hashhub_summarize_shares($1::timestamptz, $2::timestamptz)', [from, until]);
  await tx.query(SUM_PERIOD, [from, until, `${frame.periodSeconds} seconds`]);
  await tx.query(SUM_BUCKET, [from, until, `${bucketMs(frame) / 1000} seconds`]);
  await tx.query('UPDATE accounting_cursor SET aggregated_to = $1::timestamptz', [until]);
  return to;
}

/** Forget bucket sums no PPLNS window can reach any more. */
export async function pruneBuckets(q: Queryable, before: number): Promise<void> {
  await q.query('DELETE FROM share_sums_bucket WHERE bucket < $1::timestamptz', [new Date(before).toISOString()]);
}

/**
 * Buckets of [lo, hi) whose sums hold fewer shares than are stored: a share stored after the sums had passed its
 * time (a spool replayed late, a source that reported no watermark). With minute buckets the count comes from the
 * minute rollups ingest keeps (cheap, and what FPPS's late check reads too); shorter buckets count the raw shares.
 */
const LATE_BUCKETS_ROLLUP = `
SELECT r.bucket AS b FROM pool_rollups_minute r
LEFT JOIN (SELECT bucket, sum(n) AS n FROM share_sums_bucket WHERE bucket >= $1::timestamptz AND bucket < $2::timestamptz GROUP BY 1) s
  ON s.bucket = r.bucket
WHERE r.bucket >= $1::timestamptz AND r.bucket < $2::timestamptz AND r.accepted > coalesce(s.n, 0)`;

const LATE_BUCKETS_RAW = `
SELECT r.b FROM (
  SELECT date_bin($3::interval, time, ${EPOCH}) AS b, count(*) AS n FROM shares
  WHERE time >= $1::timestamptz AND time < $2::timestamptz GROUP BY 1
) r
LEFT JOIN (SELECT bucket, sum(n) AS n FROM share_sums_bucket WHERE bucket >= $1::timestamptz AND bucket < $2::timestamptz GROUP BY 1) s
  ON s.bucket = r.b
WHERE r.n > coalesce(s.n, 0)`;

/**
 * Re-sum the buckets of [lo, hi) (bucket starts, both below the cursor) that miss late-stored shares, so that a
 * PPLNS window holds every share stored when it is computed, whichever bucket a late share fell in (the window
 * reads its newest and crossing buckets share by share from the raw shares: the sums must agree with them).
 * Runs in the split's transaction, under the accounting lock. Returns how many buckets were re-summed.
 */
export async function resumLateBuckets(tx: Queryable, frame: BooksFrame, lo: number, hi: number): Promise<number> {
  const width = bucketMs(frame);
  const from = new Date(lo).toISOString();
  const to = new Date(hi).toISOString();
  const late = width === 60_000
    ? await tx.query<{ b: Date | string }>(LATE_BUCKETS_ROLLUP, [from, to])
    : await tx.query<{ b: Date | string }>(LATE_BUCKETS_RAW, [from, to, `${width / 1000} seconds`]);
  for (const row of late.rows) {
    const b = new Date(row.b).getTime();
    const start = new Date(b).toISOString();
    const end = new Date(b + width).toISOString();
    await tx.query('DELETE FROM share_sums_bucket WHERE bucket = $1::timestamptz', [start]);
    await tx.query(SUM_BUCKET, [start, end, `${width / 1000} seconds`]);
  }
  return late.rows.length;
}
