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
