import { sha256d } from './hash.ts';
import { sha256dPairLevel, storeWords } from './sha256-words.ts';

// Merkle tree of txids (internal byte order). At a level with an odd count the last hash pairs with itself
// (Bitcoin Core consensus/merkle.cpp).

export function merkleRoot(hashes: readonly Uint8Array[]): Buffer {
  if (hashes.length === 0) throw new Error('merkle root of no hashes');
  const w = nodesAsWords(hashes, 0);
  let len = hashes.length;
  while (len > 1) {
    // Level in place: node j of the next level is written where node j of this one was, after it was read.
    sha256dPairLevel(w, 0, len);
    len = Math.ceil(len / 2);
  }
  return nodeBytes(w, 0);
}

/**
 * The Stratum merkle branch for the first leaf (the coinbase): the sibling at each level, given the hashes of
 * every transaction except the coinbase. Computed once per template, in words and in place: a 3,000-transaction
 * template is ~3,000 double hashes, which as one crypto call each stalled the pool's event loop for ~15 ms.
 */
export function coinbaseMerkleBranch(otherHashes: readonly Uint8Array[]): Buffer[] {
  const branch: Buffer[] = [];
  // Node 0 stands for the (unknown) coinbase path; only its siblings are needed.
  const w = nodesAsWords(otherHashes, 1);
  let len = otherHashes.length + 1;
  while (len > 1) {
    branch.push(nodeBytes(w, 1));
    // Next level: node 0 is the coinbase path again; node j ≥ 1 hashes nodes 2j and 2j + 1 (or 2j twice).
    sha256dPairLevel(w, 1, len);
    len = 1 + Math.ceil((len - 2) / 2);
  }
  return branch;
}

/** 32-byte nodes as 8 big-endian words each, from node index `first` on (nodes before it left zero). */
function nodesAsWords(hashes: readonly Uint8Array[], first: number): Int32Array {
  const w = new Int32Array((hashes.length + first) * 8);
  for (let i = 0; i < hashes.length; i++) {
    const h = hashes[i];
    if (h.length !== 32) throw new Error(`merkle node ${i} is ${h.length} bytes, not 32`);
    const o = (i + first) * 8;
    for (let k = 0; k < 8; k++) w[o + k] = (h[4 * k] << 24) | (h[4 * k + 1] << 16) | (h[4 * k + 2] << 8) | h[4 * k + 3];
  }
  return w;
}

function nodeBytes(w: Int32Array, node: number): Buffer {
  const out = Buffer.allocUnsafe(32);
  storeWords(w, node * 8, out, 0);
  return out;
}

/** root = sha256d(root ‖ branch[i]) for each i, starting from the coinbase txid. */
export function merkleRootFromBranch(leaf: Uint8Array, branch: readonly Uint8Array[]): Buffer {
  if (branch.length === 0) return Buffer.from(leaf);
  // One 64-byte scratch buffer for all levels: the hot path does the hashing and little else.
  const buf = Buffer.allocUnsafe(64);
  buf.set(leaf, 0);
  let h: Buffer = buf.subarray(0, 32);
  for (const sibling of branch) {
    buf.set(h, 0);
    buf.set(sibling, 32);
    h = sha256d(buf);
  }
  return h;
}
