// Crash safety shared by the embedded chain's files: checksummed record frames for append-only files (so a torn
// tail, the one write a crash interrupted, is told apart from damage in the middle), and whole-file replacement
// that is atomic (temporary file, fsync, rename, fsync of the directory), as Core writes its cookie and peers.dat.

import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import path from 'node:path';

/** Core's regtest block-file magic: the first records of blocks.dat had no checksum (still read). */
export const MAGIC_V1 = Buffer.from('fabfb5da', 'hex');
/** Checksummed frames: magic ‖ payload length (u32 LE) ‖ checksum (first 4 bytes of SHA-256(payload)) ‖ payload. */
export const MAGIC_V2 = Buffer.from('48484232', 'hex'); // "HHB2"
export const FRAME_V1 = 8;
export const FRAME_V2 = 12;

export function checksum(payload: Buffer): Buffer {
  return createHash('sha256').update(payload).digest().subarray(0, 4);
}

/** A checksummed record. */
export function frame(payload: Buffer): Buffer {
  const f = Buffer.alloc(FRAME_V2);
  MAGIC_V2.copy(f, 0);
  f.writeUInt32LE(payload.length, 4);
  checksum(payload).copy(f, 8);
  return Buffer.concat([f, payload]);
}

/** fsync of a directory, so a rename or a new file in it survives a power cut (not possible on every platform). */
export function fsyncDir(dir: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Windows cannot open a directory; there the rename is as durable as the platform makes it.
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

/**
 * Replaces `file` with `chunks` atomically: a reader (or a restart after a crash at any point) sees the old file
 * or the new one, whole. Returns the bytes written.
 */
export function writeFileAtomic(file: string, chunks: Iterable<Buffer>, mode?: number): number {
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', mode);
  let size = 0;
  try {
    const batch: Buffer[] = [];
    let batchBytes = 0;
    const flush = (): void => {
      const buf = Buffer.concat(batch);
      for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off);
      size += buf.length;
      batch.length = 0;
      batchBytes = 0;
    };
    for (const c of chunks) {
      batch.push(c);
      batchBytes += c.length;
      if (batchBytes >= 1 << 20) flush();
    }
    if (batch.length) flush();
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  fsyncDir(path.dirname(file));
  return size;
}

/** Writes all of `buf` at the end of the file behind `fd` (a short write is continued, not left torn). */
export function appendAll(fd: number, buf: Buffer): void {
  for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off);
}
