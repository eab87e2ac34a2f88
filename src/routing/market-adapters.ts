// The market's routing ports (src/market/ports.ts) on routing's tables: the market decides who goes where (routes
// with bid_id, workers per tick, a lease); every pool process's RoutingService carries them out; delivery is read
// back from route_minutes. Delivery resolution is the metering bucket (routing.meterBucketSeconds, a minute by
// default): a tick must be a whole number of buckets (the config checks it).

import type { CapacityMeter, WorkerCapacity, DeliveryMeter, DeliveryRecord, FlushPosition, MeterFlush, Destination, DestinationState, OrderRoute, RouteController } from '../market/ports.ts';
import type { Queryable } from '../store/db.ts';
import { HANDSHAKE_OK } from './route.ts';
import { RouteStore } from './store.ts';

const TWO_32 = 2 ** 32;

/** Worker ids (workers.id) → "account.worker" names, as sessions authorize. */
async function workerNames(db: Queryable, ids: readonly number[]): Promise<Map<number, string>> {
  if (ids.length === 0) return new Map();
  const r = await db.query<{ id: string; name: string }>(
    `SELECT w.id, a.name || '.' || w.name AS name FROM workers w JOIN accounts a ON a.id = w.account_id WHERE w.id = ANY($1::bigint[])`, [ids]);
  return new Map(r.rows.map((x) => [Number(x.id), x.name]));
}

export class MarketRouteController implements RouteController {
  private readonly store: RouteStore;

  /** `afterChange`: apply now in this process (RoutingService.sync), instead of at the next database read. */
  constructor(private readonly db: Queryable, private readonly afterChange: () => Promise<void> = async () => undefined) {
    this.store = new RouteStore(db);
  }

  async probe(bidId: number, destinations: readonly Destination[]): Promise<void> {
    if (await this.store.forBid(bidId)) return;
    // No workers yet: the probe connects, subscribes, authorizes and checks room and difficulty; the first
    // allocated worker's first accepted share completes it (that work is metered as probe work, never billed).
    await this.store.create({ name: `bid-${bidId}`, destinations: destinations.map((d) => ({ ...d })), workers: [], bidId });
    await this.afterChange();
  }

  async apply(tick: number, routes: readonly OrderRoute[], leaseUntil: Date): Promise<void> {
    const names = await workerNames(this.db, routes.flatMap((r) => r.workerIds));
    const byBid = new Map(routes.map((r) => [r.bidId, r]));
    for (const r of routes) {
      let row = await this.store.forBid(r.bidId);
      if (!row) row = await this.store.create({ name: `bid-${r.bidId}`, destinations: r.destinations.map((d) => ({ ...d })), workers: [], bidId: r.bidId });
      const workers = r.workerIds.map((id) => names.get(id)).filter((n): n is string => n !== undefined);
      await this.store.setWorkers(row.id, workers, { tick, until: leaseUntil });
    }
    // Every worker in no route is on pool work: bids not in this tick keep their connection but no workers.
    for (const row of await this.store.active()) {
      if (row.bidId != null && !byBid.has(row.bidId)) await this.store.setWorkers(row.id, [], { tick, until: leaseUntil });
    }
    await this.afterChange();
  }

  async stop(bidId: number): Promise<void> {
    const row = await this.store.forBid(bidId);
    if (row) await this.store.stop(row.id);
    await this.afterChange();
  }

  async stopWorkers(workerIds: readonly number[]): Promise<void> {
    const gone = new Set((await workerNames(this.db, workerIds)).values());
    for (const row of await this.store.active()) {
      if (row.bidId == null) continue;
      const left = row.workers.filter((w) => !gone.has(w));
      if (left.length !== row.workers.length) await this.store.setWorkers(row.id, left, null);
    }
    await this.afterChange();
  }

  async destinationStates(bidIds: readonly number[]): Promise<Map<number, DestinationState>> {
    const out = new Map<number, DestinationState>();
    for (const bidId of bidIds) {
      const row = await this.store.forBid(bidId);
      if (!row) continue;
      const since = new Date(row.stateSince);
      switch (row.state) {
        case 'ready': out.set(bidId, { state: 'ready', destinationIndex: 0 }); break;
        case 'probing': out.set(bidId, row.stateCode === HANDSHAKE_OK ? { state: 'ready', destinationIndex: 0 } : { state: 'probing' }); break;
        case 'failed': out.set(bidId, { state: 'failed', code: row.stateCode ?? 'unknown', message: row.stateMessage ?? '' }); break;
        case 'paused': out.set(bidId, { state: 'paused', code: row.stateCode ?? 'unknown', message: row.stateMessage ?? '', since }); break;
        default: break; // stopped: unknown to routing from now on
      }
    }
    return out;
  }
}

export class MarketDeliveryMeter implements DeliveryMeter {
  private readonly store: RouteStore;

  constructor(private readonly db: Queryable) {
    this.store = new RouteStore(db);
  }

  async delivered(from: Date, to: Date): Promise<DeliveryRecord[]> {
    const r = await this.db.query<{ bid_id: string; worker_id: string | null; worker: string; accepted: string; accepted_difficulty: number; rejected: string; switch_lost: string }>(
      `SELECT r.bid_id, w.id AS worker_id, m.worker, sum(m.accepted) AS accepted, sum(m.accepted_difficulty) AS accepted_difficulty,
              sum(m.rejected) AS rejected, sum(m.switch_lost) AS switch_lost
         FROM route_minutes m
         JOIN routes r ON r.id = m.route_id AND r.bid_id IS NOT NULL
         LEFT JOIN accounts a ON a.name = split_part(m.worker, '.', 1)
         LEFT JOIN workers w ON w.account_id = a.id AND w.name = substr(m.worker, length(split_part(m.worker, '.', 1)) + 2)
        WHERE m.minute >= $1::timestamptz AND m.minute < $2::timestamptz
        GROUP BY r.bid_id, w.id, m.worker ORDER BY r.bid_id, m.worker`, [from.toISOString(), to.toISOString()]);
    return r.rows.filter((x) => x.worker_id !== null).map((x) => ({
      bidId: Number(x.bid_id),
      workerId: Number(x.worker_id),
      // Σ (upstream difficulty × 2^32) over shares the buyer's pool accepted: the only billed quantity.
      acceptedHashes: BigInt(Math.round(Number(x.accepted_difficulty) * TWO_32)),
      acceptedShares: Number(x.accepted),
      rejectedShares: Number(x.rejected),
      staleBySwitchShares: Number(x.switch_lost),
    }));
  }

  watermark(): Promise<Date> {
    return this.store.watermark();
  }

  marketFlushes(after: FlushPosition, limit: number): Promise<MeterFlush[]> {
    return this.store.marketFlushes(after, limit);
  }
}

/**
 * Routed work per worker from route_minutes (every route, market or not): a routed worker mines no pool shares,
 * so without this its capacity (pool rollups only) would fall to zero one capacity window after it moved, and the
 * market would take it off the bid it is serving. Its measure is our own verdict (shares valid against the
 * destination's target, at the miner's difficulty), not the destination's answer: capacity is the rig's rate.
 */
export class RoutedCapacityMeter implements CapacityMeter {
  constructor(private readonly db: Queryable) {}

  async capacities(workerIds: readonly number[], windowEnd: Date, windowSeconds: number): Promise<WorkerCapacity[]> {
    if (workerIds.length === 0) return [];
    const names = await workerNames(this.db, workerIds);
    const byName = new Map([...names].map(([id, n]) => [n, id]));
    const from = new Date(windowEnd.getTime() - windowSeconds * 1000);
    const r = await this.db.query<{ worker: string; difficulty: number; shares: string }>(
      `SELECT worker, sum(valid_difficulty)::float8 AS difficulty, sum(valid)::text AS shares FROM route_minutes
        WHERE worker = ANY($1::text[]) AND minute >= $2::timestamptz AND minute < $3::timestamptz GROUP BY worker`,
      [[...byName.keys()], from.toISOString(), windowEnd.toISOString()]);
    return r.rows.filter((x) => byName.has(x.worker) && Number(x.shares) > 0).map((x) => ({
      workerId: byName.get(x.worker)!, hashes: BigInt(Math.round(Number(x.difficulty) * TWO_32)), shares: Number(x.shares),
    })).sort((a, b) => a.workerId - b.workerId);
  }
}
