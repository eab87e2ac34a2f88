// Market benchmarks: the auction tick for 10,000 orders over 20,000 sellers' workers, and settlement per tick.
// `npx tsx bench/market.ts [--quick]` prints a Markdown section; bench/run.ts includes it in BENCHMARKS.md.
// Pure computation (no database): what one clearing and one settlement cost on one core.

import { type AuctionAsk, type AuctionBid, type AuctionInput, type AuctionWorker, checkInvariants, runAuction } from '../src/market/auction.ts';
import { type SettlementBid, type SettlementLine, settleTick } from '../src/market/settlement.ts';
import os from 'node:os';
import { HS_PER_PHS } from '../src/market/units.ts';

export interface MarketBenchResult {
  bids: number;
  asks: number;
  workers: number;
  firstTickMs: number;
  steadyTickMs: { p50: number; max: number };
  /** Process CPU time of a steady tick (user + system): less sensitive to other load on a shared machine. */
  steadyTickCpuMs: { p50: number; max: number };
  loadAverage: number;
  invariantsMs: number;
  assignments: number;
  price: number | null;
  kept: number;
  settleMs: { p50: number; max: number };
  settleLines: number;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function makeBook(nBids: number, nAsks: number, nWorkers: number, seed = 1): AuctionInput {
  const r = rng(seed);
  const TH = HS_PER_PHS / 1000n;
  const workers: AuctionWorker[] = [];
  for (let i = 0; i < nWorkers; i++) {
    // ~100 TH/s machines with the spread a 20-minute window measures (a few %), plus some smaller rigs.
    const base = r() < 0.8 ? 100 : 20 + Math.floor(r() * 80);
    workers.push({ id: i + 1, capacityHs: BigInt(Math.round(base * (0.95 + r() * 0.1) * 1000)) * TH / 1000n, shares: 200 + Math.floor(r() * 400) });
  }
  const asks: AuctionAsk[] = [];
  let w = 1;
  for (let i = 0; i < nAsks; i++) {
    const n = i === nAsks - 1 ? nWorkers - w + 1 : Math.max(1, Math.min(nWorkers - w + 1 - (nAsks - 1 - i), Math.round((nWorkers / nAsks) * (0.5 + r()))));
    const ids = Array.from({ length: n }, (_, k) => w + k);
    w += n;
    asks.push({ id: i + 1, owner: 1 + Math.floor(r() * 3000), minPrice: 40_000 + Math.floor(r() * 8_000), capHs: r() < 0.2 ? BigInt(n * 60) * TH : null, priority: i, workerIds: ids });
  }
  const bids: AuctionBid[] = [];
  for (let i = 0; i < nBids; i++) {
    bids.push({
      id: i + 1, owner: 3000 + Math.floor(r() * 3000), maxPrice: 42_000 + Math.floor(r() * 8_000),
      limitHs: BigInt(100 + Math.floor(r() * 900)) * TH, budgetSat: BigInt(Math.floor(r() * 5_000_000)), priority: i,
    });
  }
  return { tick: 1, tickSeconds: 60, minShares: 50, bids, asks, workers, previous: [] };
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];

export function benchMarket(opts: { quick?: boolean } = {}): MarketBenchResult {
  const nBids = 6_000, nAsks = 4_000, nWorkers = 20_000;
  const book = makeBook(nBids, nAsks, nWorkers);
  let t = performance.now();
  const first = runAuction(book);
  const firstTickMs = performance.now() - t;
  t = performance.now();
  const violations = checkInvariants(book, first);
  const invariantsMs = performance.now() - t;
  if (violations.length) throw new Error(`invariants violated: ${JSON.stringify(violations[0])}`);
  const previous = first.assignments.map((a) => ({ workerId: a.workerId, bidId: a.bidId }));
  const runs = opts.quick ? 3 : 10;
  const times: number[] = [];
  const cpu: number[] = [];
  let last = first;
  for (let k = 0; k < runs; k++) {
    t = performance.now();
    const c = process.cpuUsage();
    last = runAuction({ ...book, tick: 2 + k, previous });
    const u = process.cpuUsage(c);
    times.push(performance.now() - t);
    cpu.push((u.user + u.system) / 1000);
  }

  // Settlement of one tick: every assignment delivered (about its capacity for 60 s), one line per worker.
  const byBid = new Map<number, SettlementBid & { lines: SettlementLine[] }>();
  const askOwner = new Map(book.asks.map((a) => [a.id, a.owner]));
  const bidOwner = new Map(book.bids.map((b) => [b.id, b.owner]));
  for (const a of last.assignments) {
    let s = byBid.get(a.bidId);
    if (!s) {
      s = { bidId: a.bidId, buyer: bidOwner.get(a.bidId)!, escrowRemainingSat: 1_000_000_000n, lines: [] };
      byBid.set(a.bidId, s);
    }
    s.lines.push({ askId: a.askId, seller: askOwner.get(a.askId)!, price: last.price!, acceptedHashes: a.capacityHs * 60n });
  }
  const bids = [...byBid.values()];
  const settleTimes: number[] = [];
  for (let k = 0; k < runs; k++) {
    t = performance.now();
    settleTick({ tick: 2, feeBps: 150, bids, carries: new Map() });
    settleTimes.push(performance.now() - t);
  }
  return {
    bids: nBids, asks: nAsks, workers: nWorkers, firstTickMs, invariantsMs,
    steadyTickMs: { p50: pct(times, 0.5), max: Math.max(...times) },
    steadyTickCpuMs: { p50: pct(cpu, 0.5), max: Math.max(...cpu) }, loadAverage: os.loadavg()[0],
    assignments: last.assignments.length, price: last.price, kept: last.churn.kept,
    settleMs: { p50: pct(settleTimes, 0.5), max: Math.max(...settleTimes) }, settleLines: last.assignments.length,
  };
}

export function marketSection(r: MarketBenchResult): string[] {
  const f = (n: number, d = 1) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  return [
    '## Market auction and settlement (one core, no database)', '',
    `${r.bids.toLocaleString('en-US')} bids and ${r.asks.toLocaleString('en-US')} asks (10,000 orders) over ${r.workers.toLocaleString('en-US')} sellers' workers (mostly ~100 TH/s with a few % measurement spread), prices 40,000–50,000 sat/PH/day, random limits and budgets. Goal: a tick well under one second.`, '',
    '| step | time |', '| --- | ---: |',
    `| auction, first tick (no previous allocation) | ${f(r.firstTickMs)} ms |`,
    `| auction, steady tick (previous allocation kept), p50 / max | ${f(r.steadyTickMs.p50)} / ${f(r.steadyTickMs.max)} ms |`,
    `| same, process CPU time, p50 / max | ${f(r.steadyTickCpuMs.p50)} / ${f(r.steadyTickCpuMs.max)} ms |`,
    `| invariant check of a tick | ${f(r.invariantsMs)} ms |`,
    `| settlement of a tick (${r.settleLines.toLocaleString('en-US')} delivery lines), p50 / max | ${f(r.settleMs.p50)} / ${f(r.settleMs.max)} ms |`,
    '',
    `Load average during the run: ${f(r.loadAverage, 1)} (the machine is shared; wall times stretch with it). Clearing price ${r.price?.toLocaleString('en-US') ?? '—'} sat/PH/day, ${r.assignments.toLocaleString('en-US')} workers allocated, ${r.kept.toLocaleString('en-US')} kept on their bid in the steady tick.`, '',
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = benchMarket({ quick: process.argv.includes('--quick') });
  process.stdout.write(marketSection(r).join('\n') + '\n');
}
