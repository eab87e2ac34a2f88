import type { Logger } from 'pino';
import { MissingSegmentError, type Position, Spool, type SpoolIo, cmpPos } from '../ingest/spool.ts';
import { type MinuteCounts, bucketKey, sumInto } from './meter.ts';

// The route meter's write-ahead journal. The market bills routed work from route_minutes, which the meter writes
// once a second; what it counted since its last write lived only in memory, so a process killed outright (SIGKILL,
// OOM, a crash) lost up to a second of delivered work, billed to nobody. Every count now goes to this journal first
// (summed per bucket and written once per event-loop turn, like the share spool), and every flush as a marker with
// its id, synced before the flush is sent. At start the journal is read back from its checkpoint: each flush found
// there is sent again under its own id (route_meter_flushes makes one that had committed add nothing), and the
// counts after the last marker go into the next flush. The checkpoint moves past a marker once the database has its
// flush.
//
// Lines (JSON): [routeId, worker, bucketStart, {count: increment, …}] for counts; ["flush", id, watermark, lines]
// for a marker, `lines` being the count lines written since the marker before it. When a marker finds more lines
// than it says (the marker before it unreadable: its flush may have committed), the lines before its own are set
// aside rather than billed twice; so are counts before an unreadable line after the last marker. Under-billing a
// damaged journal is the safe side. A marker without `lines` (["flush", id, watermark], written by 5e71a0e-68ef6d6)
// is read as that release read it: its flush is every count line since the marker before.

export interface JournalIncrement {
  routeId: number;
  worker: string;
  minute: number;
  inc: Partial<MinuteCounts>;
}

/** A flush found in the journal: the counts since the marker before it, its id and watermark. */
export interface JournalFlush {
  id: string;
  watermark: number;
  increments: JournalIncrement[];
  /** Just after its marker: the checkpoint once it is in the database. */
  upTo: Position;
}

export interface MeterJournalOptions {
  logger: Logger;
  /** fdatasync this often (a process crash loses nothing written; this bounds what a power cut loses). */
  fsyncMs?: number;
  segmentBytes?: number;
  io?: Partial<SpoolIo>;
  /** A flush older than this is not sent again (its id may be pruned from route_meter_flushes): set aside. */
  maxReplayAgeMs?: number;
  now?: () => number;
}

/** Count lines kept for a journal that cannot be written (a full disk): past this, all kept ones are dropped. */
const PENDING_MAX = 10_000;

export class MeterJournal {
  private readonly spool: Spool;
  /** This turn's counts, summed per bucket (serialized only when written). */
  private turn = new Map<string, JournalIncrement>();
  /** Counts whose write failed, written again before anything else. */
  private unwritten: JournalIncrement[] = [];
  /**
   * Counts written since the last marker, summed per bucket (null: unknown, a failed write may have left some on
   * disk). A stop that cannot write a marker sends what is not on disk without one (RouteMeter's sendNotOnDisk).
   */
  private onDisk: Map<string, JournalIncrement> | null = new Map();
  /** Count lines written since the last marker (the next marker says how many). */
  private linesSinceMarker = 0;
  private scheduled = false;
  private failing = false;
  private dropped = 0;
  /** A marker whose failed write may have left it on disk: its id is the next flush's (see nextFlushId). */
  private reuseId: string | null = null;
  private readonly log: Logger;
  private readonly maxReplayAgeMs: number;
  private readonly now: () => number;
  /** Where a replay (recover) stops: the head when the journal was opened. */
  private readonly openedAt: Position;

  constructor(dir: string, opts: MeterJournalOptions) {
    this.log = opts.logger;
    this.maxReplayAgeMs = opts.maxReplayAgeMs ?? 6 * 86_400_000;
    this.now = opts.now ?? Date.now;
    this.spool = new Spool(dir, { segmentBytes: opts.segmentBytes ?? 8 * 1024 * 1024, fsyncMs: opts.fsyncMs ?? 1000, logger: opts.logger, io: opts.io });
    this.openedAt = { ...this.spool.head };
  }

  get dir(): string {
    return this.spool.dir;
  }

  /** Counts of a bucket: summed with this turn's others of the same bucket, written at the turn's end. */
  increment(routeId: number, worker: string, minute: number, inc: Partial<MinuteCounts>): void {
    addTo(this.turn, { routeId, worker, minute, inc });
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => { this.scheduled = false; this.write(null); });
    }
  }

  /**
   * A flush's marker, written and synced now, after every count before it: the flush may be sent only once its
   * marker is durable (a committed flush read back without its marker would be billed again). Returns the position
   * just after it, or null when the journal cannot be written (then the flush must not be sent).
   */
  markFlush(id: string, watermark: number): Position | null {
    return this.write({ id, watermark });
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

  /** The journal from its checkpoint to where it stood when opened: its flushes, and the counts after the last. */
  async recover(): Promise<{ flushes: JournalFlush[]; rest: JournalIncrement[]; setAside: number }> {
    const flushes: JournalFlush[] = [];
    let group: JournalIncrement[] = [];
    /** Counts in `group` before damage (an unreadable line, a missing segment): they may belong to a flush whose
     *  marker was there. */
    let suspect = 0;
    let unreadable = 0;
    let missing = 0;
    let setAside = 0;
    const start = this.spool.replayFrom();
    // Segment by segment: segments are numbered in sequence, so one missing from between the checkpoint and the
    // head is damage, and a read that fails on one must not take the lines of the others with it.
    for (let seg = start.seg; seg <= this.openedAt.seg && cmpPos(start, this.openedAt) < 0; seg++) {
      if (!this.spool.hasSegment(seg)) {
        missing++;
        suspect = group.length;
        continue;
      }
      const limit = seg === this.openedAt.seg ? this.openedAt : { seg: seg + 1, off: 0 };
      let pos = seg === start.seg ? start : { seg, off: 0 };
      while (cmpPos(pos, limit) < 0) {
        let r: Awaited<ReturnType<Spool['read']>>;
        try {
          r = await this.spool.read(pos, 10_000, limit);
        } catch (e) {
          if (!(e instanceof MissingSegmentError)) throw e;
          missing++;
          suspect = group.length;
          break;
        }
        for (const l of r.lines) {
          const v = parseLine(l.text);
          if (!v) {
            unreadable++;
            suspect = group.length;
          } else if (v.kind === 'flush') {
            // Counts before damage, or more than the marker says (the marker before it lost): another flush's.
            const extra = Math.min(group.length, Math.max(suspect, group.length - (v.lines ?? group.length)));
            setAside += extra;
            const own = group.slice(extra);
            const prev = flushes[flushes.length - 1];
            if (this.now() - v.watermark > this.maxReplayAgeMs) {
              setAside += own.length;
              this.log.error({ id: v.id, watermark: new Date(v.watermark).toISOString() }, 'route meter journal: a flush too old to be sent again safely is set aside');
            } else if (prev?.id === v.id) {
              // The same id again: a marker whose failed write stayed on disk, then the flush sent under its id
              // (nextFlushId). They are one flush: its counts are both groups.
              prev.increments.push(...own);
              prev.upTo = l.end;
              prev.watermark = Math.max(prev.watermark, v.watermark);
            } else flushes.push({ id: v.id, watermark: v.watermark, increments: own, upTo: l.end });
            group = [];
            suspect = 0;
          } else group.push(v.inc);
        }
        if (r.lines.length === 0 || cmpPos(r.next, pos) <= 0) break;
        pos = r.next;
      }
    }
    setAside += suspect;
    const rest = group.slice(suspect);
    // They are on disk before the next marker, whose line count must include them; and a stop that cannot write a
    // marker must not send them (takeOnDisk), since the next start reads them back again.
    this.linesSinceMarker = rest.length;
    this.onDisk = new Map();
    for (const i of rest) addTo(this.onDisk, i);
    if (unreadable > 0 || missing > 0 || setAside > 0) {
      this.log.error({ unreadable, missingSegments: missing, setAside, dir: this.spool.dir }, 'route meter journal: damaged; the counts that could have been billed already are not billed again');
    }
    return { flushes, rest, setAside };
  }

  /**
   * The id for the next flush: a new one, unless the last marker write failed in a way that may have left it on
   * disk (its flush was not sent): then that id again, so the flush read back from it and the one sent are one.
   */
  nextFlushId(fresh: () => string): string {
    return this.reuseId ?? fresh();
  }

  /**
   * For a stop while no marker can be written: the counts written since the last marker, to be left out of a flush
   * sent without one (they are read back at the next start). Null when what is on disk is not known: then nothing
   * may be sent.
   */
  onDiskSinceMarker(): ReadonlyMap<string, JournalIncrement> | null {
    return this.onDisk;
  }

  /** After that flush is in the database: the counts it carried that are not on disk are not written any more. */
  dropUnwritten(): void {
    this.unwritten = [];
    this.turn.clear();
  }

  /** Write what is pending; the journal is closed (a later start reads back what the database does not have). */
  async close(): Promise<void> {
    if (this.spool.isClosed) return;
    this.write(null);
    await this.spool.close();
  }

  /** This turn's counts (after any left from a failed write), then the marker if any, in one append. */
  private write(marker: { id: string; watermark: number } | null): Position | null {
    if (this.spool.isClosed) return null;
    const counts = this.unwritten;
    for (const b of this.turn.values()) counts.push(b);
    this.turn.clear();
    this.unwritten = [];
    if (counts.length === 0 && !marker) return { ...this.spool.head };
    const lines = counts.map((b) => JSON.stringify([b.routeId, b.worker, b.minute, b.inc]));
    if (marker) lines.push(JSON.stringify(['flush', marker.id, marker.watermark, this.linesSinceMarker + counts.length]));
    try {
      const { end } = this.spool.append(lines.join('\n') + '\n', { sync: marker !== null });
      this.linesSinceMarker = marker ? 0 : this.linesSinceMarker + counts.length;
      if (marker) {
        this.reuseId = null;
        this.onDisk = new Map();
      } else if (this.onDisk) for (const b of counts) addTo(this.onDisk, b);
      if (this.failing) {
        this.failing = false;
        this.log.info({ dir: this.spool.dir, dropped: this.dropped }, 'route meter journal writes work again');
      }
      return end;
    } catch (e) {
      // The counts are written again before anything else (the marker is not: its flush is not sent), unless part
      // of them may be on disk already. They are in memory too, and reach the database once a marker is written.
      if (!this.spool.failedWriteLeftBytes && counts.length <= PENDING_MAX) this.unwritten = counts;
      else this.dropped += counts.length;
      // Some of those lines may be on disk: the next marker's count is an upper bound, so replay does not take them
      // for another flush's and set aside this one's oldest (every line after the last synced marker is the next
      // flush's).
      if (this.spool.failedWriteLeftBytes) {
        this.linesSinceMarker += counts.length;
        this.onDisk = null;
      }
      if (marker && this.spool.failedWriteLeftBytes) this.reuseId = marker.id;
      if (!this.failing) {
        this.failing = true;
        this.log.error({ err: (e as Error).message, dir: this.spool.dir }, 'route meter journal write failed: metering is held in memory until it can be written');
      }
      return null;
    }
  }
}

/** Sum b into its bucket's entry in m (a copy: b's counts object is not kept). */
function addTo(m: Map<string, JournalIncrement>, b: JournalIncrement): void {
  const key = bucketKey(b.routeId, b.worker, b.minute);
  let have = m.get(key);
  if (!have) {
    have = { routeId: b.routeId, worker: b.worker, minute: b.minute, inc: {} };
    m.set(key, have);
  }
  sumInto(have.inc, b.inc);
}

/** `lines` null: a marker written before markers counted their lines (every count line since the one before). */
type Parsed = { kind: 'inc'; inc: JournalIncrement } | { kind: 'flush'; id: string; watermark: number; lines: number | null };

function parseLine(text: string): Parsed | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (!Array.isArray(v)) return null;
  if (v[0] === 'flush') {
    if (typeof v[1] !== 'string' || !Number.isFinite(v[2])) return null;
    // Three fields: a marker of a release before markers counted their lines (5e71a0e-68ef6d6), whose journal an
    // upgraded process reads back. Its flush is the count lines since the marker before it, as that release read it.
    if (v.length === 3) return { kind: 'flush', id: v[1], watermark: v[2] as number, lines: null };
    return Number.isSafeInteger(v[3]) && (v[3] as number) >= 0 ? { kind: 'flush', id: v[1], watermark: v[2] as number, lines: v[3] as number } : null;
  }
  const [routeId, worker, minute, inc] = v as unknown[];
  if (!Number.isSafeInteger(routeId) || typeof worker !== 'string' || !Number.isFinite(minute) || typeof inc !== 'object' || inc === null || Array.isArray(inc)) return null;
  for (const x of Object.values(inc)) if (!Number.isFinite(x)) return null;
  return { kind: 'inc', inc: { routeId: routeId as number, worker, minute: minute as number, inc: inc as Partial<MinuteCounts> } };
}
