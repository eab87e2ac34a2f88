import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import path from 'node:path';
import type { Logger } from 'pino';
import { ValidationError } from '../accounting/errors.ts';
import type { AccountingService } from '../accounting/service.ts';
import { SoloBook } from '../accounting/solo-directory.ts';
import { DurableShareLog } from '../ingest/durable-log.ts';
import { BitcoinRpc } from '../node/rpc.ts';
import { ChainDataError, type EmbeddedChainHandle, startEmbeddedChain } from '../node/regtest/index.ts';
import { Pool } from '../pool/pool.ts';
import { SchemaBehindError, type Store, isConnectionError, openStore } from '../store/index.ts';
import type { IngestStats, StatsReader } from '../store/types.ts';
import { DEFAULT_STRATUM_OPTIONS, type StratumOptions } from '../stratum/options.ts';
import { createAccountingService } from './accounting.ts';
import { type Config, ConfigError, DEFAULT_REGTEST_ADDRESS } from './config.ts';
import { StartupError, ensureWritableDir, listenError } from './startup-errors.ts';
import type { RoutingService } from '../routing/service.ts';
import { createRouting, startRouting } from './run-routing.ts';
import { createMarketService } from './market-wiring.ts';
import type { MarketService } from '../market/service.ts';
import { MarketDeliveryMeter, MarketRouteController, RoutedCapacityMeter } from '../routing/market-adapters.ts';

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
  /** The books (ledger, FPPS/PPLNS/SOLO, payouts) over the same database; null when accounting.enabled = false. */
  accounting: AccountingService | null;
  /** Which accounts mine SOLO now (the coinbases their sessions get); null without accounting or SOLO. */
  solo: SoloBook | null;
  /** The hashrate market's clock (market.enabled, with the books and routing); null otherwise. */
  market: MarketService | null;
  /** Hashrate, workers, blocks: what the API reads. */
  stats: StatsReader;
  /** Ingest numbers for /metrics and /health (queue depth, spool bytes, DB up/down, write latency). */
  ingest(): IngestStats;
  /** The database answers and its schema is current; rejects with the reason otherwise (readiness). */
  dbReady(): Promise<void>;
  /** Hashrate routing (issue 12); null when routing.enabled is false. */
  routing: RoutingService | null;
  stop(): Promise<void>;
}

export interface RunPoolHooks {
  /** Each committed ingest batch's duration, seconds (e.g. the API's DB write histogram). */
  onDbWrite?: (seconds: number) => void;
}

/**
 * The TLS certificate and key, checked here rather than when the TLS port opens (where OpenSSL's "PEM
 * routines::no start line" came with a stack trace): each must be PEM, and the key must be the certificate's.
 */
function tlsPair(certFile: string, keyFile: string, readPem: (file: string, what: string) => Buffer): { cert: Buffer; key: Buffer } {
  const cert = readPem(certFile, 'certificate');
  const key = readPem(keyFile, 'key');
  const settings = '(HASHHUB_TLS_CERT, HASHHUB_TLS_KEY; stratum.tls.certFile, .keyFile)';
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (e) {
    throw new ConfigError(`the TLS certificate ${certFile} is not a PEM certificate (${(e as Error).message}) ${settings}: it must hold "-----BEGIN CERTIFICATE-----"`);
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch (e) {
    throw new ConfigError(`the TLS key ${keyFile} is not a PEM private key without a passphrase (${(e as Error).message}) ${settings}`);
  }
  if (!x509.checkPrivateKey(privateKey)) throw new ConfigError(`the TLS key ${keyFile} does not belong to the certificate ${certFile} ${settings}: give the key the certificate was made for`);
  try {
    createSecureContext({ cert, key });
  } catch (e) {
    throw new ConfigError(`the TLS certificate ${certFile} and key ${keyFile} cannot be used (${(e as Error).message}) ${settings}`);
  }
  return { cert, key };
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
    tls: s.tls ? { host: s.tls.host, port: s.tls.port, ...tlsPair(s.tls.certFile, s.tls.keyFile, readPem) } : undefined,
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
    maxWriteBufferBytes: s.limits.maxWriteBufferBytes,
    maxTotalWriteBufferBytes: s.limits.maxTotalWriteBufferBytes,
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
async function openStorage(cfg: Config, log: Logger, hooks: RunPoolHooks, userAgents: (ids: Set<string>) => Map<string, string>, maintenance: boolean) {
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
      // One spool write per event-loop turn (or per ms of a long turn): the pool holds accepted shares' answers until
      // their lines are written (AnswerGate).
      batchAppends: true,
      userAgents,
      onWrite: hooks.onDbWrite,
      budget: {
        maxBytes: d.ingest.maxBytes,
        blockMarginBytes: d.ingest.blockMarginBytes,
        minFreeBytes: d.ingest.minFreeBytes,
        reserveFileBytes: d.ingest.reserveFileBytes,
      },
    });
  } catch (e) {
    await store.close().catch(() => undefined);
    throw e;
  }
  // Partitions, retention and rollups: one process's job (the cluster's lead; a follower writes shares only).
  if (maintenance) store.maintenance.start();
  // Also the lead's: the spools of processes no longer started.
  const leftovers = maintenance ? replayLeftoverSpools(cfg, store, log) : null;
  log.info({ db: store.db.target, spool: d.ingest.spoolDir ?? path.join(d.dataDir, 'spool') }, 'storage ready');
  return { store, shareLog, leftovers };
}

/**
 * Spools of cluster processes that are no longer started (`<spool>-<k>` for k >= stratum.processes: the pool ran with
 * more processes before, on this data dir). Each process replays only its own spool, so without this the shares such
 * a spool holds that the database never got (it was down at the stop, or the process was killed) would stay on disk
 * for ever, although their miners were answered "accepted". The lead replays each into the database, then closes it.
 * One still locked by a live process (an older pool still running) is left to it.
 */
function replayLeftoverSpools(cfg: Config, store: Store, log: Logger): { close(): Promise<void> } {
  const logs: DurableShareLog[] = [];
  let closing = false;
  for (const dir of leftoverProcessDirs(cfg.database.ingest.spoolDir ?? path.join(cfg.database.dataDir, 'spool'), cfg.stratum.processes)) {
    const name = path.basename(dir);
    let left: DurableShareLog;
    try {
      left = new DurableShareLog({
        dir, writer: store.writer, logger: log.child({ mod: 'ingest', spool: name }),
        batchMax: cfg.database.ingest.batchMax, retryMaxMs: cfg.database.ingest.retryMaxMs, closeTimeoutMs: cfg.database.ingest.closeTimeoutMs,
        // Nothing is appended to it: no budget, no reserve file.
        budget: { maxBytes: 0, minFreeBytes: 0, reserveFileBytes: 0 },
      });
    } catch (e) {
      log.warn({ dir, err: (e as Error).message }, 'the spool of a Stratum process no longer started cannot be replayed now');
      continue;
    }
    const pending = left.stats().spoolBytes;
    if (pending > 0) log.warn({ dir, pendingBytes: pending, processes: cfg.stratum.processes }, 'replaying the spool of a Stratum process no longer started (stratum.processes was higher)');
    logs.push(left);
    void (async () => {
      // The database may be down: the log retries until it answers (or the pool stops; what is left stays on disk).
      while (!closing && !(await left.waitIdle(1000))) { /* still replaying */ }
      if (closing) return;
      await left.close();
      if (pending > 0) log.info({ dir }, 'the spool of a Stratum process no longer started is in the database');
    })();
  }
  return {
    close: async () => {
      closing = true;
      await Promise.all(logs.map((l) => l.close()));
    },
  };
}

/**
 * The directories (spools, block journals) of cluster processes that are no longer started: `<base>-<k>` for
 * k >= processes (the pool ran with more processes before, on this data dir; see cluster.ts workerConfig).
 */
function leftoverProcessDirs(base: string, processes: number): string[] {
  const own = path.resolve(base);
  const parent = path.dirname(own);
  const prefix = `${path.basename(own)}-`;
  let names: string[] = [];
  try {
    names = readdirSync(parent);
  } catch {
    // No parent directory to look in: nothing left over.
  }
  return names.filter((n) => n.startsWith(prefix) && /^\d+$/.test(n.slice(prefix.length)) && Number(n.slice(prefix.length)) >= processes)
    .map((n) => path.join(parent, n));
}

/** A pool wired from config whose Stratum ports are not open yet (they open on the node's first template). */
export interface PreparedPool extends Omit<RunningPool, 'port' | 'tlsPort'> {
  /**
   * Wait for the node's first block template, then open the Stratum ports. Keeps trying the node for
   * `nodeStartTimeoutMs` (see PrepareOptions); rejects at once if stop() is called meanwhile.
   */
  listen(): Promise<{ port: number; tlsPort?: number }>;
}

export interface PrepareOptions extends RunPoolHooks {
  /** How long listen() keeps trying the node for its first template, ms. Default 30 s; the CLI waits for ever. */
  nodeStartTimeoutMs?: number;
  /**
   * 'follower': one of the extra Stratum processes of a cluster (stratum.processes > 1, see cluster.ts): its own
   * sessions, spool, block journal and routing, but no books, market or database maintenance (the lead runs
   * those once for all). Default 'lead' (a single process is its own lead).
   */
  role?: 'lead' | 'follower';
}

/** The embedded regtest chain from config (when no node is configured): its blocks live in the data dir. */
export async function startEmbeddedFromConfig(cfg: Config, log: Logger): Promise<EmbeddedChainHandle> {
  try {
    return await startEmbeddedChain({
      host: cfg.node.embedded.host,
      port: cfg.node.embedded.port,
      difficulty: cfg.node.embedded.difficulty,
      mempoolTxs: cfg.node.embedded.mempoolTxs,
      // Its blocks live in the data dir: a restart continues at the same height.
      dataDir: path.join(cfg.database.dataDir, 'embedded-chain'),
      zmqPubHashBlock: cfg.node.embedded.zmq,
      logger: log.child({ mod: 'embedded-chain' }),
    });
  } catch (e) {
    // A damaged or mismatched chain data dir is the operator's to fix: one line, no stack.
    if (e instanceof ChainDataError) throw new StartupError(e.problem, e.fix, { cause: e });
    throw listenError(e, 'the embedded chain', 'HASHHUB_EMBEDDED_PORT');
  }
}

/** Longest timer Node allows (~24.8 days): "until stopped" for the first template. */
export const NODE_WAIT_FOREVER_MS = 2 ** 31 - 1;

/**
 * Wire the pool from config: storage (Postgres or PGlite, migrated) with the durable share log first, so no
 * share is emitted before it can be recorded; then the embedded chain when no node is configured, the RPC
 * client, the pool. Nothing waits for the node here: the caller can start the API and probes at once (ready =
 * 503 naming the node) and then call listen().
 */
export async function preparePool(cfg: Config, log: Logger, opts: PrepareOptions = {}): Promise<PreparedPool> {
  let pool: Pool | undefined;
  // User agents are looked up per batch by the ingest writer, off the hot path: only the sessions it asks for.
  const userAgents = (ids: Set<string>): Map<string, string> => {
    const m = new Map<string, string>();
    const sessions = pool?.server.sessions;
    if (!sessions) return m;
    for (const id of ids) {
      const ua = sessions.get(id)?.userAgent;
      if (ua) m.set(id, ua);
    }
    return m;
  };
  ensureWritableDir(cfg.database.dataDir, 'data directory', 'HASHHUB_DATA_DIR (database.dataDir)');
  if (cfg.database.ingest.spoolDir) ensureWritableDir(cfg.database.ingest.spoolDir, 'spool directory', 'HASHHUB_SPOOL_DIR (database.ingest.spoolDir)');
  const follower = opts.role === 'follower';
  const { store, shareLog, leftovers } = await openStorage(cfg, log, opts, userAgents, !follower);
  const closeStorage = async () => {
    await shareLog.close();
    await leftovers?.close();
    await store.close();
  };
  let embedded: EmbeddedChainHandle | null = null;
  let endpoints = cfg.node.urls.map((url) => ({ url, user: cfg.node.user, password: cfg.node.password, cookieFile: cfg.node.cookieFile }));
  if (endpoints.length === 0) {
    embedded = await startEmbeddedFromConfig(cfg, log).catch(async (e: unknown) => {
      await closeStorage();
      throw e;
    });
    endpoints = [{ url: embedded.url, user: embedded.user, password: embedded.password, cookieFile: undefined }];
    log.info({ url: embedded.url }, 'no node configured: embedded regtest chain started');
  }
  // Templates are read on a thread of their own: a large one is ~20 ms of work that would stall every miner's answer.
  const rpc = new BitcoinRpc({ endpoints, timeoutMs: cfg.node.timeoutMs, network: cfg.network, logger: log.child({ mod: 'rpc' }), templateThread: true });
  try {
    pool = new Pool(rpc, {
      network: cfg.network,
      payoutAddress: cfg.payoutAddress ?? DEFAULT_REGTEST_ADDRESS,
      poolTag: cfg.poolTag,
      requireAddressAccounts: cfg.requireAddressAccounts,
      stratum: stratumOptionsFrom(cfg),
      templates: {
        pollMs: cfg.node.pollMs, refreshMs: cfg.node.refreshMs, longpoll: cfg.node.longpoll, startTimeoutMs: opts.nodeStartTimeoutMs,
        zmq: cfg.node.zmq === 'off' ? { discover: false } : { address: cfg.node.zmq },
      },
      blocks: {
        journalDir: cfg.blocks.journalDir ?? path.join(cfg.database.dataDir, 'blocks'),
        // The lead takes up the block journals of processes no longer started, as it replays their spools.
        adoptJournalDirs: follower ? [] : leftoverProcessDirs(cfg.blocks.journalDir ?? path.join(cfg.database.dataDir, 'blocks'), cfg.stratum.processes),
        reserveBytes: cfg.blocks.reserveBytes,
        maturity: cfg.blocks.maturity,
        checkIntervalMs: cfg.blocks.checkIntervalMs,
        recoveryScanDepth: cfg.blocks.recoveryScanDepth,
      },
      loadStoredBlocks: () => store.reader.unsettledBlocks(),
    }, shareLog, log);
  } catch (e) {
    rpc.close();
    await embedded?.close();
    await closeStorage().catch(() => undefined);
    throw e;
  }
  const started = pool;
  // The books run from the database (any number of processes compute the same ones); they start once the node
  // has answered (listen), so the first block values are read from a live node.
  const books = cfg.accounting.enabled && !follower ? createAccountingService(cfg, store.db, rpc, log) : null;
  const cleanUp = async () => {
    books?.close();
    await started.stop().catch(() => undefined);
    rpc.close();
    await embedded?.close();
    await closeStorage().catch(() => undefined);
  };
  const mismatch = (e: ValidationError) => new StartupError(`the accounting books in ${store.db.target} do not match the config (${e.message})`, 'use the config the books were started with, or a new database', { cause: e });
  // The books' frame now, before any miner connects: a period or network that differs from the one the books
  // were started with is the operator's to fix, and must stop the start rather than fail every step later.
  // With the database unreachable (or its schema not current yet) the pool starts anyway, as the share log does
  // (shares go to the spool): the books and the market are initialised in the background once it answers.
  let booksReady = books === null;
  if (books) {
    try {
      if (store.schemaStatus() === null) {
        await books.service.init();
        booksReady = true;
      }
    } catch (e) {
      if (e instanceof ValidationError) {
        await cleanUp();
        throw mismatch(e);
      }
      if (!isConnectionError(e)) {
        await cleanUp();
        throw e;
      }
    }
    if (!booksReady) {
      const why = store.schemaStatus()?.message ?? 'database unreachable';
      log.warn({ db: store.db.target, err: why }, `database not ready at start (${why}): accounting${cfg.market.enabled ? ' and the market' : ''} start once it is; the pool runs and spools shares meanwhile`);
    }
  }
  // SOLO miners get coinbases paying their own address: which accounts those are is the books' answer.
  // (A cluster's followers read the same answer from the database: the books run in the lead only.)
  const solo = cfg.accounting.enabled && cfg.accounting.allowedSchemes.includes('solo') ? new SoloBook({
    db: store.db, network: cfg.network, addressChangeDelaySeconds: cfg.accounting.payouts.addressChangeDelaySeconds,
    refreshMs: cfg.accounting.soloRefreshMs, onChange: (accounts) => started.soloChanged(accounts), logger: log.child({ mod: 'solo' }),
  }) : null;
  if (solo) {
    started.setSoloDirectory(solo);
    // Read once before Stratum opens, so the first work a SOLO miner gets already pays it (a failed read is
    // logged and retried; those miners get the pool's coinbase meanwhile and the books owe them).
    await solo.refresh();
  }
  // Routing (issue 12): routes from the database, carried out on this process's own sessions.
  const routing = createRouting(cfg, store.db, started, log);
  // The market (issue 13): its clock on the same database, the ledger for money, routing for delivery.
  const market = cfg.market.enabled && books && routing ? createMarketService(cfg, store.db, {
    routes: new MarketRouteController(store.db, () => routing.sync()),
    delivery: new MarketDeliveryMeter(store.db),
    // Routed workers keep their measured capacity (their work is in route_minutes, not in the pool's rollups).
    capacity: new RoutedCapacityMeter(store.db),
  }, log) : null;
  let stopping: Promise<void> | null = null;
  let listened = false;
  let booksTimer: NodeJS.Timeout | null = null;
  let booksStarting: Promise<void> = Promise.resolve();
  /** The market's clock and the books' loops (the market settles on the books: it starts with them). */
  const startBooks = async () => {
    market?.start();
    await books?.service.start();
  };
  /** The books' frame, retried (1 s doubling to 30 s) until the database answers with a current schema. */
  const retryBooks = (delay: number) => {
    if (!books || stopping) return;
    booksTimer = setTimeout(() => {
      booksTimer = null;
      booksStarting = (async () => {
        try {
          await store.ensureSchema();
          await books.service.init();
        } catch (e) {
          if (stopping) return;
          if (e instanceof ValidationError) {
            // Not something time fixes: say it as the start would have, and leave the books off (shares are still
            // stored; they are credited once the books run with the right config).
            log.error({ err: mismatch(e).message }, 'accounting not started: the books do not match the config');
            return;
          }
          if (!isConnectionError(e) && !(e instanceof SchemaBehindError)) log.error({ err: (e as Error).message }, 'accounting could not start yet: retrying');
          retryBooks(Math.min(delay * 2, 30_000));
          return;
        }
        booksReady = true;
        if (stopping) return;
        log.info({ db: store.db.target }, `database ready: accounting${market ? ' and the market' : ''} started`);
        await startBooks();
      })().catch((e: unknown) => log.error({ err: (e as Error).message }, 'accounting failed to start'));
    }, delay);
    booksTimer.unref();
  };
  return {
    pool: started, shareLog, rpc, embedded, store,
    accounting: books?.service ?? null,
    solo,
    routing,
    market,
    stats: store.reader,
    ingest: () => shareLog.stats(),
    dbReady: () => store.ready(),
    async listen() {
      let ports: { port: number; tlsPort?: number };
      try {
        ports = await started.start();
      } catch (e) {
        throw listenError(e, 'Stratum', 'HASHHUB_STRATUM_PORT, --port; TLS: HASHHUB_STRATUM_TLS_PORT');
      }
      await startRouting(routing, cfg, ports.port, ports.tlsPort); // routing (issue 12): TLS miners come back on TLS
      listened = true;
      if (booksReady) await startBooks();
      else retryBooks(1000);
      await solo?.start();
      return ports;
    },
    stop() {
      stopping ??= (async () => {
        if (booksTimer) clearTimeout(booksTimer);
        booksTimer = null;
        await booksStarting;
        // Miners first (no new shares), then flush the log into the database, then the rest.
        await started.stop();
        // Routing's last metering, then the books, before the database closes (a step under way finishes;
        // every step is idempotent).
        await market?.stop();
        await routing?.stop();
        await solo?.stop();
        await books?.service.stop();
        books?.close();
        await closeStorage();
        rpc.close();
        await embedded?.close();
      })();
      return stopping;
    },
  };
}

/** preparePool, then wait for the node's first template and open the Stratum ports (tests, benchmarks). */
export async function runPool(cfg: Config, log: Logger, hooks: RunPoolHooks = {}): Promise<RunningPool> {
  const prepared = await preparePool(cfg, log, hooks);
  try {
    const { port, tlsPort } = await prepared.listen();
    return { ...prepared, port, tlsPort };
  } catch (e) {
    await prepared.stop().catch(() => undefined);
    throw e;
  }
}
