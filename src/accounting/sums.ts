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
 * Where the PPLNS window's buckets of [lo, hi), as loaded into pplns_buckets from the sums, hold fewer shares than
 * ingest stored there: a share stored after the sums passed its time (a spool replayed late, a source that
 * reported no watermark). Ingest counts every stored share in the minute rollups in the same transaction (a
 * replay counts nothing twice); minutes maintenance has compacted into hours are compared per hour. $1 lo, $2 hi.
 */
const LATE_MINUTES = `
SELECT r.bucket AS t, 60 AS secs FROM pool_rollups_minute r
LEFT JOIN (SELECT date_trunc('minute', b, 'UTC') AS t, sum(n) AS n FROM pplns_buckets
  WHERE b >= $1::timestamptz AND b < $2::timestamptz GROUP BY 1) s ON s.t = r.bucket
WHERE r.bucket >= date_trunc('minute', $1::timestamptz, 'UTC') AND r.bucket < $2::timestamptz
  AND NOT EXISTS (SELECT 1 FROM pool_rollups_hour h WHERE h.bucket = date_trunc('hour', r.bucket, 'UTC'))
  AND r.accepted > coalesce(s.n, 0)
UNION ALL
SELECT h.bucket, 3600 FROM pool_rollups_hour h
WHERE h.bucket >= date_trunc('hour', $1::timestamptz, 'UTC') AND h.bucket < $2::timestamptz
  AND h.accepted + coalesce((SELECT sum(m.accepted) FROM pool_rollups_minute m
      WHERE m.bucket >= h.bucket AND m.bucket < h.bucket + interval '1 hour'), 0)
    > coalesce((SELECT sum(s.n) FROM share_sums_bucket s WHERE s.bucket >= h.bucket AND s.bucket < h.bucket + interval '1 hour'), 0)
ORDER BY 1`;

export interface Resum {
  /** Ranges re-summed from the raw shares. */
  resummed: number;
  /** Ranges whose raw shares are fewer than their sums (dropped by retention): the sums are kept as they are. */
  kept: number;
}

/**
 * Re-sum, from the raw shares, the parts of [lo, hi) (bucket starts, below the cursor) where the sums miss
 * shares stored late: a PPLNS window then holds every share stored when it is computed, whichever bucket a late
 * share fell in (its newest and crossing buckets are read share by share from the raw shares: the sums must
 * agree with them). pplns_buckets must hold [lo, hi) as loaded from the sums. A range is never re-summed to fewer
 * shares than its sums hold (raw shares dropped by retention while the sums were kept). Runs in the split's
 * transaction, under the accounting lock.
 */
export async function resumLateShares(tx: Queryable, frame: BooksFrame, lo: number, hi: number): Promise<Resum> {
  const cursor = await readCursor(tx);
  if (cursor === null || hi > cursor) throw new Error(`re-summing ${new Date(lo).toISOString()}..${new Date(hi).toISOString()} past the sums' cursor`);
  const late = await tx.query<{ t: Date | string; secs: number }>(LATE_MINUTES, [new Date(lo).toISOString(), new Date(hi).toISOString()]);
  const out: Resum = { resummed: 0, kept: 0 };
  const width = `${bucketMs(frame) / 1000} seconds`;
  for (const row of late.rows) {
    const t = new Date(row.t).getTime();
    const from = new Date(Math.max(lo, t)).toISOString();
    const to = new Date(Math.min(hi, t + Number(row.secs) * 1000)).toISOString();
    const c = await tx.query<{ raw: string; summed: string }>(`SELECT
        (SELECT count(*) FROM shares WHERE time >= $1::timestamptz AND time < $2::timestamptz)::text AS raw,
        (SELECT coalesce(sum(n), 0) FROM share_sums_bucket WHERE bucket >= $1::timestamptz AND bucket < $2::timestamptz)::text AS summed`, [from, to]);
    const raw = BigInt(c.rows[0].raw);
    const summed = BigInt(c.rows[0].summed);
    if (raw < summed) out.kept++;
    if (raw <= summed) continue; // (a minute the range covers in part: nothing missing in the part it covers)
    await tx.query('DELETE FROM share_sums_bucket WHERE bucket >= $1::timestamptz AND bucket < $2::timestamptz', [from, to]);
    await tx.query(SUM_BUCKET, [from, to, width]);
    out.resummed++;
  }
  return out;
}
