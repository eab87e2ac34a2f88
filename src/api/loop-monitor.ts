// Event-loop delay for the liveness probe. A loop blocked outright cannot answer the probe at all (the
// kubelet's timeout catches that); this catches a loop that still answers but stalls for long stretches
// between probes (a runaway sync loop, GC thrash), which a plain "200 if we got here" would hide.

import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';

export interface LoopDelay {
  /** Worst delay over the last one to two windows, ms. */
  maxMs: number;
  p99Ms: number;
  meanMs: number;
}

/**
 * Two histograms, reset in turn every window, so "recent" means the last one to two windows and a stall is
 * forgotten once the loop is healthy again. Two, because Node's histogram drops the first interval after a
 * reset (measured: a 200 ms block right after reset() is not recorded): the other one, not reset at that
 * moment, still sees it. Rotation is on a timer, not per probe, so several probers (kubelet, a human with
 * curl) cannot hide stalls from each other.
 */
export class LoopMonitor {
  private readonly hs: [IntervalHistogram, IntervalHistogram];
  private readonly timer: NodeJS.Timeout;
  private turn: 0 | 1 = 0;

  constructor(windowMs = 10_000, private readonly resolutionMs = 10) {
    this.hs = [monitorEventLoopDelay({ resolution: resolutionMs }), monitorEventLoopDelay({ resolution: resolutionMs })];
    for (const h of this.hs) h.enable();
    this.timer = setInterval(() => {
      this.hs[this.turn].reset();
      this.turn = this.turn === 0 ? 1 : 0;
    }, windowMs);
    this.timer.unref();
  }

  delay(): LoopDelay {
    // The histogram records the whole interval between its timer's ticks, which is the resolution when idle
    // (measured: ~10 ms at resolution 10): the delay is what exceeds it. An empty histogram has mean NaN.
    const ms = (ns: number) => (Number.isFinite(ns) && ns > 0 ? Math.max(0, ns / 1e6 - this.resolutionMs) : 0);
    // The one reset longer ago covers more; its next reset is the one this.turn points at.
    const older = this.hs[this.turn];
    return {
      maxMs: Math.max(ms(this.hs[0].max), ms(this.hs[1].max)),
      p99Ms: ms(older.percentile(99)),
      meanMs: ms(older.mean),
    };
  }

  close(): void {
    clearInterval(this.timer);
    for (const h of this.hs) h.disable();
  }
}
