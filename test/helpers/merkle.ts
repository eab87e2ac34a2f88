import crypto from 'node:crypto';

// An independent merkle root for tests: plain node:crypto, none of the pool's hashing code.

export const plainSha256d = (b: Uint8Array): Buffer => crypto.createHash('sha256').update(crypto.createHash('sha256').update(b).digest()).digest();

/** The merkle root of txids (internal byte order); an odd level pairs its last node with itself, as Core does. */
export function plainMerkleRoot(leaves: Buffer[]): Buffer {
  let level = leaves;
  while (level.length > 1) {
    const next: Buffer[] = [];
    for (let i = 0; i < level.length; i += 2) next.push(plainSha256d(Buffer.concat([level[i], level[i + 1] ?? level[i]])));
    level = next;
  }
  return level[0];
}
