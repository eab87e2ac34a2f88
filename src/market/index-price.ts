// The daily hashhub index: a traded reference price for hashrate, like a gas hub's day-ahead index.
// docs/market.md ("The daily index") is the published methodology; shared/MARKET.md pins its rules:
//
// - For UTC day d: index = Σ(P·V) / Σ V over the day's trades, V = delivered work the buyer's pool ACCEPTED
//   (PH·day), P = the price it was billed at (sat/PH/day). Self-trades and credited (undelivered) work are
//   excluded.
// - Outliers: a trade priced more than 25 % away from the day's volume-weighted median price is excluded
//   (|P − m| × 4 > m). The weighted median m is the lowest price at which the cumulative volume exceeds half of
//   the total; when it reaches exactly half, m is the midpoint of that price and the next one. When both of those
//   are more than 25 % from m, every trade is an outlier and the window has no value (thin, below).
// - The result is the exact rational VWAP, rounded once to an integer sat/PH/day, half to even.
// - Thin volume (less than the minimum volume after exclusions, or none at all) falls back, in order, to:
//   1. rolling: the same rule over day d and the 24 hours before it (48 h ending at the day's end);
//   2. time-weighted mid: the mean of (best bid + best ask) / 2 over the day's ticks that had both (every tick
//      lasts the same time), if at least minMidTicks ticks had them;
//   3. scaled previous: the previous day's published index × hashprice(d) / hashprice(d − 1);
//   4. none: no index for the day.
// Everything is integer or rational arithmetic on stored values: recomputing from the database is
// bit-identical to what was published.

import { HASHES_PER_PH_DAY, type Rational, compareRational, reduce, roundHalfEven } from './units.ts';

export const INDEX_METHODOLOGY_VERSION = 1;

export interface IndexTrade {
  /** When the work was delivered (tick start, ms since epoch). */
  time: number;
  /** sat/PH/day. */
  price: number;
  /** Accepted hashes delivered at that price. */
  hashes: bigint;
  selfTrade?: boolean;
  /** Credited to the buyer without delivery (never part of the index). */
  credited?: boolean;
}

export interface TickMid {
  time: number;
  bestBid: number;
  bestAsk: number;
}

export interface IndexParams {
  /** Minimum volume after exclusions for a VWAP, in hashes (default 1 PH·day). */
  minVolumeHashes: bigint;
  /** Outlier band in basis points of the median (pinned at 2,500 = 25 %). */
  outlierBps: number;
  /** Minimum ticks with both sides for the time-weighted mid. */
  minMidTicks: number;
}

export const DEFAULT_INDEX_PARAMS: IndexParams = { minVolumeHashes: HASHES_PER_PH_DAY, outlierBps: 2500, minMidTicks: 60 };

export type IndexMethod = 'vwap' | 'rolling' | 'time-weighted-mid' | 'scaled-previous' | 'none';

export interface VwapResult {
  /**
   * Σ(P·V) / Σ V over the trades kept; null when none was kept. That happens when the median is the midpoint of two
   * prices more than 25 % away from it on both sides (equal volume at 30,000 and 50,001, say): every trade is
   * then an outlier by the pinned rule, and the window has no volume to publish.
   */
  value: Rational | null;
  median: Rational;
  volumeHashes: bigint;
  used: number;
  outliers: number;
  outlierHashes: bigint;
}

export interface IndexInputs {
  /** 'YYYY-MM-DD' (UTC). */
  day: string;
  /** Trades delivered in the day and in the 24 hours before it (only the rolling fallback reads the latter). */
  trades: readonly IndexTrade[];
  mids: readonly TickMid[];
  previous: { day: string; value: number } | null;
  /** Exact hashprice of the day and of the previous day, when known. */
  hashprice: { day: Rational; previousDay: Rational } | null;
}

export interface IndexResult {
  day: string;
  method: IndexMethod;
  /** The published integer (sat/PH/day), or null when method is 'none'. */
  value: number | null;
  exact: Rational | null;
  /** Day-window statistics (what the VWAP saw, even when a fallback was used). */
  volumeHashes: bigint;
  tradesUsed: number;
  excluded: { selfTrades: number; credited: number; outliers: number; outlierHashes: bigint };
  median: Rational | null;
  /** Why a fallback was used. */
  note: string | null;
}

export function dayBounds(day: string): { start: number; end: number } {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day);
  if (!m) throw new RangeError(`day must be YYYY-MM-DD (got "${day}")`);
  const start = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  if (new Date(start).toISOString().slice(0, 10) !== day) throw new RangeError(`not a calendar day: ${day}`);
  return { start, end: start + 86_400_000 };
}

/** The volume-weighted median price (see the header for the exact rule). Trades must be non-empty. */
export function weightedMedian(trades: readonly IndexTrade[]): Rational {
  const byPrice = new Map<number, bigint>();
  for (const t of trades) byPrice.set(t.price, (byPrice.get(t.price) ?? 0n) + t.hashes);
  const prices = [...byPrice.keys()].sort((a, b) => a - b);
  const total = [...byPrice.values()].reduce((a, b) => a + b, 0n);
  let cum = 0n;
  for (let i = 0; i < prices.length; i++) {
    cum += byPrice.get(prices[i])!;
    if (2n * cum > total) return { num: BigInt(prices[i]), den: 1n };
    if (2n * cum === total) {
      return i + 1 < prices.length ? reduce({ num: BigInt(prices[i]) + BigInt(prices[i + 1]), den: 2n }) : { num: BigInt(prices[i]), den: 1n };
    }
  }
  throw new Error('weightedMedian of no volume');
}

/** VWAP with the pinned outlier rule, or null when no volume. */
export function vwap(trades: readonly IndexTrade[], outlierBps: number): VwapResult | null {
  const live = trades.filter((t) => t.hashes > 0n);
  if (live.length === 0) return null;
  const m = weightedMedian(live);
  const band = BigInt(outlierBps);
  let pv = 0n, v = 0n, used = 0, outliers = 0, outlierHashes = 0n;
  for (const t of live) {
    // |P − m| > m × band / 10,000  ⇔  |P·den − num| × 10,000 > num × band
    const diff = BigInt(t.price) * m.den - m.num;
    if ((diff < 0n ? -diff : diff) * 10_000n > m.num * band) {
      outliers++;
      outlierHashes += t.hashes;
      continue;
    }
    pv += BigInt(t.price) * t.hashes;
    v += t.hashes;
    used++;
  }
  return { value: v > 0n ? reduce({ num: pv, den: v }) : null, median: m, volumeHashes: v, used, outliers, outlierHashes };
}

export function computeDailyIndex(inputs: IndexInputs, params: IndexParams = DEFAULT_INDEX_PARAMS): IndexResult {
  const { start, end } = dayBounds(inputs.day);
  const eligible = (t: IndexTrade) => !t.selfTrade && !t.credited;
  const inDay = inputs.trades.filter((t) => t.time >= start && t.time < end);
  const excluded = {
    selfTrades: inDay.filter((t) => t.selfTrade).length,
    credited: inDay.filter((t) => t.credited && !t.selfTrade).length,
    outliers: 0,
    outlierHashes: 0n,
  };
  const day = vwap(inDay.filter(eligible), params.outlierBps);
  const base = {
    day: inputs.day, volumeHashes: day?.volumeHashes ?? 0n, tradesUsed: day?.used ?? 0,
    excluded: { ...excluded, outliers: day?.outliers ?? 0, outlierHashes: day?.outlierHashes ?? 0n }, median: day?.median ?? null,
  };
  const publish = (method: IndexMethod, exact: Rational, note: string | null): IndexResult =>
    ({ ...base, method, value: Number(roundHalfEven(exact)), exact, note });

  // A window whose every trade was an outlier has no value, whatever the minimum (a configured minimum that rounds to
  // 0 hashes included): it is thin, and the fallbacks decide.
  if (day?.value && day.volumeHashes >= params.minVolumeHashes) return publish('vwap', day.value, null);
  const dayVolume = day?.volumeHashes ?? 0n;
  // Below the minimum says so; with a minimum of 0 the reason is either no eligible trade at all or all outliers.
  const thin = dayVolume < params.minVolumeHashes
    ? `day volume ${fmtPhDay(dayVolume)} PH·day < minimum ${fmtPhDay(params.minVolumeHashes)}`
    : `day volume 0 PH·day: ${day === null ? 'no eligible trade' : 'every trade is an outlier'}`;

  const rolling = vwap(inputs.trades.filter((t) => t.time >= start - 86_400_000 && t.time < end && eligible(t)), params.outlierBps);
  if (rolling?.value && rolling.volumeHashes >= params.minVolumeHashes) {
    return publish('rolling', rolling.value, `${thin}; rolling 48 h volume ${fmtPhDay(rolling.volumeHashes)} PH·day`);
  }

  const mids = inputs.mids.filter((m) => m.time >= start && m.time < end);
  if (mids.length >= params.minMidTicks && mids.length > 0) {
    const sum = mids.reduce((s, m) => s + BigInt(m.bestBid) + BigInt(m.bestAsk), 0n);
    return publish('time-weighted-mid', reduce({ num: sum, den: 2n * BigInt(mids.length) }), `${thin}; rolling volume thin too; mid over ${mids.length} ticks`);
  }

  if (inputs.previous && inputs.hashprice && inputs.hashprice.previousDay.num > 0n) {
    const { day: hp, previousDay: hp0 } = inputs.hashprice;
    const exact = reduce({ num: BigInt(inputs.previous.value) * hp.num * hp0.den, den: hp.den * hp0.num });
    return publish('scaled-previous', exact, `${thin}; ${mids.length} ticks with both sides; ${inputs.previous.day} index scaled by hashprice`);
  }
  return { ...base, method: 'none', value: null, exact: null, note: `${thin}; no mid, no previous index or hashprice` };
}

function fmtPhDay(hashes: bigint): string {
  const milli = roundHalfEven({ num: hashes * 1000n, den: HASHES_PER_PH_DAY });
  return (Number(milli) / 1000).toString();
}

/** Exact comparison helper for tests and checks. */
export function sameRational(a: Rational, b: Rational): boolean {
  return compareRational(a, b) === 0;
}
