import type { Logger } from 'pino';
import type { Queryable } from '../store/db.ts';
import type { FlushPosition, MeterFlush } from './ports.ts';

// Routed work that reaches the database after its tick was settled is never billed: the settlement read the meter's
// buckets once. The market waits for every metering process's watermark, but only for processes that wrote in the
// last hour (a dead process must not hold settlement back for ever), so a process that was down or could not write
// for longer settles without it, and what its journal sends when it is back lands in settled ticks. Such flushes are
// found here (a flush applied after a settled tick that it added to), recorded in market_late_deliveries and logged:
// the loss is known, not silent. (A settlement that billed them late is not built.)

export interface LateDelivery {
  flushId: string;
  node: string;
  appliedAt: Date;
  oldestMinute: Date;
  /** The first tick the flush added to that had been settled before it was applied. */
  firstTick: number;
}

/** Flushes are re-read this far back each pass: one whose statement started earlier may have committed later. */
const OVERLAP_MS = 60_000;
const PAGE = 1000;
const PAGES_PER_PASS = 10;

/**
 * Record the market flushes applied after `after` that reached into settled ticks (each once) and log the new ones.
 * Reads from OVERLAP_MS before `after`, page by page in (applied at, id) order. Returns the late flushes found and
 * where the next pass starts (the last flush read).
 */
export async function checkLateDeliveries(db: Queryable, source: (after: FlushPosition, limit: number) => Promise<MeterFlush[]>, after: Date, log?: Logger):
Promise<{ late: LateDelivery[]; next: Date }> {
  const late: LateDelivery[] = [];
  let cursor: FlushPosition = { at: new Date(after.getTime() - OVERLAP_MS).toISOString(), flushId: '' };
  let next = after;
  for (let page = 0; page < PAGES_PER_PASS; page++) {
    const flushes = await source(cursor, PAGE);
    if (flushes.length === 0) break;
    late.push(...await recordLate(db, flushes));
    const last = flushes[flushes.length - 1];
    cursor = last.position;
    if (last.at > next) next = last.at;
    if (flushes.length < PAGE) break;
  }
  for (const l of late) {
    log?.error({ flushId: l.flushId, node: l.node, appliedAt: l.appliedAt.toISOString(), oldestMinute: l.oldestMinute.toISOString(), firstTick: l.firstTick },
      'routed work reached the database after its tick was settled: not billed (market_late_deliveries)');
  }
  return { late, next };
}

async function recordLate(db: Queryable, flushes: readonly MeterFlush[]): Promise<LateDelivery[]> {
  // Strictly after the settlement: a flush applied before it was read by it (a process inside the market's watermark
  // writes a tick's work before its watermark passes the tick's end, and the tick settles only after that).
  const r = await db.query<{ flush_id: string; node: string; applied_at: Date; oldest_minute: Date; first_tick: string }>(
    // Most flushes add to ticks not settled yet: the newest settled tick's end (a backward scan of the key that stops
    // at the first settled tick) rules them out. For the rest, the first settled tick at or after the oldest bucket:
    // ticks are at most an hour long (market.tickSeconds), so its start is within the hour before that bucket, and
    // the scan of market_ticks_time_idx starts there.
    `WITH settled AS (SELECT ends_at FROM market_ticks WHERE settled_at IS NOT NULL ORDER BY tick DESC LIMIT 1)
     INSERT INTO market_late_deliveries (flush_id, node, applied_at, oldest_minute, first_tick)
     SELECT f.id, f.node, f.at, f.oldest, t.tick
       FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[]) AS f (id, node, at, oldest)
       CROSS JOIN LATERAL (
         SELECT k.tick FROM market_ticks k
          WHERE k.starts_at > f.oldest - interval '1 hour' AND k.ends_at > f.oldest AND k.settled_at IS NOT NULL AND k.settled_at < f.at
          ORDER BY k.starts_at LIMIT 1
       ) t
      WHERE f.oldest < (SELECT ends_at FROM settled)
     ON CONFLICT (flush_id) DO NOTHING
     RETURNING flush_id, node, applied_at, oldest_minute, first_tick::text`,
    // The applied time as the database wrote it (position.at, to the microsecond): as a Date (milliseconds) a flush
    // in the settlement's millisecond but after it read as before it, and went unreported.
    [flushes.map((f) => f.flushId), flushes.map((f) => f.node), flushes.map((f) => f.position.at), flushes.map((f) => f.oldestMinute.toISOString())]);
  return r.rows.map((x) => ({
    flushId: x.flush_id, node: x.node, appliedAt: new Date(x.applied_at), oldestMinute: new Date(x.oldest_minute), firstTick: Number(x.first_tick),
  }));
}
