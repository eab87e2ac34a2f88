import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { StorageRefusalReason, StorageState } from '../shares/events.ts';

// The spool's disk budget. A share the pool cannot store must not be credited: rather than accepting work into
// memory it cannot keep (what happened on a full disk), the pool asks here first and refuses shares with a
// clear Stratum error while the budget or the disk is full. Block events are never refused: they have a margin
// of the budget kept for them, and a preallocated reserve file in the spool directory that is deleted to make
// room when the disk itself is full.

export interface DiskBudgetOptions {
  /** Segments on disk may use this much; shares are refused once it is reached (less the block margin). 0 = no budget. */
  maxBytes: number;
  /** The part of maxBytes only block events may use. */
  blockMarginBytes: number;
  /** Refuse shares when the filesystem has less free space than this. 0 = only an actual ENOSPC refuses. */
  minFreeBytes: number;
  /** Size of the reserve file kept for block events (deleted on ENOSPC, recreated when space is back). 0 = none. */
  reserveFileBytes: number;
  /** Free-space check interval, ms. */
  checkMs: number;
  /** After a failed write, shares are refused for this long at first, doubling per failure up to retryMaxMs. */
  retryMinMs: number;
  retryMaxMs: number;
  logger?: Logger;
  /** For tests: the free space the filesystem reports, bytes. Default fs.statfsSync (a cheap syscall). */
  freeSpace?: (dir: string) => number;
}

export const DEFAULT_DISK_BUDGET: Omit<DiskBudgetOptions, 'logger' | 'freeSpace'> = {
  maxBytes: 8 * 1024 ** 3,
  blockMarginBytes: 64 * 1024 ** 2,
  minFreeBytes: 256 * 1024 ** 2,
  reserveFileBytes: 16 * 1024 ** 2,
  checkMs: 1000,
  retryMinMs: 1000,
  retryMaxMs: 60_000,
};

const RESERVE_FILE = 'block-reserve.bin';

function statfsFree(dir: string): number {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}

function mib(n: number): string {
  return n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(1)} GiB` : `${(n / 1024 ** 2).toFixed(1)} MiB`;
}

export class DiskBudget {
  private readonly o: DiskBudgetOptions;
  private readonly reservePath: string;
  /** Free bytes on the filesystem at the last check; null before the first. */
  freeBytes: number | null = null;
  private writeFailure: { code: string; message: string; at: number; until: number; streak: number } | null = null;
  private refusing: Exclude<StorageState, { accepting: true }> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private checking = false;
  private reserveHeld = false;
  /** Shares refused since refusing began (for the recovery log line), and in total. */
  private refusedNow = 0;
  refusedTotal = 0;

  constructor(private readonly dir: string, opts: Partial<DiskBudgetOptions> = {}) {
    this.o = { ...DEFAULT_DISK_BUDGET, ...opts };
    this.reservePath = path.join(dir, RESERVE_FILE);
    this.reserveHeld = this.o.reserveFileBytes > 0 && fileSize(this.reservePath) >= this.o.reserveFileBytes;
  }

  /** Take the first measurement now (so the first share is judged on facts), then check on a timer. */
  start(): void {
    this.measure();
    this.ensureReserveSync();
    this.timer = setInterval(() => void this.check(), this.o.checkMs);
    this.timer.unref();
  }

  private measure(): void {
    try {
      this.freeBytes = (this.o.freeSpace ?? statfsFree)(this.dir);
    } catch (err) {
      this.o.logger?.debug({ err: (err as Error).message, dir: this.dir }, 'cannot read the free space of the spool filesystem');
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  get limits(): { maxBytes: number; blockMarginBytes: number; minFreeBytes: number; reserveFileBytes: number } {
    const { maxBytes, blockMarginBytes, minFreeBytes, reserveFileBytes } = this.o;
    return { maxBytes, blockMarginBytes, minFreeBytes, reserveFileBytes };
  }

  get reserveFileHeld(): boolean { return this.reserveHeld; }

  /**
   * May a share of `lineBytes` be written, with `usedBytes` of segments on disk now? Tracks the state and logs
   * its changes (once per change, not per share).
   */
  admitShare(usedBytes: number, lineBytes: number, now = Date.now()): StorageState {
    const next = this.judge(usedBytes, lineBytes, now);
    if (next === null) {
      if (this.refusing) {
        this.o.logger?.info({ refused: this.refusedNow, reason: this.refusing.reason, forMs: now - this.refusing.since }, 'storage has room again: accepting shares');
        this.refusing = null;
        this.refusedNow = 0;
      }
      return { accepting: true };
    }
    if (!this.refusing || this.refusing.reason !== next.reason) {
      this.refusing = { accepting: false, ...next, since: this.refusing?.since ?? now };
      this.o.logger?.error({ reason: next.reason, dir: this.dir, usedBytes, freeBytes: this.freeBytes }, `${next.message}: refusing shares (miners are told they are not credited) until there is room; block candidates are still recorded`);
    } else {
      this.refusing.message = next.message;
    }
    return this.refusing;
  }

  /** Count a share the pool refused (the pool calls admitShare, then this when it answered with the refusal). */
  countRefused(): void {
    this.refusedNow++;
    this.refusedTotal++;
  }

  private judge(usedBytes: number, lineBytes: number, now: number): { reason: StorageRefusalReason; message: string } | null {
    const f = this.writeFailure;
    if (f && now < f.until) return { reason: 'write-failed', message: `spool writes fail (${f.code}: ${f.message})` };
    const { maxBytes, blockMarginBytes, minFreeBytes } = this.o;
    if (maxBytes > 0 && usedBytes + lineBytes > maxBytes - blockMarginBytes) {
      return { reason: 'budget', message: `spool budget reached (${mib(usedBytes)} of ${mib(maxBytes)}, ${mib(blockMarginBytes)} of it kept for blocks)` };
    }
    if (minFreeBytes > 0 && this.freeBytes !== null && this.freeBytes < minFreeBytes) {
      return { reason: 'disk-full', message: `disk almost full (${mib(this.freeBytes)} free, at least ${mib(minFreeBytes)} wanted)` };
    }
    return null;
  }

  /** A spool write failed: shares are refused for a back-off that doubles with each failure in a row. */
  onWriteError(err: NodeJS.ErrnoException, now = Date.now()): void {
    const streak = (this.writeFailure?.streak ?? 0) + 1;
    const wait = Math.min(this.o.retryMaxMs, this.o.retryMinMs * 2 ** Math.min(streak - 1, 20));
    this.writeFailure = { code: err.code ?? 'EIO', message: err.message, at: now, until: now + wait, streak };
  }

  onWriteOk(): void {
    this.writeFailure = null;
  }

  /** Delete the reserve file to make room for a block event (disk full). True if there was one. */
  releaseReserve(): boolean {
    if (!this.reserveHeld) return false;
    try {
      fs.rmSync(this.reservePath, { force: true });
    } catch { /* nothing more to free */ }
    this.reserveHeld = false;
    this.o.logger?.warn({ file: this.reservePath, bytes: this.o.reserveFileBytes }, 'disk full: released the block reserve file to record a block');
    return true;
  }

  /** Measure the free space; recreate the reserve file once there is room for it again. */
  async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      this.measure();
      if (!this.reserveHeld && this.o.reserveFileBytes > 0 && this.freeBytes !== null && this.freeBytes > this.o.reserveFileBytes + this.o.minFreeBytes) {
        await this.writeReserve();
      }
    } finally {
      this.checking = false;
    }
  }

  private ensureReserveSync(): void {
    if (this.reserveHeld || this.o.reserveFileBytes <= 0) return;
    if (this.freeBytes !== null && this.freeBytes < this.o.reserveFileBytes + this.o.minFreeBytes) return;
    try {
      // Written, not sparse: the blocks must really be taken to be of use when the disk is full. No fsync needed:
      // the filesystem reserves the space when write(2) returns (that is when it reports ENOSPC), and after a
      // crash the file's size is checked again.
      const fd = fs.openSync(this.reservePath, 'w');
      try {
        const chunk = Buffer.alloc(Math.min(this.o.reserveFileBytes, 1 << 20));
        for (let done = 0; done < this.o.reserveFileBytes;) done += fs.writeSync(fd, chunk, 0, Math.min(chunk.length, this.o.reserveFileBytes - done));
      } finally {
        fs.closeSync(fd);
      }
      this.reserveHeld = true;
    } catch (err) {
      fs.rmSync(this.reservePath, { force: true });
      this.o.logger?.warn({ err: (err as Error).message, file: this.reservePath }, 'cannot create the block reserve file (disk full?): blocks get no reserved room');
    }
  }

  private async writeReserve(): Promise<void> {
    const tmp = `${this.reservePath}.tmp`;
    try {
      await fs.promises.writeFile(tmp, Buffer.alloc(this.o.reserveFileBytes));
      await fs.promises.rename(tmp, this.reservePath);
      this.reserveHeld = true;
      this.o.logger?.info({ file: this.reservePath }, 'block reserve file recreated');
    } catch (err) {
      await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
      this.o.logger?.debug({ err: (err as Error).message }, 'block reserve file not recreated yet');
    }
  }
}

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}
