import path from 'node:path';
import type { Logger } from 'pino';
import type { Pool } from '../pool/pool.ts';
import { RoutingService } from '../routing/service.ts';
import type { Queryable } from '../store/db.ts';
import type { Config } from './config.ts';

// Routing (issue 12) wired into `hashhub pool`: kept out of run-pool.ts, which only calls these two functions.

/** Where miners moved by client.reconnect come back: the configured host, else a concrete listening address. */
export function reconnectHostFrom(cfg: Config): string {
  const h = cfg.routing.reconnectHost ?? cfg.stratum.reconnectHost ?? cfg.stratum.host;
  return h === '0.0.0.0' || h === '::' ? '127.0.0.1' : h;
}

/** The routing service on the pool's sessions (null when routing.enabled is false). Starts with start(port). */
export function createRouting(cfg: Config, db: Queryable, pool: Pool, log: Logger): RoutingService | null {
  if (!cfg.routing.enabled) return null;
  const r = cfg.routing;
  const service = new RoutingService(db, {
    router: {
      reconnectHost: reconnectHostFrom(cfg),
      reconnectPort: cfg.stratum.port,
      prefixBytes: r.prefixBytes,
      minExtranonce2: r.minExtranonce2,
      minerDifficultyDivisor: r.minerDifficultyDivisor,
      maxRejectRatio: r.maxRejectPercent / 100,
      rejectWindowMs: r.rejectWindowSeconds * 1000,
      maxUpstreamDifficulty: r.maxUpstreamDifficulty ?? Infinity,
      upstream: {
        maxLineBytes: cfg.stratum.limits.maxLineBytes,
        noJobTimeoutMs: r.noJobSeconds * 1000,
        answerTimeoutMs: r.answerTimeoutSeconds * 1000,
        rejectUnauthorized: r.tlsVerify,
      },
    },
    syncMs: r.syncMs,
    flushMs: r.flushMs,
    meterBucketMs: r.meterBucketSeconds * 1000,
    node: `node-${cfg.stratum.nodeId}`,
    // Beside the share spool, which is this process's own (the cluster gives each process its spool directory).
    journalDir: path.join(cfg.database.ingest.spoolDir ?? path.join(cfg.database.dataDir, 'spool'), 'route-meter'),
  }, log.child({ mod: 'routing' }));
  pool.routing = service.router;
  return service;
}

/** After Stratum listens: client.reconnect names the real port; routes are read and carried out. */
export async function startRouting(service: RoutingService | null, cfg: Config, port: number, tlsPort?: number): Promise<void> {
  if (!service) return;
  service.router.setReconnectTarget(reconnectHostFrom(cfg), port, tlsPort);
  await service.start();
}
