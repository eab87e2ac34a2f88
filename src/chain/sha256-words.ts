// SHA-256 on 32-bit words, for the share hot path. Node's crypto.hash costs one native call per hash, and on
// Node 20 (OpenSSL 3) each call pays a digest fetch and a Buffer allocation that cost far more than the
// compression itself; a share with a new extranonce2 made 28 such calls. Here the coinbase → merkle path →
// header chain runs on words in JS with no allocation: the merkle levels never leave word form, the padding
// block of a 64-byte message has a constant message schedule (precomputed), and the coinbase prefix before the
// extranonce is a per-job midstate. Measured in bench/hash.ts (instruction counts under callgrind).

import { nativeSha } from './sha256-native.ts';

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

export const SHA256_IV = new Int32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);

/** Expand W[0..15] (already filled) to W[0..63] in place. */
export function expand(w: Int32Array): void {
  for (let i = 16; i < 64; i++) {
    const x = w[i - 15];
    const y = w[i - 2];
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
  }
}

/**
 * One compression: state (8 words at `so` in `s`) updated with the expanded schedule `w` (64 words). The
 * caller expands (or passes a precomputed schedule).
 */
export function compressExpanded(s: Int32Array, w: Int32Array): void {
  let a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
  for (let i = 0; i < 64; i++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g; g = f; f = e; e = (d + t1) | 0;
    d = c; c = b; b = a; a = (t1 + t2) | 0;
  }
  s[0] = (s[0] + a) | 0; s[1] = (s[1] + b) | 0; s[2] = (s[2] + c) | 0; s[3] = (s[3] + d) | 0;
  s[4] = (s[4] + e) | 0; s[5] = (s[5] + f) | 0; s[6] = (s[6] + g) | 0; s[7] = (s[7] + h) | 0;
}

/** The schedule of the padding block that follows a 64-byte message: the same for every such message. */
const PAD64 = (() => {
  const w = new Int32Array(64);
  w[0] = 0x80000000 | 0;
  w[15] = 512;
  expand(w);
  return w;
})();

const W = new Int32Array(64);
const S = new Int32Array(8);

/** Read 16 big-endian words from bytes[off..off+64) into w[0..16). */
export function loadBlock(w: Int32Array, bytes: Uint8Array, off: number): void {
  for (let i = 0; i < 16; i++, off += 4) w[i] = (bytes[off] << 24) | (bytes[off + 1] << 16) | (bytes[off + 2] << 8) | bytes[off + 3];
}

/** Write 8 words big-endian into out[off..off+32). */
export function storeWords(words: Int32Array, wo: number, out: Uint8Array, off: number): void {
  for (let i = 0; i < 8; i++, off += 4) {
    const v = words[wo + i];
    out[off] = v >>> 24; out[off + 1] = (v >>> 16) & 255; out[off + 2] = (v >>> 8) & 255; out[off + 3] = v & 255;
  }
}

/** The second SHA-256 of a double hash: sha256 of the 32-byte digest in s (8 words), in place. */
function secondHash(s: Int32Array): void {
  const w = W;
  for (let i = 0; i < 8; i++) w[i] = s[i];
  w[8] = 0x80000000 | 0;
  w[9] = 0; w[10] = 0; w[11] = 0; w[12] = 0; w[13] = 0; w[14] = 0;
  w[15] = 256;
  expand(w);
  s.set(SHA256_IV);
  compressExpanded(s, w);
}

/**
 * sha256d(left ‖ right) of two 32-byte nodes given as words (8 at lo in l, 8 at ro in r), result as 8 words
 * into out at oo. A merkle level with no allocation and no byte conversion.
 */
export function sha256dPairWords(l: Int32Array, lo: number, r: Int32Array, ro: number, out: Int32Array, oo: number): void {
  const w = W;
  const s = S;
  for (let i = 0; i < 8; i++) { w[i] = l[lo + i]; w[8 + i] = r[ro + i]; }
  expand(w);
  s.set(SHA256_IV);
  compressExpanded(s, w);
  compressExpanded(s, PAD64);
  secondHash(s);
  for (let i = 0; i < 8; i++) out[oo + i] = s[i];
}

/**
 * One merkle level in place, nodes of 8 words: node j (from ≤ j, 2j < len) becomes sha256d(node 2j ‖ node 2j+1),
 * or of node 2j twice when 2j+1 is len (an odd level). Node j is written after nodes 2j and 2j+1 were read, and
 * j ≤ 2j, so no node is overwritten before it is read. Native when built (a 3,000-transaction template's branch:
 * ~0.3 ms there, 3-4 ms in JS words, all of it one event-loop turn).
 */
export function sha256dPairLevel(w: Int32Array, from: number, len: number): void {
  if (nativeSha) return nativeSha.pairLevel(w, from, len);
  for (let j = from; 2 * j < len; j++) {
    const l = 2 * j;
    sha256dPairWords(w, l * 8, w, (l + 1 < len ? l + 1 : l) * 8, w, j * 8);
  }
}

/** 8 big-endian words of a 32-byte value (a hash in internal byte order, read as SHA-256 reads its input). */
export function wordsOf(bytes: Uint8Array, off = 0): Int32Array {
  const w = new Int32Array(8);
  for (let i = 0; i < 8; i++) w[i] = (bytes[off + 4 * i] << 24) | (bytes[off + 4 * i + 1] << 16) | (bytes[off + 4 * i + 2] << 8) | bytes[off + 4 * i + 3];
  return w;
}

/**
 * Midstate of a message prefix: the state after every whole 64-byte block of `prefix[0..blocks*64)`.
 * Per job for the coinbase bytes before the extranonce.
 */
export function midstate(prefix: Uint8Array, blocks: number): Int32Array {
  const s = new Int32Array(SHA256_IV);
  const w = new Int32Array(64);
  for (let b = 0; b < blocks; b++) {
    loadBlock(w, prefix, b * 64);
    expand(w);
    compressExpanded(s, w);
  }
  return s;
}

const TAIL = Buffer.alloc(256);

/**
 * sha256d of a message whose first `from` bytes (a multiple of 64) are already compressed into `mid`; the
 * result as 8 words into out[oo..]. Any length; the tail is padded in a scratch buffer.
 */
export function sha256dFromMidstate(mid: Int32Array, msg: Uint8Array, from: number, out: Int32Array, oo: number): void {
  const s = S;
  const w = W;
  s.set(mid);
  const len = msg.length;
  let off = from;
  for (; off + 64 <= len; off += 64) {
    loadBlock(w, msg, off);
    expand(w);
    compressExpanded(s, w);
  }
  // Tail: the remaining bytes, 0x80, zeros, the 64-bit bit length (lengths here fit in 32 bits).
  const rest = len - off;
  const padded = rest + 9 <= 64 ? 64 : 128;
  const t = TAIL;
  t.fill(0, 0, padded);
  for (let i = 0; i < rest; i++) t[i] = msg[off + i];
  t[rest] = 0x80;
  const bits = len * 8;
  t[padded - 4] = bits >>> 24; t[padded - 3] = (bits >>> 16) & 255; t[padded - 2] = (bits >>> 8) & 255; t[padded - 1] = bits & 255;
  t[padded - 5] = Math.floor(bits / 2 ** 32) & 255;
  for (let b = 0; b < padded; b += 64) {
    loadBlock(w, t, b);
    expand(w);
    compressExpanded(s, w);
  }
  secondHash(s);
  for (let i = 0; i < 8; i++) out[oo + i] = s[i];
}

/** sha256d of any bytes, in JS (no native call): the digest in internal order, into out[off..off+32). */
export function sha256dInto(msg: Uint8Array, out: Uint8Array, off = 0): void {
  const r = new Int32Array(8);
  sha256dFromMidstate(SHA256_IV, msg, 0, r, 0);
  storeWords(r, 0, out, off);
}

const HW = new Int32Array(8);

/** sha256d of an 80-byte block header into a fresh 32-byte Buffer (two blocks + the second hash). */
export function sha256d80(header: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(32);
  if (nativeSha) {
    nativeSha.sha256d(header, out);
    return out;
  }
  sha256dFromMidstate(SHA256_IV, header, 0, HW, 0);
  storeWords(HW, 0, out, 0);
  return out;
}
