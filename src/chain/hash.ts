import crypto from 'node:crypto';
import { sha256d80 } from './sha256-words.ts';

// crypto.hash (Node >= 20.12) skips the Hash object: ~3x cheaper than createHash for the 64/80-byte inputs
// of the share hot path, where the number of calls matters more than their size.
const oneShot = (crypto as unknown as { hash?: (alg: string, data: Uint8Array, enc: 'buffer') => Buffer }).hash;

export const sha256: (data: Uint8Array) => Buffer = oneShot
  ? (data) => oneShot('sha256', data, 'buffer')
  : (data) => crypto.createHash('sha256').update(data).digest();

/** Bitcoin's double SHA-256. Result in internal byte order. */
export function sha256d(data: Uint8Array): Buffer {
  // A block header (every share): three compressions in JS cost less than two native calls (sha256-words.ts).
  if (data.length === 80) return sha256d80(data);
  return sha256(sha256(data));
}
