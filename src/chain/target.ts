// Compact "nBits" targets, 256-bit targets and difficulty (Bitcoin Core arith_uint256::SetCompact).

/** Difficulty-1 target: 0x00000000FFFF0000...0000 (bits 0x1d00ffff). */
export const DIFF1_TARGET = 0xffffn << 208n;
export const MAX_TARGET = (1n << 256n) - 1n;
const DIFF1_FLOAT = Number(DIFF1_TARGET);

export function bitsToTarget(bits: number): bigint {
  const exponent = bits >>> 24;
  const mantissa = bits & 0x007fffff;
  if (bits & 0x00800000) throw new Error(`negative compact target: ${bits.toString(16)}`);
  const target = exponent <= 3 ? BigInt(mantissa >>> (8 * (3 - exponent))) : BigInt(mantissa) << BigInt(8 * (exponent - 3));
  if (target > MAX_TARGET) throw new Error(`compact target overflows 256 bits: ${bits.toString(16)}`);
  return target;
}

export function targetToBits(target: bigint): number {
  if (target <= 0n) return 0;
  let size = Math.ceil(target.toString(16).length / 2);
  let mantissa = size <= 3 ? Number(target << BigInt(8 * (3 - size))) : Number(target >> BigInt(8 * (size - 3)));
  // The mantissa's top bit is a sign bit: shift it out.
  if (mantissa & 0x00800000) { mantissa >>>= 8; size++; }
  return ((size << 24) | mantissa) >>> 0;
}

/** Float difficulty of a target: diff1 / target. */
export function targetToDifficulty(target: bigint): number {
  return target === 0n ? Infinity : DIFF1_FLOAT / Number(target);
}

export function bitsToDifficulty(bits: number): number {
  return targetToDifficulty(bitsToTarget(bits));
}

/** Target for a (possibly fractional) pool difficulty, exact to 64 fractional bits and clamped to 2^256-1. */
export function difficultyToTarget(difficulty: number): bigint {
  if (!(difficulty > 0) || !Number.isFinite(difficulty)) throw new Error(`difficulty must be a positive number: ${difficulty}`);
  const den = BigInt(Math.round(difficulty * 2 ** 64));
  if (den === 0n) return MAX_TARGET;
  const t = (DIFF1_TARGET << 64n) / den;
  return t > MAX_TARGET ? MAX_TARGET : t;
}

/** A hash (internal byte order, i.e. little-endian uint256) as an integer. */
export function hashToBigInt(hash: Uint8Array): bigint {
  const b = Buffer.isBuffer(hash) ? hash : Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength);
  return (b.readBigUInt64LE(24) << 192n) | (b.readBigUInt64LE(16) << 128n) | (b.readBigUInt64LE(8) << 64n) | b.readBigUInt64LE(0);
}

/** The difficulty a hash achieves: diff1 / hash. */
export function hashDifficulty(hash: Uint8Array): number {
  let v = 0;
  for (let i = 31; i >= 0; i--) v = v * 256 + hash[i];
  return v === 0 ? Infinity : DIFF1_FLOAT / v;
}

/** hash ≤ target, both 32-byte little-endian (compared from the most significant byte). */
export function meetsTarget(hash: Uint8Array, target: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) {
    if (hash[i] !== target[i]) return hash[i] < target[i];
  }
  return true;
}

/** A 256-bit target as 32 little-endian bytes. */
export function targetBytes(target: bigint): Buffer {
  // Every byte is written below; from Node's shared pool, since each connection keeps one.
  const b = Buffer.allocUnsafe(32);
  let t = target;
  for (let i = 0; i < 32; i++) { b[i] = Number(t & 0xffn); t >>= 8n; }
  return b;
}
