import { midstate, nativeSha, sha256dFromMidstate, sha256dPairWords, storeWords, toHex, wordsOf } from '../chain/index.ts';

// Stratum V1 work encoding shared by the pool's validator and our miner. The conventions (checked against
// cpuminer util.c/cpu-miner.c and ckpool stratifier.c):
//  - notify prevhash = the header's 32 prev-hash bytes with each 4-byte word byte-swapped;
//  - version, nbits, ntime (notify) and ntime, nonce (submit) are hex of the uint32 (big-endian text), stored
//    little-endian in the header;
//  - coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2 is the non-witness coinbase; its sha256d is the merkle leaf.

/** Header prev-hash bytes (internal order) -> notify prevhash hex (each 4-byte word byte-swapped). */
export function prevHashToStratum(prevHash: Uint8Array): string {
  const b = Buffer.allocUnsafe(32);
  for (let i = 0; i < 32; i += 4) {
    b[i] = prevHash[i + 3]; b[i + 1] = prevHash[i + 2]; b[i + 2] = prevHash[i + 1]; b[i + 3] = prevHash[i];
  }
  return toHex(b);
}

/** Inverse of prevHashToStratum. */
export function prevHashFromStratum(hex: string): Buffer {
  const s = Buffer.from(hex, 'hex');
  if (s.length !== 32) throw new Error('prevhash must be 32 bytes');
  const b = Buffer.allocUnsafe(32);
  for (let i = 0; i < 32; i += 4) {
    b[i] = s[i + 3]; b[i + 1] = s[i + 2]; b[i + 2] = s[i + 1]; b[i + 3] = s[i];
  }
  return b;
}

export { u32Hex } from '../chain/index.ts';

/**
 * Everything per job that a share needs, computed once per job: the coinbase with a hole for the extranonce
 * and the header with prev hash and bits in place. Per share only the extranonce, merkle path and the four
 * header words change. Single-threaded use: the returned header is a scratch buffer, valid until the next call.
 */
export class WorkHasher {
  private readonly coinbase: Buffer;
  private readonly header = Buffer.alloc(80);
  private readonly enOffset: number;
  /** SHA-256 state after the coinbase's whole 64-byte blocks before the extranonce (the same for every share). */
  private readonly coinbaseMid: Int32Array;
  private readonly midBytes: number;
  /** The branch as big-endian words, 8 per level: the merkle path is hashed in word form (sha256-words.ts). */
  private readonly branchWords: Int32Array;
  private readonly node = new Int32Array(8);

  constructor(
    coinb1: Buffer,
    coinb2: Buffer,
    readonly extranonceSize: number,
    branch: readonly Buffer[],
    prevHash: Uint8Array,
    bits: number,
  ) {
    this.coinbase = Buffer.alloc(coinb1.length + extranonceSize + coinb2.length);
    coinb1.copy(this.coinbase, 0);
    coinb2.copy(this.coinbase, coinb1.length + extranonceSize);
    this.enOffset = coinb1.length;
    const blocks = Math.floor(coinb1.length / 64);
    this.coinbaseMid = midstate(coinb1, blocks);
    this.midBytes = blocks * 64;
    this.branchWords = new Int32Array(8 * branch.length);
    branch.forEach((b, i) => this.branchWords.set(wordsOf(b), 8 * i));
    this.header.set(prevHash, 4);
    this.header.writeUInt32LE(bits >>> 0, 72);
  }

  /** The non-witness coinbase for this extranonce (a fresh copy). */
  coinbaseFor(extranonce1: Uint8Array, extranonce2: Uint8Array): Buffer {
    this.fillExtranonce(extranonce1, extranonce2);
    return Buffer.from(this.coinbase);
  }

  merkleRootFor(extranonce1: Uint8Array, extranonce2: Uint8Array): Buffer {
    return this.merkleRootInto(extranonce1, extranonce2, Buffer.allocUnsafe(32));
  }

  /** merkleRootFor, written into `out` (32 bytes): a buffer the caller keeps, e.g. a session's root cache. */
  merkleRootInto<T extends Uint8Array>(extranonce1: Uint8Array, extranonce2: Uint8Array, out: T): T {
    this.fillExtranonce(extranonce1, extranonce2);
    if (nativeSha) {
      nativeSha.merkleRoot(this.coinbaseMid, this.coinbase, this.midBytes, this.branchWords, out);
      return out;
    }
    const node = this.node;
    sha256dFromMidstate(this.coinbaseMid, this.coinbase, this.midBytes, node, 0);
    const bw = this.branchWords;
    for (let o = 0; o < bw.length; o += 8) sha256dPairWords(node, 0, bw, o, node, 0);
    storeWords(node, 0, out, 0);
    return out;
  }

  /** The 80-byte header for a share (scratch buffer). */
  header80(merkleRoot: Uint8Array, version: number, ntime: number, nonce: number): Buffer {
    const h = this.header;
    h.writeUInt32LE(version >>> 0, 0);
    h.set(merkleRoot, 36);
    h.writeUInt32LE(ntime >>> 0, 68);
    h.writeUInt32LE(nonce >>> 0, 76);
    return h;
  }

  private fillExtranonce(extranonce1: Uint8Array, extranonce2: Uint8Array): void {
    if (extranonce1.length + extranonce2.length !== this.extranonceSize) {
      throw new Error(`extranonce is ${extranonce1.length + extranonce2.length} bytes, job expects ${this.extranonceSize}`);
    }
    this.coinbase.set(extranonce1, this.enOffset);
    this.coinbase.set(extranonce2, this.enOffset + extranonce1.length);
  }
}
