// What the API needs from the rest of the process, as narrow interfaces the CLI fills from Pool + store.
// The api never imports Pool or a store implementation: it reads the pool through a snapshot function and
// storage through StatsReader, so tests hand it fakes and the pool core never learns about HTTP.

import type { BlockCounters } from '../shares/block-state.ts';
import type { ShareOutcome } from '../shares/outcome.ts';
import type { AccountingApiDeps } from './routes/accounting.ts';
import type { StatsReader } from '../store/types.ts';
import type { ApiMetrics } from './metrics.ts';
import type { LiveDeps } from './routes/live.ts';
import type { MarketApiDeps } from './routes/market.ts';
import type { RoutingApiDeps } from './routes/routing.ts';

/** The in-memory state of this pool process, read on every /api/v1/pool request and /metrics scrape. */
export interface PoolSnapshot {
  /** Open stratum connections. */
  connections: number;
  /** Connections with at least one authorized worker. */
  authorizedSessions: number;
  /** Running totals since the process started, per share class (monotonic while the process lives). */
  shares: Record<ShareOutcome, number>;
  /** Block candidates found since start, submission rounds, and blocks per status (block-state.ts). */
  blocks: BlockCounters;
  /** Node answer → count: 'accepted', or Bitcoin Core's reason ("high-hash", "duplicate", "error: …"). */
  blockResults: Record<string, number>;
  lastBlock: { height: number; hash: string; account: string; worker: string; result: string | null; time: number } | null;
  /** The template jobs are built from; null before the first arrives. height = the block being mined. */
  template: { height: number; ageMs: number | null } | null;
  /** The chain tip as the current template sees it: height = template height − 1, difficulty from its bits. */
  network: { height: number; difficulty: number } | null;
  draining: boolean;
  /** Bytes buffered for slow readers across all connections, and connections closed past the pool-wide cap. */
  writeBuffers?: { bufferedBytes: number; slowReadersClosed: number };
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
  /** The ingest pipeline (writer alive, shares accepted by the storage); absent = no such check. */
  ingest?(): IngestSnapshot;
}

export interface ApiDeps {
  stats: StatsReader;
  pool: () => PoolSnapshot;
  health: HealthChecks;
  /** From createMetrics(); the same object hands observeSubmit/observeDbWrite to the pool and the ingest. */
  metrics: ApiMetrics;
  /** The hashrate market (issue 13): /api/v1/market/* when present. */
  market?: MarketApiDeps;
  /** Accounting, payouts and account tokens (issue 11); absent: those routes are not served. */
  accounting?: AccountingApiDeps;
  /** The dashboard's live feed (in-memory rollups of the share log): /api/v1/pool/live, …/hashrate, /api/v1/live. */
  live?: LiveDeps;
  /** Hashrate routing (issue 12): /api/v1/routes and per-route metrics when present. */
  routing?: RoutingApiDeps;
}

/** Sources read at scrape time by createMetrics(). */
export interface MetricsSources {
  pool: () => PoolSnapshot;
  /** Absent until ingest is wired: its gauges are then not exported at all (rather than a misleading 0). */
  ingest?: () => IngestSnapshot;
  /** getblocktemplate replies read on the template thread and on the event loop (BitcoinRpc.templateReads). */
  templateReads?: () => { thread: number; eventLoop: number };
}

export interface IngestSnapshot {
  /** Shares accepted by the pool and not yet written to the database (in memory, bounded). */
  queueDepth: number;
  /** Bytes in the local spool awaiting replay into the database (0 when the database keeps up). */
  spoolBytes: number;
  /** The last write or ping succeeded. */
  dbUp: boolean;
  /** The writer makes progress on its own (false: it cannot read the spool, or crashed and is restarting). */
  writerUp?: boolean;
  writerError?: string | null;
  /** Age of the oldest share or block not yet in the database, ms; null when none. */
  oldestUnsentAgeMs?: number | null;
  /** The spool's disk budget (see DurableShareLog): accepting = new shares can be stored. */
  storage?: {
    accepting: boolean;
    reason?: string;
    message?: string;
    usedBytes: number;
    /** 0 = no budget. */
    maxBytes: number;
    blockMarginBytes: number;
    freeBytes: number | null;
    minFreeBytes: number;
    reserveFileHeld: boolean;
    refusedShares: number;
  };
}
