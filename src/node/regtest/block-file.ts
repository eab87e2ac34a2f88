// The embedded chain's data directory: its blocks, so a restart continues at the same height (as bitcoind's
// blocks/blk*.dat), and what the chain was made with, so a restart with other settings is refused clearly. The
// coins below the blocks kept whole live in chainstate.dat (chainstate.ts), the wallet's keys in wallet.dat.
//
// blocks.dat is append-only, one record per stored block or verdict, in the order the chain saw them (a replay
// in file order rebuilds the same block index, best chain and side branches; arrival order breaks work ties).
// Records are framed with a checksum (record-file.ts):
//   magic (4 bytes, "HHB2") ‖ payload length (u32 LE) ‖ checksum (4 bytes) ‖ payload
// (files written before checksums have Core's frame, magic fabfb5da ‖ length ‖ payload, still read), and the
// payload's first byte says what it is:
//   0x04 block:   block length (u32 LE) ‖ block (witness serialization) ‖ fee count (u32 LE) ‖ fees (i64 LE each)
//                 ‖ one flag byte per fee (bit 0: a real, signed transaction whose outputs are coins)
//                 (the fees of the chain's synthetic transactions: they spend made-up outputs, so the block alone
//                 cannot tell them; -1 for a transaction the chain never offered)
//   0x01 block without the flags (older files: every transaction taken as synthetic)
//   0x02 header:  80-byte header ‖ transaction count (u32 LE) ‖ block size (u32 LE): a block whose data was
//                 pruned (deeper than the chain keeps data for), written when the file is compacted
//   0x03 invalid: block hash (32 bytes, internal order) ‖ reason (UTF-8): a stored block found invalid when it
//                 was connected
// The file is compacted (rewritten from the chain's memory, deep blocks as headers) when it has grown a lot,
// so its size stays near (blocks × 100 bytes + the recent blocks kept whole).
//
// Appends are not fsynced one by one (as Core's block files, they are flushed with the chain state): a killed
// process loses nothing, a power cut at most the last blocks. A partial record at the end (a write the crash
// cut) is cut off at start; damage anywhere else is refused with the byte offset.

import {
  closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, truncateSync,
} from 'node:fs';
import path from 'node:path';
import { FRAME_V1, FRAME_V2, MAGIC_V1, MAGIC_V2, appendAll, checksum, frame, fsyncDir, writeFileAtomic } from './record-file.ts';

/** A record larger than this is damage, not a block (a block is at most 4 MB; fees are 8 bytes each). */
const MAX_PAYLOAD = 32 * 1024 * 1024;
export const REC_BLOCK_V1 = 0x01;
export const REC_BLOCK = 0x04;
export const REC_HEADER = 0x02;
export const REC_INVALID = 0x03;

/** One record as the first pass sees it: what is cheap to keep (the block itself is read later, on demand). */
export type RecordHead =
  | { type: typeof REC_BLOCK; offset: number; header: Buffer; nTx: number; size: number }
  | { type: typeof REC_HEADER; offset: number; header: Buffer; nTx: number; size: number }
  | { type: typeof REC_INVALID; offset: number; hash: Buffer; reason: string };

/** A stored block as the chain gets it back: bytes, the fee of each transaction after the coinbase, which are real. */
export interface StoredBlock {
  bytes: Buffer;
  fees: number[];
  /** Null for a record from before the flags (older files): the chain tells them by their inputs. */
  real: boolean[] | null;
}

/** What the chain was made with: a restart with other settings would not accept its own blocks. */
export interface ChainMeta {
  network: 'regtest' | 'signet';
  /** Compact bits of every block (hex). */
  bits: string;
}

/** An unusable data directory or block file: one line, the problem (naming the file) and the fix. */
export class ChainDataError extends Error {
  override readonly name = 'ChainDataError';
  constructor(readonly problem: string, readonly fix: string) {
    super(`${problem}: ${fix}`);
  }
}

/** One framed record found in a file: where its payload is and how long it is. */
interface Framed { offset: number; payloadAt: number; len: number; v2: boolean }

/** The records of an append-only file, a torn tail cut off; damage before the last record is an error. */
export interface ScanResult<T> {
  records: T[];
  /** A partial last record that was cut off (a crash during its write): where it began and how long it was. */
  torn: { at: number; bytes: number } | null;
}

export class BlockFile {
  readonly file: string;
  readonly metaFile: string;
  private fd: number | null = null;
  private reader: ChunkReader | null = null;
  /** Bytes in the file (appends included). */
  size = 0;

  constructor(readonly dir: string) {
    this.file = path.join(dir, 'blocks.dat');
    this.metaFile = path.join(dir, 'chain.json');
  }

  /**
   * Creates the directory if needed and checks the settings against the ones the chain was made with
   * (writing them on first use). Throws ChainDataError.
   */
  prepare(meta: ChainMeta): void {
    try {
      mkdirSync(this.dir, { recursive: true });
    } catch (err) {
      throw new ChainDataError(`embedded chain: cannot create data directory ${this.dir} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 'choose a data dir this user can write');
    }
    if (!existsSync(this.metaFile)) {
      writeFileAtomic(this.metaFile, [Buffer.from(`${JSON.stringify(meta)}\n`)]);
      return;
    }
    let saved: Partial<ChainMeta>;
    try {
      saved = JSON.parse(readFileSync(this.metaFile, 'utf8')) as Partial<ChainMeta>;
    } catch (err) {
      throw new ChainDataError(`embedded chain: ${this.metaFile} is unreadable (${(err as Error).message.split('\n')[0]})`, `move ${this.dir} away to start a new chain`);
    }
    if (saved.network !== meta.network || saved.bits !== meta.bits) {
      throw new ChainDataError(
        `embedded chain: ${this.dir} holds a ${saved.network} chain with bits ${saved.bits}, but this one is ${meta.network} with bits ${meta.bits}`,
        'use the same embedded difficulty and network, or another data dir',
      );
    }
  }

  /**
   * First pass: every record's cheap part, in file order, reading the file in chunks (a long chain is large).
   * A partial record at the end is cut off (the file is truncated to the records before it); a damaged record
   * with intact ones after it is a ChainDataError saying where and what to do.
   */
  scan(): ScanResult<RecordHead> {
    const r = scanFramed(this.file, (f, payload) => parseHead(payload, f.offset));
    this.size = r.end;
    return { records: r.records, torn: r.torn };
  }

  /** The block, fees and real flags of a block record found by scan(). */
  readBlock(offset: number): StoredBlock {
    // One reader for the whole replay: blocks are read in file order, mostly from its current window.
    this.reader ??= new ChunkReader(this.file);
    const r = this.reader;
    {
      const head = r.read(offset, FRAME_V1);
      const v2 = head.subarray(0, 4).equals(MAGIC_V2);
      const len = head.readUInt32LE(4);
      const p = r.read(offset + (v2 ? FRAME_V2 : FRAME_V1), len);
      const blockLen = p.readUInt32LE(1);
      const bytes = Buffer.from(p.subarray(5, 5 + blockLen));
      const count = p.readUInt32LE(5 + blockLen);
      const fees: number[] = [];
      let o = 9 + blockLen;
      for (let i = 0; i < count; i++, o += 8) fees.push(Number(p.readBigInt64LE(o)));
      if (p[0] !== REC_BLOCK) return { bytes, fees, real: null };
      const real: boolean[] = [];
      for (let i = 0; i < count; i++) real.push((p[o + i] & 1) === 1);
      return { bytes, fees, real };
    }
  }

  /** Done reading blocks back (the reader's window is released). */
  endReads(): void {
    this.reader?.close();
    this.reader = null;
  }

  appendBlock(b: StoredBlock): void {
    this.write(blockRecord(b));
  }

  appendInvalid(hash: Buffer, reason: string): void {
    this.write(invalidRecord(hash, reason));
  }

  /** Appends so far reach the disk (before a chain state that relies on them is written). */
  sync(): void {
    if (this.fd !== null) fsyncSync(this.fd);
  }

  /** Replaces the file with `records` (temporary file, fsync, rename), then appends go to the new one. */
  rewrite(records: Iterable<Buffer>): void {
    this.close();
    this.endReads();
    this.size = writeFileAtomic(this.file, records);
  }

  close(): void {
    if (this.fd === null) return;
    try { fsyncSync(this.fd); } finally { closeSync(this.fd); this.fd = null; }
  }

  /** One write per record, so a crash leaves at most one partial record, at the end (written through to the
   *  OS at once: a killed process loses nothing; fsynced with the chain state and on close). */
  private write(rec: Buffer): void {
    this.endReads();
    if (this.fd === null) {
      const created = !existsSync(this.file);
      this.fd = openSync(this.file, 'a');
      if (created) fsyncDir(this.dir);
    }
    appendAll(this.fd, rec);
    this.size += rec.length;
  }
}

/**
 * Reads the framed records of `file` (none if it does not exist), checking each v2 record's checksum; `parse`
 * turns a payload into a record (null: the contents do not add up). A bad record with no intact record after it
 * is a torn tail: the file is truncated to the records before it. Otherwise a ChainDataError.
 */
export function scanFramed<T>(file: string, parse: (f: Framed, payload: Buffer) => T | null): ScanResult<T> & { end: number } {
  if (!existsSync(file)) return { records: [], torn: null, end: 0 };
  const r = new ChunkReader(file);
  const out: T[] = [];
  let pos = 0;
  try {
    while (pos < r.size) {
      const got = readFramed(r, pos);
      const rec = typeof got === 'string' ? null : parse(got.f, got.payload);
      if (rec === null) {
        const why = typeof got === 'string' ? got : 'record contents do not add up';
        if (intactRecordAfter(r, pos + 1)) {
          throw new ChainDataError(
            `embedded chain: ${file} is damaged at byte ${pos} of ${r.size} (${why}; ${out.length} records before it are intact)`,
            `truncate it to ${pos} bytes to keep them, or move it away to start a new chain`,
          );
        }
        const torn = { at: pos, bytes: r.size - pos };
        r.close();
        truncateSync(file, pos);
        return { records: out, torn, end: pos };
      }
      out.push(rec);
      const f = (got as { f: Framed }).f;
      pos = f.payloadAt + f.len;
    }
  } finally {
    r.closeQuietly();
  }
  return { records: out, torn: null, end: pos };
}

function readFramed(r: ChunkReader, pos: number): { f: Framed; payload: Buffer } | string {
  if (r.size - pos < FRAME_V1) return 'partial record header';
  const head = r.read(pos, FRAME_V1);
  const magic = head.subarray(0, 4);
  const v2 = magic.equals(MAGIC_V2);
  if (!v2 && !magic.equals(MAGIC_V1)) return 'no record magic';
  const frameLen = v2 ? FRAME_V2 : FRAME_V1;
  if (r.size - pos < frameLen) return 'partial record header';
  const len = head.readUInt32LE(4);
  if (len > MAX_PAYLOAD || len === 0) return `record length ${len}`;
  if (r.size - pos - frameLen < len) return `partial record: ${r.size - pos - frameLen} of ${len} bytes`;
  const sum = v2 ? Buffer.from(r.read(pos + 8, 4)) : null;
  const payload = r.read(pos + frameLen, len);
  if (sum && !checksum(payload).equals(sum)) return 'checksum mismatch';
  return { f: { offset: pos, payloadAt: pos + frameLen, len, v2 }, payload };
}

/** Whether a whole, checksummed record starts anywhere at or after `from` (then the damage is not a torn tail). */
function intactRecordAfter(r: ChunkReader, from: number): boolean {
  let at = from;
  while (at + FRAME_V1 <= r.size) {
    const win = r.read(at, Math.min(4 << 20, r.size - at));
    const found = [win.indexOf(MAGIC_V1), win.indexOf(MAGIC_V2)].filter((i) => i >= 0);
    if (found.length === 0) { at += Math.max(1, win.length - 3); continue; }
    const cand = at + Math.min(...found);
    at = cand + 1;
    const got = readFramed(r, cand);
    if (typeof got === 'string') continue;
    if (got.f.v2) return true;
    // A v1 frame has no checksum: only its length can say it is whole, so it counts only when it ends the file
    // exactly or another frame follows it.
    const end = got.f.payloadAt + got.f.len;
    if (end === r.size) return true;
    const next = end + 4 <= r.size ? r.read(end, 4) : null;
    if (next && (next.equals(MAGIC_V1) || next.equals(MAGIC_V2))) return true;
  }
  return false;
}

export function blockRecord(b: StoredBlock): Buffer {
  const { bytes, fees, real } = b;
  const payload = Buffer.alloc(1 + 4 + bytes.length + 4 + 9 * fees.length);
  let o = payload.writeUInt8(REC_BLOCK, 0);
  o = payload.writeUInt32LE(bytes.length, o);
  o += bytes.copy(payload, o);
  o = payload.writeUInt32LE(fees.length, o);
  for (const fee of fees) o = payload.writeBigInt64LE(BigInt(fee), o);
  for (let i = 0; i < fees.length; i++) o = payload.writeUInt8(real?.[i] ? 1 : 0, o);
  return frame(payload);
}

export function headerRecord(header: Buffer, nTx: number, size: number): Buffer {
  const payload = Buffer.alloc(1 + 80 + 8);
  payload.writeUInt8(REC_HEADER, 0);
  header.copy(payload, 1);
  payload.writeUInt32LE(nTx, 81);
  payload.writeUInt32LE(size, 85);
  return frame(payload);
}

export function invalidRecord(hash: Buffer, reason: string): Buffer {
  return frame(Buffer.concat([Buffer.from([REC_INVALID]), hash, Buffer.from(reason, 'utf8')]));
}

/** CompactSize at `at`, or null when it does not fit in `b`. */
function compactSize(b: Buffer, at: number): number | null {
  if (at >= b.length) return null;
  const first = b[at];
  if (first < 0xfd) return first;
  if (first === 0xfd) return at + 3 <= b.length ? b.readUInt16LE(at + 1) : null;
  if (first === 0xfe) return at + 5 <= b.length ? b.readUInt32LE(at + 1) : null;
  return null; // more than 2^32 transactions: not a block
}

function parseHead(p: Buffer, offset: number): RecordHead | null {
  const type = p[0];
  const len = p.length;
  if (type === REC_BLOCK || type === REC_BLOCK_V1) {
    if (len < 1 + 4 + 80 + 1 + 4) return null;
    const blockLen = p.readUInt32LE(1);
    if (blockLen < 81 || 1 + 4 + blockLen + 4 > len) return null;
    const nTx = compactSize(p, 85);
    if (nTx === null) return null;
    const countAt = 5 + blockLen;
    const count = p.readUInt32LE(countAt);
    if (len !== countAt + 4 + (type === REC_BLOCK ? 9 : 8) * count) return null;
    return { type: REC_BLOCK, offset, header: Buffer.from(p.subarray(5, 85)), nTx, size: blockLen };
  }
  if (type === REC_HEADER) {
    if (len !== 89) return null;
    return { type, offset, header: Buffer.from(p.subarray(1, 81)), nTx: p.readUInt32LE(81), size: p.readUInt32LE(85) };
  }
  if (type === REC_INVALID) {
    if (len < 33) return null;
    return { type, offset, hash: Buffer.from(p.subarray(1, 33)), reason: p.subarray(33).toString('utf8') };
  }
  return null;
}

/** Reads a file in 4 MiB windows (a scan goes through it front to back). */
class ChunkReader {
  private fd: number | null;
  readonly size: number;
  private buf = Buffer.alloc(0);
  private start = 0;

  constructor(file: string) {
    try {
      this.fd = openSync(file, 'r');
    } catch (err) {
      throw new ChainDataError(`embedded chain: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 'check the permissions of the data dir');
    }
    this.size = fstatSync(this.fd).size;
  }

  read(offset: number, len: number): Buffer {
    if (offset >= this.start && offset + len <= this.start + this.buf.length) {
      return this.buf.subarray(offset - this.start, offset - this.start + len);
    }
    const want = Math.max(len, 4 << 20);
    const buf = Buffer.alloc(Math.max(0, Math.min(want, this.size - offset)));
    let got = 0;
    while (got < buf.length) {
      const n = readSync(this.fd as number, buf, got, buf.length - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    this.buf = buf.subarray(0, got);
    this.start = offset;
    return this.buf.subarray(0, len);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  closeQuietly(): void {
    try { this.close(); } catch { /* already closed */ }
  }
}
