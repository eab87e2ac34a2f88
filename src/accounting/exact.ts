// Exact arithmetic for money rules: decimal strings (PostgreSQL numeric as text) to scaled bigints and back,
// and the largest-remainder apportionment used to split a block. No floats anywhere near a satoshi.

/** A non-negative decimal as value / 10^scale. */
export interface Scaled { value: bigint; scale: number }

const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

export function parseDecimal(s: string): Scaled {
  const m = DECIMAL.exec(s.trim());
  if (!m) throw new Error(`not a decimal number: "${s}"`);
  const frac = m[3] ?? '';
  const v = BigInt(m[2] + frac);
  return { value: m[1] ? -v : v, scale: frac.length };
}

/** The same numbers at one common scale (the largest). */
export function commonScale(xs: readonly string[]): { values: bigint[]; scale: number } {
  const parsed = xs.map(parseDecimal);
  const scale = parsed.reduce((m, p) => Math.max(m, p.scale), 0);
  return { values: parsed.map((p) => p.value * 10n ** BigInt(scale - p.scale)), scale };
}

export function formatScaled(value: bigint, scale: number): string {
  if (scale === 0) return value.toString();
  const neg = value < 0n;
  const digits = (neg ? -value : value).toString().padStart(scale + 1, '0');
  const int = digits.slice(0, digits.length - scale);
  const frac = digits.slice(digits.length - scale).replace(/0+$/, '');
  return `${neg ? '-' : ''}${int}${frac ? `.${frac}` : ''}`;
}

/**
 * Split `total` satoshis over parties in proportion to their weights, exactly (Hamilton / largest remainder):
 * each gets floor(total × w / W); the satoshis left over (fewer than the number of parties) go one each to the
 * largest remainders, ties to the earlier party. The result sums to `total` exactly and no party is off from
 * its exact share by a satoshi or more. Weights are non-negative bigints (scale them first); W = 0 → all to the
 * `fallback` index.
 */
export function apportion(total: bigint, weights: readonly bigint[], fallback = 0): bigint[] {
  if (total < 0n) throw new RangeError('apportion: negative total');
  const out = weights.map(() => 0n);
  const W = weights.reduce((s, w) => {
    if (w < 0n) throw new RangeError('apportion: negative weight');
    return s + w;
  }, 0n);
  if (weights.length === 0) {
    if (total !== 0n) throw new RangeError('apportion: nobody to give a non-zero total to');
    return out;
  }
  if (W === 0n) {
    out[fallback] = total;
    return out;
  }
  const rem: { i: number; r: bigint }[] = [];
  let given = 0n;
  for (let i = 0; i < weights.length; i++) {
    const num = total * weights[i];
    out[i] = num / W;
    given += out[i];
    rem.push({ i, r: num % W });
  }
  let left = total - given;
  rem.sort((a, b) => (a.r === b.r ? a.i - b.i : a.r > b.r ? -1 : 1));
  for (let k = 0; left > 0n; k++, left--) out[rem[k].i] += 1n;
  return out;
}
