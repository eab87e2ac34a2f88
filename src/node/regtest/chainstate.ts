// The coins of the active chain at one block, as Core's chainstate/ keeps them: what a restart cannot rebuild
// from blocks.dat, since blocks deeper than the prune depth are kept there by header only. The chain writes it
// each time it prunes, at the height it pruned to, so every active block above that height is still whole in
// blocks.dat and replays on top of it (which also rebuilds their undo data for reorgs).
//
// chainstate.dat (replaced atomically: a crash leaves the previous one):
//   "HHCS" ‖ version (u8, 1) ‖ height (u32 LE) ‖ block hash (32 bytes, internal order) ‖ coin count (u32 LE)
//   ‖ per coin: txid (32, internal order) ‖ vout (u32 LE) ‖ value (u64 LE) ‖ height (u32 LE) ‖ coinbase (u8)
//               ‖ script length (u32 LE) ‖ script
//   ‖ SHA-256 of everything before (32 bytes)

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { hashToDisplay } from '../../chain/index.ts';
import { ChainDataError } from './block-file.ts';
import { writeFileAtomic } from './record-file.ts';
import type { Coin } from './utxo.ts';

const MAGIC = Buffer.from('HHCS', 'ascii');
const VERSION = 1;

export interface ChainState {
  height: number;
  /** Display hex. */
  hash: string;
  coins: Map<string, Coin>;
}

export function chainStateFile(dir: string): string {
  return path.join(dir, 'chainstate.dat');
}

export function writeChainState(dir: string, state: ChainState): void {
  const hash = createHash('sha256');
  const chunks: Buffer[] = [];
  const put = (b: Buffer): void => { hash.update(b); chunks.push(b); };
  const head = Buffer.alloc(4 + 1 + 4 + 32 + 4);
  MAGIC.copy(head, 0);
  head.writeUInt8(VERSION, 4);
  head.writeUInt32LE(state.height, 5);
  Buffer.from(state.hash, 'hex').reverse().copy(head, 9);
  head.writeUInt32LE(state.coins.size, 41);
  put(head);
  for (const [key, c] of state.coins) {
    const sep = key.indexOf(':');
    const rec = Buffer.alloc(32 + 4 + 8 + 4 + 1 + 4 + c.script.length);
    Buffer.from(key.slice(0, sep), 'hex').reverse().copy(rec, 0);
    rec.writeUInt32LE(Number(key.slice(sep + 1)), 32);
    rec.writeBigUInt64LE(c.value, 36);
    rec.writeUInt32LE(c.height, 44);
    rec.writeUInt8(c.coinbase ? 1 : 0, 48);
    rec.writeUInt32LE(c.script.length, 49);
    c.script.copy(rec, 53);
    put(rec);
  }
  chunks.push(hash.digest());
  writeFileAtomic(chainStateFile(dir), chunks);
}

/** The saved chain state, null when there is none; a damaged one is a ChainDataError. */
export function readChainState(dir: string): ChainState | null {
  const file = chainStateFile(dir);
  if (!existsSync(file)) return null;
  const damaged = (why: string): ChainDataError => new ChainDataError(
    `embedded chain: ${file} is damaged (${why})`, `move ${dir} away to start a new chain`,
  );
  const b = readFileSync(file);
  if (b.length < 45 + 32 || !b.subarray(0, 4).equals(MAGIC)) throw damaged('not a chain state file');
  if (!createHash('sha256').update(b.subarray(0, b.length - 32)).digest().equals(b.subarray(b.length - 32))) throw damaged('checksum mismatch');
  if (b[4] !== VERSION) throw damaged(`version ${b[4]}`);
  const height = b.readUInt32LE(5);
  const blockHash = hashToDisplay(b.subarray(9, 41));
  const count = b.readUInt32LE(41);
  const coins = new Map<string, Coin>();
  let o = 45;
  const end = b.length - 32;
  for (let i = 0; i < count; i++) {
    if (o + 53 > end) throw damaged('coins cut short');
    const len = b.readUInt32LE(o + 49);
    if (o + 53 + len > end) throw damaged('coins cut short');
    coins.set(`${hashToDisplay(b.subarray(o, o + 32))}:${b.readUInt32LE(o + 32)}`, {
      value: b.readBigUInt64LE(o + 36), height: b.readUInt32LE(o + 44), coinbase: b[o + 48] === 1,
      script: Buffer.from(b.subarray(o + 53, o + 53 + len)),
    });
    o += 53 + len;
  }
  if (o !== end) throw damaged('bytes after the coins');
  return { height, hash: blockHash, coins };
}
