import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApi, listenApi } from '../api/app.ts';
import type { ApiDeps, IngestSnapshot, MetricsSources } from '../api/deps.ts';
import { LiveStats, type LiveSource, SERIES } from '../api/live.ts';
import { createMetrics } from '../api/metrics.ts';
import { poolSnapshot } from '../api/pool-snapshot.ts';
import type { NodeClient } from '../node/types.ts';
import type { Pool } from '../pool/pool.ts';
import type { StatsReader } from '../store/types.ts';
import type { Registry } from 'prom-client';
import type { AccountingApiDeps } from '../api/routes/accounting.ts';
import type { RoutingApiDeps } from '../api/routes/routing.ts';
import type { MarketApiDeps } from '../api/routes/market.ts';

export interface ApiWiring {
  pool: Pool;
  node: NodeClient;
  stats: StatsReader;
  /** Resolves when the database answers and its schema is current (rejects with the reason otherwise). */
  dbPing: () => Promise<void>;
  ingest?: () => IngestSnapshot;
  /** Feeds DB write latencies to the metrics (set by the caller on its writer). */
  onDbWrite?: (observe: (seconds: number) => void) => void;
  /** The share log's in-process events: the dashboard's live feed counts them in memory (absent: no feed). */
  shareLog?: LiveSource;
  /** Accounting's routes (balances, earnings, settings, tokens, payouts), given the API's metrics registry. */
  accounting?: (registry: Registry) => AccountingApiDeps;
  /** getblocktemplate replies read on the template thread and on the event loop (metrics). */
  templateReads?: MetricsSources['templateReads'];
  /** Hashrate routing (issue 12): /api/v1/routes. */
  routing?: RoutingApiDeps;
  /** The hashrate market (issue 13): /api/v1/market. */
  market?: MarketApiDeps;
}

export interface ApiConfig {
  host: string; port: number; cors: string[] | boolean; templateMaxAgeMs: number;
  /** Serve the web dashboard at / (default true). */
  dashboard?: boolean;
  /** Minutes without an accepted share after which a worker counts as offline (database.workerOnlineMinutes). */
  onlineMinutes?: number;
}

/** The REST API, probes and /metrics over the running pool and its store. */
export async function startApi(w: ApiWiring, cfg: ApiConfig, log: Logger): Promise<{ app: FastifyInstance; port: number }> {
  const snapshot = () => poolSnapshot(w.pool);
  const closers: (() => void)[] = [];
  const metrics = createMetrics({ pool: snapshot, ingest: w.ingest, templateReads: w.templateReads });
  w.pool.submitObserver = (s) => metrics.observeSubmit(s);
  w.onDbWrite?.((s) => metrics.observeDbWrite(s));
  let live: LiveStats | undefined;
  if (w.shareLog) {
    const stats = new LiveStats({ onlineMs: (cfg.onlineMinutes ?? 10) * 60_000 });
    const detach = stats.attach(w.shareLog);
    live = stats;
    // The pool's work over the whole 7 d chart from the store's rollups (minutes and compacted hours), so a restart
    // neither blanks nor shortens the charts; best effort.
    const now = Date.now();
    const from = Math.floor((now - SERIES['7d'].ms) / SERIES['7d'].bucketMs) * SERIES['7d'].bucketMs;
    void Promise.all([w.stats.poolWork(new Date(from), new Date(now)), w.stats.blocks({ limit: 50, offset: 0 })])
      .then(([work, blocks]) => stats.seed(work, blocks.items))
      .catch((err: Error) => log.warn({ err: err.message }, 'live feed: could not seed from the store'));
    closers.push(detach);
  }
  const app = buildApi({
    stats: w.stats,
    accounting: w.accounting?.(metrics.registry),
    pool: snapshot,
    metrics,
    routing: w.routing,
    market: w.market,
    health: {
      db: w.dbPing,
      node: async () => {
        const info = await w.node.getBlockchainInfo();
        return { synced: !info.initialblockdownload, height: info.blocks };
      },
      templateAgeMs: () => w.pool.templates.status.templateAgeMs,
      draining: () => w.pool.server.isDraining,
      ingest: w.ingest,
    },
    ...(live ? { live: { stats: live, reward: () => w.pool.templates.current?.coinbasevalue ?? null, nodes: () => ('endpointUrls' in w.node ? (w.node as { endpointUrls: string[] }).endpointUrls : []) } } : {}),
  }, { cors: cfg.cors, logger: log, health: { templateMaxAgeMs: cfg.templateMaxAgeMs }, dashboard: cfg.dashboard });
  app.addHook('onClose', async () => { for (const c of closers) c(); });
  const port = await listenApi(app, cfg.host, cfg.port);
  return { app, port };
}
