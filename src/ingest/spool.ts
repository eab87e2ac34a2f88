import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { acquireLock } from '../store/lockfile.ts';

// The spool: an append-only write-ahead log of share and block events in numbered segment files
// (000000000001.spool, …). A line is written with one write(2) before the pool answers the miner, so it is in
// the OS page cache (surviving a crash of this process) before the miner can see "accepted"; fdatasync runs on
// a short interval (and at once for blocks) for power loss. A checkpoint file records how far the database
// has committed; segments wholly before it are deleted.

export interface Position {
  seg: number;
  off: number;
}

export function cmpPos(a: Position, b: Position): number {
  return a.seg !== b.seg ? a.seg - b.seg : a.off - b.off;
}

export interface SpoolLine {
  readonly text: string;
  /** Offset of the line's first byte, in the segment of `end` (a line never spans two). */
  start: number;
  /** Position just after this line's newline. */
  end: Position;
}

/**
 * A line as read() returns it: where it lies in the bytes read (`off`, `len`, without the newline), its text made
 * only when asked. The ingest writer reads the spool back 5,000 lines at a time and copies share rows to the
 * database as these bytes: made at the read, 5,000 strings lived through the batch's decode and its COPY, long
 * enough to be promoted out of V8's young generation (with a full queue at 50k shares/s, RSS per connection fell by
 * about a third without them).
 */
export class ReadLine implements SpoolLine {
  constructor(
    readonly bytes: Buffer,
    readonly off: number,
    readonly len: number,
    readonly start: number,
    readonly end: Position,
  ) {}

  get text(): string {
    return this.bytes.toString('utf8', this.off, this.off + this.len);
  }
}

/** The file operations the spool does where a fault can hit; tests inject failures (EIO, ENOSPC, EMFILE). */
export interface SpoolIo {
  write(fd: number, buf: Buffer, offset: number, length: number): number;
  openRead(file: string): Promise<fs.promises.FileHandle>;
  /** Open a segment for appending (a new one at start and at each rotation). */
  openAppend(file: string): number;
  /** Delete a committed segment (setCheckpoint). */
  remove(file: string): Promise<void>;
}

const REAL_IO: SpoolIo = {
  write: (fd, buf, offset, length) => fs.writeSync(fd, buf, offset, length),
  openRead: (file) => fs.promises.open(file, 'r'),
  openAppend: (file) => fs.openSync(file, 'a'),
  remove: (file) => fs.promises.rm(file, { force: true }),
};

/** A segment of `size` bytes lies wholly before position `p` (all its lines are committed once `p` is). */
function whollyBefore(seg: number, size: number, p: Position): boolean {
  return seg < p.seg || (seg === p.seg && p.off >= size);
}

/** A segment the spool knew of is gone from the disk (deleted by hand, a bad fsck): its events cannot be read. */
export class MissingSegmentError extends Error {
  constructor(readonly seg: number, readonly file: string) {
    super(`spool segment ${file} is missing`);
    this.name = 'MissingSegmentError';
  }
}

export interface SpoolOptions {
  /** Rotate to a new segment past this size. */
  segmentBytes?: number;
  /** fdatasync the current segment this often when it has unsynced writes; 0 = on every append. */
  fsyncMs?: number;
  logger?: Logger;
  io?: Partial<SpoolIo>;
}

const SEG_RE = /^(\d{12})\.spool$/;
const CHUNK = 1 << 20;

function segName(seg: number): string {
  return `${String(seg).padStart(12, '0')}.spool`;
}

export class Spool {
  /** Where the next line goes. Every byte before it is a complete line. */
  head: Position;
  /** The last persisted checkpoint; null when none was ever written (replay starts at the first segment). */
  checkpoint: Position | null;
  /** Closed segments' usable sizes, and the head's (= head.off). */
  private readonly sizes = new Map<number, number>();
  /** Sum of sizes: bytes of segments on disk, kept up to date for the per-share budget check. */
  private total = 0;
  private fd: number;
  /** Finished segments being synced and closed in the thread pool (see rotate); close waits for them. */
  private readonly retiring = new Set<Promise<void>>();
  /** A failed write left bytes that could not be truncated away: the next append starts a new segment. */
  private needsRotate = false;
  /** The last failed append may have left some of its own bytes in a segment (see failedWriteLeftBytes). */
  private lastFailureLeftBytes = false;
  private readonly io: SpoolIo;
  private dirty = false;
  private syncing = false;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private checkpointWrite: Promise<void> = Promise.resolve();
  readonly dir: string;
  private readonly unlock: () => void;
  private readonly segmentBytes: number;
  private readonly fsyncMs: number;
  private readonly log?: Logger;

  /** Open (creating) the spool in dir: take its lock, find the segments, start a fresh head segment. */
  constructor(dir: string, opts: SpoolOptions = {}) {
    this.dir = path.resolve(dir);
    this.segmentBytes = opts.segmentBytes ?? 64 * 1024 * 1024;
    this.fsyncMs = opts.fsyncMs ?? 100;
    this.log = opts.logger;
    this.io = { ...REAL_IO, ...opts.io };
    fs.mkdirSync(this.dir, { recursive: true });
    this.unlock = acquireLock(path.join(this.dir, 'spool.lock'), `the spool ${this.dir}`);
    try {
      for (const f of fs.readdirSync(this.dir)) {
        const m = SEG_RE.exec(f);
        if (m) this.setSize(Number(m[1]), fs.statSync(path.join(this.dir, f)).size);
      }
      this.checkpoint = this.readCheckpoint();
      this.dropCommitted();
      const last = Math.max(0, ...this.sizes.keys(), this.checkpoint?.seg ?? 0);
      // Always a new segment: never append after a line a crash may have torn.
      this.head = { seg: last + 1, off: 0 };
      this.fd = this.io.openAppend(path.join(this.dir, segName(this.head.seg)));
      this.setSize(this.head.seg, 0);
    } catch (e) {
      this.unlock();
      throw e;
    }
    if (this.fsyncMs > 0) {
      this.timer = setInterval(() => this.syncSoon(), this.fsyncMs);
      this.timer.unref();
    }
  }

  private readCheckpoint(): Position | null {
    const file = path.join(this.dir, 'checkpoint.json');
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    try {
      const p = JSON.parse(text) as Position;
      if (Number.isInteger(p.seg) && Number.isInteger(p.off) && p.seg >= 0 && p.off >= 0) return { seg: p.seg, off: p.off };
    } catch { /* fall through */ }
    // Replaying more than needed is harmless (writes are idempotent); skipping is not. Start from the first segment.
    this.log?.warn({ file }, 'spool checkpoint unreadable: replaying every segment (idempotent)');
    return null;
  }

  /** Where a replay starts: the checkpoint, or the first segment (the head when there is nothing to replay). */
  replayFrom(): Position {
    return this.normalize(this.checkpoint ?? { seg: 0, off: 0 });
  }

  /** Delete segment files wholly before the checkpoint (sync; at open). */
  private dropCommitted(): void {
    const cp = this.checkpoint;
    if (!cp) return;
    for (const [seg, size] of [...this.sizes]) {
      if (whollyBefore(seg, size, cp)) {
        fs.rmSync(path.join(this.dir, segName(seg)), { force: true });
        this.deleteSize(seg);
      }
    }
  }

  private setSize(seg: number, size: number): void {
    this.total += size - (this.sizes.get(seg) ?? 0);
    this.sizes.set(seg, size);
  }

  private deleteSize(seg: number): void {
    this.total -= this.sizes.get(seg) ?? 0;
    this.sizes.delete(seg);
  }

  /** Bytes of all segment files on disk (committed or not). O(1): checked before every share. */
  get diskBytes(): number {
    return this.total;
  }

  /**
   * Append one line (ending in \n), or several, synchronously. Returns where it starts and ends, and the bytes
   * written (nothing writes into that Buffer again: the caller may keep it). Throws on I/O errors; the caller
   * decides what to do. A failed write is truncated away (a partial line must not glue onto the next one); only
   * if that fails too does the next append start a new segment. (It used to rotate on every failure: on a full
   * disk, 1,000 failed appends made 1,001 files.)
   */
  append(line: string, opts: { sync?: boolean } = {}): { start: Position; end: Position; bytes: Buffer } {
    if (this.closed) throw new Error('spool is closed');
    if (this.needsRotate || this.head.off >= this.segmentBytes) {
      // A rotation that fails wrote none of this line (a segment cannot be opened: too many files, a full
      // directory); the next append tries again.
      this.lastFailureLeftBytes = false;
      this.rotate(opts.sync === true || this.fsyncMs === 0);
      this.needsRotate = false;
    }
    const buf = Buffer.from(line, 'utf8');
    const start = { ...this.head };
    try {
      let done = 0;
      while (done < buf.length) done += this.io.write(this.fd, buf, done, buf.length - done);
      if (opts.sync || this.fsyncMs === 0) fs.fdatasyncSync(this.fd);
      else this.dirty = true;
    } catch (e) {
      try {
        fs.ftruncateSync(this.fd, start.off);
        this.lastFailureLeftBytes = false;
      } catch {
        this.needsRotate = true;
        this.lastFailureLeftBytes = true;
      }
      throw e;
    }
    this.head = { seg: start.seg, off: start.off + buf.length };
    this.setSize(this.head.seg, this.head.off);
    return { start, end: { ...this.head }, bytes: buf };
  }

  /**
   * Start a new segment; the old one is synced and closed in the thread pool (retiring), or here when the append
   * that rotates asks for a sync (`syncNow`). Throws only when the new segment cannot be opened (then nothing
   * changed). A failed sync of the old one is logged, as a failed interval sync is: its lines were written, and the
   * markers a caller needed durable were synced when they were written.
   */
  private rotate(syncNow: boolean): void {
    const old = this.fd;
    const next = this.head.seg + 1;
    this.fd = this.io.openAppend(path.join(this.dir, segName(next)));
    this.head = { seg: next, off: 0 };
    this.setSize(next, 0);
    // Logged, not thrown: the old segment's lines were written; a deferred write error is worth knowing of.
    const failed = (step: 'fdatasync' | 'close', err: Error | null) => {
      if (err) this.log?.error({ err: err.message, seg: next - 1 }, `spool ${step} of a finished segment failed`);
    };
    if (syncNow) {
      // A synced line makes every line before it durable (the route meter's flush marker vouches for the counts
      // before it): those in the old segment too, before this append returns.
      try {
        fs.fdatasyncSync(old);
      } catch (e) {
        failed('fdatasync', e as Error);
      } finally {
        try {
          fs.closeSync(old);
        } catch (e) {
          failed('close', e as Error);
        }
      }
      return;
    }
    // Not fdatasyncSync here: a sync waits for the filesystem's journal, which can take tens of milliseconds or more
    // while the database writes to the same disk, and on this thread every miner's answer would wait behind it once
    // per segment. The old segment's lines are as durable meanwhile as the interval sync makes any line. An
    // interval fdatasync may still be running on the old fd too; it finishes before this close can release the
    // descriptor (the kernel holds the file for the call), or fails with EBADF, which it ignores.
    const retired = new Promise<void>((resolve) => {
      fs.fdatasync(old, (err) => {
        failed('fdatasync', err);
        fs.close(old, (e) => {
          failed('close', e);
          this.retiring.delete(retired);
          resolve();
        });
      });
    });
    this.retiring.add(retired);
  }

  private syncSoon(): void {
    if (!this.dirty || this.syncing || this.closed) return;
    this.dirty = false;
    this.syncing = true;
    fs.fdatasync(this.fd, (err) => {
      this.syncing = false;
      if (err && err.code !== 'EBADF') {
        this.dirty = true;
        this.log?.error({ err: err.message }, 'spool fdatasync failed');
      }
    });
  }

  /**
   * Read up to maxLines complete lines from `from`, not beyond `limit` (default: the head now). Skips a torn
   * last line of a closed segment (a crash mid-write; that event was never acknowledged). `next` is where the
   * following read continues.
   */
  async read(from: Position, maxLines: number, limit: Position = { ...this.head }): Promise<{ lines: ReadLine[]; next: Position; torn: number }> {
    const lines: ReadLine[] = [];
    let pos = this.normalize(from);
    let torn = 0;
    while (lines.length < maxLines && cmpPos(pos, limit) < 0) {
      const end = pos.seg === limit.seg ? limit.off : (this.sizes.get(pos.seg) ?? 0);
      if (pos.off >= end) {
        if (pos.seg >= limit.seg) break;
        pos = this.normalize({ seg: pos.seg + 1, off: 0 });
        continue;
      }
      const file = path.join(this.dir, segName(pos.seg));
      let fh: fs.promises.FileHandle;
      try {
        fh = await this.io.openRead(file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new MissingSegmentError(pos.seg, file);
        throw e;
      }
      try {
        while (lines.length < maxLines && pos.off < end) {
          let size = Math.min(CHUNK, end - pos.off);
          let buf = Buffer.allocUnsafe(size);
          let got = (await fh.read(buf, 0, size, pos.off)).bytesRead;
          // (lastIndexOf with -1 would search the whole unfilled buffer from its end.)
          let nl = got > 0 ? buf.lastIndexOf(10, got - 1) : -1;
          // A line longer than the chunk (a block's hex): read more until it ends. A read that brings nothing new is
          // the file's end, short of the size the spool recorded (cut by hand): the rest reads as a torn line below.
          for (let before = -1; nl === -1 && got > before && pos.off + got < end;) {
            before = got;
            size = Math.min(size * 2, end - pos.off);
            buf = Buffer.allocUnsafe(size);
            got = (await fh.read(buf, 0, size, pos.off)).bytesRead;
            nl = got > 0 ? buf.lastIndexOf(10, got - 1) : -1;
          }
          if (nl === -1) {
            // Bytes up to the segment's end with no newline: a torn write. Skip them.
            torn++;
            this.log?.warn({ segment: pos.seg, offset: pos.off, bytes: end - pos.off }, 'spool: skipping a torn last line');
            pos = { seg: pos.seg, off: end };
            break;
          }
          let at = 0;
          while (at <= nl && lines.length < maxLines) {
            const e = buf.indexOf(10, at);
            // buf is this read's own (allocUnsafe of 4 KB or more is never pooled; below that, a pool slice no later
            // allocation reuses), so the lines may keep pointing into it.
            lines.push(new ReadLine(buf, at, e - at, pos.off + at, { seg: pos.seg, off: pos.off + e + 1 }));
            at = e + 1;
          }
          pos = { seg: pos.seg, off: pos.off + at };
        }
      } finally {
        await fh.close();
      }
    }
    return { lines, next: pos, torn };
  }

  /** The bytes of a segment between two offsets, as they are on disk (a line that does not read back, kept whole). */
  async readBytes(seg: number, start: number, end: number): Promise<Buffer> {
    const fh = await this.io.openRead(path.join(this.dir, segName(seg)));
    try {
      const buf = Buffer.alloc(Math.max(0, end - start));
      const { bytesRead } = await fh.read(buf, 0, buf.length, start);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  /** A position inside an existing segment (or the head): skips segments deleted or never written. */
  private normalize(p: Position): Position {
    if (this.sizes.has(p.seg)) return p;
    let best: number | null = null;
    for (const s of this.sizes.keys()) if (s > p.seg && (best === null || s < best)) best = s;
    return best === null ? { ...this.head } : { seg: best, off: 0 };
  }

  /**
   * Record that everything before `pos` is committed to the database: persist it (write + rename: a torn
   * checkpoint file is impossible, a stale one only means a longer, idempotent replay), then delete segments
   * wholly before it.
   */
  setCheckpoint(pos: Position): Promise<void> {
    const run = async (): Promise<void> => {
      if (this.checkpoint && cmpPos(pos, this.checkpoint) <= 0) return;
      const file = path.join(this.dir, 'checkpoint.json');
      await fs.promises.writeFile(`${file}.tmp`, JSON.stringify({ seg: pos.seg, off: pos.off, at: new Date().toISOString() }));
      await fs.promises.rename(`${file}.tmp`, file);
      this.checkpoint = { ...pos };
      // Which segments are done is decided at one moment, from their sizes and the head as they are then: the head
      // may fill and rotate while a file is being removed, and a segment judged by the size it had before (the head
      // then) would be deleted with the lines appended to it since. Only the head grows, so a segment done now stays done.
      const done: number[] = [];
      for (const [seg, size] of this.sizes) {
        if (whollyBefore(seg, size, pos) && seg !== this.head.seg) done.push(seg);
      }
      for (const seg of done) {
        this.deleteSize(seg);
        await this.io.remove(path.join(this.dir, segName(seg)));
      }
    };
    // Serialized: two overlapping writes of the same tmp file could rename a stale one last.
    this.checkpointWrite = this.checkpointWrite.then(run, run);
    return this.checkpointWrite;
  }

  /** When a segment file was created (ms), where the filesystem records it; null otherwise. */
  createdAt(seg: number): number | null {
    try {
      const st = fs.statSync(path.join(this.dir, segName(seg)));
      return st.birthtimeMs > 0 ? st.birthtimeMs : null;
    } catch {
      return null;
    }
  }

  /**
   * Give up on a segment that is gone from the disk (MissingSegmentError): reads continue with the next one.
   * Returns the bytes of events lost with it.
   */
  forgetSegment(seg: number): number {
    if (seg === this.head.seg) return 0;
    const bytes = this.sizes.get(seg) ?? 0;
    this.deleteSize(seg);
    return bytes;
  }

  /** Bytes after the checkpoint (not yet in the database), bytes on disk, segment files. */
  usage(): { pendingBytes: number; diskBytes: number; segments: number } {
    const from = this.checkpoint ?? { seg: 0, off: 0 };
    let pending = 0;
    let disk = 0;
    for (const [seg, size] of this.sizes) {
      disk += size;
      if (seg > from.seg) pending += size;
      else if (seg === from.seg) pending += Math.max(0, size - from.off);
    }
    return { pendingBytes: pending, diskBytes: disk, segments: this.sizes.size };
  }

  /** Sync and close the head segment (deleted if empty), release the lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.checkpointWrite.catch(() => undefined);
    await Promise.all(this.retiring);
    try {
      fs.fdatasyncSync(this.fd);
    } finally {
      fs.closeSync(this.fd);
      const committed = this.checkpoint !== null && cmpPos(this.checkpoint, this.head) >= 0;
      if (this.head.off === 0 || committed) {
        fs.rmSync(path.join(this.dir, segName(this.head.seg)), { force: true });
        this.deleteSize(this.head.seg);
      }
      this.unlock();
    }
  }

  /** Whether the spool knows segment `seg` (it may still be missing from the disk: reading it says so). */
  hasSegment(seg: number): boolean {
    return this.sizes.has(seg);
  }

  /**
   * The last failed append may have left some of its bytes in a segment (they could not be cut away). False when
   * it wrote nothing (its rotation to a new segment failed) or its bytes were cut away.
   */
  get failedWriteLeftBytes(): boolean {
    return this.lastFailureLeftBytes;
  }

  get isClosed(): boolean {
    return this.closed;
  }
}
