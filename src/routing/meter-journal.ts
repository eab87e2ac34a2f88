import type { Logger } from 'pino';
import { type Position, Spool, type SpoolIo, cmpPos } from '../ingest/spool.ts';
import type { MinuteCounts } from './meter.ts';

// The route meter's write-ahead journal. The market bills routed work from route_minutes, which the meter writes
// once a second; what it counted since its last write lived only in memory, so a process killed outright (SIGKILL,
// OOM, a crash) lost up to a second of delivered work, billed to nobody. Every increment now goes to this journal
// first (one write per event-loop turn, like the share spool), and so does every flush, as a marker with its id.
// At start the journal is read back from its checkpoint: each flush found there is sent again with its own id
// (route_meter_flushes makes a flush that had committed add nothing), and the increments after the last marker go
// into the next flush. The checkpoint moves past a flush's marker once the database has it.
//
// Lines (JSON): [routeId, worker, bucketStart, {count: increment, …}] for an increment, ["flush", id, watermark]
// for a flush marker.

export interface JournalIncrement {
  routeId: number;
  worker: string;
  minute: number;
  inc: Partial<MinuteCounts>;
}

/** A flush found in the journal: the increments since the marker before it, its id and watermark. */
export interface JournalFlush {
  id: string;
  watermark: number;
  increments: JournalIncrement[];
  /** Just after its marker: the checkpoint once it is in the database. */
  upTo: Position;
}

export interface MeterJournalOptions {
  logger: Logger;
  /** fdatasync this often (a process crash loses nothing once written; this bounds what a power cut can). */
  fsyncMs?: number;
  segmentBytes?: number;
  io?: Partial<SpoolIo>;
}

export class MeterJournal {
  private readonly spool: Spool;
  private pending: string[] = [];
  private scheduled = false;
  private failing = false;
  private readonly log: Logger;
  /** Where a replay (recover) stops: the head when the journal was opened. */
  private readonly openedAt: Position;

  constructor(dir: string, opts: MeterJournalOptions) {
    this.log = opts.logger;
    this.spool = new Spool(dir, { segmentBytes: opts.segmentBytes ?? 8 * 1024 * 1024, fsyncMs: opts.fsyncMs ?? 1000, logger: opts.logger, io: opts.io });
    this.openedAt = { ...this.spool.head };
  }

  get dir(): string {
    return this.spool.dir;
  }

  /** An increment of a bucket: written at the end of this event-loop turn, with the turn's others. */
  increment(routeId: number, worker: string, minute: number, inc: Partial<MinuteCounts>): void {
    this.pending.push(JSON.stringify([routeId, worker, minute, inc]));
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => { this.scheduled = false; this.write(); });
    }
  }

  /**
   * A flush's marker, written now with every increment before it. Returns the position just after it, or null when
   * the journal cannot be written (the flush still goes to the database; only a crash before it lands loses it).
   */
  markFlush(id: string, watermark: number): Position | null {
    this.pending.push(JSON.stringify(['flush', id, watermark]));
    return this.write();
  }

  /** Everything up to pos is in the database: the checkpoint moves there, and older segments are deleted. */
  async committed(pos: Position): Promise<void> {
    if (this.spool.isClosed) return;
    try {
      await this.spool.setCheckpoint(pos);
    } catch (e) {
      // A stale checkpoint only means a longer replay, in which every flush is applied once by its id.
      this.log.warn({ err: (e as Error).message, dir: this.spool.dir }, 'cannot move the route meter journal checkpoint');
    }
  }

  /** The journal from its checkpoint to where it stood when opened: its flushes, and the increments after the last. */
  async recover(): Promise<{ flushes: JournalFlush[]; rest: JournalIncrement[]; unreadable: number }> {
    const flushes: JournalFlush[] = [];
    let group: JournalIncrement[] = [];
    let unreadable = 0;
    let pos = this.spool.replayFrom();
    while (cmpPos(pos, this.openedAt) < 0) {
      const r = await this.spool.read(pos, 10_000, this.openedAt);
      for (const l of r.lines) {
        const v = parseLine(l.text);
        if (!v) unreadable++;
        else if (v.kind === 'flush') {
          flushes.push({ id: v.id, watermark: v.watermark, increments: group, upTo: l.end });
          group = [];
        } else group.push(v.inc);
      }
      if (cmpPos(r.next, pos) <= 0) break;
      pos = r.next;
    }
    if (unreadable > 0) this.log.error({ lines: unreadable, dir: this.spool.dir }, 'route meter journal: unreadable lines skipped (their routed work is not billed)');
    return { flushes, rest: group, unreadable };
  }

  /** Write what is pending; the journal is closed (a later start reads back what the database does not have). */
  async close(): Promise<void> {
    if (this.spool.isClosed) return;
    this.write();
    await this.spool.close();
  }

  private write(): Position | null {
    if (this.spool.isClosed) return null;
    if (this.pending.length === 0) return { ...this.spool.head };
    const text = this.pending.join('\n') + '\n';
    this.pending = [];
    try {
      const { end } = this.spool.append(text);
      if (this.failing) {
        this.failing = false;
        this.log.info({ dir: this.spool.dir }, 'route meter journal writes work again');
      }
      return end;
    } catch (e) {
      // The increments are still in memory and go to the database with the next flush; only a crash before that
      // loses them. Logged once per failing spell.
      if (!this.failing) {
        this.failing = true;
        this.log.error({ err: (e as Error).message, dir: this.spool.dir }, 'route meter journal write failed: metering is kept in memory until written to the database');
      }
      return null;
    }
  }
}

type Parsed = { kind: 'inc'; inc: JournalIncrement } | { kind: 'flush'; id: string; watermark: number };

function parseLine(text: string): Parsed | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (!Array.isArray(v)) return null;
  if (v[0] === 'flush') {
    return typeof v[1] === 'string' && Number.isFinite(v[2]) ? { kind: 'flush', id: v[1], watermark: v[2] as number } : null;
  }
  const [routeId, worker, minute, inc] = v as unknown[];
  if (!Number.isSafeInteger(routeId) || typeof worker !== 'string' || !Number.isFinite(minute) || typeof inc !== 'object' || inc === null) return null;
  for (const x of Object.values(inc)) if (!Number.isFinite(x)) return null;
  return { kind: 'inc', inc: { routeId: routeId as number, worker, minute: minute as number, inc: inc as Partial<MinuteCounts> } };
}
