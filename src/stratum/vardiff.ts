// Variable difficulty per connection: aim at one share per `targetIntervalMs`. Time is passed in (onShare(now))
// so tests drive it without sleeping.

export interface VardiffOptions {
  targetIntervalMs: number;
  minDifficulty: number;
  maxDifficulty: number;
  /** Retarget after this many shares (fast reaction to floods)… */
  retargetShares: number;
  /** …or after this long with at least one share. */
  retargetIntervalMs: number;
  /** No change while the observed interval is within this factor of the target (hysteresis). */
  tolerance: number;
  /** Largest step per retarget, up and down. */
  maxStepUp: number;
  maxStepDown: number;
  /** With no share at all for max(3 × targetIntervalMs, idleRetargetMs), step down by maxStepDownIdle: a device
   *  far slower than the start difficulty assumes (a 200 kH/s ESP32 at 16384) reaches a workable difficulty in
   *  a few minutes instead of never (÷8 per 2 min would take longer than the idle timeout). */
  idleRetargetMs: number;
  maxStepDownIdle: number;
}

export const DEFAULT_VARDIFF: VardiffOptions = {
  targetIntervalMs: 10_000,
  minDifficulty: 0.0001,
  maxDifficulty: 1e15,
  retargetShares: 12,
  retargetIntervalMs: 120_000,
  tolerance: 1.5,
  maxStepUp: 64,
  maxStepDown: 8,
  idleRetargetMs: 30_000,
  maxStepDownIdle: 64,
};

export function clampDifficulty(d: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, d));
}

/** Round to 4 significant digits (integers above 1000) so miners see tidy numbers. */
export function tidyDifficulty(d: number): number {
  if (d >= 1000) return Math.round(d);
  const p = 10 ** (3 - Math.floor(Math.log10(d)));
  return Math.round(d * p) / p;
}

export class Vardiff {
  private since: number;
  private shares = 0;

  constructor(private readonly opts: VardiffOptions, private difficulty: number, now: number) {
    this.since = now;
  }

  get current(): number { return this.difficulty; }

  /** Reset the window after the difficulty changed for another reason (suggest_difficulty, reconnect…). */
  reset(difficulty: number, now: number): void {
    this.difficulty = difficulty;
    this.since = now;
    this.shares = 0;
  }

  /**
   * Count a share; returns a new difficulty when a retarget is due, else null. `weight` = the share's difficulty
   * / the current one: a share sent at another difficulty (a job from before a change, or one capped at the
   * network difficulty) is worth that many shares at the current difficulty.
   */
  onShare(now: number, weight = 1): number | null {
    this.shares += weight;
    const elapsed = now - this.since;
    if (this.shares < this.opts.retargetShares && elapsed < this.opts.retargetIntervalMs) return null;
    return this.retarget(Math.max(elapsed, 1) / this.shares, now);
  }

  /** Called periodically: a miner that finds no shares at all (difficulty far too high) gets a much lower one. */
  onTick(now: number): number | null {
    const elapsed = now - this.since;
    if (this.shares >= 1 || elapsed < Math.max(3 * this.opts.targetIntervalMs, this.opts.idleRetargetMs)) return null;
    // Not one share where three were due: the rate is far below what this difficulty assumes. Step down hard
    // (an overshoot is corrected upwards within a dozen shares).
    const o = this.opts;
    this.since = now;
    this.shares = 0;
    const next = clampDifficulty(tidyDifficulty(this.difficulty / o.maxStepDownIdle), o.minDifficulty, o.maxDifficulty);
    if (next === this.difficulty) return null;
    this.difficulty = next;
    return next;
  }

  private retarget(observedIntervalMs: number, now: number): number | null {
    const o = this.opts;
    let ratio = o.targetIntervalMs / observedIntervalMs; // >1: shares come too fast, raise difficulty
    this.since = now;
    this.shares = 0;
    if (ratio < o.tolerance && ratio > 1 / o.tolerance) return null;
    // Near the target, move halfway (in log terms): a dozen shares estimate the rate to ±30%, and full steps
    // on that noise make the difficulty wander. Far from it, jump.
    if (ratio < 4 && ratio > 1 / 4) ratio = Math.sqrt(ratio);
    ratio = Math.min(o.maxStepUp, Math.max(1 / o.maxStepDown, ratio));
    // Tidy first, clamp last: rounding must never step outside the configured bounds.
    const next = clampDifficulty(tidyDifficulty(this.difficulty * ratio), o.minDifficulty, o.maxDifficulty);
    if (next === this.difficulty) return null;
    this.difficulty = next;
    return next;
  }
}
