/**
 * extranonce1 = node id (1 byte) ‖ session counter, so several stratum nodes never hand out overlapping work
 * (DESIGN.md: extranonce space is allocated, not assumed). Values in use are never handed out twice.
 */
export class ExtranonceAllocator {
  private next = 0;
  private readonly inUse = new Set<number>();
  private readonly space: number;

  constructor(private readonly nodeId: number, private readonly size: number) {
    if (!Number.isInteger(nodeId) || nodeId < 0 || nodeId > 255) throw new Error(`nodeId must be 0..255, got ${nodeId}`);
    if (size < 2 || size > 8) throw new Error(`extranonce1 size must be 2..8 bytes, got ${size}`);
    this.space = 2 ** (8 * Math.min(size - 1, 6));
    this.next = Math.floor(Math.random() * this.space); // restarts do not reuse the previous run's values first
  }

  allocate(): Buffer {
    if (this.inUse.size >= this.space) throw new Error('extranonce1 space exhausted');
    while (this.inUse.has(this.next)) this.next = (this.next + 1) % this.space;
    const v = this.next;
    this.next = (this.next + 1) % this.space;
    this.inUse.add(v);
    // From Node's shared pool (a slice), not a buffer of its own: one lives as long as each connection.
    const b = Buffer.allocUnsafe(this.size).fill(0);
    b[0] = this.nodeId;
    b.writeUIntBE(v, this.size - Math.min(this.size - 1, 6), Math.min(this.size - 1, 6));
    return b;
  }

  release(en1: Buffer): void {
    const n = Math.min(this.size - 1, 6);
    this.inUse.delete(en1.readUIntBE(this.size - n, n));
  }

  get used(): number { return this.inUse.size; }
}
