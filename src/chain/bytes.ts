// Byte helpers. Bytes stay Uint8Array (Node Buffers where speed matters); hex is for the edges.

export function fromHex(hex: string): Buffer {
  // Callers pass what a peer sent: a non-string must fail with this message, not a TypeError from slice().
  if (typeof hex !== 'string') throw new Error(`invalid hex: a ${hex === null ? 'null' : typeof hex}, not a string`);
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new Error(`invalid hex: ${hex.slice(0, 40)}`);
  return Buffer.from(hex, 'hex');
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** A reversed copy: internal hash order <-> display ("explorer") order. */
export function reverse(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(bytes.length);
  for (let i = 0, j = bytes.length - 1; j >= 0; i++, j--) out[i] = bytes[j];
  return out;
}

/** Display hex (as RPC and explorers show hashes) -> internal byte order. */
export function hashFromDisplay(hex: string): Buffer {
  const b = fromHex(hex);
  if (b.length !== 32) throw new Error(`hash must be 32 bytes, got ${b.length}`);
  return reverse(b);
}

export function hashToDisplay(hash: Uint8Array): string {
  return toHex(reverse(hash));
}

/** A uint32 as 8 hex digits, big-endian text (Stratum and RPC fields: version, nbits, ntime, nonce). */
export function u32Hex(v: number): string {
  return (v >>> 0).toString(16).padStart(8, '0');
}

export function concat(parts: readonly Uint8Array[]): Buffer {
  return Buffer.concat(parts as Uint8Array[]);
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

/** CompactSize (Bitcoin's varint) length prefix. */
export function varIntSize(n: number): number {
  return n < 0xfd ? 1 : n <= 0xffff ? 3 : n <= 0xffffffff ? 5 : 9;
}

export function encodeVarInt(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`varint out of range: ${n}`);
  const b = Buffer.allocUnsafe(varIntSize(n));
  if (n < 0xfd) b[0] = n;
  else if (n <= 0xffff) { b[0] = 0xfd; b.writeUInt16LE(n, 1); }
  else if (n <= 0xffffffff) { b[0] = 0xfe; b.writeUInt32LE(n, 1); }
  else { b[0] = 0xff; b.writeBigUInt64LE(BigInt(n), 1); }
  return b;
}

/** Sequential reader over a buffer with bounds checks; throws a clear error on truncated input. */
export class Reader {
  pos = 0;
  readonly buf: Buffer;
  constructor(bytes: Uint8Array) {
    this.buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get remaining(): number { return this.buf.length - this.pos; }
  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new Error(`truncated: need ${n} bytes at offset ${this.pos}, have ${this.remaining}`);
  }
  bytes(n: number): Buffer { this.need(n); const b = this.buf.subarray(this.pos, this.pos + n); this.pos += n; return b; }
  u8(): number { this.need(1); return this.buf[this.pos++]; }
  u32(): number { this.need(4); const v = this.buf.readUInt32LE(this.pos); this.pos += 4; return v; }
  i32(): number { this.need(4); const v = this.buf.readInt32LE(this.pos); this.pos += 4; return v; }
  u64(): bigint { this.need(8); const v = this.buf.readBigUInt64LE(this.pos); this.pos += 8; return v; }
  varInt(): number {
    const first = this.u8();
    if (first < 0xfd) return first;
    if (first === 0xfd) { this.need(2); const v = this.buf.readUInt16LE(this.pos); this.pos += 2; return v; }
    if (first === 0xfe) return this.u32();
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('varint too large');
    return Number(v);
  }
  varBytes(): Buffer { return this.bytes(this.varInt()); }
}

/** Growable writer; callers hex the result once at the edge. */
export class Writer {
  private parts: Buffer[] = [];
  bytes(b: Uint8Array): this { this.parts.push(Buffer.from(b.buffer, b.byteOffset, b.byteLength)); return this; }
  u8(v: number): this { this.parts.push(Buffer.from([v & 0xff])); return this; }
  u32(v: number): this { const b = Buffer.allocUnsafe(4); b.writeUInt32LE(v >>> 0); this.parts.push(b); return this; }
  i32(v: number): this { const b = Buffer.allocUnsafe(4); b.writeInt32LE(v | 0); this.parts.push(b); return this; }
  u64(v: bigint): this { const b = Buffer.allocUnsafe(8); b.writeBigUInt64LE(v); this.parts.push(b); return this; }
  varInt(n: number): this { this.parts.push(encodeVarInt(n)); return this; }
  varBytes(b: Uint8Array): this { return this.varInt(b.length).bytes(b); }
  finish(): Buffer { return Buffer.concat(this.parts); }
}
