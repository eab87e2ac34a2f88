import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApi, listenApi } from '../api/app.ts';
import type { IngestSnapshot } from '../api/deps.ts';
import { createMetrics } from '../api/metrics.ts';
import { poolSnapshot } from '../api/pool-snapshot.ts';
import type { NodeClient } from '../node/types.ts';
import type { Pool } from '../pool/pool.ts';
import type { StatsReader } from '../store/types.ts';

export interface ApiWiring {
  pool: Pool;
  node: NodeClient;
  stats: StatsReader;
  dbPing: () => Promise<void>;
  ingest?: () => IngestSnapshot;
  /** Feeds DB write latencies to the metrics (set by the caller on its writer). */
  onDbWrite?: (observe: (seconds: number) => void) => void;
}

export interface ApiConfig { host: string; port: number; cors: string[] | boolean; templateMaxAgeMs: number }

/** The REST API, probes and /metrics over the running pool and its store. */
export async function startApi(w: ApiWiring, cfg: ApiConfig, log: Logger): Promise<{ app: FastifyInstance; port: number }> {
  const snapshot = () => poolSnapshot(w.pool);
  const metrics = createMetrics({ pool: snapshot, ingest: w.ingest });
  w.pool.submitObserver = (s) => metrics.observeSubmit(s);
  w.onDbWrite?.((s) => metrics.observeDbWrite(s));
  const app = buildApi({
    stats: w.stats,
    pool: snapshot,
    metrics,
    health: {
      db: w.dbPing,
      node: async () => {
        const info = await w.node.getBlockchainInfo();
        return { synced: !info.initialblockdownload, height: info.blocks };
      },
      templateAgeMs: () => w.pool.templates.status.templateAgeMs,
      draining: () => w.pool.server.isDraining,
    },
  }, { cors: cfg.cors, logger: log, health: { templateMaxAgeMs: cfg.templateMaxAgeMs } });
  const port = await listenApi(app, cfg.host, cfg.port);
  return { app, port };
}
