import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { BitcoinRpc } from '../node/rpc.ts';
import { type EmbeddedChainHandle, startEmbeddedChain } from '../node/regtest/index.ts';
import { Pool } from '../pool/pool.ts';
import { InProcessShareLog } from '../shares/events.ts';
import { DEFAULT_STRATUM_OPTIONS, type StratumOptions } from '../stratum/options.ts';
import { type Config, ConfigError, DEFAULT_REGTEST_ADDRESS } from './config.ts';

export interface RunningPool {
  pool: Pool;
  shareLog: InProcessShareLog;
  rpc: BitcoinRpc;
  embedded: EmbeddedChainHandle | null;
  port: number;
  tlsPort?: number;
  stop(): Promise<void>;
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
      baseMs: s.limits.banBaseMs,
      maxMs: s.limits.banMaxMs,
    },
    reconnectHost: s.reconnectHost,
    reconnectPort: s.reconnectHost ? s.port : undefined,
  };
}

/** Wire the pool from config: the embedded chain when no node is configured, the RPC client, stratum. */
export async function runPool(cfg: Config, log: Logger): Promise<RunningPool> {
  let embedded: EmbeddedChainHandle | null = null;
  let endpoints = cfg.node.urls.map((url) => ({ url, user: cfg.node.user, password: cfg.node.password, cookieFile: cfg.node.cookieFile }));
  if (endpoints.length === 0) {
    embedded = await startEmbeddedChain({
      host: cfg.node.embedded.host,
      port: cfg.node.embedded.port,
      difficulty: cfg.node.embedded.difficulty,
      mempoolTxs: cfg.node.embedded.mempoolTxs,
      logger: log.child({ mod: 'embedded-chain' }),
    });
    endpoints = [{ url: embedded.url, user: embedded.user, password: embedded.password, cookieFile: undefined }];
    log.info({ url: embedded.url }, 'no node configured: embedded regtest chain started');
  }
  const rpc = new BitcoinRpc({ endpoints, timeoutMs: cfg.node.timeoutMs, logger: log.child({ mod: 'rpc' }) });
  const shareLog = new InProcessShareLog((err) => log.error({ err }, 'share log listener failed'));
  const pool = new Pool(rpc, {
    network: cfg.network,
    payoutAddress: cfg.payoutAddress ?? DEFAULT_REGTEST_ADDRESS,
    poolTag: cfg.poolTag,
    requireAddressAccounts: cfg.requireAddressAccounts,
    stratum: stratumOptionsFrom(cfg),
    templates: { pollMs: cfg.node.pollMs, refreshMs: cfg.node.refreshMs, longpoll: cfg.node.longpoll },
  }, shareLog, log);
  try {
    const { port, tlsPort } = await pool.start();
    return {
      pool, shareLog, rpc, embedded, port, tlsPort,
      async stop() {
        await pool.stop();
        rpc.close();
        await embedded?.close();
      },
    };
  } catch (e) {
    await pool.stop().catch(() => undefined);
    rpc.close();
    await embedded?.close();
    throw e;
  }
}
