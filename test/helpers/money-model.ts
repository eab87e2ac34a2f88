// An independent model of the money rules, in exact rationals (BigInt), written from the formulas rather
// than from the SQL: tests compare the database's books with it to the satoshi.

export class Q {
  readonly n: bigint;
  readonly d: bigint;
  constructor(n: bigint, d = 1n) {
    if (d === 0n) throw new RangeError('zero denominator');
    if (d < 0n) { n = -n; d = -d; }
    const g = gcd(n < 0n ? -n : n, d);
    this.n = g > 1n ? n / g : n;
    this.d = g > 1n ? d / g : d;
  }
  static of(x: bigint | number): Q { return new Q(BigInt(x)); }
  add(o: Q): Q { return new Q(this.n * o.d + o.n * this.d, this.d * o.d); }
  sub(o: Q): Q { return new Q(this.n * o.d - o.n * this.d, this.d * o.d); }
  mul(o: Q): Q { return new Q(this.n * o.n, this.d * o.d); }
  div(o: Q): Q { return new Q(this.n * o.d, this.d * o.n); }
  floor(): bigint { const q = this.n / this.d; return this.n < 0n && q * this.d !== this.n ? q - 1n : q; }
  cmp(o: Q): number { const a = this.n * o.d; const b = o.n * this.d; return a < b ? -1 : a > b ? 1 : 0; }
  isZero(): boolean { return this.n === 0n; }
}

function gcd(a: bigint, b: bigint): bigint {
  while (b) [a, b] = [b, a % b];
  return a || 1n;
}

export const ZERO = Q.of(0);

/** A float8 as PostgreSQL turns it into numeric: 15 significant digits. */
export function difficulty15(x: number): Q {
  const s = x.toPrecision(15);
  const [mant, expPart] = s.split('e');
  const exp = expPart ? Number(expPart) : 0;
  const [int, frac = ''] = mant.split('.');
  let q = new Q(BigInt(int + frac), 10n ** BigInt(frac.length));
  q = exp >= 0 ? q.mul(new Q(10n ** BigInt(exp))) : q.div(new Q(10n ** BigInt(-exp)));
  return q;
}

/** network difficulty of a compact target = 0xFFFF·2^208 / target. */
export function bitsTarget(bits: number): bigint {
  const e = (bits >>> 24) & 0xff;
  let m = BigInt(bits & 0x007fffff);
  if (e <= 3) return m >> BigInt(8 * (3 - e));
  m <<= BigInt(8 * (e - 3));
  return m;
}

export const DIFF1 = 0xffffn << 208n;

/** One share's FPPS value in satoshis, exactly: pd / netdiff × value × (1 − fee). */
export function shareValue(pd: number, bits: number, value: bigint, feeBps: number): Q {
  return difficulty15(pd).mul(new Q(bitsTarget(bits), DIFF1)).mul(Q.of(value)).mul(new Q(BigInt(10_000 - feeBps), 10_000n));
}

/** Credits of one account over consecutive periods: floor of (carry + exact), the rest carried. */
export function creditRun(exacts: Q[]): { credited: bigint[]; carry: Q } {
  let carry = ZERO;
  const credited: bigint[] = [];
  for (const e of exacts) {
    const t = carry.add(e);
    const c = t.floor();
    credited.push(c);
    carry = t.sub(Q.of(c));
  }
  return { credited, carry };
}

/** Largest-remainder apportionment, from its definition. */
export function hamilton(total: bigint, weights: Q[]): bigint[] {
  const W = weights.reduce((s, w) => s.add(w), ZERO);
  if (W.isZero()) return weights.map((_, i) => (i === weights.length - 1 ? total : 0n));
  const exact = weights.map((w) => Q.of(total).mul(w).div(W));
  const base = exact.map((e) => e.floor());
  let left = total - base.reduce((s, x) => s + x, 0n);
  const order = exact.map((e, i) => ({ i, r: e.sub(Q.of(base[i])) })).sort((a, b) => b.r.cmp(a.r) || a.i - b.i);
  for (let k = 0; left > 0n; k++, left--) base[order[k].i]++;
  return base;
}

export interface ModelShare { time: number; id: string; account: string; pd: number }

/**
 * PPLNS window from its definition: the shares before the block, newest first (ties: id, byte order), each
 * counting its difficulty × (target/2^208) until N × 65535 is reached (the crossing share in part), none older
 * than the cap; SOLO accounts' shares excluded. Returns each account's weight.
 */
export function pplnsModel(shares: ModelShare[], T: number, bits: number, n: Q, maxWindowMs: number, isSolo: (account: string) => boolean): Map<string, Q> {
  const ratio = new Q(bitsTarget(bits), 1n << 208n);
  const target = n.mul(Q.of(65535));
  const eligible = shares.filter((s) => s.time <= T && s.time > T - maxWindowMs && !isSolo(s.account))
    .sort((a, b) => b.time - a.time || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  const out = new Map<string, Q>();
  let cum = ZERO;
  for (const s of eligible) {
    const left = target.sub(cum);
    if (left.cmp(ZERO) <= 0) break;
    const w = difficulty15(s.pd).mul(ratio);
    const counted = w.cmp(left) <= 0 ? w : left;
    out.set(s.account, (out.get(s.account) ?? ZERO).add(counted));
    cum = cum.add(counted);
  }
  return out;
}
