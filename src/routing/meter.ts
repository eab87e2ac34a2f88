import { randomUUID } from 'node:crypto';
import type { ShareOutcome } from '../shares/outcome.ts';
import type { SubmitAnswer } from './upstream.ts';

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

interface UnsentFlush {
  id: string;
  deltas: MinuteDelta[];
  watermark: Date;
}

export interface MeterSink {
  /**
   * Add these increments and move the watermark, all or nothing, and once per `flushId`: a flush is retried as it
   * was, with the same id, until it succeeds, and an error may have hidden its commit.
   */
  addMinutes(deltas: readonly MinuteDelta[], watermark: Date, flushId: string): Promise<void>;
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
  /** The flush that failed, kept whole for its retry (same id, same increments, same watermark). */
  private unsent: UnsentFlush | null = null;

  /** `bucketMs`: the metering bucket (the `minute` column is its start). A whole minute in production; shorter
   *  buckets (routing.meterBucketSeconds, a divisor of 60) let the market settle ticks shorter than a minute,
   *  since a tick can only be billed from whole buckets (MarketDeliveryMeter reads buckets by their start). */
  constructor(private readonly now: () => number = Date.now, private readonly bucketMs = 60_000) {
    if (!Number.isInteger(bucketMs) || bucketMs <= 0 || 60_000 % bucketMs !== 0) throw new RangeError(`meter bucket must divide a minute (got ${bucketMs} ms)`);
  }

  private bucket(routeId: number, worker: string, at: number): MinuteDelta {
    const minute = at - (at % this.bucketMs);
    const key = `${routeId}\u0000${worker}\u0000${minute}`;
    let b = this.dirty.get(key);
    if (!b) {
      b = { routeId, worker, minute, valid: 0, validDifficulty: 0, invalid: 0, forwarded: 0, accepted: 0, acceptedDifficulty: 0, acceptedDifficultySq: 0, rejected: 0, stale: 0, noAnswer: 0, switchLost: 0, switchLostDifficulty: 0, probeAccepted: 0, probeDifficulty: 0 };
      this.dirty.set(key, b);
    }
    return b;
  }

  tot(routeId: number): RouteTotals {
    let t = this.totals.get(routeId);
    if (!t) { t = emptyTotals(); this.totals.set(routeId, t); }
    return t;
  }

  /** Our verdict on a share. Returns a handle for its upstream answer when it is forwarded. */
  verdict(routeId: number, worker: string, at: number, outcome: ShareOutcome, minerDifficulty: number, switchLost: boolean): void {
    const b = this.bucket(routeId, worker, at);
    const t = this.tot(routeId);
    if (outcome === 'accepted') { b.valid++; b.validDifficulty += minerDifficulty; t.valid++; } else { b.invalid++; t.invalid++; }
    if (switchLost) { b.switchLost++; b.switchLostDifficulty += minerDifficulty; t.switchLost++; }
  }

  forwarded(routeId: number, worker: string, at: number): number {
    this.bucket(routeId, worker, at).forwarded++;
    this.tot(routeId).forwarded++;
    const id = ++this.seq;
    this.unanswered.set(id, at);
    return id;
  }

  /** The upstream's answer to a forwarded share (submit time `at`). */
  answer(id: number, routeId: number, worker: string, at: number, upstreamDifficulty: number, a: SubmitAnswer, opts: { probe: boolean; late: boolean }): void {
    this.unanswered.delete(id);
    const b = this.bucket(routeId, worker, at);
    const t = this.tot(routeId);
    switch (a.kind) {
      case 'accepted':
        if (opts.probe) { b.probeAccepted++; b.probeDifficulty += upstreamDifficulty; t.probeAccepted++; break; }
        b.accepted++; b.acceptedDifficulty += upstreamDifficulty; b.acceptedDifficultySq += upstreamDifficulty * upstreamDifficulty;
        t.accepted++; t.acceptedDifficulty += upstreamDifficulty;
        this.pushRecent(routeId, at, upstreamDifficulty);
        break;
      case 'stale':
        b.stale++; t.stale++;
        // A late share (its miner moved since) that the upstream calls stale: lost by our switching.
        if (opts.late) { b.switchLost++; b.switchLostDifficulty += upstreamDifficulty; t.switchLost++; }
        break;
      case 'rejected':
        b.rejected++; t.rejected++;
        t.rejectReasons[a.reason] = (t.rejectReasons[a.reason] ?? 0) + 1;
        break;
      case 'no-answer':
        b.noAnswer++; t.noAnswer++;
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
   * Write the increments gathered since the last flush (one flush at a time). A flush that fails is kept as it is,
   * with its id, and retried first by the next one: it may have committed behind the error, and the sink adds it
   * only once per id. The increments that came meanwhile follow it, as a flush of their own.
   */
  flush(sink: MeterSink): Promise<void> {
    if (this.flushing) return this.flushing;
    const retry = this.unsent;
    if (!retry) this.unsent = this.take();
    this.flushing = (async () => {
      try {
        if (retry) {
          await sink.addMinutes(retry.deltas, retry.watermark, retry.id);
          this.unsent = this.take();
        }
        const f = this.unsent!;
        await sink.addMinutes(f.deltas, f.watermark, f.id);
        this.unsent = null;
      } finally {
        this.flushing = null;
      }
    })();
    return this.flushing;
  }

  /** The increments so far as a flush, with the watermark they make true (both taken at the same instant). */
  private take(): UnsentFlush {
    const f = { id: randomUUID(), deltas: [...this.dirty.values()], watermark: new Date(this.watermark()) };
    this.dirty.clear();
    return f;
  }
}
