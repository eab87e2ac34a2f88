import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { acquireLock } from '../store/lockfile.ts';

// The block journal: found blocks, durable before anything else happens to them. One JSON line per record in
// <dir>/blocks.journal, written with write(2) + fdatasync in the same event-loop turn as the submitblock that
// sent the block, so a crash at any later instant leaves the block on disk to resubmit (and a crash before it
// leaves the block with the node, where the start-up chain scan finds it).
//
// It is separate from the share spool: the spool's disk budget may refuse shares, never blocks. A reserve file
// (zeros, really written, so the space is allocated) is kept beside the journal and given back to the
// filesystem when a block record hits ENOSPC, so the record that matters most fits on a full disk.

export interface JournalCandidate {
  t: 'candidate';
  hash: string;
  height: number;
  prevHash: string;
  account: string;
  worker: string;
  /** Satoshis (decimal string: JSON has no bigint). */
  reward: string;
  hex: string;
  time: number;
}

export interface JournalAnswer {
  t: 'answer';
  hash: string;
  time: number;
  endpoint: string;
  /** null = the node accepted it; otherwise its reason, or "error: …" for a call that got no answer. */
  answer: string | null;
}

export interface JournalStatus {
  t: 'status';
  hash: string;
  time: number;
  status: string;
  result: string | null;
  confirmations: number;
  settled: boolean;
  attempts: number;
}

export type JournalRecord = JournalCandidate | JournalAnswer | JournalStatus;

/** A block as the journal knows it after replay: its candidate record and its latest status. */
export interface JournalBlock {
  candidate: JournalCandidate;
  status: JournalStatus | null;
}

export interface BlockJournalOptions {
  /** Bytes of the reserve file kept for block records on a full disk. Default 32 MiB (a full block is ≤ 8 MB of hex). */
  reserveBytes?: number;
  /** Rewrite the file without settled blocks once it holds this many records. Default 10,000. */
  compactAfterRecords?: number;
  logger?: Logger;
}

const FILE = 'blocks.journal';
const RESERVE = 'blocks.reserve';

export class BlockJournal {
  readonly dir: string;
  private fd: number;
  private records = 0;
  private readonly blocks = new Map<string, JournalBlock>();
  private readonly unlock: () => void;
  private readonly reserveBytes: number;
  private readonly compactAfter: number;
  private readonly log?: Logger;
  private dirty = false;
  private closed = false;

  constructor(dir: string, opts: BlockJournalOptions = {}) {
    this.dir = path.resolve(dir);
    this.reserveBytes = opts.reserveBytes ?? 32 * 1024 * 1024;
    this.compactAfter = opts.compactAfterRecords ?? 10_000;
    this.log = opts.logger;
    fs.mkdirSync(this.dir, { recursive: true });
    this.unlock = acquireLock(path.join(this.dir, 'blocks.lock'), `block journal ${this.dir} (give each pool process its own data dir)`);
    try {
      this.load();
      this.fd = fs.openSync(path.join(this.dir, FILE), 'a');
      this.ensureReserve();
    } catch (e) {
      this.unlock();
      throw e;
    }
  }

  /** Every block the journal knows that is not settled, in the order they were found. */
  unsettled(): JournalBlock[] {
    return [...this.blocks.values()].filter((b) => !b.status?.settled);
  }

  get(hash: string): JournalBlock | undefined {
    return this.blocks.get(hash);
  }

  /**
   * The block record: written and (unless `sync` is false) fdatasync'ed before returning. Throws only if the disk
   * refuses it twice. Unsynced records are in the page cache (a process crash keeps them) until sync().
   */
  appendCandidate(c: Omit<JournalCandidate, 't'>, sync = true): void {
    const rec: JournalCandidate = { t: 'candidate', ...c };
    this.write(rec, sync);
    if (!this.blocks.has(c.hash)) this.blocks.set(c.hash, { candidate: rec, status: null });
  }

  /** Node answers and status changes: written at once, synced with the next candidate or sync(). */
  appendAnswer(a: Omit<JournalAnswer, 't'>): void {
    this.write({ t: 'answer', ...a }, false);
  }

  appendStatus(s: Omit<JournalStatus, 't'>): void {
    const rec: JournalStatus = { t: 'status', ...s };
    this.write(rec, false);
    const b = this.blocks.get(s.hash);
    if (b) b.status = rec;
    if (s.settled && this.records >= this.compactAfter) this.compact();
  }

  /** fdatasync pending answer/status records (periodically, and at close). */
  sync(): void {
    if (!this.dirty || this.closed) return;
    try {
      fs.fdatasyncSync(this.fd);
      this.dirty = false;
    } catch (err) {
      this.log?.error({ err: (err as Error).message }, 'block journal fdatasync failed');
    }
  }

  close(): void {
    if (this.closed) return;
    this.sync();
    this.closed = true;
    fs.closeSync(this.fd);
    this.unlock();
  }

  // ---- internals -------------------------------------------------------------------------------------------

  private write(rec: JournalRecord, sync: boolean): void {
    if (this.closed) throw new Error('block journal is closed');
    const buf = Buffer.from(JSON.stringify(rec) + '\n');
    // Where this record starts: a disk that fills in the middle of it leaves a short write, which is cut off
    // before the retry (a torn prefix in front of the retried record would make its whole line unreadable).
    const start = fs.fstatSync(this.fd).size;
    try {
      this.writeAll(buf, sync);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      fs.ftruncateSync(this.fd, start);
      if (!this.releaseReserve()) throw err;
      this.writeAll(buf, sync);
    }
    this.records++;
    if (!sync) this.dirty = true;
  }

  private writeAll(buf: Buffer, sync: boolean): void {
    // A short write leaves a torn line: load() skips a torn last line, and nothing is appended after it
    // within this process without a newline first.
    let done = 0;
    while (done < buf.length) done += fs.writeSync(this.fd, buf, done, buf.length - done);
    if (sync) {
      fs.fdatasyncSync(this.fd);
      this.dirty = false;
    }
  }

  /** Give the reserve back to the filesystem; true if there was one. */
  private releaseReserve(): boolean {
    const file = path.join(this.dir, RESERVE);
    try {
      if (fs.statSync(file).size === 0) return false;
      fs.truncateSync(file, 0);
      this.log?.error({ dir: this.dir }, 'disk full: released the block reserve to record a block; free disk space');
      return true;
    } catch {
      return false;
    }
  }

  /** (Re)create the reserve when it is missing or short: real bytes, so the blocks are really allocated. */
  ensureReserve(): void {
    if (this.reserveBytes <= 0) return;
    const file = path.join(this.dir, RESERVE);
    let size = 0;
    try { size = fs.statSync(file).size; } catch { /* missing */ }
    if (size >= this.reserveBytes) return;
    let fd: number | null = null;
    try {
      fd = fs.openSync(file, 'w');
      const chunk = Buffer.alloc(Math.min(this.reserveBytes, 1 << 20));
      for (let off = 0; off < this.reserveBytes; off += chunk.length) {
        fs.writeSync(fd, chunk, 0, Math.min(chunk.length, this.reserveBytes - off));
      }
      fs.fdatasyncSync(fd);
    } catch (err) {
      // No room for it now: the journal still works; the reserve comes back when space does.
      fs.rmSync(file, { force: true });
      this.log?.warn({ err: (err as Error).message, dir: this.dir }, 'cannot allocate the block reserve (disk full?)');
    } finally {
      if (fd !== null) fs.closeSync(fd);
    }
  }

  private load(): void {
    const file = path.join(this.dir, FILE);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new Error(`cannot read the block journal ${file}: ${(e as Error).message}`);
    }
    const lines = text.split('\n');
    // The last element is '' after a final newline, or a line torn by a crash: either way not a record.
    const torn = lines.pop();
    if (torn) this.log?.warn({ file, bytes: torn.length }, 'block journal: ignoring a torn last line');
    for (const [i, line] of lines.entries()) {
      if (!line) continue;
      let rec: JournalRecord;
      try {
        rec = JSON.parse(line) as JournalRecord;
      } catch {
        this.log?.error({ file, line: i + 1 }, 'block journal: skipping an unreadable line');
        continue;
      }
      this.records++;
      if (rec.t === 'candidate') {
        if (!this.blocks.has(rec.hash)) this.blocks.set(rec.hash, { candidate: rec, status: null });
      } else if (rec.t === 'status') {
        const b = this.blocks.get(rec.hash);
        if (b) b.status = rec;
      }
    }
    if (torn) {
      // Cut the torn tail so the next record starts on a line of its own.
      fs.truncateSync(file, Buffer.byteLength(text) - Buffer.byteLength(torn));
    }
  }

  /** Rewrite the journal with only the unsettled blocks (atomically: temp file, fsync, rename, fsync dir). */
  private compact(): void {
    const keep = this.unsettled();
    const tmp = path.join(this.dir, `${FILE}.tmp`);
    const lines = keep.flatMap((b) => [b.candidate, ...(b.status ? [b.status] : [])]).map((r) => JSON.stringify(r) + '\n');
    try {
      fs.writeFileSync(tmp, lines.join(''));
      const tfd = fs.openSync(tmp, 'r+');
      fs.fdatasyncSync(tfd);
      fs.closeSync(tfd);
      fs.renameSync(tmp, path.join(this.dir, FILE));
      const dfd = fs.openSync(this.dir, 'r');
      fs.fsyncSync(dfd);
      fs.closeSync(dfd);
    } catch (err) {
      this.log?.warn({ err: (err as Error).message }, 'block journal compaction failed; the journal keeps growing');
      fs.rmSync(tmp, { force: true });
      return;
    }
    // The old descriptor points at the replaced file: appends go to the new one from here.
    fs.closeSync(this.fd);
    this.fd = fs.openSync(path.join(this.dir, FILE), 'a');
    for (const [hash, b] of this.blocks) if (b.status?.settled) this.blocks.delete(hash);
    this.records = lines.length;
  }
}

/**
 * A journal whose unsettled blocks another took over (BlockTracker.adoptJournal), set aside: renamed (kept for
 * inspection, and never taken up again: only `<journal>-<n>` directories are), its reserve file given back.
 */
export function retireJournalDir(dir: string): string {
  fs.rmSync(path.join(dir, RESERVE), { force: true });
  const to = `${dir}.retired-${Date.now()}`;
  fs.renameSync(dir, to);
  return to;
}
