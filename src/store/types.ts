import type { BlockStatus, UnsettledBlock } from '../shares/block-state.ts';
import type { BlockEvent, ShareEvent } from '../shares/events.ts';
import type { ShareOutcome } from '../shares/outcome.ts';

// The storage seam. The pool core never sees SQL: it emits ShareEvent/BlockEvent; the ingest pipeline writes
// them through ShareWriter; the API reads through StatsReader. Postgres (pg) and PGlite implement both with
// the same migrations.

/**
 * What a share writer reads of a share it copies from its COPY row (writeShareRows): the row holds the share;
 * this is what the batch's other statements need (partitions by day, user agents, block candidates). The ingest
 * queue keeps only this and the row while a share waits for the database.
 */
export type ShareRowMeta = Pick<ShareEvent, 'time' | 'account' | 'worker' | 'sessionId' | 'outcome' | 'blockHash'>;

export interface ShareWriter {
  /**
   * Write a batch of classified shares. Idempotent on ShareEvent.id: a replayed share is written once. The SQL
   * store reports how many were new (WriteResult); other writers may resolve to nothing.
   */
  writeShares(shares: readonly ShareEvent[]): Promise<void | WriteResult>;
  /**
   * writeShares for shares whose spool lines are COPY rows already (ingest/codec.ts 's3' lines, each ending in a
   * newline, in the order of `shares`): the SQL store copies them as they are. `shares` holds only what the
   * batch's other statements read of each share (the rows hold the rest). userAgentOf: the user agent of a
   * share's session, when known. A meta may be the ingest queue's own entry, which also holds the bytes of the spool
   * write its row lies in: read its fields, do not keep, clone or serialize the object itself.
   */
  writeShareRows?(shares: readonly ShareRowMeta[], rows: string | Uint8Array, userAgentOf: (sessionId: string) => string | undefined): Promise<WriteResult>;
  /** Record a block event (candidate, node answer, status). Idempotent (replays change nothing). */
  writeBlock(block: BlockEvent): Promise<void>;
  /** Several block events in order, atomically; writers without it get writeBlock() one by one. */
  writeBlocks?(blocks: readonly BlockEvent[]): Promise<void>;
  /** Cheap liveness check (SELECT 1). */
  ping(): Promise<void>;
  /**
   * The ingest watermark of one spool (source): every share it accepted with a time before `committedTo` (ms) is
   * in the database. Monotonic (a smaller value never lowers it). Accounting credits a period only once every
   * live source has passed its end.
   */
  recordWatermark?(source: string, committedTo: number, description?: string): Promise<void>;
}

export interface WriteResult {
  /** Shares new to the database. */
  inserted: number;
  /** Shares of the batch that were already stored (replays). */
  duplicates: number;
}

export type Window = '5m' | '1h' | '24h';

/** One window's rate, with what it rests on: a young worker's 5 min window covers only the time it has mined. */
export interface WindowRate {
  /** H/s = Σ accepted pool difficulty × 2^32 / seconds. */
  hashrate: number;
  /**
   * Seconds the window actually covers: from the later of the window's start and the first share ever seen from
   * this worker (account: its first worker; pool: the first of all), to now. A worker that started 30 s ago has
   * a 5 min window of 30 s, so its rate is not shown at a tenth.
   */
  seconds: number;
  /** Accepted shares in the window: a rate from 3 shares is a guess, from 300 a measurement. */
  shares: number;
}

export interface HashrateWindows {
  '5m': WindowRate;
  '1h': WindowRate;
  '24h': WindowRate;
}

export interface RejectCounts {
  accepted: number;
  rejected: Partial<Record<Exclude<ShareOutcome, 'accepted'>, number>>;
  /** rejected / (accepted + rejected), 0 when no shares. */
  rejectRate: number;
}

export interface WorkerSummary {
  account: string;
  worker: string;
  firstSeen: string; // ISO time
  lastSeen: string;
  online: boolean;
  hashrate: HashrateWindows;
  shares24h: RejectCounts;
  /** Pool difficulty of the worker's latest share (filled by the SQL store). */
  difficulty?: number | null;
  /** User agent from mining.subscribe, when the pool knew it (filled by the SQL store). */
  userAgent?: string | null;
}

export interface BlockRow {
  height: number;
  hash: string;
  account: string;
  worker: string;
  /** satoshis, as a decimal string (bigint in JSON); '0' until the block's own record arrives (only its share is stored) */
  reward: string;
  status: BlockStatus;
  /** Final: nothing can change the status any more. */
  settled: boolean;
  result: string | null;
  time: string;
  confirmations: number;
}

export interface SeriesPoint { time: string; hashrate: number; accepted: number; rejected: number }

/** The pool's accepted work in one rollup row: a minute, or an hour that compaction folded minutes into. */
export interface WorkBucket { time: string; seconds: 60 | 3600; difficulty: number; accepted: number }

export interface StatsReader {
  poolHashrate(now?: Date): Promise<HashrateWindows & { miners: number; workers: number; shares24h: RejectCounts }>;
  account(account: string, now?: Date): Promise<{ account: string; hashrate: HashrateWindows; workers: number; workersOnline: number; shares24h: RejectCounts } | null>;
  workers(account: string, page: { limit: number; offset: number }, now?: Date): Promise<{ total: number; items: WorkerSummary[] }>;
  hashrateSeries(scope: { account?: string; worker?: string }, window: Window, bucketSeconds: number, now?: Date): Promise<SeriesPoint[]>;
  blocks(page: { limit: number; offset: number }): Promise<{ total: number; items: BlockRow[] }>;
  lastBlock(): Promise<BlockRow | null>;
  /** The pool's accepted work per rollup row (minute or compacted hour) starting in [from, to), oldest first. */
  poolWork(from: Date, to: Date): Promise<WorkBucket[]>;
}

export interface BlockReader {
  unsettledBlocks(): Promise<UnsettledBlock[]>;
}

/**
 * The ingest pipeline's numbers, for /metrics and /health (DurableShareLog.stats()). A superset of the API's
 * IngestSnapshot (queueDepth, spoolBytes, dbUp).
 */
export interface IngestStats {
  /** The writer is making progress on its own: false while it cannot read the spool or after it crashed (restarting). */
  writerUp: boolean;
  /** Why it is not (null when up). */
  writerError: string | null;
  /** Age of the oldest event appended but not yet in the database, ms; null when nothing is waiting (or not known yet). */
  oldestUnsentAgeMs: number | null;
  /** The spool's disk budget: whether shares are accepted, and why not. */
  storage: {
    accepting: boolean;
    reason?: 'budget' | 'disk-full' | 'write-failed';
    message?: string;
    /** ISO time since when shares are refused. */
    since?: string;
    /** Bytes of spool segments on disk. */
    usedBytes: number;
    /** Budget (0 = none); shares are refused past maxBytes − blockMarginBytes. */
    maxBytes: number;
    blockMarginBytes: number;
    /** Free bytes on the spool's filesystem at the last check (null if unknown). */
    freeBytes: number | null;
    minFreeBytes: number;
    /** The preallocated reserve file for block events is in place. */
    reserveFileHeld: boolean;
    /** Shares refused since start because they could not be stored. */
    refusedShares: number;
  };
  /** Failed spool reads by the writer (each retried), and segments found missing (their events lost). */
  readErrors: number;
  missingSegments: number;
  /** Times the writer failed unexpectedly and was restarted. */
  writerRestarts: number;
  /** Shares dropped because the spool failed and the memory bound was reached (callers that ignore admitShare). */
  lostShares: number;
  /** Events waiting in memory for a database batch (bounded by queueCapacity). */
  queueDepth: number;
  queueCapacity: number;
  /** Bytes in the spool after the checkpoint: written locally, not yet committed to the database. */
  spoolBytes: number;
  /** Bytes of all spool segment files on disk (including the part already committed). */
  spoolDiskBytes: number;
  spoolSegments: number;
  /** 'memory' while the queue keeps up; 'spool' while the writer catches up by reading the spool files. */
  mode: 'memory' | 'spool';
  /** The last database write succeeded (false from the first failure until the next success). */
  dbUp: boolean;
  /** When the current outage began (ISO), null when up. */
  dbDownSince: string | null;
  lastError: string | null;
  /** Duration of the last committed batch, ms; null before the first. */
  lastWriteMs: number | null;
  lastWriteAt: string | null;
  /** Events appended to the log since start. */
  appended: { shares: number; blocks: number };
  /** Events committed to the database since start (replays of already-stored shares included). */
  written: { shares: number; blocks: number; batches: number; duplicates: number };
  /** Failed write attempts since start (each is retried). */
  writeErrors: number;
  /** Spool writes that failed (disk full, I/O error): those events were kept in memory only. */
  spoolErrors: number;
  /** Unreadable spool lines skipped on replay (a torn last line after a crash is not counted). */
  corruptLines: number;
  /** Events the database refused as invalid, set aside in the spool's dead-letter file. */
  deadLettered: number;
}
