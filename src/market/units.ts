// Market units and the exact arithmetic the market's money and index rules need.
//
// Hashrate is integer H/s as bigint: a market's total supply passes 2^53 H/s (9 PH/s) easily, and the
// auction's invariants ("no seller allocated more than its capacity") must hold exactly, not within a float's
// rounding. Prices are integer sat per PH/s per day (a plain number: far below 2^53). Work is integer hashes
// (bigint); one PH·day is 10^15 H/s × 86,400 s = 8.64 × 10^19 hashes.

/** Hashes in one PH·day: 1e15 H/s for 86,400 s. */
export const HASHES_PER_PH_DAY = 86_400_000_000_000_000_000n;
/** H/s in one PH/s. */
export const HS_PER_PHS = 1_000_000_000_000_000n;
/** Hashes per unit of share difficulty (difficulty 1 = 2^32 expected hashes). */
export const HASHES_PER_DIFFICULTY = 4_294_967_296n;
/** Basis points in one (fees are in basis points of the trade value). */
export const BPS = 10_000n;

export class MarketInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MarketInputError';
  }
}

export function isPrice(p: unknown): p is number {
  return typeof p === 'number' && Number.isSafeInteger(p) && p >= 0;
}

/**
 * Exact hashes for a float64 share difficulty (or a float sum of difficulties): d × 2^32, rounded to the nearest
 * whole hash. A float64 is an exact binary fraction, so this is exact up to that last rounding (< 0.5 hash; the
 * share sampling error is ~10^16 times larger).
 */
export function difficultyToHashes(d: number): bigint {
  if (!Number.isFinite(d) || d < 0) throw new MarketInputError(`difficulty must be a finite number >= 0 (got ${d})`);
  const { num, den } = floatToRational(d);
  return roundHalfEven({ num: num * HASHES_PER_DIFFICULTY, den });
}

/** H/s from hashes over seconds, rounded down to a whole H/s. */
export function hashesToHs(hashes: bigint, seconds: number): bigint {
  if (!(seconds > 0) || !Number.isSafeInteger(seconds)) throw new MarketInputError(`window must be a positive whole number of seconds (got ${seconds})`);
  return hashes / BigInt(seconds);
}

/** "1.25" PH/s (API input, decimals allowed) → H/s, exactly; at most 15 decimals (1 H/s). */
export function parsePhs(text: string): bigint {
  const m = /^(\d{1,12})(?:\.(\d{1,15}))?$/.exec(text.trim());
  if (!m) throw new MarketInputError(`hashrate must be a decimal number of PH/s with at most 15 decimals (got "${text}")`);
  const frac = (m[2] ?? '').padEnd(15, '0');
  return BigInt(m[1]) * HS_PER_PHS + BigInt(frac);
}

/** H/s → PH/s as an exact decimal string ("0.1", "12.000000000000001"). */
export function formatPhs(hs: bigint): string {
  const neg = hs < 0n;
  const a = neg ? -hs : hs;
  const whole = a / HS_PER_PHS;
  const frac = (a % HS_PER_PHS).toString().padStart(15, '0').replace(/0+$/, '');
  return `${neg ? '-' : ''}${whole}${frac ? '.' + frac : ''}`;
}

/** H/s → PH/s as a float, for display and metrics only. */
export function hsToPhsFloat(hs: bigint): number {
  return Number(hs) / 1e15;
}

/** Satoshis for `hs` H/s during `seconds` at `price` sat/PH/day, as an exact rational. */
export function costRational(price: number, hs: bigint, seconds: number): Rational {
  return { num: BigInt(price) * hs * BigInt(seconds), den: HASHES_PER_PH_DAY };
}

/**
 * The most H/s a budget pays for during one tick at `price` (whole H/s, rounded down). Price 0 buys without
 * limit: null.
 */
export function affordableHs(budgetSat: bigint, price: number, seconds: number): bigint | null {
  if (price === 0) return null;
  if (budgetSat <= 0n) return 0n;
  return (budgetSat * HASHES_PER_PH_DAY) / (BigInt(price) * BigInt(seconds));
}

// ---- exact rationals (non-negative denominators; used for the index, hashprice and the cost of work) ----

export interface Rational {
  num: bigint;
  /** > 0 */
  den: bigint;
}

export function rational(num: bigint, den: bigint): Rational {
  if (den === 0n) throw new RangeError('zero denominator');
  if (den < 0n) return { num: -num, den: -den };
  return { num, den };
}

/** -1, 0 or 1. */
export function compareRational(a: Rational, b: Rational): number {
  const l = a.num * b.den;
  const r = b.num * a.den;
  return l < r ? -1 : l > r ? 1 : 0;
}

/** Round to an integer, half to even (banker's rounding): 2.5 → 2, 3.5 → 4, -2.5 → -2. Rounds once, exactly. */
export function roundHalfEven(x: Rational): bigint {
  const { num, den } = rational(x.num, x.den);
  let q = num / den; // truncates toward zero
  let r = num % den;
  if (r < 0n) { q -= 1n; r += den; } // floor
  const twice = 2n * r;
  if (twice < den) return q;
  if (twice > den) return q + 1n;
  return q % 2n === 0n ? q : q + 1n;
}

/** Floor of a rational. */
export function floorRational(x: Rational): bigint {
  const { num, den } = rational(x.num, x.den);
  const q = num / den;
  return num % den !== 0n && num < 0n ? q - 1n : q;
}

/** The exact value of a finite float64 as a rational (every float64 is a binary fraction). */
export function floatToRational(x: number): Rational {
  if (!Number.isFinite(x)) throw new RangeError(`not a finite number: ${x}`);
  if (x === 0) return { num: 0n, den: 1n };
  const buf = new DataView(new ArrayBuffer(8));
  buf.setFloat64(0, x);
  const bits = buf.getBigUint64(0);
  const sign = bits >> 63n ? -1n : 1n;
  const exp = Number((bits >> 52n) & 0x7ffn);
  const frac = bits & 0xfffffffffffffn;
  const mant = exp === 0 ? frac : frac | (1n << 52n);
  const e = (exp === 0 ? 1 : exp) - 1075; // value = mant × 2^e
  return e >= 0 ? { num: sign * (mant << BigInt(e)), den: 1n } : reduce({ num: sign * mant, den: 1n << BigInt(-e) });
}

function gcd(a: bigint, b: bigint): bigint {
  a = a < 0n ? -a : a;
  b = b < 0n ? -b : b;
  while (b) [a, b] = [b, a % b];
  return a;
}

export function reduce(x: Rational): Rational {
  const g = gcd(x.num, x.den);
  return g > 1n ? { num: x.num / g, den: x.den / g } : x;
}

/** "1514184/32.917"-style display: a decimal with `digits` places, rounded half to even. */
export function formatRational(x: Rational, digits = 2): string {
  const scale = 10n ** BigInt(digits);
  const v = roundHalfEven({ num: x.num * scale, den: x.den });
  const neg = v < 0n;
  const a = neg ? -v : v;
  const s = a.toString().padStart(digits + 1, '0');
  return `${neg ? '-' : ''}${digits ? s.slice(0, -digits) + '.' + s.slice(-digits) : s}`;
}

export function bigMin(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

export function bigMax(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
