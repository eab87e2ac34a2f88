// Miner-side share accounting: counters plus a bounded latency reservoir, so a miner that runs for days (or
// 10,000 of them in one process) keeps constant memory.

/** Nearest-rank percentile (p in [0, 100]) of unsorted samples; NaN when there are none. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = Float64Array.from(samples).sort();
  const rank = Math.ceil((Math.min(100, Math.max(0, p)) / 100) * sorted.length);
  return sorted[Math.max(0, rank - 1)];
}

/**
 * Uniform sample of at most `capacity` values out of everything recorded (Vitter's algorithm R), so
 * percentiles describe the whole run, not only its start or end.
 */
export class LatencyReservoir {
  private readonly samples: number[] = [];
  private seen = 0;
  private maxSeen = 0;

  constructor(readonly capacity: number, private readonly random: () => number = Math.random) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`reservoir capacity must be a positive integer, got ${capacity}`);
  }

  record(ms: number): void {
    this.seen++;
    if (ms > this.maxSeen) this.maxSeen = ms;
    if (this.samples.length < this.capacity) {
      this.samples.push(ms);
      return;
    }
    const j = Math.floor(this.random() * this.seen);
    if (j < this.capacity) this.samples[j] = ms;
  }

  /** Number of values recorded (not only kept). */
  get count(): number { return this.seen; }
  get max(): number { return this.seen === 0 ? NaN : this.maxSeen; }
  values(): readonly number[] { return this.samples; }
  percentile(p: number): number { return percentile(this.samples, p); }
  p50(): number { return this.percentile(50); }
  p99(): number { return this.percentile(99); }
}

export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

/** A plain, copyable view of a miner's (or a fleet's) counters. */
export interface MinerStatsSnapshot {
  /** Shares sent with mining.submit. */
  submitted: number;
  accepted: number;
  rejected: number;
  /** Rejected shares by the pool's error message (or 'timeout' / 'disconnected' when no answer came). */
  rejectedByReason: Record<string, number>;
  /** Submits still waiting for an answer. */
  pending: number;
  /** Shares found but not sent because too many submits were already in flight. */
  dropped: number;
  /** Submitted shares whose hash also met the network target of their job. */
  blocks: number;
  /** Sum of the job difficulty of accepted shares (what a pool credits; ≈ hashes / 2^32). */
  acceptedDifficulty: number;
  hashes: number;
  connects: number;
  disconnects: number;
  latency: LatencySummary;
}

export function summarizeLatency(r: LatencyReservoir): LatencySummary {
  return { count: r.count, p50: r.p50(), p99: r.p99(), max: r.max };
}

/** Live counters of one miner; `snapshot()` copies them out. */
export class MinerStats {
  submitted = 0;
  accepted = 0;
  rejected = 0;
  readonly rejectedByReason = new Map<string, number>();
  dropped = 0;
  blocks = 0;
  acceptedDifficulty = 0;
  connects = 0;
  disconnects = 0;
  readonly latency: LatencyReservoir;

  constructor(reservoirSize: number) {
    this.latency = new LatencyReservoir(reservoirSize);
  }

  reject(reason: string): void {
    this.rejected++;
    this.rejectedByReason.set(reason, (this.rejectedByReason.get(reason) ?? 0) + 1);
  }

  snapshot(hashes: number, pending: number): MinerStatsSnapshot {
    return {
      submitted: this.submitted,
      accepted: this.accepted,
      rejected: this.rejected,
      rejectedByReason: Object.fromEntries(this.rejectedByReason),
      pending,
      dropped: this.dropped,
      blocks: this.blocks,
      acceptedDifficulty: this.acceptedDifficulty,
      hashes,
      connects: this.connects,
      disconnects: this.disconnects,
      latency: summarizeLatency(this.latency),
    };
  }
}

/** Sum of snapshots; latency comes from a reservoir the caller fed with every share. */
export function sumSnapshots(snaps: Iterable<MinerStatsSnapshot>, latency: LatencySummary): MinerStatsSnapshot {
  const total: MinerStatsSnapshot = {
    submitted: 0, accepted: 0, rejected: 0, rejectedByReason: {}, pending: 0, dropped: 0, blocks: 0,
    acceptedDifficulty: 0, hashes: 0, connects: 0, disconnects: 0, latency,
  };
  for (const s of snaps) {
    total.submitted += s.submitted;
    total.accepted += s.accepted;
    total.rejected += s.rejected;
    for (const [k, v] of Object.entries(s.rejectedByReason)) total.rejectedByReason[k] = (total.rejectedByReason[k] ?? 0) + v;
    total.pending += s.pending;
    total.dropped += s.dropped;
    total.blocks += s.blocks;
    total.acceptedDifficulty += s.acceptedDifficulty;
    total.hashes += s.hashes;
    total.connects += s.connects;
    total.disconnects += s.disconnects;
  }
  return total;
}
