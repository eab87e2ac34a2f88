// The market's settings (the `market` section of the config file; see src/cli/config.ts and README).

import { HASHES_PER_PH_DAY } from './units.ts';

export interface MarketConfig {
  /** Length of one tick (one clearing), seconds. */
  tickSeconds: number;
  /** Capacity window: a worker's capacity is its accepted work over this many seconds (10–30 min). */
  capacityWindowSeconds: number;
  /** A worker with fewer shares in the window is not offered (its rate is too uncertain: error ≈ 1/√shares). */
  minShares: number;
  /** Market fee, basis points of the trade value, taken from the seller's side. */
  feeBps: number;
  /** Margin on the escrow reserved for ticks not yet settled (delivery may exceed the measured capacity). */
  reserveMarginBps: number;
  /** A tick settles once every upstream answer for its shares is in: its end + this (and the meter's watermark). */
  answerTimeoutSeconds: number;
  /** Routes given to routing are valid until the tick's end plus this; without a new clearing, workers go home. */
  routeLeaseSeconds: number;
  index: {
    /** Minimum delivered volume for a day's VWAP, in hashes (default 1 PH·day). */
    minVolumeHashes: bigint;
    /** Minimum ticks with both sides for the time-weighted mid fallback. */
    minMidTicks: number;
    /** Publication: this long after the UTC day ends (and once every tick of the day is settled). */
    publishAfterSeconds: number;
  };
}

export const DEFAULT_MARKET_CONFIG: MarketConfig = {
  tickSeconds: 60,
  capacityWindowSeconds: 1200,
  minShares: 50,
  feeBps: 100,
  reserveMarginBps: 2000,
  answerTimeoutSeconds: 30,
  routeLeaseSeconds: 30,
  index: { minVolumeHashes: HASHES_PER_PH_DAY, minMidTicks: 60, publishAfterSeconds: 1800 },
};

/** The tick a moment (ms since the epoch) falls in. */
export function tickAt(cfg: Pick<MarketConfig, 'tickSeconds'>, ms: number): number {
  return Math.floor(ms / (cfg.tickSeconds * 1000));
}

/** What the API serves as the fee schedule (complaint 5: no fees for creating, editing or cancelling). */
export function feeSchedule(c: MarketConfig) {
  return {
    currency: 'sat',
    tradeFeeBps: c.feeBps,
    tradeFeePaidBy: 'seller' as const,
    description: `The buyer pays the clearing price for accepted work; the seller receives it minus ${c.feeBps / 100} %.`,
    orderPlacement: 0,
    orderEdit: 0,
    orderCancel: 0,
    deposit: 0,
    priceUnit: 'sat/PH/day',
    tickSeconds: c.tickSeconds,
    rounding: 'Per trade line, cumulative amounts rounded down once; remainders carried (docs/market.md).',
  };
}

/** The `market` section of the config file (src/cli/config.ts) as the market's own settings. */
export function marketConfigFrom(m: {
  tickSeconds: number; capacityWindowMinutes: number; minShares: number; feeBps: number; reserveMarginBps: number;
  answerTimeoutSeconds: number; routeLeaseSeconds: number;
  index: { minVolumePhDay: number; minMidTicks: number; publishAfterMinutes: number };
}): MarketConfig {
  // PH·day → hashes exactly for decimals given to 6 places (a float like 0.5 or 2.25 converts without loss).
  const micro = BigInt(Math.round(m.index.minVolumePhDay * 1e6));
  return {
    tickSeconds: m.tickSeconds,
    capacityWindowSeconds: m.capacityWindowMinutes * 60,
    minShares: m.minShares,
    feeBps: m.feeBps,
    reserveMarginBps: m.reserveMarginBps,
    answerTimeoutSeconds: m.answerTimeoutSeconds,
    routeLeaseSeconds: m.routeLeaseSeconds,
    index: { minVolumeHashes: (micro * HASHES_PER_PH_DAY) / 1_000_000n, minMidTicks: m.index.minMidTicks, publishAfterSeconds: m.index.publishAfterMinutes * 60 },
  };
}
