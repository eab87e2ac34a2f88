import type { BlockEvent, ShareEvent } from '../shares/events.ts';
import type { ShareOutcome } from '../shares/outcome.ts';

// The storage seam. The pool core never sees SQL: it emits ShareEvent/BlockEvent; the ingest pipeline writes
// them through ShareWriter; the API reads through StatsReader. Postgres (pg) and PGlite implement both with
// the same migrations.

export interface ShareWriter {
  /**
   * Write a batch of classified shares. Idempotent on ShareEvent.id: a replayed share is written once. The SQL
   * store reports how many were new (WriteResult); other writers may resolve to nothing.
   */
  writeShares(shares: readonly ShareEvent[]): Promise<void | WriteResult>;
  /** Record a block candidate and the node's answer. Idempotent on the block hash. */
  writeBlock(block: BlockEvent): Promise<void>;
  /** Cheap liveness check (SELECT 1). */
  ping(): Promise<void>;
}

export interface WriteResult {
  /** Shares new to the database. */
  inserted: number;
  /** Shares of the batch that were already stored (replays). */
  duplicates: number;
}

export type Window = '5m' | '1h' | '24h';

export interface HashrateWindows {
  /** H/s = sum of accepted pool difficulty × 2^32 / window seconds. */
  '5m': number;
  '1h': number;
  '24h': number;
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
  /** satoshis, as a decimal string (bigint in JSON); '0' while status is 'submitted' (the node's answer not yet recorded) */
  reward: string;
  status: 'submitted' | 'accepted' | 'rejected' | 'orphaned' | 'confirmed';
  result: string | null;
  time: string;
  confirmations: number;
}

export interface SeriesPoint { time: string; hashrate: number; accepted: number; rejected: number }

export interface StatsReader {
  poolHashrate(now?: Date): Promise<HashrateWindows & { miners: number; workers: number; shares24h: RejectCounts }>;
  account(account: string, now?: Date): Promise<{ account: string; hashrate: HashrateWindows; workers: number; workersOnline: number; shares24h: RejectCounts } | null>;
  workers(account: string, page: { limit: number; offset: number }, now?: Date): Promise<{ total: number; items: WorkerSummary[] }>;
  hashrateSeries(scope: { account?: string; worker?: string }, window: Window, bucketSeconds: number, now?: Date): Promise<SeriesPoint[]>;
  blocks(page: { limit: number; offset: number }): Promise<{ total: number; items: BlockRow[] }>;
  lastBlock(): Promise<BlockRow | null>;
}

/**
 * The ingest pipeline's numbers, for /metrics and /health (DurableShareLog.stats()). A superset of the API's
 * IngestSnapshot (queueDepth, spoolBytes, dbUp).
 */
export interface IngestStats {
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
