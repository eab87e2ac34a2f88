// The periodic uniform-price auction: one clearing per tick, one price for every trade of the tick.
// docs/market.md states every rule with a worked example; this file is that text in code. In short:
//
// 1. Supply. Each ask offers its workers that have a measurement (at least minShares shares in the capacity
//    window), each at its measured capacity, in the order: larger before smaller, then (among equal sizes)
//    workers that served a bid last tick, then by id; a hashrate cap takes whole workers in that order while
//    they fit under it.
//    A worker is offered by one ask only (the first in ask priority that names it).
// 2. Demand. Each bid wants q = min(limit, what its free budget pays for one tick at its maximum price).
// 3. Price. D(p) = Σ q of bids with max >= p, S(p) = Σ offered of asks with min <= p. The clearing price
//    maximises matched volume min(D, S); among those prices, it minimises the imbalance |D - S|; the price is
//    the midpoint of the remaining integer range, rounded half to even. No positive volume: no clearing.
// 4. Allocation at that price, whole workers. Bids in priority (max price desc, then time priority, then id)
//    receive workers in supply priority (ask min price asc, then time priority, then id; within an ask the
//    order of 1.): each worker goes to the first bid in priority order that has room for all of it and is not
//    its own seller's bid (self-trade). A bid never gets more than q: the cleared quantity is rounded down to
//    whole workers; the under-fill stays unmatched this tick and each bid is told why.
// 5. Churn. With the fills of 4 fixed, workers are re-packed: each keeps its previous bid if that bid still has
//    room in its fill, the rest fill the remaining room first-fit. If that re-packing cannot place every sold
//    worker (sizes do not fit the same way), the allocation of 4 stands. Prices, fills and each seller's
//    volume never depend on the previous tick; only which of a seller's equal workers sells, and which sold
//    worker serves which bid, do.
//
// Deterministic: the result depends only on the set of orders and workers, never on their order in the input.

import { MaxTree } from './max-tree.ts';
import { MarketInputError, affordableHs, bigMin, isPrice, roundHalfEven } from './units.ts';

export interface AuctionBid {
  id: number;
  /** Account id of the buyer. */
  owner: number;
  /** Maximum price, sat/PH/day. */
  maxPrice: number;
  /** Hashrate limit, H/s (> 0). */
  limitHs: bigint;
  /** Budget free for this tick: escrow − settled debits − reserve for ticks not yet settled (sat). */
  budgetSat: bigint;
  /** Time priority: smaller is earlier. Placement and any price change or limit increase take a new one. */
  priority: number;
}

export interface AuctionAsk {
  id: number;
  /** Account id of the seller of record (the operator for pool-capacity asks). */
  owner: number;
  /** Minimum price, sat/PH/day. */
  minPrice: number;
  /** Optional cap on hashrate sold, H/s. */
  capHs: bigint | null;
  priority: number;
  workerIds: readonly number[];
}

export interface AuctionWorker {
  id: number;
  /** Measured capacity over the window: Σ accepted difficulty × 2^32 / window seconds, H/s. */
  capacityHs: bigint;
  /** Shares in the window (the measurement's relative error is about 1/√shares). */
  shares: number;
}

export interface AuctionInput {
  tick: number;
  tickSeconds: number;
  /** A worker with fewer shares in the capacity window is not offered (its capacity is too uncertain). */
  minShares: number;
  bids: readonly AuctionBid[];
  asks: readonly AuctionAsk[];
  workers: readonly AuctionWorker[];
  /** Last tick's assignment, for churn minimisation. */
  previous: readonly { workerId: number; bidId: number }[];
}

export type BidReason =
  /** The book does not cross: no bid's maximum reaches any ask's minimum with capacity behind it. */
  | { code: 'no-crossing'; bestAskPrice: number | null }
  | { code: 'below-clearing-price'; clearingPrice: number }
  /** The free budget pays for less than 1 H/s for one tick at the bid's maximum price. */
  | { code: 'no-budget' }
  /** Every worker offered at the clearing price went to bids ahead in the queue. */
  | { code: 'supply-taken'; aheadHs: bigint }
  /** Workers are left, but each is larger than the bid's remaining room (limit or budget). */
  | { code: 'no-fitting-worker'; roomHs: bigint; smallestFreeHs: bigint }
  /** The only workers left belong to the buyer itself. */
  | { code: 'self-trade-excluded'; roomHs: bigint };

export interface BidOutcome {
  bidId: number;
  /** q: what the bid wants this tick (limit, or less when the budget is short). */
  demandHs: bigint;
  fillHs: bigint;
  workers: number;
  /** Workers that were on this bid last tick and still are. */
  keptWorkers: number;
  /** 1-based rank among bids whose maximum reaches the clearing price; null otherwise. */
  queuePosition: number | null;
  /** Σ demand of bids ahead of this one in the queue. */
  aheadHs: bigint;
  /** Σ demand of bids ahead of this one at the same maximum price (time priority). */
  aheadAtPriceHs: bigint;
  /** Why the fill is below the demand; null when fully filled. */
  reason: BidReason | null;
}

export type AskReason =
  | { code: 'no-crossing'; bestBidPrice: number | null }
  | { code: 'above-clearing-price'; clearingPrice: number }
  /** No worker of the ask has a measurement good enough to sell. */
  | { code: 'no-measured-capacity' }
  /** The bids at the clearing price were filled by asks ahead in the queue. */
  | { code: 'demand-taken' }
  /** Bids still have room, but less than any unsold worker of this ask. */
  | { code: 'no-fitting-room'; largestRoomHs: bigint }
  /** The only bids with room belong to the seller itself. */
  | { code: 'self-trade-excluded' };

export interface AskOutcome {
  askId: number;
  offeredHs: bigint;
  soldHs: bigint;
  workersOffered: number;
  workersSold: number;
  queuePosition: number | null;
  /** Why something offered was not sold; null when all offered capacity sold. */
  reason: AskReason | null;
}

export type WorkerStatus =
  | 'sold'
  /** offered but not sold (see the ask's reason) */
  | 'unsold'
  /** not offered: the ask's hashrate cap is reached */
  | 'over-cap'
  /** not offered: too few shares in the capacity window (or no capacity measured) */
  | 'insufficient-shares'
  /** not offered by this ask: an ask ahead in priority names it too */
  | 'in-another-ask';

export interface WorkerOutcome {
  workerId: number;
  askId: number;
  status: WorkerStatus;
  capacityHs: bigint;
  bidId: number | null;
}

export interface Assignment {
  workerId: number;
  bidId: number;
  askId: number;
  capacityHs: bigint;
}

export interface AuctionResult {
  tick: number;
  /** The one price of the tick (sat/PH/day), or null when the book does not cross. */
  price: number | null;
  /** The integer price range with the largest matched volume and smallest imbalance. */
  range: { lo: number; hi: number } | null;
  /** The curves at the clearing price: demand D, supply S and matched volume min(D, S), H/s. */
  demandHs: bigint;
  supplyHs: bigint;
  matchedHs: bigint;
  /** What whole workers actually deliver: Σ capacity of sold workers (<= matchedHs). */
  allocatedHs: bigint;
  assignments: Assignment[];
  bids: BidOutcome[];
  asks: AskOutcome[];
  workers: WorkerOutcome[];
  /** Highest maximum among bids with demand, lowest minimum among asks with capacity (null: none). */
  bestBidPrice: number | null;
  bestAskPrice: number | null;
  /** Book depth: all bids' demand, all asks' offer, matched (allocated) and available (offer not sold). */
  depth: { bidHs: bigint; askHs: bigint; matchedHs: bigint; availableHs: bigint };
  churn: { kept: number; moved: number; started: number; stopped: number; fallback: boolean };
}

// ---- ordering: total orders, so nothing depends on input order ----

const byId = <T extends { id: number }>(a: T, b: T) => a.id - b.id;
/** Bid priority: higher maximum first, then earlier, then smaller id. */
export function bidPriority(a: AuctionBid, b: AuctionBid): number {
  return b.maxPrice - a.maxPrice || a.priority - b.priority || a.id - b.id;
}
/** Ask priority: lower minimum first, then earlier, then smaller id. */
export function askPriority(a: AuctionAsk, b: AuctionAsk): number {
  return a.minPrice - b.minPrice || a.priority - b.priority || a.id - b.id;
}

function validate(input: AuctionInput): void {
  const fail = (m: string) => { throw new MarketInputError(`auction input: ${m}`); };
  if (!Number.isSafeInteger(input.tickSeconds) || input.tickSeconds <= 0) fail(`tickSeconds must be a positive integer`);
  const seen = (kind: string, ids: number[]) => {
    const s = new Set<number>();
    for (const id of ids) {
      if (!Number.isSafeInteger(id)) fail(`${kind} id ${id} is not an integer`);
      if (s.has(id)) fail(`duplicate ${kind} id ${id}`);
      s.add(id);
    }
  };
  seen('bid', input.bids.map((b) => b.id));
  seen('ask', input.asks.map((a) => a.id));
  seen('worker', input.workers.map((w) => w.id));
  for (const b of input.bids) {
    if (!isPrice(b.maxPrice)) fail(`bid ${b.id}: maxPrice must be an integer >= 0`);
    if (b.limitHs <= 0n) fail(`bid ${b.id}: limit must be > 0`);
    if (b.budgetSat < 0n) fail(`bid ${b.id}: budget must be >= 0`);
  }
  for (const a of input.asks) {
    if (!isPrice(a.minPrice)) fail(`ask ${a.id}: minPrice must be an integer >= 0`);
    if (a.capHs !== null && a.capHs < 0n) fail(`ask ${a.id}: cap must be >= 0`);
  }
  for (const w of input.workers) if (w.capacityHs < 0n) fail(`worker ${w.id}: capacity must be >= 0`);
}

interface Offer {
  ask: AuctionAsk;
  workers: { id: number; cap: bigint }[];
  offeredHs: bigint;
}

interface Interval { lo: number; hi: number; d: bigint; s: bigint; v: bigint; imb: bigint }

/** Clear one tick. Pure and deterministic. */
export function runAuction(input: AuctionInput): AuctionResult {
  validate(input);
  const bidsById = [...input.bids].sort(byId);
  const asksByPriority = [...input.asks].sort(askPriority);
  const workers = new Map(input.workers.map((w) => [w.id, w]));
  const prevBid = new Map<number, number>();
  for (const p of input.previous) prevBid.set(p.workerId, p.bidId);

  // 1. Supply.
  const workerOutcomes = new Map<number, WorkerOutcome>();
  const dupClaims: WorkerOutcome[] = [];
  const offers: Offer[] = [];
  for (const ask of asksByPriority) {
    const candidates: { id: number; cap: bigint; inc: boolean }[] = [];
    const ids = [...ask.workerIds].sort((a, b) => a - b);
    for (let k = 0; k < ids.length; k++) {
      const wid = ids[k];
      if (k > 0 && ids[k - 1] === wid) continue;
      const w = workers.get(wid);
      const cap = w?.capacityHs ?? 0n;
      const first = workerOutcomes.get(wid);
      if (first) {
        // A worker named by two asks of the book is offered by the first in priority only.
        dupClaims.push({ workerId: wid, askId: ask.id, status: 'in-another-ask', capacityHs: first.capacityHs, bidId: null });
        continue;
      }
      if (!w || w.shares < input.minShares || cap <= 0n) {
        workerOutcomes.set(wid, { workerId: wid, askId: ask.id, status: 'insufficient-shares', capacityHs: cap, bidId: null });
        continue;
      }
      candidates.push({ id: wid, cap, inc: prevBid.has(wid) });
    }
    // Larger first (first-fit decreasing packs best); among equal sizes, last tick's sellers first (churn).
    // Swapping equal-size workers of one seller changes no fill, so the previous tick never moves a price,
    // a fill or a seller's volume.
    candidates.sort((a, b) => (a.cap > b.cap ? -1 : a.cap < b.cap ? 1 : 0) || (a.inc === b.inc ? 0 : a.inc ? -1 : 1) || a.id - b.id);
    const offered: { id: number; cap: bigint }[] = [];
    let sum = 0n;
    for (const c of candidates) {
      if (ask.capHs !== null && sum + c.cap > ask.capHs) {
        workerOutcomes.set(c.id, { workerId: c.id, askId: ask.id, status: 'over-cap', capacityHs: c.cap, bidId: null });
        continue;
      }
      sum += c.cap;
      offered.push(c);
      workerOutcomes.set(c.id, { workerId: c.id, askId: ask.id, status: 'unsold', capacityHs: c.cap, bidId: null });
    }
    offers.push({ ask, workers: offered, offeredHs: sum });
  }

  // 2. Demand.
  const demand = new Map<number, bigint>();
  for (const b of bidsById) {
    const aff = affordableHs(b.budgetSat, b.maxPrice, input.tickSeconds);
    demand.set(b.id, aff === null ? b.limitHs : bigMin(b.limitHs, aff));
  }

  // 3. Price.
  const sellers = offers.filter((o) => o.offeredHs > 0n);
  const buyers = bidsById.filter((b) => demand.get(b.id)! > 0n);
  const best = clearingRange(buyers, demand, sellers);

  const depthBid = buyers.reduce((s, b) => s + demand.get(b.id)!, 0n);
  const depthAsk = sellers.reduce((s, o) => s + o.offeredHs, 0n);

  const bestAsk = sellers.reduce<number | null>((m, o) => (m === null || o.ask.minPrice < m ? o.ask.minPrice : m), null);
  const bestBid = buyers.reduce<number | null>((m, b) => (m === null || b.maxPrice > m ? b.maxPrice : m), null);
  if (!best) {
    return {
      tick: input.tick, price: null, range: null, demandHs: 0n, supplyHs: 0n, matchedHs: 0n, allocatedHs: 0n,
      assignments: [],
      bids: bidsById.map((b) => ({
        bidId: b.id, demandHs: demand.get(b.id)!, fillHs: 0n, workers: 0, keptWorkers: 0, queuePosition: null,
        aheadHs: 0n, aheadAtPriceHs: 0n,
        reason: demand.get(b.id)! === 0n ? { code: 'no-budget' } : { code: 'no-crossing', bestAskPrice: bestAsk },
      })),
      asks: offers.sort((a, b) => a.ask.id - b.ask.id).map((o) => ({
        askId: o.ask.id, offeredHs: o.offeredHs, soldHs: 0n, workersOffered: o.workers.length, workersSold: 0, queuePosition: null,
        reason: o.offeredHs === 0n ? { code: 'no-measured-capacity' } : { code: 'no-crossing', bestBidPrice: bestBid },
      })),
      workers: [...workerOutcomes.values(), ...dupClaims].sort((a, b) => a.workerId - b.workerId || a.askId - b.askId),
      bestBidPrice: bestBid, bestAskPrice: bestAsk,
      depth: { bidHs: depthBid, askHs: depthAsk, matchedHs: 0n, availableHs: depthAsk },
      churn: { kept: 0, moved: 0, started: 0, stopped: prevBid.size, fallback: false },
    };
  }

  const price = Number(roundHalfEven({ num: BigInt(best.lo) + BigInt(best.hi), den: 2n }));

  // 4. Allocation at the price: first fit in priority order. Workers are addressed by their position in the
  // supply order (parallel arrays: no per-worker objects or map lookups in the loops).
  const queue = buyers.filter((b) => b.maxPrice >= price).sort(bidPriority);
  const selling = sellers.filter((o) => o.ask.minPrice <= price); // already in ask priority
  const bidIndex = new Map(queue.map((b, i) => [b.id, i]));
  const q = queue.map((b) => demand.get(b.id)!);
  const tree = new MaxTree(q);
  const firstFit = (t: MaxTree, cap: bigint, owner: number): number => {
    let i = t.findFirst(cap, 0);
    while (i >= 0 && queue[i].owner === owner) i = t.findFirst(cap, i + 1);
    return i;
  };
  let n = 0;
  for (const o of selling) n += o.workers.length;
  const supId = new Array<number>(n);
  const supCap = new Array<bigint>(n);
  const supAsk = new Array<AuctionAsk>(n);
  const supPrev = new Int32Array(n).fill(-1); // previous bid's queue index
  {
    let k = 0;
    for (const o of selling) {
      for (const w of o.workers) {
        supId[k] = w.id;
        supCap[k] = w.cap;
        supAsk[k] = o.ask;
        const pb = prevBid.get(w.id);
        const pi = pb === undefined ? undefined : bidIndex.get(pb);
        if (pi !== undefined) supPrev[k] = pi;
        k++;
      }
    }
  }
  const pass1 = new Int32Array(n).fill(-1); // queue index per supply position
  for (let k = 0; k < n; k++) {
    const i = firstFit(tree, supCap[k], supAsk[k].owner);
    if (i < 0) continue;
    pass1[k] = i;
    tree.set(i, tree.get(i) - supCap[k]);
  }
  const roomAfter = queue.map((_, i) => tree.get(i));

  // 5. Churn: same fills, previous pairs kept where they fit.
  const fills = queue.map((_, i) => q[i] - roomAfter[i]);
  const tree2 = new MaxTree(fills);
  const pass2 = new Int32Array(n).fill(-1);
  for (let k = 0; k < n; k++) {
    const i = supPrev[k];
    if (pass1[k] < 0 || i < 0 || queue[i].owner === supAsk[k].owner) continue;
    const room = tree2.get(i);
    if (room >= supCap[k]) {
      pass2[k] = i;
      tree2.set(i, room - supCap[k]);
    }
  }
  let fallback = false;
  for (let k = 0; k < n && !fallback; k++) {
    if (pass1[k] < 0 || pass2[k] >= 0) continue;
    const i = firstFit(tree2, supCap[k], supAsk[k].owner);
    if (i < 0) { fallback = true; break; }
    pass2[k] = i;
    tree2.set(i, tree2.get(i) - supCap[k]);
  }
  const final = fallback ? pass1 : pass2;

  // Results.
  const assignments: Assignment[] = [];
  const perBid = queue.map(() => ({ fill: 0n, workers: 0, kept: 0 }));
  const perAsk = new Map<number, { sold: bigint; workers: number }>();
  let kept = 0, moved = 0, started = 0;
  for (let k = 0; k < n; k++) {
    const i = final[k];
    if (i < 0) continue;
    const bid = queue[i];
    const ask = supAsk[k];
    const id = supId[k];
    assignments.push({ workerId: id, bidId: bid.id, askId: ask.id, capacityHs: supCap[k] });
    const pb = perBid[i];
    pb.fill += supCap[k];
    pb.workers++;
    const prev = prevBid.get(id);
    if (prev === bid.id) { pb.kept++; kept++; } else if (prev === undefined) started++; else moved++;
    let pa = perAsk.get(ask.id);
    if (!pa) { pa = { sold: 0n, workers: 0 }; perAsk.set(ask.id, pa); }
    pa.sold += supCap[k];
    pa.workers++;
    const wo = workerOutcomes.get(id)!;
    wo.status = 'sold';
    wo.bidId = bid.id;
  }
  assignments.sort((a, b) => a.workerId - b.workerId);
  let stopped = 0;
  for (const wid of prevBid.keys()) if (workerOutcomes.get(wid)?.status !== 'sold') stopped++;
  let allocatedHs = 0n;
  for (const pb of perBid) allocatedHs += pb.fill;

  // Explanations. Free = offered at the price but unsold (after pass 1; the fills are the same in pass 2).
  const freeMinByOwner = new Map<number, bigint>();
  for (let k = 0; k < n; k++) {
    if (pass1[k] >= 0) continue;
    const owner = supAsk[k].owner;
    const m = freeMinByOwner.get(owner);
    if (m === undefined || supCap[k] < m) freeMinByOwner.set(owner, supCap[k]);
  }
  const freeMinExcept = topTwo(freeMinByOwner, (a, b) => a < b);
  const roomMaxByOwner = new Map<number, bigint>();
  queue.forEach((b, i) => {
    const m = roomMaxByOwner.get(b.owner);
    if (m === undefined || roomAfter[i] > m) roomMaxByOwner.set(b.owner, roomAfter[i]);
  });
  const roomMaxExcept = topTwo(roomMaxByOwner, (a, b) => a > b);

  const bidOutcomes: BidOutcome[] = [];
  const ahead = new Map<number, { all: bigint; same: bigint; pos: number }>();
  let cum = 0n;
  let samePrice = -1;
  let cumSame = 0n;
  queue.forEach((b, i) => {
    if (b.maxPrice !== samePrice) { samePrice = b.maxPrice; cumSame = 0n; }
    ahead.set(b.id, { all: cum, same: cumSame, pos: i + 1 });
    cum += q[i];
    cumSame += q[i];
  });
  for (const b of bidsById) {
    const d = demand.get(b.id)!;
    const i = bidIndex.get(b.id);
    if (i === undefined) {
      bidOutcomes.push({
        bidId: b.id, demandHs: d, fillHs: 0n, workers: 0, keptWorkers: 0, queuePosition: null, aheadHs: 0n, aheadAtPriceHs: 0n,
        reason: d === 0n ? { code: 'no-budget' } : { code: 'below-clearing-price', clearingPrice: price },
      });
      continue;
    }
    const a = ahead.get(b.id)!;
    const r = perBid[i];
    let reason: BidReason | null = null;
    const room = d - r.fill;
    if (room > 0n) {
      const other = freeMinExcept(b.owner);
      if (other !== undefined) reason = { code: 'no-fitting-worker', roomHs: room, smallestFreeHs: other };
      else if (freeMinByOwner.has(b.owner)) reason = { code: 'self-trade-excluded', roomHs: room };
      else reason = { code: 'supply-taken', aheadHs: a.all };
    }
    bidOutcomes.push({
      bidId: b.id, demandHs: d, fillHs: r.fill, workers: r.workers, keptWorkers: r.kept,
      queuePosition: a.pos, aheadHs: a.all, aheadAtPriceHs: a.same, reason,
    });
  }

  const askPos = new Map(selling.map((o, i) => [o.ask.id, i + 1]));
  const askOutcomes: AskOutcome[] = offers.sort((a, b) => a.ask.id - b.ask.id).map((o) => {
    const s = perAsk.get(o.ask.id) ?? { sold: 0n, workers: 0 };
    let reason: AskReason | null = null;
    if (o.offeredHs === 0n) reason = { code: 'no-measured-capacity' };
    else if (o.ask.minPrice > price) reason = { code: 'above-clearing-price', clearingPrice: price };
    else if (s.sold < o.offeredHs) {
      const room = roomMaxExcept(o.ask.owner);
      if (room !== undefined && room > 0n) reason = { code: 'no-fitting-room', largestRoomHs: room };
      else if ((roomMaxByOwner.get(o.ask.owner) ?? 0n) > 0n) reason = { code: 'self-trade-excluded' };
      else reason = { code: 'demand-taken' };
    }
    return {
      askId: o.ask.id, offeredHs: o.offeredHs, soldHs: s.sold, workersOffered: o.workers.length, workersSold: s.workers,
      queuePosition: askPos.get(o.ask.id) ?? null, reason,
    };
  });

  return {
    tick: input.tick, price, range: { lo: best.lo, hi: best.hi },
    demandHs: best.atPrice(price).d, supplyHs: best.atPrice(price).s, matchedHs: best.v,
    allocatedHs, assignments, bids: bidOutcomes, asks: askOutcomes,
    workers: [...workerOutcomes.values(), ...dupClaims].sort((a, b) => a.workerId - b.workerId || a.askId - b.askId),
    bestBidPrice: bestBid, bestAskPrice: bestAsk,
    depth: { bidHs: depthBid, askHs: depthAsk, matchedHs: allocatedHs, availableHs: depthAsk - allocatedHs },
    churn: { kept, moved, started, stopped, fallback },
  };
}

/**
 * For "the best value among owners other than X": the best two (owner, value) pairs. Returns a lookup
 * owner → best value of any other owner.
 */
function topTwo(m: Map<number, bigint>, better: (a: bigint, b: bigint) => boolean): (owner: number) => bigint | undefined {
  let first: [number, bigint] | undefined;
  let second: [number, bigint] | undefined;
  for (const [owner, v] of [...m.entries()].sort((a, b) => a[0] - b[0])) {
    if (!first || better(v, first[1])) { second = first; first = [owner, v]; } else if (!second || better(v, second[1])) second = [owner, v];
  }
  return (owner) => (first && first[0] !== owner ? first[1] : second?.[1]);
}

/**
 * The integer price range that maximises matched volume min(D, S), then minimises |D − S|. D and S are step
 * functions of the price: S rises at each ask's minimum, D falls just above each bid's maximum, so they are
 * constant between consecutive breakpoints; evaluating each of those intervals once is exact.
 */
export function clearingRange(
  buyers: readonly AuctionBid[], demand: ReadonlyMap<number, bigint>, sellers: readonly Offer[],
): { lo: number; hi: number; v: bigint; atPrice(p: number): { d: bigint; s: bigint } } | null {
  if (buyers.length === 0 || sellers.length === 0) return null;
  const points = [...new Set([...sellers.map((o) => o.ask.minPrice), ...buyers.map((b) => b.maxPrice + 1)])].sort((a, b) => a - b);
  const asks = [...sellers].sort((a, b) => a.ask.minPrice - b.ask.minPrice);
  const bids = [...buyers].sort((a, b) => a.maxPrice - b.maxPrice);
  const total = bids.reduce((s, b) => s + demand.get(b.id)!, 0n);
  const intervals: Interval[] = [];
  let si = 0, di = 0, s = 0n, removed = 0n;
  for (let k = 0; k + 1 < points.length; k++) {
    const p = points[k];
    while (si < asks.length && asks[si].ask.minPrice <= p) s += asks[si++].offeredHs;
    while (di < bids.length && bids[di].maxPrice < p) removed += demand.get(bids[di++].id)!;
    const d = total - removed;
    const v = d < s ? d : s;
    intervals.push({ lo: p, hi: points[k + 1] - 1, d, s, v, imb: d > s ? d - s : s - d });
  }
  let bestV = 0n;
  for (const it of intervals) if (it.v > bestV) bestV = it.v;
  if (bestV === 0n) return null;
  let bestImb: bigint | null = null;
  for (const it of intervals) if (it.v === bestV && (bestImb === null || it.imb < bestImb)) bestImb = it.imb;
  const chosen = intervals.filter((it) => it.v === bestV && it.imb === bestImb);
  const lo = chosen[0].lo;
  const hi = chosen[chosen.length - 1].hi;
  return {
    lo, hi, v: bestV,
    atPrice(p) {
      const it = intervals.find((x) => x.lo <= p && p <= x.hi)!;
      return { d: it.d, s: it.s };
    },
  };
}

export interface InvariantViolation {
  rule: string;
  detail: string;
}

/**
 * The auction's invariants, checked on every tick before anything is stored or routed (and by the property
 * tests): no bid pays above its maximum, no ask sells below its minimum, one price, no worker sold twice, no
 * seller allocated more than its measured capacity (or its cap), no bid above its limit or budget, no
 * self-trade, and fills that add up.
 */
export function checkInvariants(input: AuctionInput, r: AuctionResult): InvariantViolation[] {
  const out: InvariantViolation[] = [];
  const bad = (rule: string, detail: string) => out.push({ rule, detail });
  const bids = new Map(input.bids.map((b) => [b.id, b]));
  const asks = new Map(input.asks.map((a) => [a.id, a]));
  const workers = new Map(input.workers.map((w) => [w.id, w]));
  if (r.price === null && r.assignments.length > 0) bad('one-price', 'assignments without a clearing price');
  const seenWorker = new Set<number>();
  const askWorkers = new Map(input.asks.map((a) => [a.id, new Set(a.workerIds)]));
  const fill = new Map<number, bigint>();
  const sold = new Map<number, bigint>();
  const capacity = new Map<number, bigint>();
  for (const a of r.assignments) {
    const bid = bids.get(a.bidId);
    const ask = asks.get(a.askId);
    const w = workers.get(a.workerId);
    if (!bid || !ask || !w) { bad('known-orders', `assignment ${JSON.stringify(a, (_k, v) => (typeof v === 'bigint' ? String(v) : v))} names an unknown order or worker`); continue; }
    if (seenWorker.has(a.workerId)) bad('no-rig-sold-twice', `worker ${a.workerId} assigned twice`);
    seenWorker.add(a.workerId);
    if (!askWorkers.get(a.askId)!.has(a.workerId)) bad('seller-owns-worker', `worker ${a.workerId} is not in ask ${a.askId}`);
    if (a.capacityHs !== w.capacityHs) bad('measured-capacity', `worker ${a.workerId} sold at ${a.capacityHs}, measured ${w.capacityHs}`);
    if (w.shares < input.minShares) bad('measured-capacity', `worker ${a.workerId} sold with ${w.shares} shares < ${input.minShares}`);
    if (r.price !== null && r.price > bid.maxPrice) bad('bid-max', `bid ${bid.id} pays ${r.price} > max ${bid.maxPrice}`);
    if (r.price !== null && r.price < ask.minPrice) bad('ask-min', `ask ${ask.id} sells at ${r.price} < min ${ask.minPrice}`);
    if (bid.owner === ask.owner) bad('no-self-trade', `bid ${bid.id} and ask ${ask.id} have the same owner ${bid.owner}`);
    fill.set(bid.id, (fill.get(bid.id) ?? 0n) + a.capacityHs);
    sold.set(ask.id, (sold.get(ask.id) ?? 0n) + a.capacityHs);
  }
  for (const ask of input.asks) {
    let c = 0n;
    for (const wid of new Set(ask.workerIds)) c += workers.get(wid)?.capacityHs ?? 0n;
    capacity.set(ask.id, c);
  }
  for (const [id, s] of sold) {
    const ask = asks.get(id)!;
    if (s > capacity.get(id)!) bad('seller-capacity', `ask ${id} sold ${s} > measured ${capacity.get(id)}`);
    if (ask.capHs !== null && s > ask.capHs) bad('ask-cap', `ask ${id} sold ${s} > cap ${ask.capHs}`);
  }
  for (const [id, f] of fill) {
    const bid = bids.get(id)!;
    if (f > bid.limitHs) bad('bid-limit', `bid ${id} filled ${f} > limit ${bid.limitHs}`);
    const aff = affordableHs(bid.budgetSat, bid.maxPrice, input.tickSeconds);
    if (aff !== null && f > aff) bad('bid-budget', `bid ${id} filled ${f} > affordable ${aff}`);
  }
  for (const o of r.bids) {
    if ((fill.get(o.bidId) ?? 0n) !== o.fillHs) bad('fills-add-up', `bid ${o.bidId} reports ${o.fillHs}, assignments give ${fill.get(o.bidId) ?? 0n}`);
  }
  const total = r.assignments.reduce((s, a) => s + a.capacityHs, 0n);
  if (total !== r.allocatedHs) bad('fills-add-up', `allocated ${r.allocatedHs} ≠ Σ assignments ${total}`);
  if (r.allocatedHs > r.matchedHs) bad('volume', `allocated ${r.allocatedHs} > matched ${r.matchedHs}`);
  return out;
}
