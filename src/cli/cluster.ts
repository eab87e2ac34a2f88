import cluster, { type Worker } from 'node:cluster';
import path from 'node:path';
import type { Logger } from 'pino';
import type { EmbeddedChainHandle } from '../node/regtest/index.ts';
import type { Config } from './config.ts';
import type { PoolCommandIo } from './pool-command.ts';
import { startEmbeddedFromConfig } from './run-pool.ts';
import { SINGLE_THREADED_GC, gcSingleThreaded, workerExecArgv } from './gc-threads.ts';
import { StopSignals } from './stop-signals.ts';

// `stratum.processes` > 1: several Stratum processes on one machine sharing the port. Node's cluster module
// hands the accepted connections out round-robin (Linux; Node 20 ignores `reusePort`). The primary process only
// supervises: it starts the embedded chain when no node is configured (so every process mines on the same
// chain), forks one worker per process, forwards a stop and restarts a worker that dies.
//
// Worker k runs the pool with stratum.nodeId + k as its extranonce1 prefix (no two processes hand out the same
// work), its own spool (its own ingest watermark source) and block journal. Worker 0, the lead, also runs the
// API, the books, the market and database maintenance, exactly as a single process does; the others are
// followers (run-pool.ts `role`). Everything that decides money is in the database, so a second process changes
// no money outcome (DESIGN.md): shares are stored once each by the process that took them, block rows are one
// per hash, route metering adds up per process. Live figures the API shows from memory (connections, sessions)
// are the lead's own; the figures it reads from the database (hashrate, workers, shares, blocks) cover all.

const CLUSTER_INDEX_ENV = 'HASHHUB_CLUSTER_INDEX';
const CLUSTER_NODE_ENV = 'HASHHUB_CLUSTER_NODE';

/** Messages a worker sends the primary. */
export type ClusterMessage = { hashhub: 'listening'; index: number; port: number; tlsPort?: number };

/** This process's index in a cluster (0 = the lead), or null outside one. */
export function clusterIndex(): number | null {
  if (cluster.isPrimary) return null;
  const v = process.env[CLUSTER_INDEX_ENV];
  return v === undefined ? null : Number(v);
}

/** Where worker `index` keeps its spool and block journal: the lead the usual dirs, followers their own. */
export function workerConfig(cfg: Config, index: number): Config {
  const c = structuredClone(cfg);
  c.stratum.nodeId = cfg.stratum.nodeId + index;
  const node = process.env[CLUSTER_NODE_ENV];
  if (node) {
    const n = JSON.parse(node) as { url: string; user: string; password: string };
    c.node.urls = [n.url];
    c.node.user = n.user;
    c.node.password = n.password;
  }
  if (index > 0) {
    c.database.ingest.spoolDir = `${cfg.database.ingest.spoolDir ?? path.join(cfg.database.dataDir, 'spool')}-${index}`;
    c.blocks.journalDir = `${cfg.blocks.journalDir ?? path.join(cfg.database.dataDir, 'blocks')}-${index}`;
    c.api.enabled = false; // (no books or market either: run-pool.ts role 'follower')
  }
  return c;
}

/** Tell the primary this worker's Stratum ports are open. */
export function reportListening(index: number, ports: { port: number; tlsPort?: number }): void {
  const m: ClusterMessage = { hashhub: 'listening', index, ...ports };
  process.send?.(m);
}

/** A worker that exits this soon after its start with an error is failing to start: the cluster stops. */
const START_FAILURE_MS = 20_000;
const RESTART_DELAY_MS = 1000;

function send(worker: Worker, what: 'stop' | 'stop-now'): void {
  try {
    if (worker.isConnected()) worker.send({ hashhub: what });
  } catch {
    // Its channel is closing: it is on its way out (and stops when the channel closes).
  }
}

export async function runClusterPrimary(cfg: Config, log: Logger, io: PoolCommandIo): Promise<void> {
  const n = cfg.stratum.processes;
  let embedded: EmbeddedChainHandle | null = null;
  const env: Record<string, string> = {};
  if (cfg.node.urls.length === 0) {
    embedded = await startEmbeddedFromConfig(cfg, log);
    env[CLUSTER_NODE_ENV] = JSON.stringify({ url: embedded.url, user: embedded.user, password: embedded.password });
    log.info({ url: embedded.url }, 'no node configured: embedded regtest chain started for the cluster');
  }
  /** `listening`: this one (not an earlier process of its index) said its Stratum ports are open. */
  const workers = new Map<number, { worker: Worker; startedAt: number; listening: boolean }>();
  // Processes whose Stratum ports opened (once: one that dies later is restarted whatever its exit code).
  const listened = new Set<number>();
  let stopping = false;
  let exitCode = 0;
  let announced = false;

  const finish = async () => {
    if (workers.size > 0) return;
    await embedded?.close().catch(() => undefined);
    io.exit(exitCode);
  };
  const stopAll = (code: number) => {
    if (!stopping) exitCode = code;
    stopping = true;
    for (const { worker, listening } of workers.values()) {
      send(worker, 'stop');
      // One still starting (started again after a crash, say) may not listen for the message yet, and a message
      // nobody listens for is dropped: it would run on and the cluster never stop. A SIGTERM ends it before its
      // handlers are in place (nothing is open yet), and is the same one stop after (pool-command.ts).
      if (!listening) worker.process.kill('SIGTERM');
    }
    void finish();
  };

  const fork = (index: number) => {
    const worker = cluster.fork({ ...env, [CLUSTER_INDEX_ENV]: String(index) });
    const entry = { worker, startedAt: Date.now(), listening: false };
    workers.set(index, entry);
    worker.on('message', (m: ClusterMessage) => {
      if (m?.hashhub !== 'listening') return;
      entry.listening = true;
      // The pair of the "died; starting it again" error, at the level an operator watching for it reads.
      if (listened.has(m.index)) log.warn({ process: m.index }, 'the Stratum process started again is listening');
      listened.add(m.index);
      if (!announced && listened.size === n) {
        announced = true;
        io.say(`hashhub: ${n} Stratum processes share port ${m.port} (node ids ${cfg.stratum.nodeId}..${cfg.stratum.nodeId + n - 1}; process 0 runs the API, books and market)\n`);
      }
    });
    worker.on('exit', (code, signal) => {
      const started = workers.get(index)?.startedAt ?? 0;
      workers.delete(index);
      if (stopping) return void finish();
      if (code !== 0 && Date.now() - started < START_FAILURE_MS && !listened.has(index)) {
        // It could not start (its own error line is printed): the others stop too, with its exit code.
        log.error({ process: index, code, signal }, 'a Stratum process failed to start; stopping the cluster');
        return stopAll(code ?? 1);
      }
      log.error({ process: index, code, signal }, 'a Stratum process died; starting it again (its spool replays, its miners reconnect)');
      setTimeout(() => { if (!stopping) fork(index); }, RESTART_DELAY_MS);
    });
  };
  const signals = new StopSignals();
  const onSignal = (signal: string) => {
    const req = signals.next(signal);
    if (req === 'repeat') return;
    if (req === 'now') {
      // A second signal: the workers stop now, as a single process does at a second Ctrl-C.
      for (const { worker } of workers.values()) send(worker, 'stop-now');
      return;
    }
    log.info({ signal }, 'stopping the Stratum processes');
    stopAll(0);
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  // One process per core or more: each collects its garbage on its own thread (gc-threads.ts).
  const execArgv = workerExecArgv(n);
  cluster.setupPrimary({ execArgv });
  if (gcSingleThreaded(execArgv) && !gcSingleThreaded()) log.info({ processes: n }, `Stratum processes run with ${SINGLE_THREADED_GC}: no more processes than cores`);
  for (let i = 0; i < n; i++) fork(i);
}
