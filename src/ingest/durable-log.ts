import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Logger } from 'pino';
import { type BlockEvent, InProcessShareLog, type ShareEvent, type StorageState } from '../shares/events.ts';
import { InternedStrings } from '../shares/interned.ts';
import { isConnectionError } from '../store/db.ts';
import type { IngestStats, ShareRowMeta, ShareWriter } from '../store/types.ts';
import { type LogEvent, SHARE_ROW_PREFIX, SpoolFormatError, decodeLine, encodeBlock, encodeShare } from './codec.ts';
import { DiskBudget, type DiskBudgetOptions } from './disk-budget.ts';
import { MissingSegmentError, type Position, Spool, type SpoolIo, type SpoolLine, cmpPos } from './spool.ts';

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
  /** Events held in memory; past it the writer reads them back from the spool. Default 20,000. */
  queueCapacity?: number;
  /** Retry back-off after a failed write: from retryMinMs doubling to retryMaxMs. Defaults 100 / 5000. */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** close() gives the writer this long to catch up; the rest stays in the spool for the next start. */
  closeTimeoutMs?: number;
  /**
   * Extra per-share metadata for storage (the session's user agent), resolved off the hot path: the agents of these
   * sessions that are still connected, found by id (called for the sessions not asked for before; the answer is kept
   * for the session's life: an agent is the one its mining.subscribe gave).
   */
  userAgents?: (sessionIds: Set<string>) => Map<string, string>;
  /** Sessions whose user agents are remembered before the older half is let go (userAgentOf). Default 65,536. */
  userAgentCacheMax?: number;
  /** Called with each committed batch's duration, seconds (the API's DB write histogram). */
  onWrite?: (seconds: number) => void;
  onListenerError?: (err: unknown) => void;
  /** The spool's disk budget, free-space floor and block reserve (see DiskBudget). */
  budget?: Partial<Omit<DiskBudgetOptions, 'logger'>>;
  /** For tests: failing file operations. */
  io?: Partial<SpoolIo>;
  /** While idle, record the ingest watermark this often, ms (0 = never). Default 1000. */
  watermarkMs?: number;
  /** Clock of the events' `time` (the pool's), ms. Default Date.now. */
  now?: () => number;
  /**
   * Buffer share lines and write them to the spool with one write(2) per event-loop turn (sooner once the oldest
   * has waited appendWaitMs); default false (one write per share, at once). Only for a caller that holds the
   * answers to accepted shares until whenSpooled says they are written (the pool's AnswerGate). Blocks are always
   * written at once, with the shares before them.
   */
  batchAppends?: boolean;
  /** With batchAppends: a turn's lines are written early once the oldest has waited this long, ms. Default 1. */
  appendWaitMs?: number;
}

/** A share line's size for the budget check before it is encoded (a real one is ~150 bytes). */
const SHARE_LINE_ESTIMATE = 256;
/** A turn's buffered share lines are written early past this many lines or bytes (memory stays bounded). */
const PENDING_MAX_LINES = 4096;
const PENDING_MAX_BYTES = 1 << 20;
/**
 * …or, by default, once the oldest has waited this long, ms (appendWaitMs). The answers to accepted shares wait for
 * their lines' write (AnswerGate): written only at the turn's end, a share read at the start of a long turn
 * (hundreds of shares, a database batch) was answered only after all of it.
 */
const APPEND_WAIT_MS = 1;

function isNoSpace(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/**
 * A share's COPY row where it lies in the bytes of the spool write that wrote it (its line without the newline,
 * which follows it there). Shares wait in the queue for the database for 100 ms to seconds: as strings, their rows
 * and the whole text of their turn's write were on the JavaScript heap all that time, copied by every scavenge and
 * then promoted; in the Buffer of the write they are outside it.
 */
interface RowBytes {
  readonly bytes: Buffer;
  readonly off: number;
  readonly len: number;
}

/**
 * An event waiting for the database. A share in the COPY-row form waits as its spool line ('s3' and the row,
 * without the newline: RowBytes, or text when read back or kept after a failed write), which the writer copies as it
 * is, and the few fields the batch's other statements read (ShareRowMeta); every other event waits whole. Not the
 * ShareEvent: a share waits 100 ms or more for its batch, long enough to be promoted out of V8's young generation,
 * and the event with the submit line it kept alive (its job id is a slice of the line) was about 370 of the ~1,400
 * bytes promoted per share at 20k shares/s. Promoted bytes are what young-generation GCs copy, and each GC is a
 * pause for every miner.
 */
type Entry = ((
  | { kind: 'share'; event: ShareRowMeta; row: string | RowBytes }
  | { kind: 'share'; event: ShareEvent; row: null }
  | { kind: 'block'; event: BlockEvent; row: null }
) & {
  /** Spool position after this event's line; null if the spool write failed (memory only). */
  end: Position | null;
  at: number;
}) | QueuedRow;
type QueuedShare = Extract<Entry, { kind: 'share' }>;
type RowShare = QueuedShare & { row: string | RowBytes };

/**
 * What the queue keeps of an event given its spool line as text, without the newline (a line kept in memory after
 * its spool write failed; a line in the spool is kept where it lies: spooledEntryOf).
 */
function entryOf(ev: LogEvent, text: string, end: Position | null, at: number): Entry {
  if (ev.kind === 'block' || !text.startsWith(SHARE_ROW_PREFIX)) return wholeEntryOf(ev, end, at);
  const e = ev.event;
  // An unauthorized share's worker is the name the miner sent, a slice of its submit line, and nothing but its row
  // reads it (user agents are recorded for accounts only): the row holds it.
  const worker = e.account === '' ? '' : e.worker;
  return {
    kind: 'share', row: text, end, at,
    event: { time: e.time, account: e.account, worker, sessionId: e.sessionId, outcome: e.outcome, blockHash: e.blockHash },
  };
}

/** An event that waits whole: a block event, or a share whose line is not a COPY row (the JSON form). */
function wholeEntryOf(ev: LogEvent, end: Position | null, at: number): Entry {
  return ev.kind === 'block' ? { kind: 'block', event: ev.event, row: null, end, at } : { kind: 'share', event: ev.event, row: null, end, at };
}

/** The fields of ShareRowMeta alone (a QueuedRow is its own meta, and also holds its turn's bytes). */
function metaOf(m: ShareRowMeta): ShareRowMeta {
  return { time: m.time, account: m.account, worker: m.worker, sessionId: m.sessionId, outcome: m.outcome, blockHash: m.blockHash };
}

function same(s: string): string {
  return s;
}

/**
 * A share whose line is in the spool, as it waits in the queue: one object that is its row where the write (or the
 * read back) put it (RowBytes), what the batch's other statements read of it (ShareRowMeta) and the spool position
 * after its line. entryOf's form is four objects (the entry, its row, its position, its meta), and spoolLines made
 * two more per share (the line's start and a pair of positions): objects that live through the 100 ms or more a
 * share waits for its batch, long enough to be promoted, and then are garbage of V8's old generation, which the
 * mark-compact collector pays for and, past saturation, what the pool's memory grows by. Measured with a heap sample
 * of what outlived a scavenge, 5k shares/s from 10k connections: 469 bytes per share before, 330 after (the queue's
 * part from about 240 to about 100); mark-compacts in 20 s fell from 4-8 to 0-3.
 */
class QueuedRow implements RowBytes, ShareRowMeta {
  readonly kind = 'share';

  constructor(
    readonly bytes: Buffer,
    readonly off: number,
    readonly len: number,
    private readonly endSeg: number,
    private readonly endOff: number,
    readonly at: number,
    readonly time: number,
    readonly account: string,
    readonly worker: string,
    readonly sessionId: string,
    readonly outcome: ShareEvent['outcome'],
    readonly blockHash: string | undefined,
  ) {}

  get row(): RowBytes { return this; }
  get event(): ShareRowMeta { return this; }
  get end(): Position { return { seg: this.endSeg, off: this.endOff }; }
}

/**
 * What the queue keeps of an event whose line is in the spool: its line at bytes[off, off + len) (without the
 * newline), the spool position after it (endSeg, endOff). A share in the COPY-row form is a QueuedRow; anything
 * else as entryOf keeps it.
 */
function spooledEntryOf(ev: LogEvent, bytes: Buffer, off: number, len: number, endSeg: number, endOff: number, at: number,
  own: (s: string) => string = same): Entry {
  if (ev.kind !== 'share' || !isRowLine(bytes, off, len)) return wholeEntryOf(ev, { seg: endSeg, off: endOff }, at);
  const e = ev.event;
  // An unauthorized share's worker is the name the miner sent, a slice of its submit line: see entryOf.
  return new QueuedRow(bytes, off, len, endSeg, endOff, at, e.time, own(e.account), e.account === '' ? '' : own(e.worker), own(e.sessionId), e.outcome, e.blockHash);
}

/**
 * The whole share again (from its row when that is all the queue kept): for writers without writeShareRows and
 * for a share written alone after its batch failed. Throws SpoolFormatError for a row that does not decode: the
 * encoder writes what the decoder refuses (a height that is not an integer), which the caller sets aside.
 */
function shareEventOf(s: QueuedShare): ShareEvent {
  if (s.row === null) return s.event;
  const ev = decodeLine(rowText(s.row));
  if (ev.kind !== 'share') throw new SpoolFormatError('a queued share row decoded as a block event');
  return ev.event;
}

function hasRow(s: QueuedShare): s is RowShare {
  return s.row !== null;
}

const ROW_PREFIX_BYTES = Buffer.from(SHARE_ROW_PREFIX, 'latin1');

/** The line starts with the share-row tag (SHARE_ROW_PREFIX), read in the bytes. */
function isRowLine(bytes: Buffer, off: number, len: number): boolean {
  if (len < ROW_PREFIX_BYTES.length) return false;
  for (let i = 0; i < ROW_PREFIX_BYTES.length; i++) if (bytes[off + i] !== ROW_PREFIX_BYTES[i]) return false;
  return true;
}

function rowText(row: string | RowBytes): string {
  return typeof row === 'string' ? row : row.bytes.toString('utf8', row.off, row.off + row.len);
}

/**
 * The COPY text of rows, each followed by a newline: rows that lie next to each other in one spool write are taken
 * as one piece of it, with their newlines (no copy per row); text only when every row is text (read back from the
 * spool, or kept in memory after a failed write).
 */
export function copyBody(rows: readonly (string | RowBytes)[]): string | Buffer {
  const parts: Buffer[] = [];
  let texts: string[] = [];
  let bytes: Buffer | null = null;
  let from = 0;
  let to = 0;
  const endPiece = () => {
    if (bytes !== null) parts.push(bytes.subarray(from, to));
    bytes = null;
  };
  // One join, its last newline from the join itself (appended after it, "+ '\n'", the text would be a cons string
  // that the COPY's Buffer.from flattens into a second copy of the whole batch).
  const joinTexts = (): string => {
    texts.push('');
    const joined = texts.join('\n');
    texts = [];
    return joined;
  };
  const endTexts = () => {
    if (texts.length > 0) parts.push(Buffer.from(joinTexts(), 'utf8'));
  };
  for (const r of rows) {
    if (typeof r === 'string') {
      endPiece();
      texts.push(r);
      continue;
    }
    endTexts();
    if (bytes === r.bytes && r.off === to) {
      to = r.off + r.len + 1;
      continue;
    }
    endPiece();
    bytes = r.bytes;
    from = r.off;
    to = r.off + r.len + 1;
  }
  endPiece();
  if (parts.length === 0) return joinTexts();
  endTexts();
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

/**
 * Spool lines the writer decodes per event-loop turn when it reads the spool back (a replay, a database that was
 * down, a full queue): it shares the pool's thread, and a batch of 5,000 lines decoded at once was a 10-20 ms
 * turn that every miner's answer waited behind.
 */
export const DECODE_SLICE = 500;

/**
 * Decode lines read back from the spool, in order, DECODE_SLICE per turn (yieldTurn between slices). A line that
 * does not decode goes to onCorrupt; any other error propagates.
 */
export async function decodeSpoolLines<L extends SpoolLine>(
  lines: readonly L[],
  onEvent: (line: L, ev: LogEvent) => void,
  onCorrupt: (line: L, err: SpoolFormatError) => void,
  yieldTurn: () => Promise<unknown> = nextTurn,
): Promise<void> {
  for (let i = 0; i < lines.length; i++) {
    if (i > 0 && i % DECODE_SLICE === 0) await yieldTurn();
    const l = lines[i];
    let ev: LogEvent;
    try {
      ev = decodeLine(l.text);
    } catch (err) {
      if (!(err instanceof SpoolFormatError)) throw err;
      onCorrupt(l, err);
      continue;
    }
    onEvent(l, ev);
  }
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
  private readonly o: Required<Omit<DurableShareLogOptions, 'userAgents' | 'onWrite' | 'onListenerError' | 'budget' | 'io' | 'now' | 'batchAppends' | 'appendWaitMs' | 'userAgentCacheMax'>> & DurableShareLogOptions;
  private readonly batchAppends: boolean;
  private readonly appendWaitMs: number;
  /** Share lines appended this turn and not yet written to the spool (see batchAppends). */
  private pending: { ev: LogEvent; line: string }[] = [];
  private pendingBytes = 0;
  /** performance.now() when the oldest pending line was appended. */
  private pendingLinesSince = 0;
  private flushScheduled = false;
  /** Called once the pending lines are written (whenSpooled): with false when some of them could not be. */
  private afterSpooled: ((written: boolean) => void)[] = [];
  private readonly budget: DiskBudget;
  private readonly log: Logger;
  private queue: Entry[] = [];
  /**
   * The account, worker and session names of the shares read back from the spool: the decoder's fields are slices
   * of the line's text, and kept in a queued share each held that text through the batch's COPY. Room for a pool's
   * sessions and workers (10k connections at the bench's scale).
   */
  private readonly readBackStrings = new InternedStrings(50_000);
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
  /** Session id → its user agent ('' for none), as userAgents calls gave them (userAgentOf), and the generation before. */
  private uaCache = new Map<string, string>();
  private uaCacheOld = new Map<string, string>();
  private readonly uaCacheMax: number;
  private readonly counters = {
    appendedShares: 0, appendedBlocks: 0, writtenShares: 0, writtenBlocks: 0, batches: 0, duplicates: 0,
    writeErrors: 0, spoolErrors: 0, corruptLines: 0, deadLettered: 0, readErrors: 0, missingSegments: 0,
    writerRestarts: 0, lostShares: 0,
  };
  /** Entries in the queue that are not in the spool (their write failed): bounded, see enqueue. */
  private memoryOnly = 0;
  /**
   * Block statuses held in memory (their spool write failed) while older events were only in the spool. A status
   * updates its block's row, and the block's candidate may be among those unread events: written first, the status
   * would find no row and be lost. Each waits until the writer has written the spool up to where its head was when
   * the status came (the candidate, if spooled, is before that), then joins the queue.
   */
  private afterTail: { entry: Entry; heldAt: Position }[] = [];
  /** Why the writer cannot make progress on its own (spool unreadable, crashed and restarting); null = up. */
  private writerError: string | null = null;
  /** The batch being written, so a crash of the writer puts it back instead of losing it. */
  private inflight: Entry[] | null = null;
  /** Event time of the oldest event of the batch being written. */
  private inflightOldest: number | null = null;
  /** While reading the spool: a lower bound of the time of the next unread event (null = not known yet). */
  private tailOldest: number | null = null;
  private spoolFailing = false;
  private readonly writeObservers: ((seconds: number) => void)[] = [];
  /** This spool's name in ingest_watermarks: a UUID kept in the spool directory, so a restart keeps it. */
  readonly source: string;
  private readonly now: () => number;
  private watermarkTimer: NodeJS.Timeout | null = null;
  private watermarkInFlight = false;

  constructor(opts: DurableShareLogOptions) {
    super(opts.onListenerError ?? ((err) => opts.logger.error({ err }, 'share log listener failed')));
    this.o = {
      segmentBytes: 64 * 1024 * 1024, fsyncMs: 100, batchMax: 5000, flushMs: 100, queueCapacity: 20_000,
      retryMinMs: 100, retryMaxMs: 5000, closeTimeoutMs: 10_000, watermarkMs: 1000, ...opts,
    };
    this.now = opts.now ?? Date.now;
    this.batchAppends = opts.batchAppends ?? false;
    this.uaCacheMax = opts.userAgentCacheMax ?? 65_536;
    this.appendWaitMs = opts.appendWaitMs ?? APPEND_WAIT_MS;
    this.log = opts.logger;
    if (opts.onWrite) this.writeObservers.push(opts.onWrite);
    this.spool = new Spool(opts.dir, { segmentBytes: this.o.segmentBytes, fsyncMs: this.o.fsyncMs, logger: opts.logger, io: opts.io });
    this.budget = new DiskBudget(this.spool.dir, { ...opts.budget, logger: opts.logger });
    this.budget.start();
    const from = this.spool.replayFrom();
    this.tailFrom = cmpPos(from, this.spool.head) < 0 ? from : null;
    // Events to replay: the oldest was written no earlier than its segment file was created.
    if (this.tailFrom) this.tailOldest = this.spool.createdAt(this.tailFrom.seg);
    if (this.tailFrom) {
      this.log.info({ dir: this.spool.dir, from: this.tailFrom, bytes: this.spool.usage().pendingBytes }, 'spool: replaying events not yet committed to the database');
    }
    this.source = readSourceId(this.spool.dir);
    if (this.o.watermarkMs > 0 && this.o.writer.recordWatermark) {
      this.watermarkTimer = setInterval(() => { if (this.pendingSince() === null) void this.recordWatermark(this.now()); }, this.o.watermarkMs);
      this.watermarkTimer.unref();
    }
    this.loop = this.run();
  }

  // ---- the hot path ----------------------------------------------------------------------------------------

  /**
   * Can a share be recorded now (disk budget, free space, spool writes working)? When not, the caller refuses
   * the share and does not append it; it is counted here. Logged once per change of state, not per share.
   */
  admitShare(): StorageState {
    const st = this.budget.admitShare(this.spool.diskBytes + this.pendingBytes, SHARE_LINE_ESTIMATE);
    if (!st.accepting) this.budget.countRefused();
    return st;
  }

  override appendShare(e: ShareEvent): void {
    // A caller that did not ask admitShare() first: a share that cannot be stored is refused here (counted)
    // rather than held in memory without bound.
    if (!this.budget.admitShare(this.spool.diskBytes + this.pendingBytes, SHARE_LINE_ESTIMATE).accepting) {
      this.budget.countRefused();
      return;
    }
    this.counters.appendedShares++;
    const ev: LogEvent = { kind: 'share', event: e };
    const line = encodeShare(e);
    if (!this.batchAppends || this.spool.isClosed) {
      this.enqueue(ev, line, false);
    } else {
      // One write per turn instead of one per share: the lines wait for the turn's end (setImmediate runs after
      // every socket read of this turn), or for the next append once the oldest has waited appendWaitMs. The pool
      // holds the answers to accepted shares until their lines are written (whenSpooled), so a miner still never
      // sees "accepted" for a share that is not in the spool.
      const now = performance.now();
      if (this.pending.length === 0) this.pendingLinesSince = now;
      this.pending.push({ ev, line });
      this.pendingBytes += line.length;
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => { this.flushScheduled = false; this.flushPending(); });
      }
      if (this.pending.length >= PENDING_MAX_LINES || this.pendingBytes >= PENDING_MAX_BYTES || now - this.pendingLinesSince >= this.appendWaitMs) this.flushPending();
    }
    super.appendShare(e);
  }

  /**
   * Call fn once the share lines appended so far are written to the spool (at the end of this event-loop turn,
   * or earlier); false when none are waiting (they are written already, and fn is not called). fn gets false when
   * some of them could not be written (a full disk, EIO): those shares are held only in memory, and a stop or a
   * crash before the database takes them loses them, so their miners must not be told "accepted".
   */
  whenSpooled(fn: (written: boolean) => void): boolean {
    if (this.pending.length === 0) return false;
    this.afterSpooled.push(fn);
    return true;
  }

  /** Write the buffered share lines with one write(2), then run the whenSpooled callbacks. */
  flushPending(): void {
    const batch = this.pending;
    let written = true;
    if (batch.length > 0) {
      this.pending = [];
      this.pendingBytes = 0;
      written = this.spoolLines(batch);
    }
    if (this.afterSpooled.length > 0) {
      const fns = this.afterSpooled;
      this.afterSpooled = [];
      for (const fn of fns) {
        try { fn(written); } catch (err) { this.log.error({ err }, 'whenSpooled callback failed'); }
      }
    }
  }

  /** Write a turn's lines and queue them; false when any of them could not be written to the spool. */
  private spoolLines(batch: { ev: LogEvent; line: string }[]): boolean {
    if (batch.length === 1 || this.spool.isClosed) {
      let written = true;
      for (const b of batch) written = this.enqueue(b.ev, b.line, false) && written;
      return written;
    }
    let text = '';
    for (const b of batch) text += b.line;
    let pos: { start: Position; end: Position; bytes: Buffer };
    try {
      pos = this.spool.append(text);
    } catch {
      // The failed write was cut off (or the next append starts a new segment): write the lines one by one, so
      // each gets the handling of a failed write it had before batching (held in memory, counted, logged once).
      let written = true;
      for (const b of batch) written = this.enqueue(b.ev, b.line, false) && written;
      return written;
    }
    this.noteWritten(pos.end);
    // Each line's end: byte lengths are character lengths unless the text had multi-byte characters.
    const ascii = pos.end.off - pos.start.off === text.length;
    const seg = pos.start.seg;
    const at = Date.now();
    const queuedBefore = this.queue.length;
    let off = pos.start.off;
    for (const b of batch) {
      const start = off;
      off += ascii ? b.line.length : Buffer.byteLength(b.line, 'utf8');
      // While the writer reads the spool back, the queue keeps nothing written.
      if (this.tailFrom !== null) continue;
      if (this.queue.length >= this.o.queueCapacity) {
        this.readBackFrom({ seg, off: start }, b.ev.event.time);
        continue;
      }
      // The line the writer keeps (without its newline) is where it was just written, in pos.bytes.
      this.push(spooledEntryOf(b.ev, pos.bytes, start - pos.start.off, off - start - 1, seg, off, at));
    }
    this.wakeWriter(false, queuedBefore);
    return true;
  }

  override appendBlock(e: BlockEvent): void {
    // Spool order is append order: the shares buffered before this block are written first (and at once).
    this.flushPending();
    this.counters.appendedBlocks++;
    // The block journal (src/ingest/block-journal.ts) is a block's durable record, fdatasync'ed when it is found;
    // the spool copy is on its way to the database and is synced on the spool's interval like shares.
    this.enqueue({ kind: 'block', event: e }, encodeBlock(e), false);
    super.appendBlock(e);
  }

  /** Write the line to the spool; for a block on a full disk, release the reserve file and try once more. */
  private write(ev: LogEvent, line: string, sync: boolean): ReturnType<Spool['append']> | null {
    try {
      return this.spool.append(line, { sync });
    } catch (err) {
      if (ev.kind === 'block' && isNoSpace(err) && this.budget.releaseReserve()) {
        try {
          return this.spool.append(line, { sync });
        } catch (err2) {
          this.onSpoolError(ev, err2);
          return null;
        }
      }
      this.onSpoolError(ev, err);
      return null;
    }
  }

  private onSpoolError(ev: LogEvent, err: unknown): void {
    this.counters.spoolErrors++;
    this.budget.onWriteError(err as NodeJS.ErrnoException);
    if (this.spool.isClosed) return;
    if (!this.spoolFailing) {
      this.spoolFailing = true;
      this.log.error({ err: (err as Error).message, code: (err as NodeJS.ErrnoException).code, dir: this.spool.dir, kind: ev.kind },
        'spool write failed: this event is held in memory for the database; shares are refused until spool writes work again');
    }
  }

  /** Write the event's line to the spool and queue it; false when it is not in the spool (memory only, or dropped). */
  private enqueue(ev: LogEvent, line: string, sync: boolean): boolean {
    if (this.spool.isClosed) {
      // Only a bug in the shutdown order gets here (the pool stops before the log closes): say so loudly.
      this.counters.spoolErrors++;
      this.log.error({ kind: ev.kind }, 'event appended after the share log was closed: not recorded');
      return false;
    }
    const pos = this.write(ev, line, sync);
    this.record(ev, line, pos);
    return pos !== null;
  }

  /** After the spool write of an event's line (pos: where it went, null: it failed): queue it. */
  private record(ev: LogEvent, line: string, pos: ReturnType<Spool['append']> | null): void {
    const queuedBefore = this.queue.length;
    if (pos) this.noteWritten(pos.end);
    if (!pos) {
      // Not on disk: memory is all there is. Blocks are always kept; shares are refused after the first failed
      // write (admitShare), so only a caller that ignores that can reach the bound.
      if (ev.kind === 'share' && this.memoryOnly >= this.o.queueCapacity) {
        if (this.counters.lostShares++ === 0) this.log.error({ held: this.memoryOnly }, 'spool failing and the memory bound reached: shares dropped (callers must ask admitShare first)');
        return;
      }
      this.memoryOnly++;
      const entry = entryOf(ev, line.slice(0, -1), null, Date.now());
      if (this.tailFrom !== null && ev.kind === 'block' && ev.event.kind === 'status') this.afterTail.push({ entry, heldAt: { ...this.spool.head } });
      else this.push(entry);
    } else if (this.tailFrom === null) {
      if (this.queue.length < this.o.queueCapacity) {
        // The row is where the write put it (its bytes, without the newline), as for a turn's lines (spoolLines).
        this.push(spooledEntryOf(ev, pos.bytes, 0, pos.bytes.length - 1, pos.end.seg, pos.end.off, Date.now()));
      } else {
        this.readBackFrom(pos.start, ev.event.time);
      }
    }
    this.wakeWriter(ev.kind === 'block', queuedBefore);
  }

  /** A spool write worked (up to end). */
  private noteWritten(end: Position): void {
    this.budget.onWriteOk();
    if (this.spoolFailing) {
      this.spoolFailing = false;
      this.log.info({ dir: this.spool.dir }, 'spool writes work again');
    }
    this.lastAppended = end;
  }

  /** The queue is full (the database is slow or down): from this event on (its line's start), the writer reads the spool. */
  private readBackFrom(start: Position, time: number): void {
    this.tailFrom = start;
    this.tailOldest = time;
    this.log.warn({ queued: this.queue.length }, 'ingest queue full: further events are read back from the spool');
  }

  /**
   * After events were queued (the queue held queuedBefore before them): an idle writer starts on a block at once, on
   * a full batch, on the spool once it must read it back, and on the first event of an empty queue (it then waits
   * out flushMs itself).
   */
  private wakeWriter(block: boolean, queuedBefore: number): void {
    if (this.wakeIdle && (block || this.queue.length >= this.o.batchMax || this.tailFrom !== null || (queuedBefore === 0 && this.queue.length > 0))) {
      this.wakeIdle();
    }
  }

  private push(entry: Entry): void {
    this.queue.push(entry);
    if (entry.kind === 'block') this.blocksQueued++;
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

  /**
   * The writer, supervised: every expected error is handled inside (database down, spool unreadable); should
   * anything else throw, the batch in hand goes back to the queue, the failure is logged and shown (writer down
   * in /health/ready and the metrics), and the writer starts again after a back-off instead of dying.
   */
  private async run(): Promise<void> {
    for (let crash = 0; ; crash++) {
      try {
        await this.writeLoop();
        return;
      } catch (err) {
        if (this.inflight) this.requeue(this.inflight);
        this.inflight = null;
        this.inflightOldest = null;
        this.writing = false;
        this.counters.writerRestarts++;
        this.writerError = `writer failed: ${(err as Error).message}`;
        this.log.error({ err }, 'ingest writer failed unexpectedly: restarting it after a pause (events stay in the spool)');
        if (this.closing && Date.now() >= this.closeDeadline) return;
        await this.sleep(this.backoff(crash), false);
      }
    }
  }

  private async writeLoop(): Promise<void> {
    for (;;) {
      const batch = await this.nextBatch();
      if (!batch) return;
      this.writing = true;
      this.inflight = batch.entries;
      this.inflightOldest = batch.entries.reduce<number | null>((m, e) => (m === null || e.event.time < m ? e.event.time : m), null);
      let committedTo: number | null = null;
      try {
        if (batch.entries.length > 0 && !(await this.writeWithRetry(batch.entries))) return;
        if (batch.upTo) await this.advanceCheckpoint(batch.upTo);
        committedTo = this.watermarkAfter(batch.entries, batch.fromSpool);
      } finally {
        this.writing = false;
      }
      this.inflight = null;
      this.inflightOldest = null;
      this.writerError = null;
      if (committedTo !== null) await this.recordWatermark(committedTo);
    }
  }

  /** Put a batch back at the head of the queue (after a writer crash). */
  private requeue(entries: Entry[]): void {
    this.queue.unshift(...entries);
    for (const e of entries) {
      if (e.kind === 'block') this.blocksQueued++;
      if (e.end === null) this.memoryOnly++;
    }
  }

  /**
   * The next events to write, and the spool position the checkpoint may move to once they are committed (for a
   * spool read this also covers unreadable lines it skipped, so their segment can be deleted).
   */
  private async nextBatch(): Promise<{ entries: Entry[]; upTo: Position | null; fromSpool: boolean } | null> {
    for (;;) {
      if (this.closing && Date.now() >= this.closeDeadline) return null;
      this.releaseHeld();
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
          if (e.kind === 'block') this.blocksQueued--;
          if (e.end) upTo = e.end;
          else this.memoryOnly--;
        }
        return { entries, upTo, fromSpool: false };
      }
      if (this.tailFrom) {
        const from = this.tailFrom;
        const r = await this.readSpool(from);
        if (!r) continue;
        const entries: Entry[] = [];
        const corrupt: { line: SpoolLine; err: SpoolFormatError }[] = [];
        // Each entry keeps its line where the read put it (ReadLine is a RowBytes), not its text.
        await decodeSpoolLines(r.lines, (l, ev) => entries.push(spooledEntryOf(ev, l.bytes, l.off, l.len, l.end.seg, l.end.off, 0, this.readBackStrings.get)), (line, err) => corrupt.push({ line, err }));
        for (const c of corrupt) await this.setAsideUnreadable(c.line, c.err);
        this.tailFrom = r.next;
        if (entries.length > 0) this.tailOldest = entries[entries.length - 1].event.time;
        if (entries.length > 0 || cmpPos(r.next, from) > 0) return { entries, upTo: r.next, fromSpool: true };
        // Caught up with the head (checked synchronously, so no append can slip between the check and the switch).
        if (cmpPos(this.tailFrom, this.spool.head) >= 0) {
          this.tailFrom = null;
          this.tailOldest = null;
          this.log.info('ingest caught up with the spool: back to the in-memory queue');
        }
        continue;
      }
      if (this.closing) return null;
      this.writerError = null;
      await this.sleep(60_000, true);
    }
  }

  /**
   * Queue the held statuses whose spool prefix is written: every batch before this call is committed (or back at
   * the queue's head after a writer crash), and the tail has been read up to tailFrom.
   */
  private releaseHeld(): void {
    let n = 0;
    while (n < this.afterTail.length && (this.tailFrom === null || cmpPos(this.tailFrom, this.afterTail[n].heldAt) >= 0)) n++;
    for (const h of this.afterTail.splice(0, n)) this.push(h.entry);
  }

  private readAttempt = 0;

  /**
   * One read of the spool for the writer. An I/O error (EMFILE, EIO, …) is logged once, shown as "writer down",
   * and retried with back-off (null: try again); a segment gone from the disk is reported and skipped, since
   * no retry brings it back.
   */
  private async readSpool(from: Position): Promise<Awaited<ReturnType<Spool['read']>> | null> {
    try {
      const r = await this.spool.read(from, this.o.batchMax);
      if (this.readAttempt > 0) this.log.info({ attempts: this.readAttempt }, 'spool reads work again');
      this.readAttempt = 0;
      this.writerError = null;
      return r;
    } catch (err) {
      if (err instanceof MissingSegmentError) {
        this.counters.missingSegments++;
        const lost = this.spool.forgetSegment(err.seg);
        this.log.error({ file: err.file, bytes: lost }, 'spool segment missing: its events cannot be replayed; skipping to the next segment');
        return null;
      }
      this.counters.readErrors++;
      this.writerError = `cannot read the spool: ${(err as Error).message}`;
      if (this.readAttempt === 0) {
        this.log.error({ err: (err as Error).message, code: (err as NodeJS.ErrnoException).code, dir: this.spool.dir }, 'cannot read the spool: retrying with back-off (events stay on disk)');
      }
      const wait = this.backoff(this.readAttempt++);
      if (!(this.closing && Date.now() >= this.closeDeadline)) await this.sleep(this.closing ? Math.min(wait, Math.max(0, this.closeDeadline - Date.now())) : wait, false);
      return null;
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
    let shares: QueuedShare[] = [];
    let blocks: BlockEvent[] = [];
    const flushShares = async () => {
      if (shares.length === 0) return;
      const run = shares;
      shares = [];
      const w = this.o.writer;
      if (isolate) {
        for (const s of this.withUserAgents(await this.wholeShares(run))) await this.isolated(() => w.writeShares([s]), s);
      } else if (w.writeShareRows && run.every(hasRow)) {
        const metas: ShareRowMeta[] = [];
        const rows: (string | RowBytes)[] = [];
        for (const s of run) { metas.push(s.event); rows.push(s.row); }
        const r = await w.writeShareRows(metas, copyBody(rows), this.userAgentOf(metas) ?? (() => undefined));
        this.counters.duplicates += r.duplicates;
      } else {
        const r = await w.writeShares(this.withUserAgents(await this.wholeShares(run)));
        this.counters.duplicates += r ? r.duplicates : 0;
      }
      this.counters.writtenShares += run.length;
    };
    const flushBlocks = async () => {
      if (blocks.length === 0) return;
      const run = blocks;
      blocks = [];
      const w = this.o.writer;
      if (isolate) {
        for (const b of run) await this.isolated(() => w.writeBlock(b), b);
      } else if (w.writeBlocks) {
        await w.writeBlocks(run);
      } else {
        for (const b of run) await w.writeBlock(b);
      }
      this.counters.writtenBlocks += run.length;
    };
    // Runs of shares and runs of block events, in spool order. A run is flushed only when one of the other kind
    // ends it: an async call and its await per share (most of them with nothing to flush) were a promise, an async
    // frame and a microtask each, about 300 B per stored share.
    for (const e of batch) {
      if (e.kind === 'share') {
        if (blocks.length > 0) await flushBlocks();
        shares.push(e);
      } else {
        if (shares.length > 0) await flushShares();
        blocks.push(e.event);
      }
    }
    await flushShares();
    await flushBlocks();
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
      await this.deadLetter((err as Error).message, ev, 'the database refused an event as invalid: set aside in the dead-letter file');
    }
  }

  private async deadLetter(error: string, event: unknown, message: string): Promise<void> {
    const line = JSON.stringify({ at: new Date().toISOString(), error, event }, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
    await fs.promises.appendFile(path.join(this.spool.dir, 'dead-letter.jsonl'), line + '\n');
    this.counters.deadLettered++;
    this.log.error({ err: error, file: 'dead-letter.jsonl' }, message);
  }

  /**
   * A spool line read back that does not decode (a flipped byte, a bad sector) may still be an accepted share, and
   * its segment is deleted once the checkpoint passes it: it goes to the dead-letter file, its bytes as they are on
   * disk (base64) beside the text they decode to. Should that fail too (a full disk), it is logged, and the read-back
   * goes on: one unreadable line must not stop every event behind it.
   */
  private async setAsideUnreadable(l: SpoolLine, err: SpoolFormatError): Promise<void> {
    this.counters.corruptLines++;
    const where = { segment: l.end.seg, start: l.start, end: l.end.off };
    try {
      const bytes = await this.spool.readBytes(l.end.seg, l.start, l.end.off - 1);
      await this.deadLetter(err.message, { ...where, bytes: bytes.toString('base64'), text: l.text },
        'spool: a line that does not read back: set aside in the dead-letter file');
    } catch (e) {
      this.log.error({ ...where, err: err.message, text: l.text.slice(0, 1024), deadLetterError: (e as Error).message },
        'spool: skipping an unreadable line (the dead-letter file could not take it)');
    }
  }

  /**
   * The whole shares of a run (shareEventOf). A row that does not decode is set aside in the dead-letter file
   * (the row itself, and what the queue kept beside it) instead of failing the batch forever and stopping every
   * share behind it.
   */
  private async wholeShares(run: readonly QueuedShare[]): Promise<ShareEvent[]> {
    const out: ShareEvent[] = [];
    for (const s of run) {
      try {
        out.push(shareEventOf(s));
      } catch (err) {
        if (!(err instanceof SpoolFormatError)) throw err;
        await this.deadLetter(err.message, { ...metaOf(s.event), row: s.row === null ? null : rowText(s.row) }, 'a queued share row does not read back: set aside in the dead-letter file');
      }
    }
    return out;
  }

  /**
   * The user agent of a session among these shares' (those still connected), from uaCache, which is rebuilt from
   * the live sessions when it misses one; null without a resolver.
   */
  private userAgentOf(shares: readonly ShareRowMeta[]): ((sessionId: string) => string | undefined) | null {
    const resolve = this.o.userAgents;
    if (!resolve) return null;
    // Only the sessions the cache does not know are asked for (the pool finds each by id), and the answers join what
    // it knows: a batch with one new session among thousands costs one lookup, not a walk of every live session. A
    // session asked for without an agent is kept as '' (none), so its next batch is not a miss again. Bounded: past
    // uaCacheMax sessions, what is known becomes the older generation, dropped at the next turn over (a session
    // still mining is carried over at its next batch, without asking).
    let missing: Set<string> | null = null;
    for (const s of shares) {
      const id = s.sessionId;
      if (this.uaCache.has(id)) continue;
      const old = this.uaCacheOld.get(id);
      if (old !== undefined) { this.uaCache.set(id, old); continue; }
      (missing ??= new Set()).add(id);
    }
    if (missing !== null) {
      const found = resolve(missing);
      for (const id of missing) this.uaCache.set(id, found.get(id) ?? '');
    }
    if (this.uaCache.size > this.uaCacheMax) {
      this.uaCacheOld = this.uaCache;
      this.uaCache = new Map();
      // This batch's sessions stay known for its own lookups.
      for (const s of shares) { const ua = this.uaCacheOld.get(s.sessionId); if (ua !== undefined) this.uaCache.set(s.sessionId, ua); }
    }
    return (id) => this.uaCache.get(id) || undefined;
  }

  private withUserAgents(shares: ShareEvent[]): ShareEvent[] {
    const agentOf = this.userAgentOf(shares);
    if (!agentOf) return shares;
    return shares.map((s) => {
      const ua = agentOf(s.sessionId);
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

  // ---- the ingest watermark ----------------------------------------------------------------------------------

  /**
   * Time of the oldest event not yet committed (ms), read synchronously; null when nothing is pending. Events
   * only in the spool (replay, overflow) have no time known here: then the last committed time is the bound.
   */
  private pendingSince(): number | null {
    if (this.writing || this.tailFrom !== null) return -1;
    return this.oldestInMemory();
  }

  /**
   * Time of the oldest event waiting in memory: the queue's head, else the first line waiting for its turn's spool
   * write (a share handled at a turn's end, a waiting connection's lines resumed in a setImmediate, is written in
   * the next turn, after that turn's timers, the watermark's among them); null when none waits.
   */
  private oldestInMemory(): number | null {
    if (this.queue.length > 0) return this.queue[0].event.time;
    if (this.pending.length > 0) return this.pending[0].ev.event.time;
    return null;
  }

  /**
   * After a committed batch: every event appended before its last one is in the database; no share pending is
   * older than the queue's first share (shares are appended in time order). So the watermark is the oldest pending
   * share's time, or now when no share is pending. While the spool is being read back: after a batch read from it,
   * the time of its last share (a block event can carry a block header's time, not the pool's clock); after a batch
   * from the memory queue, none, since spooled events not read yet may be older than it (an event kept in memory
   * because its spool write failed goes ahead of them).
   */
  private watermarkAfter(batch: Entry[], fromSpool: boolean): number | null {
    if (!this.o.writer.recordWatermark) return null;
    if (this.tailFrom !== null) {
      if (!fromSpool) return null;
      let last: number | null = null;
      for (const e of batch) if (e.kind === 'share') last = Math.max(last ?? -Infinity, e.event.time);
      return last;
    }
    return this.oldestShareInMemory() ?? this.now();
  }

  /**
   * Time of the oldest share waiting in memory (the queue's first share, else the first line waiting for its turn's
   * spool write). Shares only: block events are not in time order with them (a block's statuses get strictly
   * increasing times, a millisecond ahead at most; a recovered candidate carries a block header's time), and the
   * watermark is a statement about shares. Block events are rare: the scan stops at the first share.
   */
  private oldestShareInMemory(): number | null {
    for (const e of this.queue) if (e.kind === 'share') return e.event.time;
    for (const p of this.pending) if (p.ev.kind === 'share') return p.ev.event.time;
    return null;
  }

  private async recordWatermark(t: number): Promise<void> {
    if (this.watermarkInFlight || !Number.isFinite(t) || t < 0) return;
    this.watermarkInFlight = true;
    try {
      await this.o.writer.recordWatermark?.(this.source, t, `${hostname()}:${this.spool.dir}`);
    } catch (err) {
      // The next batch or tick tries again; a lagging watermark only delays crediting.
      this.log.debug({ err: (err as Error).message }, 'ingest watermark not recorded');
    } finally {
      this.watermarkInFlight = false;
    }
  }

  /** Also report each committed batch's duration, seconds (e.g. the API's DB write histogram). */
  observeWrites(fn: (seconds: number) => void): void {
    this.writeObservers.push(fn);
  }

  // ---- lifecycle and numbers -------------------------------------------------------------------------------

  /** Everything appended so far is committed to the database. */
  get idle(): boolean {
    if (this.pending.length > 0 || this.queue.length > 0 || this.tailFrom !== null || this.writing) return false;
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

  /** Time of the oldest event appended but not yet committed to the database; null when none (or not known yet). */
  private oldestUnsent(): number | null {
    let t: number | null = this.inflightOldest;
    // Lines still waiting for their turn's spool write count too (they are at most a turn old).
    const q = this.oldestInMemory();
    if (q !== null && (t === null || q < t)) t = q;
    if (this.tailFrom !== null && this.tailOldest !== null && (t === null || this.tailOldest < t)) t = this.tailOldest;
    const held = this.afterTail[0]?.entry.event.time;
    if (held !== undefined && (t === null || held < t)) t = held;
    return t;
  }

  stats(): IngestStats {
    const u = this.spool.usage();
    const c = this.counters;
    const oldest = this.oldestUnsent();
    // Judged afresh (not counted as a refusal): a back-off after a failed write ends even when no share comes.
    const st = this.budget.admitShare(this.spool.diskBytes, SHARE_LINE_ESTIMATE);
    const lim = this.budget.limits;
    return {
      writerUp: this.writerError === null,
      writerError: this.writerError,
      oldestUnsentAgeMs: oldest === null ? null : Math.max(0, Date.now() - oldest),
      storage: {
        accepting: st.accepting,
        ...(st.accepting ? {} : { reason: st.reason, message: st.message, since: new Date(st.since).toISOString() }),
        usedBytes: u.diskBytes,
        maxBytes: lim.maxBytes,
        blockMarginBytes: lim.blockMarginBytes,
        freeBytes: this.budget.freeBytes,
        minFreeBytes: lim.minFreeBytes,
        reserveFileHeld: this.budget.reserveFileHeld,
        refusedShares: this.budget.refusedTotal,
      },
      readErrors: c.readErrors,
      missingSegments: c.missingSegments,
      writerRestarts: c.writerRestarts,
      lostShares: c.lostShares,
      // Block statuses held until the spool before them is written (afterTail) wait too.
      queueDepth: this.queue.length + this.afterTail.length,
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
    // Lines still buffered from this turn go to the spool before it closes.
    this.flushPending();
    this.closed ??= (async () => {
      this.closing = true;
      if (this.watermarkTimer) clearInterval(this.watermarkTimer);
      this.closeDeadline = Date.now() + this.o.closeTimeoutMs;
      this.wakeAny?.();
      await this.loop;
      this.budget.stop();
      await this.spool.close();
      // Waiting in the queue or held, and in the batch the writer gave up on at the deadline.
      const lost = this.memoryOnly + (this.inflight ?? []).filter((e) => e.end === null).length;
      if (lost > 0) {
        this.log.error({ events: lost }, 'closed with events held only in memory (their spool write failed) not yet in the database: they are lost');
      }
      const left = this.spool.usage().pendingBytes;
      if (left > 0) this.log.warn({ pendingBytes: left, dir: this.spool.dir }, 'closed with events not yet in the database: they are replayed at the next start');
    })();
    return this.closed;
  }
}

/** The spool's source id: created once (a UUID in `source-id`), kept across restarts of the same spool. */
function readSourceId(dir: string): string {
  const file = path.join(dir, 'source-id');
  try {
    const id = fs.readFileSync(file, 'utf8').trim();
    if (id) return id;
  } catch { /* first start */ }
  const id = randomUUID();
  fs.writeFileSync(file, id + '\n', { mode: 0o644 });
  return id;
}
