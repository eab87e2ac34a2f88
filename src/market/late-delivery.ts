import type { Logger } from 'pino';
import type { Queryable } from '../store/db.ts';
import type { MeterFlush } from './ports.ts';

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
 * Returns them and where the next pass starts.
 */
export async function checkLateDeliveries(db: Queryable, source: (after: Date, limit: number) => Promise<MeterFlush[]>, after: Date, log?: Logger):
Promise<{ late: LateDelivery[]; next: Date }> {
  const late: LateDelivery[] = [];
  let from = new Date(after.getTime() - OVERLAP_MS);
  let newest = after;
  for (let page = 0; page < PAGES_PER_PASS; page++) {
    const flushes = await source(from, PAGE);
    if (flushes.length === 0) break;
    late.push(...await recordLate(db, flushes));
    const last = flushes[flushes.length - 1].at;
    if (last > newest) newest = last;
    if (flushes.length < PAGE || last.getTime() === from.getTime()) break;
    from = last;
  }
  for (const l of late) {
    log?.error({ flushId: l.flushId, node: l.node, appliedAt: l.appliedAt.toISOString(), oldestMinute: l.oldestMinute.toISOString(), firstTick: l.firstTick },
      'routed work reached the database after its tick was settled: not billed (market_late_deliveries)');
  }
  return { late, next: newest };
}

async function recordLate(db: Queryable, flushes: readonly MeterFlush[]): Promise<LateDelivery[]> {
  // Strictly after the settlement: a flush applied before it was read by it (a process inside the market's watermark
  // writes a tick's work before its watermark passes the tick's end, and the tick settles only after that).
  const r = await db.query<{ flush_id: string; node: string; applied_at: Date; oldest_minute: Date; first_tick: string }>(
    `INSERT INTO market_late_deliveries (flush_id, node, applied_at, oldest_minute, first_tick)
     SELECT f.id, f.node, f.at, f.oldest, t.tick
       FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[]) AS f (id, node, at, oldest)
       CROSS JOIN LATERAL (
         SELECT min(k.tick) AS tick FROM market_ticks k
          WHERE k.settled_at IS NOT NULL AND k.settled_at < f.at AND k.ends_at > f.oldest AND k.starts_at > f.oldest - interval '1 day'
       ) t
      WHERE t.tick IS NOT NULL
     ON CONFLICT (flush_id) DO NOTHING
     RETURNING flush_id, node, applied_at, oldest_minute, first_tick::text`,
    [flushes.map((f) => f.flushId), flushes.map((f) => f.node), flushes.map((f) => f.at.toISOString()), flushes.map((f) => f.oldestMinute.toISOString())]);
  return r.rows.map((x) => ({
    flushId: x.flush_id, node: x.node, appliedAt: new Date(x.applied_at), oldestMinute: new Date(x.oldest_minute), firstTick: Number(x.first_tick),
  }));
}
