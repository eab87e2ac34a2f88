// Hashprice: the expected revenue of 1 PH/s mining for one day, in sat (shared/MARKET.md):
//   1e15 × 86,400 × (subsidy + mean fees of the last 144 blocks) / (difficulty × 2^32)
// computed exactly (difficulty from the block's nBits, or a float difficulty taken at its exact binary value)
// and rounded once, half to even. Example: difficulty 152e12, subsidy 3.125 BTC, mean fees 0.025 BTC → 41,689.

import { DIFF1_TARGET, bitsToTarget } from '../chain/target.ts';
import { HASHES_PER_DIFFICULTY, HASHES_PER_PH_DAY, MarketInputError, type Rational, floatToRational, reduce, roundHalfEven } from './units.ts';

export interface HashpriceInputs {
  /** Network difficulty: the compact nBits of the tip (exact), or a difficulty number (taken exactly as given). */
  difficulty: { bits: number } | { value: number };
  /** Block subsidy at the tip's height, sat. */
  subsidySat: bigint;
  /** Σ fees of the blocks averaged over (the last 144), sat. */
  feesSat: bigint;
  /** How many blocks feesSat covers (144; fewer near genesis). */
  blocks: number;
}

export interface Hashprice {
  /** sat/PH/day, rounded half to even. */
  sat: number;
  exact: Rational;
}

/** Subsidy at a height: 50 BTC halved every 210,000 blocks (150 on regtest). */
export function subsidyAt(height: number, halvingInterval = 210_000): bigint {
  const halvings = Math.floor(height / halvingInterval);
  return halvings >= 64 ? 0n : 5_000_000_000n >> BigInt(halvings);
}

export function hashprice(i: HashpriceInputs): Hashprice {
  if (!Number.isSafeInteger(i.blocks) || i.blocks <= 0) throw new MarketInputError(`hashprice: blocks must be a positive integer (got ${i.blocks})`);
  if (i.subsidySat < 0n || i.feesSat < 0n) throw new MarketInputError('hashprice: subsidy and fees must be >= 0');
  const blocks = BigInt(i.blocks);
  // Revenue per block as a rational: (subsidy × blocks + fees) / blocks.
  const revenueNum = i.subsidySat * blocks + i.feesSat;
  // difficulty = dNum / dDen
  let dNum: bigint, dDen: bigint;
  if ('bits' in i.difficulty) {
    const target = bitsToTarget(i.difficulty.bits);
    if (target <= 0n) throw new MarketInputError('hashprice: nBits gives a zero target');
    dNum = DIFF1_TARGET;
    dDen = target;
  } else {
    if (!(i.difficulty.value > 0) || !Number.isFinite(i.difficulty.value)) throw new MarketInputError('hashprice: difficulty must be > 0');
    const d = floatToRational(i.difficulty.value);
    dNum = d.num;
    dDen = d.den;
  }
  const exact = reduce({ num: HASHES_PER_PH_DAY * revenueNum * dDen, den: blocks * dNum * HASHES_PER_DIFFICULTY });
  const sat = roundHalfEven(exact);
  // Below a difficulty of about 700 (regtest, signet, a testnet min-difficulty tip) a PH/s would earn more than 2^53
  // sat a day: no float holds it exactly, and no bigint column past 2^63 (the snapshot's INSERT failed and with it
  // the day's publication). Such a chain has no meaningful hashprice: it is refused, and the index goes without.
  if (sat > BigInt(Number.MAX_SAFE_INTEGER)) throw new MarketInputError(`hashprice: ${sat} sat/PH/day is beyond 2^53 (difficulty too low to price)`);
  return { sat: Number(sat), exact };
}
