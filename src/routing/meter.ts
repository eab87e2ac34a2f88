import { randomUUID } from 'node:crypto';
import type { Position } from '../ingest/spool.ts';
import type { ShareOutcome } from '../shares/outcome.ts';
import type { SubmitAnswer } from './upstream.ts';
import type { JournalIncrement, MeterJournal } from './meter-journal.ts';

// Metering of routed work (the market bills on this). Per share two facts: our verdict (valid against the
// upstream's job and target, or why not) and the upstream's answer. Kept per route and worker in minute buckets
// (by submit time, so a late answer lands in its share's minute), flushed to the database as increments.

export interface RouteMinute {
  routeId: number;
  worker: string;
  /** Minute start, ms. */
  minute: number;
  /** Our verdict: shares valid against the upstream job and the miner's target, and their Σ miner difficulty. */
  valid: number;
  validDifficulty: number;
  invalid: number;
  forwarded: number;
  accepted: number;
  /** Σ upstream difficulty of accepted shares (delivered work = this × 2^32), and Σ d² (error band). */
  acceptedDifficulty: number;
  acceptedDifficultySq: number;
  rejected: number;
  stale: number;
  noAnswer: number;
  /** Stale because we moved the miner: never billed. */
  switchLost: number;
  switchLostDifficulty: number;
  /** Probing work (before the destination's first accepted share): never billed. */
  probeAccepted: number;
  probeDifficulty: number;
}

export type MinuteDelta = RouteMinute;

/** A bucket's counts (what a flush adds to its row). */
export type MinuteCounts = Omit<RouteMinute, 'routeId' | 'worker' | 'minute'>;

const COUNT_KEYS: readonly (keyof MinuteCounts)[] = [
  'valid', 'validDifficulty', 'invalid', 'forwarded', 'accepted', 'acceptedDifficulty', 'acceptedDifficultySq', 'rejected', 'stale', 'noAnswer',
  'switchLost', 'switchLostDifficulty', 'probeAccepted', 'probeDifficulty',
];

/** The journal cannot be written, so no flush can be sent (its marker must be on disk first). */
export class JournalUnwritableError extends Error {
  constructor(dir: string) {
    super(`the route meter journal (${dir}) cannot be written: metering is held in memory until it can`);
    this.name = 'JournalUnwritableError';
  }
}

/** Counts of shares (not sums of difficulty): a bucket without any is only floating-point residue. */
const SHARE_KEYS: readonly (keyof MinuteCounts)[] = ['valid', 'invalid', 'forwarded', 'accepted', 'rejected', 'stale', 'noAnswer', 'switchLost', 'probeAccepted'];

interface UnsentFlush {
  id: string;
  deltas: MinuteDelta[];
  watermark: Date;
  /** Just after its marker in the journal: the checkpoint once it is written (null: no journal, or not in it). */
  upTo: Position | null;
}

export interface MeterSink {
  /**
   * Add these increments and move the watermark, all or nothing, and once per `flushId`: a flush is retried as it
   * was, with the same id, until it succeeds, and an error may have hidden its commit. A null watermark does not
   * move it (counts sent while others are not in the database yet).
   */
  addMinutes(deltas: readonly MinuteDelta[], watermark: Date | null, flushId: string): Promise<void>;
}

export interface RouteTotals {
  valid: number;
  invalid: number;
  forwarded: number;
  accepted: number;
  acceptedDifficulty: number;
  rejected: number;
  stale: number;
  noAnswer: number;
  switchLost: number;
  probeAccepted: number;
  /** Upstream answers by rejection reason. */
  rejectReasons: Record<string, number>;
}

export function emptyTotals(): RouteTotals {
  return { valid: 0, invalid: 0, forwarded: 0, accepted: 0, acceptedDifficulty: 0, rejected: 0, stale: 0, noAnswer: 0, switchLost: 0, probeAccepted: 0, rejectReasons: {} };
}

const TWO_32 = 2 ** 32;

/** A rate with its share count and error band: never a lagged average (MARKET.md complaint 2). */
export interface MeteredRate {
  windowSeconds: number;
  shares: number;
  hashesPerSecond: number;
  /** Relative 1-σ sampling error ≈ √Σd² / Σd (= 1/√N at one difficulty); null without shares. */
  relativeError: number | null;
}

export function rateOf(sumD: number, sumD2: number, shares: number, seconds: number): MeteredRate {
  return { windowSeconds: seconds, shares, hashesPerSecond: seconds > 0 ? (sumD * TWO_32) / seconds : 0, relativeError: sumD > 0 ? Math.sqrt(sumD2) / sumD : null };
}

export class RouteMeter {
  private readonly dirty = new Map<string, MinuteDelta>();
  /** Forwarded shares without an answer yet: submit time by sequence (insertion order = submit order). */
  private readonly unanswered = new Map<number, number>();
  private seq = 0;
  readonly totals = new Map<number, RouteTotals>();
  /** Recent accepted shares per route (time ms, difficulty), for the counter-based 60 s rate. */
  private readonly recent = new Map<number, { t: number; d: number }[]>();
  private flushing: Promise<void> | null = null;
  /**
   * Flushes not yet written, oldest first, each kept whole for its retry (same id, increments and watermark): the
   * one that failed, and at start those read back from the journal.
   */
  private readonly unsent: UnsentFlush[] = [];
  private journal: MeterJournal | null = null;

  /** `bucketMs`: the metering bucket (the `minute` column is its start). A whole minute in production; shorter
   *  buckets (routing.meterBucketSeconds, a divisor of 60) let the market settle ticks shorter than a minute,
   *  since a tick can only be billed from whole buckets (MarketDeliveryMeter reads buckets by their start). */
  constructor(private readonly now: () => number = Date.now, private readonly bucketMs = 60_000) {
    if (!Number.isInteger(bucketMs) || bucketMs <= 0 || 60_000 % bucketMs !== 0) throw new RangeError(`meter bucket must divide a minute (got ${bucketMs} ms)`);
  }

  /** Add to the bucket of (route, worker, `at`), and journal it. */
  private add(routeId: number, worker: string, at: number, inc: Partial<MinuteCounts>): void {
    const b = this.bucket(routeId, worker, at - (at % this.bucketMs));
    sumInto(b, inc);
    this.journal?.increment(routeId, worker, b.minute, inc);
  }

  private bucket(routeId: number, worker: string, minute: number): MinuteDelta {
    return bucketIn(this.dirty, routeId, worker, minute);
  }

  tot(routeId: number): RouteTotals {
    let t = this.totals.get(routeId);
    if (!t) { t = emptyTotals(); this.totals.set(routeId, t); }
    return t;
  }

  /** Our verdict on a share. Returns a handle for its upstream answer when it is forwarded. */
  verdict(routeId: number, worker: string, at: number, outcome: ShareOutcome, minerDifficulty: number, switchLost: boolean): void {
    const t = this.tot(routeId);
    const inc: Partial<MinuteCounts> = outcome === 'accepted' ? { valid: 1, validDifficulty: minerDifficulty } : { invalid: 1 };
    if (outcome === 'accepted') t.valid++; else t.invalid++;
    if (switchLost) { inc.switchLost = 1; inc.switchLostDifficulty = minerDifficulty; t.switchLost++; }
    this.add(routeId, worker, at, inc);
  }

  forwarded(routeId: number, worker: string, at: number): number {
    this.add(routeId, worker, at, { forwarded: 1 });
    this.tot(routeId).forwarded++;
    const id = ++this.seq;
    this.unanswered.set(id, at);
    return id;
  }

  /** The upstream's answer to a forwarded share (submit time `at`). */
  answer(id: number, routeId: number, worker: string, at: number, upstreamDifficulty: number, a: SubmitAnswer, opts: { probe: boolean; late: boolean }): void {
    this.unanswered.delete(id);
    const t = this.tot(routeId);
    const d = upstreamDifficulty;
    switch (a.kind) {
      case 'accepted':
        if (opts.probe) { this.add(routeId, worker, at, { probeAccepted: 1, probeDifficulty: d }); t.probeAccepted++; break; }
        this.add(routeId, worker, at, { accepted: 1, acceptedDifficulty: d, acceptedDifficultySq: d * d });
        t.accepted++; t.acceptedDifficulty += d;
        this.pushRecent(routeId, at, d);
        break;
      case 'stale':
        // A late share (its miner moved since) that the upstream calls stale: lost by our switching.
        this.add(routeId, worker, at, opts.late ? { stale: 1, switchLost: 1, switchLostDifficulty: d } : { stale: 1 });
        t.stale++;
        if (opts.late) t.switchLost++;
        break;
      case 'rejected':
        this.add(routeId, worker, at, { rejected: 1 });
        t.rejected++;
        t.rejectReasons[a.reason] = (t.rejectReasons[a.reason] ?? 0) + 1;
        break;
      case 'no-answer':
        this.add(routeId, worker, at, { noAnswer: 1 });
        t.noAnswer++;
        break;
    }
  }

  private pushRecent(routeId: number, t: number, d: number): void {
    let r = this.recent.get(routeId);
    if (!r) { r = []; this.recent.set(routeId, r); }
    r.push({ t, d });
    const cut = this.now() - 600_000;
    while (r.length && r[0].t < cut) r.shift();
  }

  /** Delivered (upstream-accepted) rate of the last `seconds`, by share count: it falls to 0 when delivery stops. */
  rate(routeId: number, seconds = 60): MeteredRate {
    const cut = this.now() - seconds * 1000;
    let d = 0; let d2 = 0; let n = 0;
    for (const s of this.recent.get(routeId) ?? []) if (s.t >= cut) { d += s.d; d2 += s.d * s.d; n++; }
    return rateOf(d, d2, n, seconds);
  }

  /** Every share submitted before this has its answer (or its timeout) recorded in memory. */
  watermark(): number {
    const first = this.unanswered.values().next();
    return first.done ? this.now() : first.value;
  }

  get pendingAnswers(): number { return this.unanswered.size; }

  /**
   * Journal every increment from now on, after reading back what the journal holds from before (a process that
   * stopped or died before its last flushes reached the database): its flushes are queued to be written again with
   * their own ids, and the increments after its last flush go into the next one. Call once, before any share.
   */
  async recover(journal: MeterJournal): Promise<{ flushes: number; increments: number; setAside: number }> {
    const { flushes, rest, setAside } = await journal.recover();
    const deltasOf = (incs: readonly JournalIncrement[]): MinuteDelta[] => {
      const m = new Map<string, MinuteDelta>();
      for (const i of incs) addCounts(bucketIn(m, i.routeId, i.worker, i.minute), i.inc);
      return [...m.values()];
    };
    for (const f of flushes) this.unsent.push({ id: f.id, deltas: deltasOf(f.increments), watermark: new Date(f.watermark), upTo: f.upTo });
    for (const i of rest) addCounts(this.bucket(i.routeId, i.worker, i.minute), i.inc);
    this.journal = journal;
    return { flushes: flushes.length, increments: flushes.reduce((n, f) => n + f.increments.length, rest.length), setAside };
  }

  /**
   * Write the increments gathered since the last flush (one flush at a time). A flush that fails is kept as it is,
   * with its id, and retried first by the next one: it may have committed behind the error, and the sink adds it
   * only once per id. The increments that came meanwhile follow it, as a flush of their own.
   */
  flush(sink: MeterSink): Promise<void> {
    if (this.flushing) return this.flushing;
    const retrying = this.unsent.length > 0;
    if (!retrying) {
      try {
        this.unsent.push(this.take());
      } catch (e) {
        return Promise.reject(e);
      }
    }
    const run = (async () => {
      await this.writeUnsent(sink);
      if (retrying) {
        this.unsent.push(this.take());
        await this.writeUnsent(sink);
      }
    })();
    this.flushing = run;
    // Cleared once it settles, however it fails (a finally inside could run before this assignment and leave a
    // settled promise here for good).
    const clear = () => { if (this.flushing === run) this.flushing = null; };
    run.then(clear, clear);
    return run;
  }

  /**
   * Flush until nothing is left: the flush in flight, the increments that came meanwhile, a failed flush kept for
   * retry. For a stop. Throws the last error if something is still unwritten after `tries` retries (the journal, when
   * there is one, keeps it for the next start). When no marker can be written, what is not on disk is sent without
   * one (sendNotOnDisk).
   */
  async drain(sink: MeterSink, tries = 1): Promise<void> {
    let last: unknown = null;
    for (let i = 0; i < tries + 1 && (this.flushing || this.unsent.length > 0 || this.dirty.size > 0); i++) {
      try {
        await this.flush(sink);
        last = null;
      } catch (e) {
        last = e;
      }
    }
    if (last !== null && (this.unsent.length > 0 || this.dirty.size > 0)) {
      if (last instanceof JournalUnwritableError && this.unsent.length === 0 && (await this.sendNotOnDisk(sink, tries))) return;
      throw last;
    }
  }

  /**
   * At a stop with a journal that cannot be written: send, without a marker, the counts that are not on disk; those
   * on disk are read back at the next start and sent then. The watermark does not move (the counts on disk are not
   * in the database yet). False when what is on disk is not known: nothing is sent.
   */
  private async sendNotOnDisk(sink: MeterSink, tries: number): Promise<boolean> {
    const onDisk = this.journal?.onDiskSinceMarker();
    if (!onDisk) return false;
    const deltas: MinuteDelta[] = [];
    for (const [key, b] of this.dirty) {
      const d = { ...b };
      const o = onDisk.get(key);
      if (o) for (const k of COUNT_KEYS) d[k] -= o.inc[k] ?? 0;
      if (SHARE_KEYS.some((k) => d[k] !== 0)) deltas.push(d);
    }
    // One id for every try: one that committed behind an error is not added again.
    const id = randomUUID();
    for (let i = 0; deltas.length > 0; i++) {
      try {
        await sink.addMinutes(deltas, null, id);
        break;
      } catch (e) {
        if (i >= tries) throw e;
      }
    }
    this.journal!.dropUnwritten();
    this.dirty.clear();
    return true;
  }

  private async writeUnsent(sink: MeterSink): Promise<void> {
    while (this.unsent.length > 0) {
      const f = this.unsent[0];
      await sink.addMinutes(f.deltas, f.watermark, f.id);
      this.unsent.shift();
      if (f.upTo && this.journal) await this.journal.committed(f.upTo);
    }
  }

  /**
   * The increments so far as a flush, with the watermark they make true (both taken at the same instant), and its
   * marker in the journal. A flush goes to the database only once its marker is in the journal: a committed flush
   * whose marker were missing would be read back as increments not yet written, and added again. So when the marker
   * cannot be written, the increments stay in memory (and this throws) until it can. A flush of no increments (the
   * watermark alone) needs no marker.
   */
  private take(): UnsentFlush {
    const id = this.journal ? this.journal.nextFlushId(randomUUID) : randomUUID();
    const watermark = this.watermark();
    const f: UnsentFlush = { id, deltas: [...this.dirty.values()], watermark: new Date(watermark), upTo: null };
    this.dirty.clear();
    if (this.journal && f.deltas.length > 0) {
      f.upTo = this.journal.markFlush(id, watermark);
      if (!f.upTo) {
        for (const d of f.deltas) addCounts(this.bucket(d.routeId, d.worker, d.minute), d);
        throw new JournalUnwritableError(this.journal.dir);
      }
    }
    return f;
  }
}

/** A bucket's key in maps of buckets (the meter's, the journal's). */
export function bucketKey(routeId: number, worker: string, minute: number): string {
  return `${routeId}\u0000${worker}\u0000${minute}`;
}

/** The bucket of (route, worker, minute) in m, made empty if it is not there yet. */
function bucketIn(m: Map<string, MinuteDelta>, routeId: number, worker: string, minute: number): MinuteDelta {
  const key = bucketKey(routeId, worker, minute);
  let b = m.get(key);
  if (!b) {
    b = emptyMinute(routeId, worker, minute);
    m.set(key, b);
  }
  return b;
}

/** Add the counts `inc` has (the meter's own increments) to `into`. */
export function sumInto(into: Partial<MinuteCounts>, inc: Partial<MinuteCounts>): void {
  for (const k in inc) into[k as keyof MinuteCounts] = (into[k as keyof MinuteCounts] ?? 0) + inc[k as keyof MinuteCounts]!;
}

function emptyMinute(routeId: number, worker: string, minute: number): MinuteDelta {
  return { routeId, worker, minute, valid: 0, validDifficulty: 0, invalid: 0, forwarded: 0, accepted: 0, acceptedDifficulty: 0, acceptedDifficultySq: 0, rejected: 0, stale: 0, noAnswer: 0, switchLost: 0, switchLostDifficulty: 0, probeAccepted: 0, probeDifficulty: 0 };
}

/** Add a journal increment's counts (only the known ones: a line is data, not code). */
function addCounts(b: MinuteDelta, inc: Partial<MinuteCounts>): void {
  for (const k of COUNT_KEYS) {
    const v = inc[k];
    if (typeof v === 'number' && Number.isFinite(v)) b[k] += v;
  }
}
