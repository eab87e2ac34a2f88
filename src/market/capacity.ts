// Capacity meters. A worker's capacity is its accepted work over the window (Σ difficulty × 2^32 / seconds),
// with the share count that gives its error (≈ 1/√shares at one difficulty). Pool work comes from the pool's
// per-minute rollups (this file); routed work (shares forwarded to a buyer's pool) from routing's meter, added
// by SumCapacityMeter, so a worker that is routed keeps its measured capacity.

import type { Queryable } from '../store/db.ts';
import type { CapacityMeter, WorkerCapacity } from './ports.ts';
import { int } from './sql.ts';
import { difficultyToHashes } from './units.ts';

/** Pool work from worker_rollups_minute: accepted difficulty and accepted share count per worker. */
export class RollupCapacityMeter implements CapacityMeter {
  constructor(private readonly db: Queryable) {}

  async capacities(workerIds: readonly number[], windowEnd: Date, windowSeconds: number): Promise<WorkerCapacity[]> {
    if (workerIds.length === 0) return [];
    const from = new Date(windowEnd.getTime() - windowSeconds * 1000);
    const r = await this.db.query<{ worker_id: string; difficulty: number; shares: string }>(
      `SELECT worker_id, sum(accepted_difficulty)::float8 AS difficulty, sum(accepted)::text AS shares
         FROM worker_rollups_minute
        WHERE worker_id = ANY($1::bigint[]) AND bucket >= $2::timestamptz AND bucket < $3::timestamptz
        GROUP BY worker_id ORDER BY worker_id`,
      [workerIds.map(String), from.toISOString(), windowEnd.toISOString()],
    );
    return r.rows.map((x) => ({ workerId: int(x.worker_id), hashes: difficultyToHashes(Number(x.difficulty)), shares: int(x.shares) }));
  }
}

/** Several meters' work added per worker (pool work + routed work). */
export class SumCapacityMeter implements CapacityMeter {
  constructor(private readonly meters: readonly CapacityMeter[]) {}

  async capacities(workerIds: readonly number[], windowEnd: Date, windowSeconds: number): Promise<WorkerCapacity[]> {
    const sum = new Map<number, WorkerCapacity>();
    for (const m of this.meters) {
      for (const c of await m.capacities(workerIds, windowEnd, windowSeconds)) {
        const s = sum.get(c.workerId);
        if (s) { s.hashes += c.hashes; s.shares += c.shares; } else sum.set(c.workerId, { ...c });
      }
    }
    return [...sum.values()].sort((a, b) => a.workerId - b.workerId);
  }
}

/** Relative error of a rate measured from `shares` shares at one difficulty. */
export function relativeError(shares: number): number | null {
  return shares > 0 ? 1 / Math.sqrt(shares) : null;
}
