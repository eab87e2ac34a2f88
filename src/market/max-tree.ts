// A max segment tree over bigint values: "the first bid in priority order with room for this worker" in
// O(log n), so placing 20,000 workers into 10,000 bids is not 200 million comparisons.

export class MaxTree {
  private readonly size: number;
  private readonly t: bigint[];

  constructor(values: readonly bigint[]) {
    let size = 1;
    while (size < values.length) size <<= 1;
    this.size = size;
    this.t = new Array<bigint>(2 * size).fill(-1n);
    for (let i = 0; i < values.length; i++) this.t[size + i] = values[i];
    for (let i = size - 1; i >= 1; i--) this.t[i] = this.t[2 * i] > this.t[2 * i + 1] ? this.t[2 * i] : this.t[2 * i + 1];
  }

  get(i: number): bigint {
    return this.t[this.size + i];
  }

  set(i: number, v: bigint): void {
    let k = this.size + i;
    this.t[k] = v;
    for (k >>= 1; k >= 1; k >>= 1) {
      const a = this.t[2 * k];
      const b = this.t[2 * k + 1];
      this.t[k] = a > b ? a : b;
    }
  }

  /** The smallest index >= from whose value is >= x, or -1. */
  findFirst(x: bigint, from = 0): number {
    return this.find(1, 0, this.size, from, x);
  }

  private find(node: number, lo: number, hi: number, from: number, x: bigint): number {
    if (hi <= from || this.t[node] < x) return -1;
    if (hi - lo === 1) return lo;
    const mid = (lo + hi) >> 1;
    const left = this.find(2 * node, lo, mid, from, x);
    return left >= 0 ? left : this.find(2 * node + 1, mid, hi, from, x);
  }
}
