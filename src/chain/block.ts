import { Reader, Writer, concat, encodeVarInt, hashToDisplay } from './bytes.ts';
import { sha256d } from './hash.ts';
import { type Tx, readTx, serializeTx } from './tx.ts';

export interface BlockHeader {
  version: number;
  /** Internal byte order. */
  prevHash: Buffer;
  /** Internal byte order. */
  merkleRoot: Buffer;
  time: number;
  bits: number;
  nonce: number;
}

export interface Block {
  header: BlockHeader;
  txs: Tx[];
}

export const HEADER_SIZE = 80;

/** 80-byte header: version | prev hash | merkle root | time | bits | nonce, integers little-endian. */
export function serializeHeader(h: BlockHeader): Buffer {
  const b = Buffer.allocUnsafe(HEADER_SIZE);
  b.writeUInt32LE(h.version >>> 0, 0);
  h.prevHash.copy(b, 4);
  h.merkleRoot.copy(b, 36);
  b.writeUInt32LE(h.time >>> 0, 68);
  b.writeUInt32LE(h.bits >>> 0, 72);
  b.writeUInt32LE(h.nonce >>> 0, 76);
  return b;
}

export function readHeader(r: Reader): BlockHeader {
  const version = r.u32();
  const prevHash = Buffer.from(r.bytes(32));
  const merkleRoot = Buffer.from(r.bytes(32));
  return { version, prevHash, merkleRoot, time: r.u32(), bits: r.u32(), nonce: r.u32() };
}

export function parseHeader(bytes: Uint8Array): BlockHeader {
  if (bytes.length !== HEADER_SIZE) throw new Error(`header must be 80 bytes, got ${bytes.length}`);
  return readHeader(new Reader(bytes));
}

/** Block hash (internal byte order) = sha256d(header). */
export function headerHash(header: BlockHeader | Uint8Array): Buffer {
  return sha256d(header instanceof Uint8Array ? header : serializeHeader(header));
}

export function blockHashHex(header: BlockHeader | Uint8Array): string {
  return hashToDisplay(headerHash(header));
}

export function parseBlock(bytes: Uint8Array): Block {
  const r = new Reader(bytes);
  const header = readHeader(r);
  const count = r.varInt();
  const txs: Tx[] = [];
  for (let i = 0; i < count; i++) txs.push(readTx(r));
  if (r.remaining !== 0) throw new Error(`${r.remaining} trailing bytes after block`);
  return { header, txs };
}

export function serializeBlock(block: Block, withWitness = true): Buffer {
  const w = new Writer().bytes(serializeHeader(block.header)).varInt(block.txs.length);
  for (const tx of block.txs) w.bytes(serializeTx(tx, withWitness));
  return w.finish();
}

/** Block bytes from an already serialized header, coinbase and other transactions (no re-encoding). */
export function assembleBlock(header: Uint8Array, coinbase: Uint8Array, txs: readonly Uint8Array[]): Buffer {
  return concat([header, encodeVarInt(txs.length + 1), coinbase, ...txs]);
}

/** The same from the other transactions already serialized back to back (`count` of them in `txBytes`). */
export function assembleBlockFromRaw(header: Uint8Array, coinbase: Uint8Array, count: number, txBytes: Uint8Array): Buffer {
  return concat([header, encodeVarInt(count + 1), coinbase, txBytes]);
}
