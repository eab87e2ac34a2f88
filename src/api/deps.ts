// What the API needs from the rest of the process, as narrow interfaces the CLI fills from Pool + store.
// The api never imports Pool or a store implementation: it reads the pool through a snapshot function and
// storage through StatsReader, so tests hand it fakes and the pool core never learns about HTTP.

import type { ShareOutcome } from '../shares/outcome.ts';
import type { StatsReader } from '../store/types.ts';
import type { ApiMetrics } from './metrics.ts';

/** The in-memory state of this pool process, read on every /api/v1/pool request and /metrics scrape. */
export interface PoolSnapshot {
  /** Open stratum connections. */
  connections: number;
  /** Connections with at least one authorized worker. */
  authorizedSessions: number;
  /** Running totals since the process started, per share class (monotonic while the process lives). */
  shares: Record<ShareOutcome, number>;
  /** Block candidates found and what became of them, since start. */
  blocks: { candidates: number; accepted: number; rejected: number; errors: number };
  /** Node answer → count: 'accepted', or Bitcoin Core's reason ("high-hash", "duplicate", "error: …"). */
  blockResults: Record<string, number>;
  lastBlock: { height: number; hash: string; account: string; worker: string; result: string | null; time: number } | null;
  /** The template jobs are built from; null before the first arrives. height = the block being mined. */
  template: { height: number; ageMs: number | null } | null;
  /** The chain tip as the current template sees it: height = template height − 1, difficulty from its bits. */
  network: { height: number; difficulty: number } | null;
  draining: boolean;
}

/** The probes' view of the process. Each check may throw or reject: the message becomes the reason. */
export interface HealthChecks {
  /** Resolves when the database answers (e.g. ShareWriter.ping(): SELECT 1). */
  db(): Promise<void>;
  /** The node's view (getblockchaininfo): synced = !initialblockdownload. Rejects when unreachable. */
  node(): Promise<{ synced: boolean; height: number }>;
  /** ms since the current template arrived; null before the first (TemplateSource.status.templateAgeMs). */
  templateAgeMs(): number | null;
  /** True once graceful shutdown started (StratumServer.isDraining). */
  draining(): boolean;
}

export interface ApiDeps {
  stats: StatsReader;
  pool: () => PoolSnapshot;
  health: HealthChecks;
  /** From createMetrics(); the same object hands observeSubmit/observeDbWrite to the pool and the ingest. */
  metrics: ApiMetrics;
}

/** Sources read at scrape time by createMetrics(). */
export interface MetricsSources {
  pool: () => PoolSnapshot;
  /** Absent until ingest is wired: its gauges are then not exported at all (rather than a misleading 0). */
  ingest?: () => IngestSnapshot;
}

export interface IngestSnapshot {
  /** Shares accepted by the pool and not yet written to the database (in memory, bounded). */
  queueDepth: number;
  /** Bytes in the local spool awaiting replay into the database (0 when the database keeps up). */
  spoolBytes: number;
  /** The last write or ping succeeded. */
  dbUp: boolean;
}
