import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { DurableShareLog } from '../ingest/durable-log.ts';
import { BitcoinRpc } from '../node/rpc.ts';
import { type EmbeddedChainHandle, startEmbeddedChain } from '../node/regtest/index.ts';
import { Pool } from '../pool/pool.ts';
import { type Store, openStore } from '../store/index.ts';
import type { IngestStats, StatsReader } from '../store/types.ts';
import { DEFAULT_STRATUM_OPTIONS, type StratumOptions } from '../stratum/options.ts';
import { type Config, ConfigError, DEFAULT_REGTEST_ADDRESS } from './config.ts';

export interface RunningPool {
  pool: Pool;
  /** The durable share log: spool → database, plus in-process listeners (onShare/onBlock). */
  shareLog: DurableShareLog;
  rpc: BitcoinRpc;
  embedded: EmbeddedChainHandle | null;
  port: number;
  tlsPort?: number;
  /** The database behind the pool (Postgres or PGlite): db, writer, reader, maintenance. */
  store: Store;
  /** Hashrate, workers, blocks: what the API reads. */
  stats: StatsReader;
  /** Ingest numbers for /metrics and /health (queue depth, spool bytes, DB up/down, write latency). */
  ingest(): IngestStats;
  stop(): Promise<void>;
}

export interface RunPoolHooks {
  /** Each committed ingest batch's duration, seconds (e.g. the API's DB write histogram). */
  onDbWrite?: (seconds: number) => void;
}

export function stratumOptionsFrom(cfg: Config): StratumOptions {
  const s = cfg.stratum;
  const readPem = (file: string, what: string) => {
    try {
      return readFileSync(file);
    } catch (e) {
      throw new ConfigError(`cannot read TLS ${what} ${file}: ${(e as Error).message}`);
    }
  };
  return {
    ...DEFAULT_STRATUM_OPTIONS,
    host: s.host,
    port: s.port,
    tls: s.tls ? { host: s.tls.host, port: s.tls.port, cert: readPem(s.tls.certFile, 'certificate'), key: readPem(s.tls.keyFile, 'key') } : undefined,
    nodeId: s.nodeId,
    extranonce2Size: s.extranonce2Size,
    initialDifficulty: s.difficulty.initial,
    vardiff: {
      ...DEFAULT_STRATUM_OPTIONS.vardiff,
      targetIntervalMs: s.difficulty.targetShareSeconds * 1000,
      minDifficulty: s.difficulty.min,
      maxDifficulty: s.difficulty.max,
    },
    userAgentMinDifficulty: s.difficulty.userAgentMin,
    versionMask: parseInt(s.versionMask, 16) >>> 0,
    maxNtimeAheadSec: s.maxNtimeAheadSec,
    maxLineBytes: s.limits.maxLineBytes,
    maxConnections: s.limits.maxConnections,
    maxConnectionsPerIp: s.limits.maxConnectionsPerIp,
    subscribeTimeoutMs: s.limits.subscribeTimeoutMs,
    authorizeTimeoutMs: s.limits.authorizeTimeoutMs,
    shareTimeoutMs: s.limits.shareTimeoutMs,
    messagesPerSecond: s.limits.messagesPerSecond,
    messageBurst: s.limits.messageBurst,
    ban: {
      ...DEFAULT_STRATUM_OPTIONS.ban,
      maxRejects: s.limits.banMaxRejects,
      minRejectRatio: s.limits.banRejectRatio,
      maxGarbage: s.limits.banMaxGarbage,
      offencesBeforeBan: s.limits.banOffences,
      baseMs: s.limits.banBaseMs,
      maxMs: s.limits.banMaxMs,
    },
    reconnectHost: s.reconnectHost,
    reconnectPort: s.reconnectHost ? s.port : undefined,
  };
}

/** The database and the durable share log in front of it, from config. Closes what it opened if it fails. */
async function openStorage(cfg: Config, log: Logger, hooks: RunPoolHooks, userAgents: () => Map<string, string>) {
  const d = cfg.database;
  const store = await openStore({
    url: d.url,
    dataDir: d.dataDir,
    autoMigrate: d.autoMigrate,
    maxConnections: d.maxConnections,
    connectTimeoutMs: d.connectTimeoutMs,
    queryTimeoutMs: d.queryTimeoutMs,
    writeTimeoutMs: d.writeTimeoutMs,
    retention: d.retention,
    maintenanceIntervalMs: d.maintenanceIntervalMs,
    onlineMinutes: d.workerOnlineMinutes,
    logger: log.child({ mod: 'store' }),
  });
  let shareLog: DurableShareLog;
  try {
    shareLog = new DurableShareLog({
      dir: d.ingest.spoolDir ?? path.join(d.dataDir, 'spool'),
      writer: store.writer,
      logger: log.child({ mod: 'ingest' }),
      segmentBytes: d.ingest.segmentBytes,
      fsyncMs: d.ingest.fsyncMs,
      batchMax: d.ingest.batchMax,
      flushMs: d.ingest.flushMs,
      queueCapacity: d.ingest.queueCapacity,
      retryMaxMs: d.ingest.retryMaxMs,
      closeTimeoutMs: d.ingest.closeTimeoutMs,
      userAgents,
      onWrite: hooks.onDbWrite,
    });
  } catch (e) {
    await store.close().catch(() => undefined);
    throw e;
  }
  store.maintenance.start();
  log.info({ db: store.db.target, spool: d.ingest.spoolDir ?? path.join(d.dataDir, 'spool') }, 'storage ready');
  return { store, shareLog };
}

/**
 * Wire the pool from config: storage (Postgres or PGlite, migrated) with the durable share log first, so no
 * share is emitted before it can be recorded; then the embedded chain when no node is configured, the RPC
 * client, stratum.
 */
export async function runPool(cfg: Config, log: Logger, hooks: RunPoolHooks = {}): Promise<RunningPool> {
  let pool: Pool | undefined;
  // User agents are looked up per batch by the ingest writer, off the hot path.
  const userAgents = (): Map<string, string> => {
    const m = new Map<string, string>();
    for (const s of pool?.server.sessions ?? []) if (s.userAgent) m.set(s.id, s.userAgent);
    return m;
  };
  const { store, shareLog } = await openStorage(cfg, log, hooks, userAgents);
  const closeStorage = async () => {
    await shareLog.close();
    await store.close();
  };
  let embedded: EmbeddedChainHandle | null = null;
  let endpoints = cfg.node.urls.map((url) => ({ url, user: cfg.node.user, password: cfg.node.password, cookieFile: cfg.node.cookieFile }));
  if (endpoints.length === 0) {
    embedded = await startEmbeddedChain({
      host: cfg.node.embedded.host,
      port: cfg.node.embedded.port,
      difficulty: cfg.node.embedded.difficulty,
      mempoolTxs: cfg.node.embedded.mempoolTxs,
      logger: log.child({ mod: 'embedded-chain' }),
    }).catch(async (e: unknown) => { await closeStorage(); throw e; });
    endpoints = [{ url: embedded.url, user: embedded.user, password: embedded.password, cookieFile: undefined }];
    log.info({ url: embedded.url }, 'no node configured: embedded regtest chain started');
  }
  const rpc = new BitcoinRpc({ endpoints, timeoutMs: cfg.node.timeoutMs, logger: log.child({ mod: 'rpc' }) });
  try {
    pool = new Pool(rpc, {
      network: cfg.network,
      payoutAddress: cfg.payoutAddress ?? DEFAULT_REGTEST_ADDRESS,
      poolTag: cfg.poolTag,
      requireAddressAccounts: cfg.requireAddressAccounts,
      stratum: stratumOptionsFrom(cfg),
      templates: { pollMs: cfg.node.pollMs, refreshMs: cfg.node.refreshMs, longpoll: cfg.node.longpoll },
    }, shareLog, log);
  } catch (e) {
    rpc.close();
    await embedded?.close();
    await closeStorage().catch(() => undefined);
    throw e;
  }
  const started = pool;
  try {
    const { port, tlsPort } = await started.start();
    return {
      pool: started, shareLog, rpc, embedded, port, tlsPort, store,
      stats: store.reader,
      ingest: () => shareLog.stats(),
      async stop() {
        // Miners first (no new shares), then flush the log into the database, then the rest.
        await started.stop();
        await closeStorage();
        rpc.close();
        await embedded?.close();
      },
    };
  } catch (e) {
    await started.stop().catch(() => undefined);
    await closeStorage().catch(() => undefined);
    rpc.close();
    await embedded?.close();
    throw e;
  }
}
