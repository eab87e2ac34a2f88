import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export interface BlockVector {
  description: string;
  hash: string;
  hex: string;
  height?: number;
  witnessCommitment?: string;
}

const here = path.dirname(fileURLToPath(import.meta.url));

/** Real mainnet/testnet blocks from ../shared/vectors/blocks.json (copied into test/fixtures when absent). */
export function loadBlockVectors(): BlockVector[] {
  const candidates = [path.resolve(here, '../../../shared/vectors/blocks.json'), path.resolve(here, '../fixtures/blocks.json')];
  for (const file of candidates) {
    try {
      return (JSON.parse(readFileSync(file, 'utf8')) as { blocks: BlockVector[] }).blocks;
    } catch {
      // try the next location
    }
  }
  throw new Error(`block vectors not found in ${candidates.join(' or ')}`);
}
