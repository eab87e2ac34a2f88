import { type CoinbaseOutput, addressToScript, buildCoinbase, concat, encodeVarInt, serializeHeader } from '../../src/chain/index.ts';

// Blocks as the block path stores them (block_hex): a header with the given bits and a coinbase with the given
// outputs. Accounting reads the bits and the coinbase outputs; nothing here needs proof of work.

export function blockHex(opts: { height: number; bits: number; outputs: CoinbaseOutput[] }): string {
  const { coinb1, coinb2 } = buildCoinbase({ height: opts.height, extranonceSize: 8, tag: Buffer.from('/t/'), outputs: opts.outputs });
  const coinbase = concat([coinb1, Buffer.alloc(8, 1), coinb2]);
  const header = serializeHeader({ version: 0x20000000, prevHash: Buffer.alloc(32), merkleRoot: Buffer.alloc(32, 7), time: 1_900_000_000, bits: opts.bits, nonce: 0 });
  return concat([header, encodeVarInt(1), coinbase]).toString('hex');
}

export const POOL_ADDRESS = 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080';
export const poolScript = () => addressToScript(POOL_ADDRESS, 'regtest');

let n = 0;
export function blockHash(): string {
  n++;
  return n.toString(16).padStart(64, '0');
}
