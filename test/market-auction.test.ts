import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  type AuctionAsk, type AuctionBid, type AuctionInput, type AuctionResult, type AuctionWorker, checkInvariants, runAuction,
} from '../src/market/auction.ts';
import { HS_PER_PHS, MarketInputError, affordableHs } from '../src/market/units.ts';

// The auction's rules, each with the worked example docs/market.md publishes, and its invariants over random
// books (fast-check).

const PH = HS_PER_PHS;
const TH = PH / 1000n;
const BIG = 10n ** 15n; // a budget no tick reaches

function bid(id: number, maxPrice: number, limitHs: bigint, over: Partial<AuctionBid> = {}): AuctionBid {
  return { id, owner: 1000 + id, maxPrice, limitHs, budgetSat: BIG, priority: id, ...over };
}
function ask(id: number, minPrice: number, workerIds: number[], over: Partial<AuctionAsk> = {}): AuctionAsk {
  return { id, owner: 2000 + id, minPrice, capHs: null, priority: id, workerIds, ...over };
}
function fleet(from: number, n: number, cap: bigint, shares = 600): AuctionWorker[] {
  return Array.from({ length: n }, (_, i) => ({ id: from + i, capacityHs: cap, shares }));
}
const ids = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
function input(over: Partial<AuctionInput>): AuctionInput {
  return { tick: 1, tickSeconds: 60, minShares: 50, bids: [], asks: [], workers: [], previous: [], ...over };
}
function run(i: AuctionInput): AuctionResult {
  const r = runAuction(i);
  assert.deepEqual(checkInvariants(i, r), []);
  return r;
}
const outcome = (r: AuctionResult, bidId: number) => r.bids.find((b) => b.bidId === bidId)!;
const askOutcome = (r: AuctionResult, askId: number) => r.asks.find((a) => a.askId === askId)!;

describe('auction: worked examples (docs/market.md)', () => {
  test('E1 price in the crossing range: midpoint of [best ask, best bid]', () => {
    const r = run(input({
      bids: [bid(1, 50_000, 10n * PH)],
      asks: [ask(1, 40_000, ids(1, 10))],
      workers: fleet(1, 10, PH),
    }));
    assert.equal(r.price, 45_000);
    assert.deepEqual(r.range, { lo: 40_000, hi: 50_000 });
    assert.equal(outcome(r, 1).fillHs, 10n * PH);
    assert.equal(outcome(r, 1).reason, null);
    assert.equal(r.matchedHs, 10n * PH);
  });

  test('E2 largest volume, then smallest imbalance, then midpoint rounded half to even', () => {
    const r = run(input({
      bids: [bid(1, 50_000, 10n * PH), bid(2, 45_000, 5n * PH)],
      asks: [ask(1, 40_000, ids(1, 10))],
      workers: fleet(1, 10, PH),
    }));
    // Volume is 10 PH/s everywhere in [40,000, 50,000]; at <= 45,000 demand is 15 (imbalance 5), above it 10 (0).
    assert.deepEqual(r.range, { lo: 45_001, hi: 50_000 });
    assert.equal(r.price, 47_500); // (45,001 + 50,000) / 2 = 47,500.5 → 47,500 (even)
    assert.deepEqual(outcome(r, 2).reason, { code: 'below-clearing-price', clearingPrice: 47_500 });
    assert.equal(outcome(r, 2).queuePosition, null);
  });

  test('E3 time priority among equal prices; queue position and hashrate ahead explain a partial fill', () => {
    const r = run(input({
      bids: [bid(1, 50_000, 6n * PH, { priority: 10 }), bid(2, 50_000, 6n * PH, { priority: 20 }), bid(3, 60_000, 2n * PH, { priority: 30 })],
      asks: [ask(1, 40_000, ids(1, 10))],
      workers: fleet(1, 10, PH),
    }));
    assert.equal(r.price, 45_000);
    assert.equal(outcome(r, 3).fillHs, 2n * PH); // highest price first, whatever its time
    assert.equal(outcome(r, 1).fillHs, 6n * PH); // then the earlier of the two at 50,000
    const late = outcome(r, 2);
    assert.equal(late.fillHs, 2n * PH);
    assert.equal(late.queuePosition, 3);
    assert.equal(late.aheadHs, 8n * PH);
    assert.equal(late.aheadAtPriceHs, 6n * PH);
    assert.deepEqual(late.reason, { code: 'supply-taken', aheadHs: 8n * PH });
  });

  test('E4 whole workers: the fill is rounded down under the limit and the bid is told why', () => {
    const r = run(input({
      bids: [bid(1, 50_000, 2500n * TH)],
      asks: [ask(1, 40_000, ids(1, 4))],
      workers: fleet(1, 4, PH),
    }));
    const o = outcome(r, 1);
    assert.equal(o.fillHs, 2n * PH);
    assert.deepEqual(o.reason, { code: 'no-fitting-worker', roomHs: 500n * TH, smallestFreeHs: PH });
    assert.equal(r.matchedHs, 2500n * TH); // the curves cross at 2.5 PH/s; whole workers deliver 2
    assert.equal(r.allocatedHs, 2n * PH);
    assert.deepEqual(askOutcome(r, 1).reason, { code: 'no-fitting-room', largestRoomHs: 500n * TH });
    // A smaller worker fills the room.
    const r2 = run(input({
      bids: [bid(1, 50_000, 2500n * TH)],
      asks: [ask(1, 40_000, [...ids(1, 4), 9])],
      workers: [...fleet(1, 4, PH), { id: 9, capacityHs: 400n * TH, shares: 600 }],
    }));
    assert.equal(outcome(r2, 1).fillHs, 2400n * TH);
  });

  test('E5 self-trade: an account never buys its own workers; the price still comes from the whole book', () => {
    const r = run(input({
      bids: [bid(1, 50_000, 3n * PH, { owner: 7 }), bid(2, 48_000, 3n * PH, { owner: 8 })],
      asks: [ask(1, 40_000, ids(1, 3), { owner: 7 }), ask(2, 42_000, ids(11, 3), { owner: 9 })],
      workers: [...fleet(1, 3, PH), ...fleet(11, 3, PH)],
    }));
    assert.equal(r.price, 45_000); // volume 6 on [42,000, 48,000], imbalance 0
    for (const a of r.assignments) {
      const owner = a.askId === 1 ? 7 : 9;
      const buyer = a.bidId === 1 ? 7 : 8;
      assert.notEqual(owner, buyer);
    }
    assert.equal(outcome(r, 1).fillHs, 3n * PH); // from seller 9
    assert.equal(outcome(r, 2).fillHs, 3n * PH); // from seller 7
    // Alone with its own ask, the bid gets nothing and is told why.
    const alone = run(input({
      bids: [bid(1, 50_000, 3n * PH, { owner: 7 })],
      asks: [ask(1, 40_000, ids(1, 3), { owner: 7 })],
      workers: fleet(1, 3, PH),
    }));
    assert.equal(alone.assignments.length, 0);
    assert.deepEqual(outcome(alone, 1).reason, { code: 'self-trade-excluded', roomHs: 3n * PH });
    assert.deepEqual(askOutcome(alone, 1).reason, { code: 'self-trade-excluded' });
  });

  test('E6 ask priority: the lower minimum sells first, then the earlier ask at the same minimum', () => {
    const r = run(input({
      bids: [bid(1, 50_000, 4n * PH)],
      asks: [ask(1, 44_000, ids(1, 3), { priority: 1 }), ask(2, 41_000, ids(11, 3), { priority: 3 }), ask(3, 41_000, ids(21, 3), { priority: 2 })],
      workers: [...fleet(1, 3, PH), ...fleet(11, 3, PH), ...fleet(21, 3, PH)],
    }));
    // Supply at 41,000..43,999 is 6 PH/s, demand 4: volume 4 from 41,000 up to 50,000, imbalance smallest (2)
    // below 44,000 → range [41,000, 43,999], price 42,499.5 → 42,500 (half to even).
    assert.equal(r.price, 42_500);
    assert.equal(askOutcome(r, 3).soldHs, 3n * PH); // 41,000, earlier
    assert.equal(askOutcome(r, 2).soldHs, 1n * PH); // 41,000, later
    assert.equal(askOutcome(r, 1).soldHs, 0n);
    assert.deepEqual(askOutcome(r, 1).reason, { code: 'above-clearing-price', clearingPrice: 42_500 });
    assert.deepEqual(askOutcome(r, 2).reason, { code: 'demand-taken' });
  });

  test('E7 a hashrate cap takes whole workers, largest first, while they fit under it', () => {
    const r = run(input({
      bids: [bid(1, 50_000, 100n * PH)],
      asks: [ask(1, 40_000, [1, 2, 3, 4], { capHs: 2500n * TH })],
      workers: [{ id: 1, capacityHs: PH, shares: 600 }, { id: 2, capacityHs: PH, shares: 600 }, { id: 3, capacityHs: PH, shares: 600 }, { id: 4, capacityHs: 400n * TH, shares: 600 }],
    }));
    assert.equal(askOutcome(r, 1).offeredHs, 2400n * TH);
    assert.deepEqual(r.workers.filter((w) => w.status === 'over-cap').map((w) => w.workerId), [3]);
  });

  test('E8 capacity is a measurement: a worker with too few shares in the window is not offered', () => {
    const r = run(input({
      bids: [bid(1, 50_000, 100n * PH)],
      asks: [ask(1, 40_000, [1, 2])],
      workers: [{ id: 1, capacityHs: PH, shares: 600 }, { id: 2, capacityHs: 5n * PH, shares: 12 }],
    }));
    assert.equal(r.allocatedHs, PH);
    assert.equal(r.workers.find((w) => w.workerId === 2)!.status, 'insufficient-shares');
  });

  test('E9 no crossing: no price, every order told the best price on the other side', () => {
    const r = run(input({
      bids: [bid(1, 40_000, PH)],
      asks: [ask(1, 50_000, [1])],
      workers: fleet(1, 1, PH),
    }));
    assert.equal(r.price, null);
    assert.deepEqual(outcome(r, 1).reason, { code: 'no-crossing', bestAskPrice: 50_000 });
    assert.deepEqual(askOutcome(r, 1).reason, { code: 'no-crossing', bestBidPrice: 40_000 });
  });

  test('E10 the budget caps demand: what the free budget pays for one tick at the maximum price', () => {
    // 1 PH/s for 60 s at 50,000 sat/PH/day costs 50,000 × 60 / 86,400 = 34.72 sat.
    const r = run(input({
      bids: [bid(1, 50_000, 10n * PH, { budgetSat: 70n })],
      asks: [ask(1, 40_000, ids(1, 10))],
      workers: fleet(1, 10, PH),
    }));
    assert.equal(outcome(r, 1).demandHs, affordableHs(70n, 50_000, 60)!);
    assert.equal(outcome(r, 1).fillHs, 2n * PH); // 2.016 PH/s affordable → 2 whole workers
    const broke = run(input({ bids: [bid(1, 50_000, PH, { budgetSat: 0n })], asks: [ask(1, 40_000, [1])], workers: fleet(1, 1, PH) }));
    assert.deepEqual(outcome(broke, 1).reason, { code: 'no-budget' });
  });

  test('E11 churn: a worker stays on its bid while the allocation holds, even when first-fit would move it', () => {
    const book = {
      bids: [bid(1, 50_000, 2n * PH), bid(2, 50_000, 2n * PH)],
      asks: [ask(1, 40_000, ids(1, 4))],
      workers: fleet(1, 4, PH),
    };
    const first = run(input(book));
    assert.deepEqual(first.assignments.map((a) => [a.workerId, a.bidId]), [[1, 1], [2, 1], [3, 2], [4, 2]]);
    // Last tick workers 1 and 3 served bid 2, 2 and 4 served bid 1: they stay.
    const previous = [{ workerId: 1, bidId: 2 }, { workerId: 3, bidId: 2 }, { workerId: 2, bidId: 1 }, { workerId: 4, bidId: 1 }];
    const next = run(input({ ...book, previous }));
    assert.deepEqual(next.assignments.map((a) => [a.workerId, a.bidId]), [[1, 2], [2, 1], [3, 2], [4, 1]]);
    assert.deepEqual(next.churn, { kept: 4, moved: 0, started: 0, stopped: 0, fallback: false });
    // Churn never changes a fill: a higher bid arriving takes workers from the lower one.
    const outbid = run(input({ ...book, bids: [...book.bids, bid(3, 60_000, 2n * PH)], previous }));
    assert.equal(outcome(outbid, 3).fillHs, 2n * PH);
    assert.equal(outcome(outbid, 1).fillHs + outcome(outbid, 2).fillHs, 2n * PH);
    assert.equal(outbid.churn.kept, 2);
  });

  test('bad input is a clear error, not a wrong clearing', () => {
    assert.throws(() => runAuction(input({ bids: [bid(1, 1, PH), bid(1, 2, PH)] })), (e: Error) => e instanceof MarketInputError && /duplicate bid id 1/.test(e.message));
    assert.throws(() => runAuction(input({ bids: [bid(1, 1.5, PH)] })), /maxPrice must be an integer/);
    assert.throws(() => runAuction(input({ bids: [bid(1, 1, 0n)] })), /limit must be > 0/);
  });
});

// ---- properties over random books ----

interface Book { input: AuctionInput }

const bookArb: fc.Arbitrary<Book> = fc.record({
  nb: fc.integer({ min: 0, max: 25 }),
  na: fc.integer({ min: 0, max: 10 }),
  seed: fc.array(fc.nat(), { minLength: 400, maxLength: 400 }),
}).map(({ nb, na, seed }) => {
  let k = 0;
  const r = (n: number) => seed[k++ % seed.length] % n;
  const prices = [40_000, 42_000, 45_000, 45_001, 47_500, 50_000, 52_000];
  const caps = [100n * TH, 250n * TH, PH, 1500n * TH, 3n * PH];
  const workers: AuctionWorker[] = [];
  const asks: AuctionAsk[] = [];
  let wid = 1;
  for (let i = 0; i < na; i++) {
    const n = 1 + r(8);
    const w = ids(wid, n);
    for (const id of w) workers.push({ id, capacityHs: caps[r(caps.length)], shares: r(10) === 0 ? 10 : 500 });
    wid += n;
    // Occasionally name a worker of another ask too (the first in priority keeps it).
    if (r(6) === 0 && wid > 2) w.push(1 + r(wid - 1));
    asks.push({ id: i + 1, owner: r(6), minPrice: prices[r(prices.length)], capHs: r(3) === 0 ? caps[r(caps.length)] * BigInt(1 + r(4)) : null, priority: r(5), workerIds: w });
  }
  const bids: AuctionBid[] = [];
  for (let i = 0; i < nb; i++) {
    bids.push({
      id: i + 1, owner: r(6), maxPrice: prices[r(prices.length)], limitHs: caps[r(caps.length)] * BigInt(1 + r(6)),
      budgetSat: r(4) === 0 ? BigInt(r(400)) : BIG, priority: r(5),
    });
  }
  const previous = workers.filter(() => r(2) === 0 && nb > 0).map((w) => ({ workerId: w.id, bidId: 1 + r(nb) }));
  return { input: input({ bids, asks, workers, previous }) };
});

function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const a = [...xs];
  let s = seed || 1;
  for (let i = a.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** D(p), S(p) straight from the definition, for a brute-force check of the price rule. */
function curves(i: AuctionInput, r: AuctionResult, p: number): { d: bigint; s: bigint } {
  let d = 0n;
  let s = 0n;
  for (const b of r.bids) if (i.bids.find((x) => x.id === b.bidId)!.maxPrice >= p) d += b.demandHs;
  for (const a of r.asks) if (i.asks.find((x) => x.id === a.askId)!.minPrice <= p) s += a.offeredHs;
  return { d, s };
}

describe('auction: properties (fast-check)', () => {
  test('invariants hold on every random book: max, min, one price, capacity, no rig sold twice, no self-trade', () => {
    let cleared = 0;
    fc.assert(fc.property(bookArb, ({ input: i }) => {
      const r = runAuction(i);
      assert.deepEqual(checkInvariants(i, r), []);
      if (r.price !== null) cleared++;
      // Every worker sold once at most, and to a bid whose max >= price of an ask whose min <= price.
      const seen = new Set(r.assignments.map((a) => a.workerId));
      assert.equal(seen.size, r.assignments.length);
    }), { numRuns: 400 });
    assert.ok(cleared > 50, `only ${cleared} random books cleared: the generator is too thin to test anything`);
  });

  test('determinism: the same book in any order gives the identical result', () => {
    fc.assert(fc.property(bookArb, fc.integer({ min: 1, max: 1 << 30 }), ({ input: i }, seed) => {
      const a = runAuction(i);
      const b = runAuction({
        ...i, bids: shuffled(i.bids, seed), asks: shuffled(i.asks, seed + 1).map((x) => ({ ...x, workerIds: shuffled(x.workerIds, seed + 2) })),
        workers: shuffled(i.workers, seed + 3), previous: shuffled(i.previous, seed + 4),
      });
      assert.deepEqual(b, a);
    }), { numRuns: 200 });
  });

  test('the price maximises matched volume, then minimises imbalance (brute force over every integer price)', () => {
    fc.assert(fc.property(bookArb, ({ input: i }) => {
      const r = runAuction(i);
      let bestV = 0n;
      for (let p = 39_999; p <= 52_001; p++) {
        const { d, s } = curves(i, r, p);
        const v = d < s ? d : s;
        if (v > bestV) bestV = v;
      }
      if (bestV === 0n) { assert.equal(r.price, null); return; }
      assert.notEqual(r.price, null);
      const at = curves(i, r, r.price!);
      const v = at.d < at.s ? at.d : at.s;
      assert.equal(v, bestV);
      assert.equal(r.matchedHs, bestV);
      const imb = at.d > at.s ? at.d - at.s : at.s - at.d;
      for (let p = r.range!.lo - 300; p <= r.range!.hi + 300; p++) {
        const c = curves(i, r, p);
        const vp = c.d < c.s ? c.d : c.s;
        if (vp === bestV) assert.ok((c.d > c.s ? c.d - c.s : c.s - c.d) >= imb, `price ${p} has a smaller imbalance`);
      }
    }), { numRuns: 150 });
  });

  test('no idle fit: a bid with room never sits beside an unsold worker of another seller that fits it', () => {
    fc.assert(fc.property(bookArb, ({ input: i }) => {
      const r = runAuction(i);
      if (r.price === null) return;
      const askOf = new Map(i.asks.map((a) => [a.id, a]));
      const unsold = r.workers.filter((w) => w.status === 'unsold' && askOf.get(w.askId)!.minPrice <= r.price!);
      for (const b of r.bids) {
        if (b.queuePosition === null) continue;
        const room = b.demandHs - b.fillHs;
        const owner = i.bids.find((x) => x.id === b.bidId)!.owner;
        for (const w of unsold) {
          if (askOf.get(w.askId)!.owner === owner) continue;
          assert.ok(w.capacityHs > room, `worker ${w.workerId} (${w.capacityHs}) fits bid ${b.bidId} room ${room}`);
        }
      }
    }), { numRuns: 300 });
  });

  test('priority with equal workers: a later bid is filled only when every bid ahead is full; a later ask sells only when every ask ahead sold out', () => {
    const arb = fc.record({
      bids: fc.array(fc.record({ p: fc.constantFrom(45_000, 46_000, 50_000), n: fc.integer({ min: 1, max: 5 }), t: fc.nat(9) }), { minLength: 1, maxLength: 12 }),
      asks: fc.array(fc.record({ p: fc.constantFrom(40_000, 44_000, 46_000), n: fc.integer({ min: 1, max: 6 }), t: fc.nat(9) }), { minLength: 1, maxLength: 6 }),
    });
    fc.assert(fc.property(arb, (book) => {
      let wid = 1;
      const workers: AuctionWorker[] = [];
      const asks = book.asks.map((a, k) => {
        const w = ids(wid, a.n);
        wid += a.n;
        workers.push(...fleet(w[0], a.n, PH));
        return ask(k + 1, a.p, w, { priority: a.t });
      });
      const bids = book.bids.map((b, k) => bid(k + 1, b.p, BigInt(b.n) * PH, { priority: b.t }));
      const i = input({ bids, asks, workers });
      const r = run(i);
      if (r.price === null) return;
      const queue = r.bids.filter((b) => b.queuePosition !== null).sort((a, b) => a.queuePosition! - b.queuePosition!);
      for (let k = 1; k < queue.length; k++) {
        if (queue[k].fillHs > 0n) for (let j = 0; j < k; j++) assert.equal(queue[j].fillHs, queue[j].demandHs, `bid at position ${k + 1} filled before position ${j + 1}`);
      }
      const sellers = r.asks.filter((a) => a.queuePosition !== null).sort((a, b) => a.queuePosition! - b.queuePosition!);
      for (let k = 1; k < sellers.length; k++) {
        if (sellers[k].soldHs > 0n) for (let j = 0; j < k; j++) assert.equal(sellers[j].soldHs, sellers[j].offeredHs);
      }
    }), { numRuns: 300 });
  });

  test('churn never changes fills or prices: only which sold worker serves which bid', () => {
    fc.assert(fc.property(bookArb, ({ input: i }) => {
      const withPrev = runAuction(i);
      const fresh = runAuction({ ...i, previous: [] });
      assert.equal(withPrev.price, fresh.price);
      assert.deepEqual(withPrev.range, fresh.range);
      assert.deepEqual(withPrev.bids.map((b) => [b.fillHs, b.reason]), fresh.bids.map((b) => [b.fillHs, b.reason]));
      assert.deepEqual(withPrev.asks.map((a) => [a.offeredHs, a.soldHs]), fresh.asks.map((a) => [a.offeredHs, a.soldHs]));
      assert.equal(withPrev.allocatedHs, fresh.allocatedHs);
    }), { numRuns: 200 });
  });
});
