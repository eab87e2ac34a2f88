// The pool's live figures, kept in memory from the share log's in-process events: per-minute rollups of the
// pool (7 days), per-worker rollups (24 h), the recent blocks with their luck. Every read is a sum over a few
// hundred buckets, never a database scan, so the dashboard's numbers stay fast while the pool ingests thousands
// of shares a second (the store's /api/v1/pool answered in 0.13–0.45 s under that load). The figures cover what
// this process saw since it started, seeded at start from the store's rollups (the pool's work over the 7 d
// chart, the recent blocks), so a restart does not blank or shorten the charts.

import type { BlockStatus } from '../shares/block-state.ts';
import type { BlockEvent, ShareEvent } from '../shares/events.ts';
import { SHARE_OUTCOMES, type ShareOutcome } from '../shares/outcome.ts';
import type { WorkBucket } from '../store/types.ts';

const TWO32 = 2 ** 32;
const MINUTE = 60_000;
const REJECTS = SHARE_OUTCOMES.filter((o) => o !== 'accepted');
type Reject = Exclude<ShareOutcome, 'accepted'>;

export type LiveWindow = '5m' | '1h' | '24h';
export type SeriesWindow = '1h' | '24h' | '7d';
const WINDOW_MS: Record<LiveWindow, number> = { '5m': 5 * MINUTE, '1h': 60 * MINUTE, '24h': 1440 * MINUTE };
/**
 * A worker's rings: the buckets a window overlaps (rate() starts at the bucket holding now − window), one more than
 * the window has whole buckets unless now falls on a bucket's start. With 60 and 96 the oldest of them was already
 * reused by the newest, and rate() still counted its time: account and worker figures 1-1.6 % low, below the pool's.
 */
const WORKER_FINE_SLOTS = 60 + 1;
const WORKER_DAY_SLOTS = 96 + 1;
/** Chart windows: bucket width chosen so each chart has at most a few hundred points. */
export const SERIES: Record<SeriesWindow, { ms: number; bucketMs: number }> = {
  '1h': { ms: 60 * MINUTE, bucketMs: MINUTE },
  '24h': { ms: 1440 * MINUTE, bucketMs: 5 * MINUTE },
  '7d': { ms: 7 * 1440 * MINUTE, bucketMs: 60 * MINUTE },
};

/**
 * Fixed-width time buckets in a ring: accepted difficulty, accepted count, and a count per reject reason. A
 * bucket is reused when its slot comes round again (its stamp tells whether it holds the current period).
 */
export class Ring {
  private readonly stamp: Float64Array;
  /** Per slot: [diff, accepted, ...one per reject reason]. */
  private readonly data: Float64Array;
  private readonly width: number;

  /** rejects=false keeps only accepted work (a worker's fine-grained ring: 2 numbers a minute, not 11). */
  constructor(readonly bucketMs: number, readonly slots: number, private readonly rejects = true) {
    this.width = rejects ? 2 + REJECTS.length : 2;
    this.stamp = new Float64Array(slots).fill(-1);
    this.data = new Float64Array(slots * this.width);
  }

  private slot(t: number): number {
    const b = Math.floor(t / this.bucketMs);
    const i = b % this.slots;
    if (this.stamp[i] !== b) {
      this.stamp[i] = b;
      this.data.fill(0, i * this.width, (i + 1) * this.width);
    }
    return i * this.width;
  }

  add(t: number, outcome: ShareOutcome, difficulty: number): void {
    const o = this.slot(t);
    if (outcome === 'accepted') {
      this.data[o] += difficulty;
      this.data[o + 1] += 1;
    } else if (this.rejects) {
      this.data[o + 2 + REJECTS.indexOf(outcome)] += 1;
    }
  }

  /** Seed a bucket with accepted work (from the store's rollups). */
  seed(t: number, difficulty: number, accepted: number): void {
    const o = this.slot(t);
    this.data[o] += difficulty;
    this.data[o + 1] += accepted;
  }

  /** Totals of the buckets that start in [from, to) (callers align `from` to a bucket start). */
  sum(from: number, to: number): { diff: number; accepted: number; rejected: Record<Reject, number> } {
    const out = this.sumInto(from, to, new Float64Array(2 + REJECTS.length));
    return { diff: out[0], accepted: out[1], rejected: Object.fromEntries(REJECTS.map((r, k) => [r, out[2 + k]])) as Record<Reject, number> };
  }

  /**
   * The same totals into `out` (zeroed here): [diff, accepted, ...one per reject reason]; with `acceptedOnly` the
   * rejects are skipped. No allocation: an account's figures read this for every worker (a thousand of them).
   */
  sumInto(from: number, to: number, out: Float64Array, acceptedOnly = false): Float64Array {
    out.fill(0);
    const first = Math.ceil(from / this.bucketMs);
    const last = Math.floor((to - 1) / this.bucketMs);
    const withRejects = this.rejects && !acceptedOnly;
    for (let b = Math.max(first, last - this.slots + 1); b <= last; b++) {
      const i = b % this.slots;
      if (this.stamp[i] !== b) continue;
      const o = i * this.width;
      out[0] += this.data[o];
      out[1] += this.data[o + 1];
      if (withRejects) for (let k = 0; k < REJECTS.length; k++) out[2 + k] += this.data[o + 2 + k];
    }
    return out;
  }

  /** Adds one bucket (t aligned to bucketMs) into acc[at..at+2]: accepted difficulty, accepted count, rejected count. */
  addBucketInto(t: number, acc: Float64Array, at: number): void {
    const b = Math.floor(t / this.bucketMs);
    const i = b % this.slots;
    if (this.stamp[i] !== b) return;
    const o = i * this.width;
    acc[at] += this.data[o];
    acc[at + 1] += this.data[o + 1];
    if (this.rejects) for (let k = 0; k < REJECTS.length; k++) acc[at + 2] += this.data[o + 2 + k];
  }

  /** Accepted difficulty per bucket of `width` ms (a multiple of bucketMs) over [from, to). */
  series(from: number, to: number, width: number): { t: number; diff: number; accepted: number; rejected: number }[] {
    const out: { t: number; diff: number; accepted: number; rejected: number }[] = [];
    const start = Math.floor(from / width) * width;
    for (let t = start; t < to; t += width) {
      const s = this.sum(Math.max(t, from), Math.min(t + width, to));
      out.push({ t, diff: s.diff, accepted: s.accepted, rejected: Object.values(s.rejected).reduce((a, b) => a + b, 0) });
    }
    return out;
  }
}

export interface LiveRate {
  /** H/s: Σ accepted pool difficulty × 2^32 / seconds covered. */
  hashrate: number;
  /** Accepted shares behind it. */
  shares: number;
  /** Seconds the window covers (shorter than the window while the process is younger than it). */
  seconds: number;
  /** 95 % band of the estimate, relative (±): shares arrive as a Poisson process, so 1.96/√n. null without shares. */
  error: number | null;
}

interface WorkerState {
  account: string;
  worker: string;
  firstSeen: number;
  lastSeen: number;
  lastDifficulty: number;
  /** Time of its latest share of any class: a day after it, the worker has nothing left to show and is dropped. */
  lastEvent: number;
  /** Per minute for an hour (the 5 min and 1 h rates), accepted work only. */
  fine: Ring;
  /** Per 15 min for a day, with rejects by reason (the 24 h rate and counts). */
  day: Ring;
}

export interface LiveBlock {
  height: number;
  hash: string;
  account: string;
  worker: string;
  /** satoshis, decimal string */
  reward: string;
  status: BlockStatus;
  confirmations: number;
  time: string;
  /** Expected work / work done since the previous block, %: above 100 = lucky. null when not known (seeded). */
  luck: number | null;
}

export interface LiveOptions {
  now?: () => number;
  /** A worker is online when it sent an accepted share this recently. Default 10 min. */
  onlineMs?: number;
  /** Blocks kept in memory. Default 50. */
  maxBlocks?: number;
}

/** Where shares and blocks come from (DurableShareLog / InProcessShareLog). */
export interface LiveSource {
  onShare(fn: (e: ShareEvent) => void): () => void;
  onBlock(fn: (e: BlockEvent) => void): () => void;
}

export class LiveStats {
  readonly startedAt: number;
  private readonly now: () => number;
  private readonly onlineMs: number;
  private readonly maxBlocks: number;
  /** Pool-wide per-minute buckets for 7 days. */
  readonly pool = new Ring(MINUTE, 7 * 1440);
  private readonly workers = new Map<string, WorkerState>();
  private readonly accounts = new Map<string, Set<string>>();
  private blocks: LiveBlock[] = [];
  /** Accepted difficulty since the last block candidate (for luck). */
  private workSinceBlock = 0;
  private lastNbits: number | null = null;
  /** Earliest time the figures cover (seeding moves it back). */
  private coverFrom: number;
  private readonly blockListeners = new Set<(b: LiveBlock) => void>();
  private lastPrune = 0;
  /** Reused by rate(): totals of one ring over one window. */
  private readonly scratch = new Float64Array(2 + REJECTS.length);
  seq = 0;

  constructor(opts: LiveOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.onlineMs = opts.onlineMs ?? 10 * MINUTE;
    this.maxBlocks = opts.maxBlocks ?? 50;
    this.startedAt = this.now();
    this.coverFrom = this.startedAt;
  }

  attach(src: LiveSource): () => void {
    const a = src.onShare((e) => this.addShare(e));
    const b = src.onBlock((e) => this.addBlock(e));
    return () => { a(); b(); };
  }

  addShare(e: ShareEvent): void {
    this.seq++;
    this.pool.add(e.time, e.outcome, e.poolDifficulty);
    const key = `${e.account}\u0000${e.worker}`;
    if (e.time - this.lastPrune >= MINUTE) this.prune(e.time);
    let w = this.workers.get(key);
    if (!w) {
      w = { account: e.account, worker: e.worker, firstSeen: e.time, lastSeen: 0, lastEvent: e.time, lastDifficulty: e.poolDifficulty, fine: new Ring(MINUTE, WORKER_FINE_SLOTS, false), day: new Ring(15 * MINUTE, WORKER_DAY_SLOTS) };
      this.workers.set(key, w);
      let set = this.accounts.get(e.account);
      if (!set) this.accounts.set(e.account, (set = new Set()));
      set.add(key);
    }
    w.lastEvent = Math.max(w.lastEvent, e.time);
    w.fine.add(e.time, e.outcome, e.poolDifficulty);
    w.day.add(e.time, e.outcome, e.poolDifficulty);
    w.lastDifficulty = e.poolDifficulty;
    if (e.outcome === 'accepted') {
      w.lastSeen = Math.max(w.lastSeen, e.time);
      this.workSinceBlock += e.poolDifficulty;
      if (e.nbits !== undefined) this.lastNbits = e.nbits;
    }
  }

  addBlock(e: BlockEvent): void {
    this.seq++;
    if (e.kind === 'candidate') {
      if (this.blocks.some((b) => b.hash === e.hash)) return;
      const netDiff = this.lastNbits === null ? null : nbitsDifficulty(this.lastNbits);
      const luck = netDiff !== null && this.workSinceBlock > 0 ? (netDiff / this.workSinceBlock) * 100 : null;
      this.workSinceBlock = 0;
      const b: LiveBlock = {
        height: e.height, hash: e.hash, account: e.account, worker: e.worker, reward: e.reward.toString(), status: 'submitted',
        confirmations: 0, time: new Date(e.time).toISOString(), luck,
      };
      this.blocks = [b, ...this.blocks].slice(0, this.maxBlocks);
      for (const fn of this.blockListeners) fn(b);
    } else if (e.kind === 'status') {
      const b = this.blocks.find((x) => x.hash === e.hash);
      if (!b) return;
      b.status = e.status;
      b.confirmations = e.confirmations;
      for (const fn of this.blockListeners) fn(b);
    }
  }

  /** Forget workers without a share for a day (their windows are all empty): memory follows the active workers. */
  prune(now: number): void {
    this.lastPrune = now;
    for (const [key, w] of this.workers) {
      if (now - w.lastEvent <= WINDOW_MS['24h']) continue;
      this.workers.delete(key);
      const set = this.accounts.get(w.account);
      set?.delete(key);
      if (set && set.size === 0) this.accounts.delete(w.account);
    }
  }

  /** Workers held in memory. */
  get workerCount(): number {
    return this.workers.size;
  }

  onBlockChange(fn: (b: LiveBlock) => void): () => void {
    this.blockListeners.add(fn);
    return () => this.blockListeners.delete(fn);
  }

  /**
   * Seed from the store at start: the pool's accepted work per rollup row over the 7 d chart (minutes, and the
   * hours compaction folded older minutes into) and the recent blocks, so a restart shortens no chart.
   */
  seed(work: readonly WorkBucket[], blocks: Omit<LiveBlock, 'luck'>[]): void {
    for (const w of work) {
      const t = Date.parse(w.time);
      // Only whole rows before this process started: later shares are counted from the events.
      if (!(t + w.seconds * 1000 <= this.startedAt) || (w.difficulty === 0 && w.accepted === 0)) continue;
      // An hour row goes whole into its first minute: the 7 d chart sums whole hours, and the 1 h / 24 h windows
      // never reach a compacted hour (compaction keeps at least two days of minutes).
      this.pool.seed(t, w.difficulty, w.accepted);
      this.coverFrom = Math.min(this.coverFrom, t);
    }
    const known = new Set(this.blocks.map((b) => b.hash));
    const older = blocks.filter((b) => !known.has(b.hash)).map((b): LiveBlock => ({
      height: b.height, hash: b.hash, account: b.account, worker: b.worker, reward: b.reward, status: b.status, confirmations: b.confirmations, time: b.time, luck: null,
    }));
    this.blocks = [...this.blocks, ...older].slice(0, this.maxBlocks);
  }

  /**
   * A window's rate from whole buckets: those overlapping [now − window, now], or from `since` (the first share
   * or the process start) when that is later. seconds = the time those buckets cover, so the rate is not diluted.
   */
  private rate(ring: Ring, window: LiveWindow, since: number, now: number): LiveRate {
    const b = ring.bucketMs;
    const windowStart = Math.floor((now - WINDOW_MS[window]) / b) * b;
    const from = Math.max(windowStart, since);
    const s = ring.sumInto(Math.floor(from / b) * b, now + 1, this.scratch, true);
    // A window shorter than a minute would make the first few shares look like a huge rate.
    const seconds = Math.max(60, (now - from) / 1000);
    return {
      hashrate: (s[0] * TWO32) / seconds,
      shares: s[1],
      seconds: Math.round(seconds),
      error: s[1] > 0 ? 1.96 / Math.sqrt(s[1]) : null,
    };
  }

  private rates(ring: Ring, since: number, now: number, day: Ring = ring): Record<LiveWindow, LiveRate> {
    return { '5m': this.rate(ring, '5m', since, now), '1h': this.rate(ring, '1h', since, now), '24h': this.rate(day, '24h', since, now) };
  }

  private shareCounts(ring: Ring, from: number, now: number) {
    return countsOf(ring.sumInto(Math.floor(from / ring.bucketMs) * ring.bucketMs, now + 1, new Float64Array(2 + REJECTS.length)));
  }

  /** The pool's figures now. */
  poolFigures() {
    const now = this.now();
    let workersOnline = 0;
    const miners = new Set<string>();
    for (const w of this.workers.values()) {
      if (now - w.lastSeen <= this.onlineMs) {
        workersOnline++;
        miners.add(w.account);
      }
    }
    return {
      hashrate: this.rates(this.pool, this.coverFrom, now),
      minersOnline: miners.size,
      workersOnline,
      shares24h: this.shareCounts(this.pool, now - WINDOW_MS['24h'], now),
      shares1h: this.shareCounts(this.pool, now - WINDOW_MS['1h'], now),
      blocks: this.blocks.slice(0, 20).map((b) => ({ ...b })),
      coversFrom: new Date(this.coverFrom).toISOString(),
    };
  }

  /** The pool's hashrate as a chart series. */
  series(window: SeriesWindow) {
    const now = this.now();
    const { ms, bucketMs } = SERIES[window];
    const from = Math.floor((now - ms) / bucketMs) * bucketMs + bucketMs;
    const points = this.pool.series(from, now + 1, bucketMs).map((p) => {
      // The current bucket is partial: its rate is over the time elapsed in it.
      const seconds = Math.max(1, Math.min(bucketMs, now + 1 - p.t) / 1000);
      return { time: new Date(p.t).toISOString(), hashrate: (p.diff * TWO32) / seconds, accepted: p.accepted, rejected: p.rejected };
    });
    return { window, bucket: bucketMs / 1000, coversFrom: new Date(this.coverFrom).toISOString(), points };
  }

  /** An account's hashrate as a chart series from its workers' rings (1 h: per minute, 24 h: per 15 min). */
  accountSeries(name: string, window: '1h' | '24h') {
    const now = this.now();
    const bucketMs = window === '1h' ? MINUTE : 15 * MINUTE;
    const ms = WINDOW_MS[window];
    const from = Math.floor((now - ms) / bucketMs) * bucketMs + bucketMs;
    const n = Math.max(0, Math.floor((now - from) / bucketMs) + 1);
    // [diff, accepted, rejected] per point, read straight from each worker's buckets (the series' width is the
    // ring's): a thousand workers × 96 buckets without an allocation.
    const acc = new Float64Array(n * 3);
    for (const key of this.accounts.get(name) ?? []) {
      const w = this.workers.get(key)!;
      const ring = window === '1h' ? w.fine : w.day;
      for (let k = 0; k < n; k++) ring.addBucketInto(from + k * bucketMs, acc, k * 3);
    }
    const points = Array.from({ length: n }, (_, k) => {
      const t = from + k * bucketMs;
      const seconds = Math.max(1, Math.min(bucketMs, now + 1 - t) / 1000);
      return { time: new Date(t).toISOString(), hashrate: (acc[k * 3] * TWO32) / seconds, accepted: acc[k * 3 + 1], rejected: acc[k * 3 + 2] };
    });
    return { account: name, window, bucket: bucketMs / 1000, points };
  }

  /** One account's live figures, or null when this process has not seen it. `maxWorkers`: rows listed (by name);
   *  the totals cover every worker. */
  account(name: string, maxWorkers = 100) {
    const keys = this.accounts.get(name);
    if (!keys) return null;
    const now = this.now();
    const workers = [...keys].map((k) => this.workers.get(k)!).sort((a, b) => byName.compare(a.worker, b.worker));
    // The account's totals are sums over every worker (rates are additive); rows are built for the listed ones
    // only. Numbers only in this loop: it runs for each of an account's workers (thousands at a large farm).
    const totals: Record<LiveWindow, { hashrate: number; shares: number; seconds: number }> = {
      '5m': { hashrate: 0, shares: 0, seconds: 0 }, '1h': { hashrate: 0, shares: 0, seconds: 0 }, '24h': { hashrate: 0, shares: 0, seconds: 0 },
    };
    const counts = new Float64Array(2 + REJECTS.length);
    const day = new Float64Array(2 + REJECTS.length);
    let online = 0;
    const rows = [];
    for (let i = 0; i < workers.length; i++) {
      const w = workers[i];
      const hashrate = this.rates(w.fine, Math.max(w.firstSeen, this.startedAt), now, w.day);
      for (const win of ['5m', '1h', '24h'] as const) {
        const t = totals[win];
        const r = hashrate[win];
        t.hashrate += r.hashrate;
        t.shares += r.shares;
        // The account's window covers what its longest-seen worker's does (its first share, or the window's start).
        t.seconds = Math.max(t.seconds, r.seconds);
      }
      w.day.sumInto(Math.floor((now - WINDOW_MS['24h']) / w.day.bucketMs) * w.day.bucketMs, now + 1, day);
      for (let k = 0; k < counts.length; k++) counts[k] += day[k];
      const isOnline = now - w.lastSeen <= this.onlineMs;
      if (isOnline) online++;
      if (i < maxWorkers) {
        rows.push({
          worker: w.worker,
          online: isOnline,
          lastSeen: w.lastSeen ? new Date(w.lastSeen).toISOString() : null,
          difficulty: w.lastDifficulty,
          hashrate,
          shares24h: countsOf(day),
        });
      }
    }
    const rate = (win: LiveWindow): LiveRate => {
      const t = totals[win];
      return { hashrate: t.hashrate, shares: t.shares, seconds: t.seconds, error: t.shares > 0 ? 1.96 / Math.sqrt(t.shares) : null };
    };
    return {
      account: name,
      hashrate: { '5m': rate('5m'), '1h': rate('1h'), '24h': rate('24h') },
      workersOnline: online,
      workersOffline: workers.length - online,
      shares24h: countsOf(counts),
      workersTotal: workers.length,
      workers: rows,
    };
  }
}

/** Worker names in the reader's order (one collator: String.localeCompare builds one per call). */
const byName = new Intl.Collator();

/** Accepted and rejected counts (by reason) of ring totals [diff, accepted, ...rejects]. */
function countsOf(s: Float64Array) {
  const rejected = Object.fromEntries(REJECTS.map((r, k) => [r, s[2 + k]])) as Record<Reject, number>;
  let rej = 0;
  for (let k = 0; k < REJECTS.length; k++) rej += s[2 + k];
  return { accepted: s[1], rejected, rejectRate: s[1] + rej === 0 ? 0 : rej / (s[1] + rej) };
}

/** Network difficulty of a compact target (difficulty 1 = 0x1d00ffff). */
export function nbitsDifficulty(nbits: number): number {
  const exp = nbits >>> 24;
  const mant = nbits & 0xffffff;
  if (mant === 0) return 0;
  return (0xffff / mant) * 256 ** (0x1d - exp);
}
