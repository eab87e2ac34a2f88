import type { Logger } from 'pino';
import { nativeSha } from '../chain/index.ts';
import { type Config, DEFAULT_REGTEST_ADDRESS, redactSecretsInUrl } from './config.ts';
import { accountingApi } from './accounting.ts';
import { marketApiDeps } from './market-wiring.ts';
import { type ApiConfig, type ApiWiring, startApi } from './run-api.ts';
import { NODE_WAIT_FOREVER_MS, type PreparedPool, preparePool } from './run-pool.ts';
import { listenError } from './startup-errors.ts';
import { reportListening } from './cluster.ts';
import { singleCoreGcAdvice } from './gc-threads.ts';
import { Auth, resolveOperatorToken } from '../api/auth.ts';
import { StopSignals } from './stop-signals.ts';

// `hashhub pool`: storage, then the API and probes at once, then Stratum when the node's first template arrives
// (however long the node takes: ready says 503 and names the node meanwhile). SIGINT/SIGTERM stop it cleanly in
// every phase, including while it waits for the node.

/**
 * What to print while the first block template has not come, and after how long: an external node may be down,
 * starting or misconfigured (2 s, with what to check); the embedded chain runs in this process and answers in ms,
 * but on a loaded machine it took more than 2 s (the suite's four concurrent start-ups), and the advice about
 * bitcoind and HASHHUB_NODE_URLS was wrong for it: 10 s, saying what it waits for.
 */
export function nodeWaitNotice(o: { embedded: boolean; where: string; apiUrl: string | null }): { afterMs: number; text(why: string): string } {
  const ready = o.apiUrl ? `; meanwhile ${o.apiUrl}/health/ready answers 503 naming the node` : '';
  if (o.embedded) {
    return { afterMs: 10_000, text: (why) => `hashhub: waiting for the embedded regtest chain at ${o.where} to give its first block template (${why}): Stratum opens then${ready}. Ctrl-C stops.\n` };
  }
  return {
    afterMs: 2000,
    text: (why) => `hashhub: waiting for the node at ${o.where} (${why}): is bitcoind running with server=1, and are HASHHUB_NODE_URLS and the credentials right? ` +
      `Stratum opens when it gives the first block template${ready}. Ctrl-C stops.\n`,
  };
}

export interface PoolCommandIo {
  /** One line for humans (stderr). */
  say(text: string): void;
  /** Leave the process with this code (process.exit). */
  exit(code: number): void;
}

export const defaultIo: PoolCommandIo = {
  say: (text) => { process.stderr.write(text); },
  exit: (code) => process.exit(code),
};

function shown(host: string): string {
  return host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
}

/**
 * What the API serves of a pool: its figures and live feed, and the books, routing and market when they run, all
 * behind one Auth (the operator token and the accounts' tokens). Exported so the dashboard's browser tests serve
 * exactly what `hashhub pool` serves.
 */
export function poolApiWiring(cfg: Config, running: Omit<PreparedPool, 'listen'>, auth: Auth): ApiWiring {
  return {
    pool: running.pool, node: running.rpc, stats: running.stats, dbPing: () => running.dbReady(),
    ingest: () => running.ingest(), shareLog: running.shareLog, templateReads: () => running.rpc.templateReads,
    accounting: running.accounting ? (registry) => accountingApi(cfg, running.accounting!, auth, registry) : undefined,
    routing: running.routing ? { service: running.routing, auth } : undefined,
    market: running.market ? marketApiDeps(running.market, running.store.db, auth, cfg.market.rateLimitPerMinute) : undefined,
  };
}

export function apiConfigFrom(cfg: Config): ApiConfig {
  return {
    host: cfg.api.host, port: cfg.api.port,
    cors: cfg.api.cors.length === 0 ? false : cfg.api.cors.includes('*') ? true : cfg.api.cors,
    templateMaxAgeMs: 2 * cfg.node.refreshMs, onlineMinutes: cfg.database.workerOnlineMinutes,
  };
}

export interface PoolCommandOptions {
  /** This process's index in a cluster (stratum.processes > 1; cluster.ts): 0 is the lead, others followers. */
  clusterIndex?: number;
}

export async function runPoolCommand(cfg: Config, log: Logger, io: PoolCommandIo = defaultIo, opts: PoolCommandOptions = {}): Promise<void> {
  const inCluster = opts.clusterIndex !== undefined;
  const follower = (opts.clusterIndex ?? 0) > 0;
  let prepared: PreparedPool | null = null;
  let api: Awaited<ReturnType<typeof startApi>> | null = null;
  let stopping: Promise<void> | null = null;
  /** Storage and the API are opened in bounded time: a signal meanwhile waits for them, then closes them. */
  let starting: Promise<unknown> = Promise.resolve();
  let observeDbWrite: ((s: number) => void) | undefined;

  const shutdown = (signal: string, code = 0): Promise<void> => {
    stopping ??= (async () => {
      const st = prepared?.pool.stats;
      log.info({ signal, shares: st?.shares, blocks: st?.blocks, blockResults: st?.blockResults }, 'shutting down');
      await starting.catch(() => undefined);
      try {
        // Pool first (readiness turns 503 via draining, miners get client.reconnect, the spool is flushed), then the API.
        await prepared?.stop();
        await api?.app.close();
      } catch (err) {
        log.error({ err }, 'shutdown failed');
        code = 1;
      }
      if (code === 0) log.info('stopped');
      io.exit(code);
    })();
    return stopping;
  };
  const signals = new StopSignals();
  const onSignal = (signal: string) => {
    const req = signals.next(signal);
    if (req === 'repeat') return;
    // A second Ctrl-C while a graceful stop is under way: the operator wants out now.
    if (req === 'now') {
      io.say('hashhub: stopping now (second signal)\n');
      io.exit(130);
      return;
    }
    void shutdown(signal);
  };
  // In a cluster the primary says when to stop (a message; a second signal to it: stop now). Ctrl-C reaches the
  // whole process group and is the primary's to handle; a SIGTERM (systemd sends it to every process of the unit)
  // and the primary's message are one stop, not two; a primary that is gone stops the process too.
  process.on('SIGINT', () => { if (!inCluster) onSignal('SIGINT'); });
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  if (inCluster) {
    process.on('message', (m: { hashhub?: string }) => {
      if (m?.hashhub === 'stop') void shutdown('cluster stop');
      else if (m?.hashhub === 'stop-now') { io.say('hashhub: stopping now (second signal)\n'); io.exit(130); }
    });
    process.on('disconnect', () => void shutdown('cluster primary gone'));
  }

  const preparing = preparePool(cfg, log, { onDbWrite: (s) => observeDbWrite?.(s), nodeStartTimeoutMs: NODE_WAIT_FOREVER_MS, role: follower ? 'follower' : 'lead' });
  starting = preparing;
  prepared = await preparing;
  const running = prepared;
  if (stopping) return; // a signal during start-up: shutdown() closes what was opened

  let operatorToken = null as { file: string | null; created: boolean; regenerated?: boolean } | null;
  if (cfg.api.enabled) {
    try {
      // One operator token for every operator action (accounting, routing, the market): the configured one, or
      // <dataDir>/operator.token made once.
      const op = resolveOperatorToken({ token: cfg.api.operatorToken, dataDir: cfg.database.dataDir });
      operatorToken = { file: op.file, created: op.created, regenerated: op.regenerated };
      if (op.regenerated) log.warn({ file: op.file }, 'the operator token file was empty: a new token replaced it');
      const auth = new Auth(running.store.db, op.token);
      const starts = startApi({ ...poolApiWiring(cfg, running, auth), onDbWrite: (fn) => { observeDbWrite = fn; } }, apiConfigFrom(cfg), log);
      starting = starts;
      api = await starts;
    } catch (e) {
      if (stopping) return;
      await running.stop().catch(() => undefined);
      throw listenError(e, 'the API', 'HASHHUB_API_PORT');
    }
  }
  if (stopping) return;
  const apiUrl = api ? `http://${shown(cfg.api.host)}:${api.port}` : null;

  // The node may be down or still starting: say so once, with what to check, and keep trying.
  const nodeWhere = running.embedded ? running.embedded.url : cfg.node.urls.map(redactSecretsInUrl).join(', ');
  const waiting = nodeWaitNotice({ embedded: running.embedded !== null, where: nodeWhere, apiUrl });
  const notice = setTimeout(() => io.say(waiting.text(running.pool.templates.status.error ?? 'no answer yet')), waiting.afterMs);
  notice.unref();

  let ports: { port: number; tlsPort?: number };
  try {
    ports = await running.listen();
  } catch (e) {
    clearTimeout(notice);
    if (stopping) return void (await stopping);
    await running.stop().catch(() => undefined);
    await api?.app.close().catch(() => undefined);
    throw e;
  } finally {
    clearTimeout(notice);
  }
  if (stopping) return;
  if (inCluster) reportListening(opts.clusterIndex!, ports);
  if (follower) return;
  const gcAdvice = singleCoreGcAdvice();
  if (gcAdvice) log.warn(gcAdvice);

  const address = cfg.payoutAddress ?? DEFAULT_REGTEST_ADDRESS;
  const where = shown(cfg.stratum.host);
  const url = `stratum+tcp://${where}:${ports.port}`;
  io.say(
    `\nhashhub pool is running on ${cfg.network}${running.embedded ? ' (embedded regtest chain at ' + running.embedded.url + ')' : ''}\n` +
    `  Stratum:  ${url}${ports.tlsPort ? `   TLS: stratum+ssl://${where}:${ports.tlsPort}` : ''}\n` +
    (cfg.stratum.processes > 1 ? `  Processes: ${cfg.stratum.processes} sharing the Stratum port (this one, node id ${cfg.stratum.nodeId}, also runs the API, books and market)\n` : '') +
    `  Payout:   ${address}\n` +
    `  Database: ${running.store.db.target}\n` +
    `  Hashing:  ${nativeSha ? 'native SHA-256 (SHA extensions)' : `JavaScript (${process.env.HASHHUB_NATIVE_SHA === '0' ? 'HASHHUB_NATIVE_SHA=0' : 'native module not built or no SHA extensions; npm install builds it'})`}\n` +
    (apiUrl ? `  Dashboard: ${apiUrl}/\n` : '') +
    (apiUrl ? `  API:      ${apiUrl}/api/v1/pool   docs /docs   probes /health/live /health/ready   metrics /metrics\n` : '') +
    (apiUrl && operatorToken?.file ? `  Operator: token in ${operatorToken.file}${operatorToken.regenerated ? ' (new: the file was empty, so a new token replaced it)' : operatorToken.created ? ' (new)' : ''} (Authorization: Bearer <token>)\n` : '') +
    (apiUrl && running.market ? `  Market:   ${apiUrl}/api/v1/market/book (a clearing every ${cfg.market.tickSeconds} s; \`hashhub market --help\`)\n` : '') +
    (running.accounting ? `  Books:    ${cfg.accounting.defaultScheme.toUpperCase()} by default (${cfg.accounting.allowedSchemes.join(', ')}); \`hashhub accounts create <name>\` gives an owner token\n` : '') +
    `  Point a miner at it, user "<account>.<worker>", any password (d=<n> suggests a difficulty):\n` +
    `    npx hashhub miner --url ${url} --user ${address}.rig1\n` +
    `    minerd -a sha256d -o ${url} -u ${address}.cpu -p x\n` +
    `  Ctrl-C stops it gracefully (miners are told to reconnect).\n\n`,
  );
  const statsTimer = setInterval(() => {
    const s = running.pool.stats;
    log.info({ connections: running.pool.server.stats.connections, shares: s.shares, blocks: s.blocks, height: s.templateHeight }, 'pool stats');
  }, 60_000);
  statsTimer.unref();
}
