import type { BlockEvent, ShareEvent } from '../shares/events.ts';
import type { ShareOutcome } from '../shares/outcome.ts';

// The storage seam. The pool core never sees SQL: it emits ShareEvent/BlockEvent; the ingest pipeline writes
// them through ShareWriter; the API reads through StatsReader. Postgres (pg) and PGlite implement both with
// the same migrations.

export interface ShareWriter {
  /** Write a batch of classified shares. Idempotent on ShareEvent.id: a replayed share is written once. */
  writeShares(shares: readonly ShareEvent[]): Promise<void>;
  /** Record a block candidate and the node's answer. Idempotent on the block hash. */
  writeBlock(block: BlockEvent): Promise<void>;
  /** Cheap liveness check (SELECT 1). */
  ping(): Promise<void>;
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
}

export interface BlockRow {
  height: number;
  hash: string;
  account: string;
  worker: string;
  /** satoshis, as a decimal string (bigint in JSON) */
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
