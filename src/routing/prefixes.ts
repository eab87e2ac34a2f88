/**
 * Per-worker extranonce prefixes within one upstream connection: miner extranonce1 = upstream extranonce1 ‖
 * prefix, so two routed workers never produce the same work. A released prefix is held `graceMs` before reuse:
 * late shares of its last holder may still arrive (and be forwarded) meanwhile.
 */
export class PrefixAllocator {
  private readonly inUse = new Set<number>();
  private readonly held = new Map<number, number>();
  private next = 0;
  readonly space: number;

  constructor(readonly bytes: number, private readonly graceMs: number, private readonly now: () => number = Date.now) {
    if (!Number.isInteger(bytes) || bytes < 1 || bytes > 4) throw new RangeError(`prefix must be 1..4 bytes, got ${bytes}`);
    this.space = 2 ** (8 * bytes);
  }

  /** A free prefix, or null when every one is in use or held. */
  allocate(): Buffer | null {
    const now = this.now();
    for (const [v, until] of this.held) if (until <= now) this.held.delete(v);
    if (this.inUse.size + this.held.size >= this.space) return null;
    while (this.inUse.has(this.next) || this.held.has(this.next)) this.next = (this.next + 1) % this.space;
    const v = this.next;
    this.next = (this.next + 1) % this.space;
    this.inUse.add(v);
    const b = Buffer.alloc(this.bytes);
    b.writeUIntBE(v, 0, this.bytes);
    return b;
  }

  release(prefix: Buffer): void {
    const v = prefix.readUIntBE(0, this.bytes);
    if (!this.inUse.delete(v)) return;
    this.held.set(v, this.now() + this.graceMs);
  }

  get used(): number { return this.inUse.size; }

  /** Prefixes allocate() can give now (neither in use nor in their grace). */
  get free(): number {
    const now = this.now();
    for (const [v, until] of this.held) if (until <= now) this.held.delete(v);
    return this.space - this.inUse.size - this.held.size;
  }
}
