import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { type BlockEvent, InProcessShareLog, type ShareEvent } from '../shares/events.ts';
import { isConnectionError } from '../store/db.ts';
import type { IngestStats, ShareWriter } from '../store/types.ts';
import { type LogEvent, SpoolFormatError, decodeLine, encodeBlock, encodeShare } from './codec.ts';
import { type Position, Spool, cmpPos } from './spool.ts';

export interface DurableShareLogOptions {
  /** Spool directory (one per pool process). */
  dir: string;
  writer: ShareWriter;
  logger: Logger;
  /** Rotate spool segments past this size. Default 64 MiB. */
  segmentBytes?: number;
  /** fdatasync interval for the spool, ms. Default 100. Blocks are synced at once. */
  fsyncMs?: number;
  /** Flush a batch at this many events… Default 5000. */
  batchMax?: number;
  /** …or when its oldest event is this old, ms. Default 100. */
  flushMs?: number;
  /** Events held in memory; past it the writer reads them back from the spool. Default 100,000. */
  queueCapacity?: number;
  /** Retry back-off after a failed write: from retryMinMs doubling to retryMaxMs. Defaults 100 / 5000. */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** close() gives the writer this long to catch up; the rest stays in the spool for the next start. */
  closeTimeoutMs?: number;
  /** Extra per-share metadata for storage (the session's user agent), resolved off the hot path. */
  userAgents?: (sessionIds: Set<string>) => Map<string, string>;
  /** Called with each committed batch's duration, seconds (the API's DB write histogram). */
  onWrite?: (seconds: number) => void;
  onListenerError?: (err: unknown) => void;
}

interface Entry {
  ev: LogEvent;
  /** Spool position after this event's line; null if the spool write failed (memory only). */
  end: Position | null;
  at: number;
}

/** SQLSTATE classes a retry cannot fix: data exceptions and program limits. Such an event is set aside. */
function isPoison(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('54'));
}

/**
 * ShareLog with no loss. appendShare/appendBlock write the event to the spool synchronously (before the miner
 * is answered), hand it to in-process listeners, and queue it for a batch writer. The writer commits batches
 * through ShareWriter (idempotent on the share id / block hash) and only then advances the spool checkpoint.
 * When the database is down the writer retries with back-off while the spool keeps growing; when the memory
 * queue is full it reads the events back from the spool instead. On start it replays everything after the
 * checkpoint. Hence every appended event reaches the database exactly once: at least once by the checkpoint
 * rule, at most once by the idempotent writes.
 */
export class DurableShareLog extends InProcessShareLog {
  private readonly spool: Spool;
  private readonly o: Required<Omit<DurableShareLogOptions, 'userAgents' | 'onWrite' | 'onListenerError'>> & DurableShareLogOptions;
  private readonly log: Logger;
  private queue: Entry[] = [];
  /** Non-null while events from this position on are only in the spool (replay at start, or queue overflow). */
  private tailFrom: Position | null;
  private closing = false;
  private closeDeadline = 0;
  /** Set while the writer waits for events (not while it backs off after a failure: appends must not hurry that). */
  private wakeIdle: (() => void) | null = null;
  private wakeAny: (() => void) | null = null;
  private blocksQueued = 0;
  private loop: Promise<void>;
  private closed: Promise<void> | null = null;
  private writing = false;
  private dbUp = true;
  private dbDownSince: number | null = null;
  private lastError: string | null = null;
  private lastWriteMs: number | null = null;
  private lastWriteAt: number | null = null;
  private lastAppended: Position | null = null;
  private readonly uaCache = new Map<string, string>();
  private readonly counters = {
    appendedShares: 0, appendedBlocks: 0, writtenShares: 0, writtenBlocks: 0, batches: 0, duplicates: 0,
    writeErrors: 0, spoolErrors: 0, corruptLines: 0, deadLettered: 0,
  };
  private spoolFailing = false;
  private readonly writeObservers: ((seconds: number) => void)[] = [];

  constructor(opts: DurableShareLogOptions) {
    super(opts.onListenerError ?? ((err) => opts.logger.error({ err }, 'share log listener failed')));
    this.o = {
      segmentBytes: 64 * 1024 * 1024, fsyncMs: 100, batchMax: 5000, flushMs: 100, queueCapacity: 100_000,
      retryMinMs: 100, retryMaxMs: 5000, closeTimeoutMs: 10_000, ...opts,
    };
    this.log = opts.logger;
    if (opts.onWrite) this.writeObservers.push(opts.onWrite);
    this.spool = new Spool(opts.dir, { segmentBytes: this.o.segmentBytes, fsyncMs: this.o.fsyncMs, logger: opts.logger });
    const from = this.spool.replayFrom();
    this.tailFrom = cmpPos(from, this.spool.head) < 0 ? from : null;
    if (this.tailFrom) {
      this.log.info({ dir: this.spool.dir, from: this.tailFrom, bytes: this.spool.usage().pendingBytes }, 'spool: replaying events not yet committed to the database');
    }
    this.loop = this.run().catch((err) => {
      // Not expected (every write error is handled inside); if it happens the spool still holds everything.
      this.log.fatal({ err }, 'ingest writer stopped unexpectedly; events stay in the spool until restart');
    });
  }

  // ---- the hot path ----------------------------------------------------------------------------------------

  override appendShare(e: ShareEvent): void {
    this.counters.appendedShares++;
    this.enqueue({ kind: 'share', event: e }, encodeShare(e), false);
    super.appendShare(e);
  }

  override appendBlock(e: BlockEvent): void {
    this.counters.appendedBlocks++;
    // A block is what the pool is paid for: synced to disk before anything else happens to it.
    this.enqueue({ kind: 'block', event: e }, encodeBlock(e), true);
    super.appendBlock(e);
  }

  private enqueue(ev: LogEvent, line: string, sync: boolean): void {
    let pos: { start: Position; end: Position } | null = null;
    try {
      pos = this.spool.append(line, { sync });
      if (this.spoolFailing) {
        this.spoolFailing = false;
        this.log.info({ dir: this.spool.dir }, 'spool writes work again');
      }
    } catch (err) {
      this.counters.spoolErrors++;
      if (this.spool.isClosed) {
        // Only a bug in the shutdown order gets here (the pool stops before the log closes): say so loudly.
        this.log.error({ kind: ev.kind }, 'event appended after the share log was closed: not recorded');
        return;
      }
      if (!this.spoolFailing) {
        this.spoolFailing = true;
        this.log.error({ err: (err as Error).message, dir: this.spool.dir }, 'spool write failed: events are held in memory only until it works again');
      }
    }
    const entry: Entry = { ev, end: pos?.end ?? null, at: Date.now() };
    if (pos) this.lastAppended = pos.end;
    if (!pos) {
      // Not on disk: memory is all there is, whatever the queue's bound.
      this.push(entry);
    } else if (this.tailFrom === null) {
      if (this.queue.length < this.o.queueCapacity) {
        this.push(entry);
      } else {
        // The queue is full (the database is slow or down): from this event on, the writer reads the spool.
        this.tailFrom = pos.start;
        this.log.warn({ queued: this.queue.length }, 'ingest queue full: further events are read back from the spool');
      }
    }
    if (this.wakeIdle && (ev.kind === 'block' || this.queue.length >= this.o.batchMax || this.tailFrom !== null || this.queue.length === 1)) {
      this.wakeIdle();
    }
  }

  private push(entry: Entry): void {
    this.queue.push(entry);
    if (entry.ev.kind === 'block') this.blocksQueued++;
  }

  // ---- the writer ------------------------------------------------------------------------------------------

  /** Sleep up to ms; close() always cuts it short, new events only when idle. */
  private sleep(ms: number, idle: boolean): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.wakeIdle = null;
        this.wakeAny = null;
        resolve();
      };
      const t = setTimeout(done, ms);
      // Waiting for events must not keep a process alive on its own; a retry during close() must.
      if (idle) t.unref();
      this.wakeAny = done;
      if (idle) this.wakeIdle = done;
    });
  }

  private async run(): Promise<void> {
    for (;;) {
      const batch = await this.nextBatch();
      if (!batch) return;
      this.writing = true;
      try {
        if (batch.entries.length > 0 && !(await this.writeWithRetry(batch.entries))) return;
        if (batch.upTo) await this.advanceCheckpoint(batch.upTo);
      } finally {
        this.writing = false;
      }
    }
  }

  /**
   * The next events to write, and the spool position the checkpoint may move to once they are committed (for a
   * spool read this also covers unreadable lines it skipped, so their segment can be deleted).
   */
  private async nextBatch(): Promise<{ entries: Entry[]; upTo: Position | null } | null> {
    for (;;) {
      if (this.closing && Date.now() >= this.closeDeadline) return null;
      if (this.queue.length > 0) {
        const oldest = this.queue[0];
        const wait = oldest.at + this.o.flushMs - Date.now();
        const urgent = this.closing || this.queue.length >= this.o.batchMax || this.blocksQueued > 0;
        if (!urgent && wait > 0) {
          await this.sleep(wait, true);
          continue;
        }
        const entries = this.queue.splice(0, this.o.batchMax);
        let upTo: Position | null = null;
        for (const e of entries) {
          if (e.ev.kind === 'block') this.blocksQueued--;
          if (e.end) upTo = e.end;
        }
        return { entries, upTo };
      }
      if (this.tailFrom) {
        const from = this.tailFrom;
        const r = await this.spool.read(from, this.o.batchMax);
        const entries: Entry[] = [];
        for (const l of r.lines) {
          try {
            entries.push({ ev: decodeLine(l.text), end: l.end, at: 0 });
          } catch (err) {
            if (!(err instanceof SpoolFormatError)) throw err;
            this.counters.corruptLines++;
            this.log.error({ segment: l.end.seg, end: l.end.off, err: err.message }, 'spool: skipping an unreadable line');
          }
        }
        this.tailFrom = r.next;
        if (entries.length > 0 || cmpPos(r.next, from) > 0) return { entries, upTo: r.next };
        // Caught up with the head (checked synchronously, so no append can slip between the check and the switch).
        if (cmpPos(this.tailFrom, this.spool.head) >= 0) {
          this.tailFrom = null;
          this.log.info('ingest caught up with the spool: back to the in-memory queue');
        }
        continue;
      }
      if (this.closing) return null;
      await this.sleep(60_000, true);
    }
  }

  private backoff(attempt: number): number {
    const base = Math.min(this.o.retryMaxMs, this.o.retryMinMs * 2 ** Math.min(attempt, 20));
    return base / 2 + Math.random() * (base / 2);
  }

  /** Write until it commits. false = gave up because close() ran out of time (the spool keeps the events). */
  private async writeWithRetry(batch: Entry[]): Promise<boolean> {
    let poisonFailures = 0;
    for (let attempt = 0; ; attempt++) {
      const t0 = performance.now();
      try {
        await this.writeBatch(batch, poisonFailures >= 3);
        const ms = performance.now() - t0;
        this.lastWriteMs = ms;
        this.lastWriteAt = Date.now();
        for (const fn of this.writeObservers) fn(ms / 1000);
        if (!this.dbUp) {
          this.log.info({ downMs: Date.now() - (this.dbDownSince ?? Date.now()), pendingBytes: this.spool.usage().pendingBytes }, 'database writes work again: catching up from the spool');
        }
        this.dbUp = true;
        this.dbDownSince = null;
        this.lastError = null;
        return true;
      } catch (err) {
        this.counters.writeErrors++;
        this.lastError = (err as Error).message;
        if (this.dbUp) {
          this.dbUp = false;
          this.dbDownSince = Date.now();
          this.log.error({ err: this.lastError, code: (err as { code?: string }).code, connection: isConnectionError(err) },
            'database write failed: events stay in the spool and are retried until it works');
        }
        if (isPoison(err)) poisonFailures++;
        if (this.closing && Date.now() >= this.closeDeadline) return false;
        const wait = this.backoff(attempt);
        await this.sleep(this.closing ? Math.min(wait, Math.max(0, this.closeDeadline - Date.now())) : wait, false);
      }
    }
  }

  private async writeBatch(batch: Entry[], isolate: boolean): Promise<void> {
    let shares: ShareEvent[] = [];
    const flush = async () => {
      if (shares.length === 0) return;
      const run = this.withUserAgents(shares);
      shares = [];
      if (isolate) {
        for (const s of run) await this.isolated(() => this.o.writer.writeShares([s]), s);
      } else {
        const r = await this.o.writer.writeShares(run);
        this.counters.duplicates += r ? r.duplicates : 0;
      }
      this.counters.writtenShares += run.length;
    };
    for (const e of batch) {
      if (e.ev.kind === 'share') {
        shares.push(e.ev.event);
        continue;
      }
      await flush();
      const b = e.ev.event;
      if (isolate) await this.isolated(() => this.o.writer.writeBlock(b), b);
      else await this.o.writer.writeBlock(b);
      this.counters.writtenBlocks++;
    }
    await flush();
    this.counters.batches++;
  }

  /**
   * One event alone, after its batch failed repeatedly with a data error: if the database refuses it as
   * invalid, it goes to dead-letter.jsonl in the spool directory (kept, logged) instead of blocking every
   * event behind it. Connection errors still propagate, so the batch is retried as a whole.
   */
  private async isolated(write: () => Promise<unknown>, ev: ShareEvent | BlockEvent): Promise<void> {
    try {
      await write();
    } catch (err) {
      if (!isPoison(err)) throw err;
      this.counters.deadLettered++;
      const line = JSON.stringify({ at: new Date().toISOString(), error: (err as Error).message, event: ev }, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
      await fs.promises.appendFile(path.join(this.spool.dir, 'dead-letter.jsonl'), line + '\n');
      this.log.error({ err: (err as Error).message, file: 'dead-letter.jsonl' }, 'the database refused an event as invalid: set aside in the dead-letter file');
    }
  }

  private withUserAgents(shares: ShareEvent[]): ShareEvent[] {
    const resolve = this.o.userAgents;
    if (!resolve) return shares;
    const missing = new Set<string>();
    for (const s of shares) if (!this.uaCache.has(s.sessionId)) missing.add(s.sessionId);
    if (missing.size > 0) {
      // Rebuilt from the live sessions only, so the cache never outgrows them.
      this.uaCache.clear();
      for (const [id, ua] of resolve(missing)) this.uaCache.set(id, ua);
    }
    return shares.map((s) => {
      const ua = this.uaCache.get(s.sessionId);
      return ua ? { ...s, userAgent: ua } : s;
    });
  }

  private async advanceCheckpoint(pos: Position): Promise<void> {
    try {
      await this.spool.setCheckpoint(pos);
    } catch (err) {
      // Only costs a longer (idempotent) replay after a restart.
      this.log.warn({ err: (err as Error).message }, 'spool checkpoint not saved');
    }
  }

  /** Also report each committed batch's duration, seconds (e.g. the API's DB write histogram). */
  observeWrites(fn: (seconds: number) => void): void {
    this.writeObservers.push(fn);
  }

  // ---- lifecycle and numbers -------------------------------------------------------------------------------

  /** Everything appended so far is committed to the database. */
  get idle(): boolean {
    if (this.queue.length > 0 || this.tailFrom !== null || this.writing) return false;
    const cp = this.spool.checkpoint;
    return this.lastAppended === null || (cp !== null && cmpPos(cp, this.lastAppended) >= 0);
  }

  /** Resolve once idle (for tests and graceful shutdown), false on timeout. */
  async waitIdle(timeoutMs: number): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (!this.idle) {
      if (Date.now() >= end) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
    return true;
  }

  stats(): IngestStats {
    const u = this.spool.usage();
    const c = this.counters;
    return {
      queueDepth: this.queue.length,
      queueCapacity: this.o.queueCapacity,
      spoolBytes: u.pendingBytes,
      spoolDiskBytes: u.diskBytes,
      spoolSegments: u.segments,
      mode: this.tailFrom === null ? 'memory' : 'spool',
      dbUp: this.dbUp,
      dbDownSince: this.dbDownSince === null ? null : new Date(this.dbDownSince).toISOString(),
      lastError: this.lastError,
      lastWriteMs: this.lastWriteMs,
      lastWriteAt: this.lastWriteAt === null ? null : new Date(this.lastWriteAt).toISOString(),
      appended: { shares: c.appendedShares, blocks: c.appendedBlocks },
      written: { shares: c.writtenShares, blocks: c.writtenBlocks, batches: c.batches, duplicates: c.duplicates },
      writeErrors: c.writeErrors,
      spoolErrors: c.spoolErrors,
      corruptLines: c.corruptLines,
      deadLettered: c.deadLettered,
    };
  }

  /**
   * Flush what the database will take within closeTimeoutMs, then sync and close the spool. Whatever is not
   * committed by then stays in the spool and is replayed at the next start.
   */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.closing = true;
      this.closeDeadline = Date.now() + this.o.closeTimeoutMs;
      this.wakeAny?.();
      await this.loop;
      await this.spool.close();
      const left = this.spool.usage().pendingBytes;
      if (left > 0) this.log.warn({ pendingBytes: left, dir: this.spool.dir }, 'closed with events not yet in the database: they are replayed at the next start');
    })();
    return this.closed;
  }
}
