import { sha256d } from './hash.ts';

// Merkle tree of txids (internal byte order). At a level with an odd count the last hash pairs with itself
// (Bitcoin Core consensus/merkle.cpp).

function hashPair(a: Uint8Array, b: Uint8Array): Buffer {
  const buf = Buffer.allocUnsafe(64);
  buf.set(a, 0);
  buf.set(b, 32);
  return sha256d(buf);
}

export function merkleRoot(hashes: readonly Uint8Array[]): Buffer {
  if (hashes.length === 0) throw new Error('merkle root of no hashes');
  let level: Buffer[] = hashes.map((h) => Buffer.from(h));
  while (level.length > 1) {
    const next: Buffer[] = [];
    for (let i = 0; i < level.length; i += 2) next.push(hashPair(level[i], level[i + 1] ?? level[i]));
    level = next;
  }
  return level[0];
}

/**
 * The Stratum merkle branch for the first leaf (the coinbase): the sibling at each level, given the hashes of
 * every transaction except the coinbase. Computed once per job.
 */
export function coinbaseMerkleBranch(otherHashes: readonly Uint8Array[]): Buffer[] {
  const branch: Buffer[] = [];
  // level[0] stands for the (unknown) coinbase path; only its siblings are needed.
  let level: (Buffer | null)[] = [null, ...otherHashes.map((h) => Buffer.from(h))];
  while (level.length > 1) {
    branch.push((level[1] ?? level[0]) as Buffer);
    const next: (Buffer | null)[] = [null];
    for (let i = 2; i < level.length; i += 2) {
      const a = level[i] as Buffer;
      next.push(hashPair(a, (level[i + 1] ?? a) as Buffer));
    }
    level = next;
  }
  return branch;
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
