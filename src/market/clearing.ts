// One tick's clearing from the database: read the book, measure the sellers' workers, run the auction, check
// its invariants, store the outcome (tick, assignments, fills, each order's explanation, state changes) in one
// transaction, then hand the routes to routing. Deterministic: the same rows and measurements give the same
// clearing (the input's digest is stored with the tick).

import { createHash } from 'node:crypto';
import type { Queryable } from '../store/db.ts';
import { type AuctionAsk, type AuctionBid, type AuctionInput, type AuctionResult, type AuctionWorker, checkInvariants, runAuction } from './auction.ts';
import type { MarketConfig } from './config.ts';
import { type AskRow, ASK_COLUMNS, BID_COLUMNS, type BidRow, askFromRow, bidFromRow, reserves } from './orders.ts';
import { carryLease } from './lease-carry.ts';
import type { CapacityMeter, OrderRoute } from './ports.ts';
import { big, int, lockMarket, stableJson } from './sql.ts';

export interface ClearingContext {
  cfg: MarketConfig;
  capacity: CapacityMeter;
}

export interface ClearSummary {
  tick: number;
  /** false: this tick was cleared before (nothing changed now). */
  cleared: boolean;
  price: number | null;
  allocatedHs: bigint;
  assignments: number;
  routes: OrderRoute[];
  /** Bids and asks whose state changed (open ↔ active). */
  inputDigest: string;
  result?: AuctionResult;
}

export class InvariantError extends Error {
  constructor(readonly tick: number, readonly violations: { rule: string; detail: string }[]) {
    super(`tick ${tick}: auction invariants violated, nothing stored or routed: ${violations.slice(0, 3).map((v) => `${v.rule}: ${v.detail}`).join('; ')}`);
    this.name = 'InvariantError';
  }
}

export function inputDigest(i: AuctionInput): string {
  const canonical = {
    tick: i.tick, tickSeconds: i.tickSeconds, minShares: i.minShares,
    bids: [...i.bids].sort((a, b) => a.id - b.id),
    asks: [...i.asks].sort((a, b) => a.id - b.id).map((a) => ({ ...a, workerIds: [...a.workerIds].sort((x, y) => x - y) })),
    workers: [...i.workers].sort((a, b) => a.id - b.id),
    previous: [...i.previous].sort((a, b) => a.workerId - b.workerId),
  };
  return createHash('sha256').update(stableJson(canonical)).digest('hex');
}

/** Build the auction's input for `tick` from the database (and the capacity meter). */
export async function buildInput(tx: Queryable, ctx: ClearingContext, tick: number): Promise<{ input: AuctionInput; bids: Map<number, BidRow>; asks: Map<number, AskRow> }> {
  const { cfg } = ctx;
  const startMs = tick * cfg.tickSeconds * 1000;
  const start = new Date(startMs).toISOString();
  const bidRows = (await tx.query(
    `SELECT ${BID_COLUMNS} FROM market_bids WHERE state IN ('open', 'active') AND (end_time IS NULL OR end_time > $1::timestamptz) ORDER BY id`, [start],
  )).rows.map(bidFromRow);
  const reserve = await reserves(tx, cfg);
  const bids: AuctionBid[] = bidRows.map((b) => {
    const free = b.budgetSat - b.spentSat - b.releasedSat - (reserve.get(b.id) ?? 0n);
    return { id: b.id, owner: b.accountId, maxPrice: b.maxPrice, limitHs: b.limitHs, budgetSat: free > 0n ? free : 0n, priority: b.priority };
  });

  const askRows = (await tx.query(
    `SELECT ${ASK_COLUMNS} FROM market_asks WHERE state IN ('open', 'active') AND (end_time IS NULL OR end_time > $1::timestamptz) ORDER BY id`, [start],
  )).rows.map(askFromRow);
  // "All workers" asks take every worker of the account seen within the window that no live ask names.
  const named = new Set<number>();
  for (const a of askRows) for (const w of a.workerIds) named.add(w);
  const allOwners = askRows.filter((a) => a.allWorkers).map((a) => a.accountId);
  const byOwner = new Map<number, number[]>();
  if (allOwners.length) {
    const windowStart = new Date(startMs - cfg.capacityWindowSeconds * 1000).toISOString();
    const r = await tx.query<{ id: string; account_id: string }>(
      `SELECT id, account_id FROM workers WHERE account_id = ANY($1::bigint[]) AND id <> 0 AND last_seen >= $2::timestamptz ORDER BY id`,
      [[...new Set(allOwners)].map(String), windowStart],
    );
    for (const row of r.rows) {
      const id = int(row.id);
      if (named.has(id)) continue;
      const owner = int(row.account_id);
      const list = byOwner.get(owner) ?? [];
      list.push(id);
      byOwner.set(owner, list);
    }
  }
  const asks: AuctionAsk[] = askRows.map((a) => ({
    id: a.id, owner: a.accountId, minPrice: a.minPrice, capHs: a.capHs, priority: a.priority,
    workerIds: a.allWorkers ? byOwner.get(a.accountId) ?? [] : a.workerIds,
  }));
  const workerIds = [...new Set(asks.flatMap((a) => a.workerIds))].sort((a, b) => a - b);
  const measured = workerIds.length ? await ctx.capacity.capacities(workerIds, new Date(startMs), cfg.capacityWindowSeconds) : [];
  const seconds = BigInt(cfg.capacityWindowSeconds);
  const wanted = new Set(workerIds);
  const workers: AuctionWorker[] = measured
    .filter((m) => wanted.has(m.workerId))
    .map((m) => ({ id: m.workerId, capacityHs: m.hashes / seconds, shares: m.shares }));

  // Churn: last tick's assignment, only if last tick was cleared (after a gap, everyone starts fresh).
  const last = await tx.query<{ tick: string | null }>(`SELECT max(tick)::text AS tick FROM market_ticks WHERE tick < $1`, [tick]);
  const lastTick = last.rows[0]?.tick === null || last.rows[0]?.tick === undefined ? null : int(last.rows[0].tick);
  let previous: { workerId: number; bidId: number }[] = [];
  if (lastTick === tick - 1) {
    const r = await tx.query<{ worker_id: string; bid_id: string }>(`SELECT worker_id, bid_id FROM market_assignments WHERE to_tick IS NULL`);
    previous = r.rows.map((x) => ({ workerId: int(x.worker_id), bidId: int(x.bid_id) }));
  }
  return {
    input: { tick, tickSeconds: cfg.tickSeconds, minShares: cfg.minShares, bids, asks, workers, previous },
    bids: new Map(bidRows.map((b) => [b.id, b])),
    asks: new Map(askRows.map((a) => [a.id, a])),
  };
}

/** Clear `tick` inside `tx` (the caller commits, then applies the routes). */
export async function clearInTx(tx: Queryable, ctx: ClearingContext, tick: number): Promise<ClearSummary> {
  const { cfg } = ctx;
  await lockMarket(tx);
  const done = await tx.query<{ price: string | null; allocated_hs: string; input_digest: string }>(
    `SELECT price, allocated_hs::text AS allocated_hs, input_digest FROM market_ticks WHERE tick = $1`, [tick]);
  if (done.rows[0]) {
    const r = done.rows[0];
    return { tick, cleared: false, price: r.price === null ? null : int(r.price), allocatedHs: big(r.allocated_hs), assignments: 0, routes: await currentRoutes(tx), inputDigest: r.input_digest };
  }
  const later = await tx.query(`SELECT 1 FROM market_ticks WHERE tick > $1 LIMIT 1`, [tick]);
  if (later.rows.length) throw new Error(`tick ${tick} is older than a tick already cleared: the past is not re-cleared`);
  // Before the bids' budgets are read: the ticks the last clearing's lease carried into hold reserve too.
  await carryLease(tx, cfg, tick);

  const { input, bids, asks } = await buildInput(tx, ctx, tick);
  const result = runAuction(input);
  const violations = checkInvariants(input, result);
  if (violations.length) throw new InvariantError(tick, violations);
  const digest = inputDigest(input);
  const startMs = tick * cfg.tickSeconds * 1000;
  const endMs = startMs + cfg.tickSeconds * 1000;

  await tx.query(
    `INSERT INTO market_ticks (tick, starts_at, ends_at, price, range_lo, range_hi, demand_hs, supply_hs, matched_hs, allocated_hs,
       depth_bid_hs, depth_ask_hs, available_hs, best_bid, best_ask, bids, asks, workers_kept, workers_moved, workers_started,
       workers_stopped, fee_bps, input_digest)
     VALUES ($1, $2::timestamptz, $3::timestamptz, $4, $5, $6, $7::numeric, $8::numeric, $9::numeric, $10::numeric, $11::numeric,
       $12::numeric, $13::numeric, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)`,
    [tick, new Date(startMs).toISOString(), new Date(endMs).toISOString(), result.price, result.range?.lo ?? null, result.range?.hi ?? null,
      result.demandHs.toString(), result.supplyHs.toString(), result.matchedHs.toString(), result.allocatedHs.toString(),
      result.depth.bidHs.toString(), result.depth.askHs.toString(), result.depth.availableHs.toString(), result.bestBidPrice, result.bestAskPrice,
      input.bids.length, input.asks.length, result.churn.kept, result.churn.moved, result.churn.started, result.churn.stopped, cfg.feeBps, digest],
  );

  // Assignments as intervals: close what changed, open what is new. After a gap (ticks not cleared), every open
  // assignment ends where the gap began (after the ticks its lease was carried into) and all start fresh: no
  // interval spans a tick without a row.
  const open = await tx.query<{ id: string; worker_id: string; bid_id: string; ask_id: string }>(`SELECT id, worker_id, bid_id, ask_id FROM market_assignments WHERE to_tick IS NULL`);
  const lastRow = (await tx.query<{ t: string | null }>(`SELECT max(tick)::text AS t FROM market_ticks WHERE tick < $1`, [tick])).rows[0]?.t;
  const lastTick = lastRow === null || lastRow === undefined ? null : int(lastRow);
  const contiguous = lastTick === tick - 1;
  const closeAt = contiguous || lastTick === null ? tick : lastTick + 1;
  const now = new Map(result.assignments.map((a) => [a.workerId, a]));
  const close: string[] = [];
  const kept = new Set<number>();
  for (const row of open.rows) {
    const w = int(row.worker_id);
    const a = now.get(w);
    if (contiguous && a && a.bidId === int(row.bid_id) && a.askId === int(row.ask_id)) kept.add(w);
    else close.push(row.id);
  }
  if (close.length) {
    await tx.query(`UPDATE market_assignments SET to_tick = $2 WHERE id = ANY($1::bigint[])`, [close, closeAt]);
  }
  const fresh = result.assignments.filter((a) => !kept.has(a.workerId));
  if (fresh.length) {
    await tx.query(
      `INSERT INTO market_assignments (worker_id, bid_id, ask_id, from_tick, capacity_hs)
       SELECT w, b, a, $1, c::numeric FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::text[]) AS x(w, b, a, c)`,
      [tick, fresh.map((a) => String(a.workerId)), fresh.map((a) => String(a.bidId)), fresh.map((a) => String(a.askId)), fresh.map((a) => a.capacityHs.toString())],
    );
  }

  // Fills (orders that traded) and every order's explanation.
  const fills = [
    ...result.bids.filter((b) => b.fillHs > 0n).map((b) => ({ side: 'bid', id: b.bidId, demand: b.demandHs, fill: b.fillHs, workers: b.workers })),
    ...result.asks.filter((a) => a.soldHs > 0n).map((a) => ({ side: 'ask', id: a.askId, demand: a.offeredHs, fill: a.soldHs, workers: a.workersSold })),
  ];
  if (fills.length) {
    await tx.query(
      `INSERT INTO market_fills (tick, side, order_id, price, demand_hs, fill_hs, workers)
       SELECT $1, s, o, $2, d::numeric, f::numeric, w FROM unnest($3::text[], $4::bigint[], $5::text[], $6::text[], $7::int[]) AS x(s, o, d, f, w)`,
      [tick, result.price, fills.map((f) => f.side), fills.map((f) => String(f.id)), fills.map((f) => f.demand.toString()), fills.map((f) => f.fill.toString()), fills.map((f) => f.workers)],
    );
  }
  const status = [
    ...result.bids.map((b) => ({ side: 'bid', id: b.bidId, demand: b.demandHs, fill: b.fillHs, workers: b.workers, pos: b.queuePosition, ahead: b.aheadHs, same: b.aheadAtPriceHs, reason: b.reason })),
    ...result.asks.map((a) => ({ side: 'ask', id: a.askId, demand: a.offeredHs, fill: a.soldHs, workers: a.workersSold, pos: a.queuePosition, ahead: null, same: null, reason: a.reason })),
  ];
  if (status.length) {
    await tx.query(
      `INSERT INTO market_order_status (side, order_id, tick, price, demand_hs, fill_hs, workers, queue_position, ahead_hs, ahead_at_price_hs, reason)
       SELECT s, o, $1, $2, d::numeric, f::numeric, w, p, ah::numeric, sa::numeric, r::jsonb
         FROM unnest($3::text[], $4::bigint[], $5::text[], $6::text[], $7::int[], $8::int[], $9::text[], $10::text[], $11::text[]) AS x(s, o, d, f, w, p, ah, sa, r)
       ON CONFLICT (side, order_id) DO UPDATE SET tick = EXCLUDED.tick, price = EXCLUDED.price, demand_hs = EXCLUDED.demand_hs,
         fill_hs = EXCLUDED.fill_hs, workers = EXCLUDED.workers, queue_position = EXCLUDED.queue_position, ahead_hs = EXCLUDED.ahead_hs,
         ahead_at_price_hs = EXCLUDED.ahead_at_price_hs, reason = EXCLUDED.reason`,
      [tick, result.price, status.map((s) => s.side), status.map((s) => String(s.id)), status.map((s) => s.demand.toString()), status.map((s) => s.fill.toString()),
        status.map((s) => s.workers), status.map((s) => s.pos), status.map((s) => s.ahead?.toString() ?? null), status.map((s) => s.same?.toString() ?? null),
        status.map((s) => (s.reason ? stableJson(s.reason) : null))],
    );
  }

  // The sellers' view of each worker: its measurement and what became of it.
  const shares = new Map(input.workers.map((w) => [w.id, w.shares]));
  const ws = result.workers.filter((w) => w.status !== 'in-another-ask');
  if (ws.length) {
    await tx.query(
      `INSERT INTO market_worker_status (worker_id, ask_id, tick, capacity_hs, shares, status, bid_id)
       SELECT w, a, $1, c::numeric, s, st, b FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::int[], $6::text[], $7::bigint[]) AS x(w, a, c, s, st, b)
       ON CONFLICT (worker_id) DO UPDATE SET ask_id = EXCLUDED.ask_id, tick = EXCLUDED.tick, capacity_hs = EXCLUDED.capacity_hs,
         shares = EXCLUDED.shares, status = EXCLUDED.status, bid_id = EXCLUDED.bid_id`,
      [tick, ws.map((w) => String(w.workerId)), ws.map((w) => String(w.askId)), ws.map((w) => w.capacityHs.toString()), ws.map((w) => shares.get(w.workerId) ?? 0),
        ws.map((w) => w.status), ws.map((w) => (w.bidId === null ? null : String(w.bidId)))],
    );
  }

  // open ↔ active (logged only when it changes, so a steady order writes no event per tick).
  const flips: { side: 'bid' | 'ask'; id: number; from: string; to: string }[] = [];
  for (const b of result.bids) {
    const row = bids.get(b.bidId)!;
    const to = b.fillHs > 0n ? 'active' : 'open';
    if (row.state !== to) flips.push({ side: 'bid', id: b.bidId, from: row.state, to });
  }
  for (const a of result.asks) {
    const row = asks.get(a.askId)!;
    const to = a.soldHs > 0n ? 'active' : 'open';
    if (row.state !== to) flips.push({ side: 'ask', id: a.askId, from: row.state, to });
  }
  for (const side of ['bid', 'ask'] as const) {
    for (const to of ['open', 'active']) {
      const ids = flips.filter((f) => f.side === side && f.to === to).map((f) => String(f.id));
      if (!ids.length) continue;
      await tx.query(`UPDATE market_${side}s SET state = $2::market_order_state, state_code = NULL, state_message = NULL, updated_at = now() WHERE id = ANY($1::bigint[]) AND state IN ('open', 'active')`, [ids, to]);
    }
  }
  if (flips.length) {
    await tx.query(
      `INSERT INTO market_order_events (side, order_id, kind, from_state, to_state, actor, code, message)
       SELECT s, o, 'state', f::market_order_state, t::market_order_state, 'market', NULL, 'tick ' || $1 FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[]) AS x(s, o, f, t)`,
      [tick, flips.map((f) => f.side), flips.map((f) => String(f.id)), flips.map((f) => f.from), flips.map((f) => f.to)],
    );
  }
  await upsertCandles(tx, cfg, startMs);

  const routes = routesOf(result, bids);
  return { tick, cleared: true, price: result.price, allocatedHs: result.allocatedHs, assignments: result.assignments.length, routes, inputDigest: digest, result };
}

function routesOf(result: AuctionResult, bids: Map<number, BidRow>): OrderRoute[] {
  const per = new Map<number, number[]>();
  for (const a of result.assignments) {
    const l = per.get(a.bidId) ?? [];
    l.push(a.workerId);
    per.set(a.bidId, l);
  }
  return [...per.entries()].sort((a, b) => a[0] - b[0]).map(([bidId, workerIds]) => ({ bidId, destinations: bids.get(bidId)!.destinations, workerIds }));
}

/** The routes of the open assignments (to re-apply after a restart). */
export async function currentRoutes(tx: Queryable): Promise<OrderRoute[]> {
  const r = await tx.query<{ bid_id: string; worker_ids: string[]; destinations: unknown }>(
    `SELECT a.bid_id, array_agg(a.worker_id ORDER BY a.worker_id)::text[] AS worker_ids, b.destinations
       FROM market_assignments a JOIN market_bids b ON b.id = a.bid_id WHERE a.to_tick IS NULL GROUP BY a.bid_id, b.destinations ORDER BY a.bid_id`);
  return r.rows.map((x) => ({
    bidId: int(x.bid_id), workerIds: x.worker_ids.map(int),
    destinations: (typeof x.destinations === 'string' ? JSON.parse(x.destinations) : x.destinations) as OrderRoute['destinations'],
  }));
}

/** OHLC of tick prices with delivered volume, for the minute, hour and day holding `ms`. */
export async function upsertCandles(tx: Queryable, cfg: MarketConfig, ms: number): Promise<void> {
  for (const [interval, len] of [['1m', 60_000], ['1h', 3_600_000], ['1d', 86_400_000]] as const) {
    const from = Math.floor(ms / len) * len;
    await tx.query(
      `INSERT INTO market_candles (interval, starts_at, open, high, low, close, ticks, volume_hashes)
       SELECT $1, $2::timestamptz, (array_agg(price ORDER BY tick))[1], max(price), min(price), (array_agg(price ORDER BY tick DESC))[1],
              count(*), coalesce(sum(delivered_hashes), 0)
         FROM market_ticks WHERE price IS NOT NULL AND starts_at >= $2::timestamptz AND starts_at < $3::timestamptz
       HAVING count(*) > 0
       ON CONFLICT (interval, starts_at) DO UPDATE SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
         close = EXCLUDED.close, ticks = EXCLUDED.ticks, volume_hashes = EXCLUDED.volume_hashes`,
      [interval, new Date(from).toISOString(), new Date(from + len).toISOString()],
    );
  }
  void cfg;
}
