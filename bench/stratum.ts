// `npm run bench:stratum`: hashhub's share path measured the way the performance issue measures it, side by side
// with any other Stratum V1 pool: ../shared/tools/fakenode.py serves a 3,000-transaction template at a network
// difficulty no share reaches, hashhub runs pinned to core 0 (writing every share through its spool into
// Postgres), ../shared/tools/stratum_load (Go, built here into a temp dir) runs pinned to core 1. Each scenario
// gets a fresh pool process, started as a production pool is (`npm run build`, then bin/hashhub.js, which runs
// the build: no TypeScript loader thread, 40-70 MB of RSS, in the figures). Results go to BENCHMARKS.md (section
// "stratum").
//
//   npm run bench:stratum                    all scenarios (~8 minutes)
//   npm run bench:stratum -- --quick         a smoke run
//   npm run bench:stratum -- --ckpool BIN    also run the same scenarios against a ckpool binary you built
//                                            yourself (nothing of ckpool is in this repository)
//   npm run bench:stratum -- --only a,b      some scenarios by name
//   npm run bench:stratum -- --variants      the SOLO and multi-process share paths (section "stratum-variants")
//   npm run bench:stratum -- --repeat N      each scenario N times for hashhub (a row per run; ckpool once): figures
//                                            on this kind of shared machine vary by half between runs of one build
// Environment: HASHHUB_BENCH_TOOLS=<dir of fakenode.py> (default ../shared/tools); HASHHUB_BENCH_LOAD_BIN=<prebuilt stratum_load>;
// HASHHUB_BENCH_HEAP_SAMPLE=<file> writes a sampling heap profile of the window (read it with bench/heap-sites.ts;
// HASHHUB_BENCH_HEAP_SAMPLE_SURVIVORS=1: only what lived through a scavenge);
// HASHHUB_BENCH_HEAP_SNAPSHOT=<file> a heap snapshot 10 s into the window (HASHHUB_BENCH_HEAP_SNAPSHOT_DELAY_MS; diagnosis only);
// HASHHUB_BENCH_LOOP_DELAY=0 leaves out the loop-delay sampler (and the heap profile);
// HASHHUB_BENCH_NODE_FLAGS=<node flags of a single pool process> (default --single-threaded-gc; '' for V8's default); HASHHUB_BENCH_POOL_WRAP=<command prefix for the
// pool process>, e.g. "strace -c -f -o /tmp/pool.strace" to count its syscalls per scenario.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { PG_ADMIN_URL, benchDatabase } from './pg.ts';
import { PgDatabase } from '../src/store/pg.ts';
import { migrate } from '../src/store/migrate.ts';
import { provenance, writeSection } from './sections.ts';
import { chooseEntry } from '../bin/entry.mjs';
import { type WireLatency, sampleWireLatency, wireCaptureUnavailable } from './wire-latency.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const TOOLS = process.env.HASHHUB_BENCH_TOOLS ?? path.resolve(ROOT, '..', 'shared', 'tools');
const ADDRESS = '1BitcoinEaterAddressDontSendf59kuE';
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const ckpoolBin = args.includes('--ckpool') ? args[args.indexOf('--ckpool') + 1] : undefined;
const only = args.includes('--only') ? new Set(args[args.indexOf('--only') + 1].split(',')) : null;
const repeat = args.includes('--repeat') ? Number(args[args.indexOf('--repeat') + 1]) : 1;
if (!Number.isInteger(repeat) || repeat < 1 || repeat > 10) throw new Error(`--repeat takes a count of runs, 1 to 10 (got ${args[args.indexOf('--repeat') + 1]})`);
const log = (s: string) => process.stderr.write(s + '\n');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface LoadResult {
  label: string;
  /** Latency on the wire over a 4 s sample of the window (null: no capture). */
  wire?: WireLatency | null;
  conns_established: number;
  responses_in_window: number;
  responses_per_s: number;
  sent_per_s: number;
  accepted: number;
  rejected: number;
  unanswered: number;
  behind_skipped: number;
  reject_reasons?: Record<string, number>;
  latency_ms: { p50: number; p90: number; p99: number; p999: number; max: number };
  self_cpu_s_window: number;
  window_s: number;
  closed_by_server: number;
  responses: number;
  /** Pool CPU per answered submit measured here instead of by the generator (a cluster). */
  cpu_us_override?: number;
  /** The pool's own event-loop delay over the window, ms (bench/loop-delay.cjs; a single hashhub process). */
  pool_loop?: { samples: number; p50: number; p99: number; p999: number; max: number; memory?: unknown };
  server?: { rss_bytes_per_conn: number; rss_peak_bytes: number; cpu_s_window: number; cpu_pct_window: number; rss_window_end_bytes: number; rss_kb_before_ramp: number };
  /** The pool's RSS (KB) `rssEarlyS` seconds into the window, read here from /proc. */
  rss_kb_early?: number;
  /** What else happened on the pool's core over the window (see noiseSample): this machine's noise, beside the figures. */
  noise?: Noise;
}

interface Scenario {
  name: string;
  what: string;
  conns: number;
  mode: 'none' | 'random' | 'grind';
  rate: number;
  duration: number;
  /** Pool share difficulty (and floor). */
  difficulty?: number;
  /** Template refresh interval for the pool, ms. */
  refreshMs?: number;
  /** Stratum processes sharing the port (stratum.processes), on both cores (beside the generator on core 1). */
  processes?: number;
  /** Also read the pool's RSS this many seconds into the window (idle memory before V8 settles). */
  rssEarlyS?: number;
  /** The miners' account mines SOLO: every share hashes the account's own coinbase. */
  solo?: boolean;
}

const SCENARIOS: Scenario[] = quick
  ? [
      { name: 'sat-1k', what: 'saturation, 1k connections', conns: 500, mode: 'random', rate: 200_000, duration: 5 },
      { name: 'grind-1k', what: 'accepted path', conns: 200, mode: 'grind', rate: 2000, duration: 5, difficulty: 2 ** -30 },
    ]
  : [
      // 60 s: RSS is read at the window's end (the column) and 10 s into it (the notes). V8 keeps the young
      // generation it grew to during the connection storm, and the old generation's garbage from it, until its
      // memory reducer runs tens of seconds after allocation falls (~30 s and ~60 s after the storm here).
      { name: 'idle-10k', what: 'idle, 10k connections, 60 s', conns: 10_000, mode: 'none', rate: 0, duration: 60, rssEarlyS: 10 },
      { name: 'sat-1k', what: 'saturation (200k/s offered), 1k connections', conns: 1000, mode: 'random', rate: 200_000, duration: 20 },
      { name: '5k-1k', what: '5k/s, 1k connections', conns: 1000, mode: 'random', rate: 5000, duration: 20 },
      { name: '5k-10k', what: '5k/s, 10k connections', conns: 10_000, mode: 'random', rate: 5000, duration: 20 },
      { name: '20k-10k', what: '20k/s, 10k connections', conns: 10_000, mode: 'random', rate: 20_000, duration: 20 },
      { name: '50k-10k', what: '50k/s offered, 10k connections', conns: 10_000, mode: 'random', rate: 50_000, duration: 20 },
      { name: 'refresh-10k', what: '5k/s, 10k connections, a template refresh every 2 s', conns: 10_000, mode: 'random', rate: 5000, duration: 20, refreshMs: 2000 },
      { name: 'grind-1k', what: 'accepted path: every share accepted and stored, 1k connections', conns: 1000, mode: 'grind', rate: 15_000, duration: 30, difficulty: 2 ** -30 },
      // Offered above the goal's 15k/s, so the answered figure is the pool's capacity on this path, not the offer.
      { name: 'grind-1k-max', what: 'accepted path, 20k/s offered, 1k connections', conns: 1000, mode: 'grind', rate: 20_000, duration: 30, difficulty: 2 ** -30 },
    ];

/** `--variants`: the share path as it stands for SOLO accounts and with several processes (own section). */
const VARIANTS: Scenario[] = [
  { name: 'sat-1k-solo', what: 'saturation (200k/s offered), 1k connections, SOLO account', conns: 1000, mode: 'random', rate: 200_000, duration: 20, solo: true },
  { name: '5k-1k-solo', what: '5k/s, 1k connections, SOLO account', conns: 1000, mode: 'random', rate: 5000, duration: 20, solo: true },
  { name: 'grind-1k-solo', what: 'accepted path, 1k connections, SOLO account', conns: 1000, mode: 'grind', rate: 15_000, duration: 30, difficulty: 2 ** -30, solo: true },
  { name: 'sat-1k-2p', what: 'saturation (200k/s offered), 1k connections, 2 processes', conns: 1000, mode: 'random', rate: 200_000, duration: 20, processes: 2 },
  { name: '5k-10k-2p', what: '5k/s, 10k connections, 2 processes', conns: 10_000, mode: 'random', rate: 5000, duration: 20, processes: 2 },
  { name: 'grind-1k-2p', what: 'accepted path, 1k connections, 2 processes', conns: 1000, mode: 'grind', rate: 15_000, duration: 30, difficulty: 2 ** -30, processes: 2 },
];
const variants = args.includes('--variants');

/** The flags a run was given, as typed after `npm run bench:stratum` (one `--`). */
function commandFlags(flags: string[]): string {
  const given = flags.filter(Boolean);
  return given.length ? ` -- ${given.join(' ')}` : '';
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function waitPort(port: number, ms: number): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const c = net.connect(port, '127.0.0.1', () => { c.destroy(); r(true); });
      c.on('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`nothing listens on ${port} after ${ms} ms`);
    await sleep(100);
  }
}

function buildLoadGenerator(dir: string): string {
  // A prebuilt generator (HASHHUB_BENCH_LOAD_BIN) skips the Go build.
  if (process.env.HASHHUB_BENCH_LOAD_BIN) return process.env.HASHHUB_BENCH_LOAD_BIN;
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' });
  } catch {
    throw new Error('the load generator needs Go: apt-get install -y golang-go');
  }
  const out = path.join(dir, 'stratum_load');
  execFileSync('go', ['build', '-o', out, '.'], { cwd: path.join(TOOLS, 'stratum_load'), stdio: 'inherit', env: { ...process.env, GOFLAGS: '-mod=mod', GOCACHE: path.join(dir, 'gocache') } });
  return out;
}

/**
 * The node, like the generator and Postgres, on core 1: it builds a 1.6 MB template at every refresh (10-17 ms of
 * Python), which on the pool's core was the pool's latency (the node has its own machine in production).
 */
function startFakenode(port: number): ChildProcess {
  return spawn('taskset', ['-c', '1', 'python3', path.join(TOOLS, 'fakenode.py'), '--port', String(port), '--rpcuser', 'user', '--rpcpassword', 'pass',
    '--difficulty', '1e12', '--txs', '3000', '--tip-interval', '0', '--max-runtime', '3600'], { stdio: 'ignore' });
}

interface Server {
  pid: number; port: number; stop(): Promise<void>; child: ChildProcess;
  /** Where bench/loop-delay.cjs writes the pool's event-loop delay (a single hashhub process). */
  loopDelayFile?: string;
}

function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => { clearTimeout(t); resolve(); });
    child.kill(signal);
  });
}

/** hashhub pool on core 0, limits raised so random (invalid) shares are not punished: real miners' shares are not random. */
async function startHashhub(work: string, nodePort: number, s: Scenario, dbUrl: string): Promise<Server> {
  const port = await freePort();
  const dataDir = mkdtempSync(path.join(work, 'hashhub-'));
  const difficulty = s.difficulty ?? 1;
  const config = {
    network: 'mainnet', payoutAddress: ADDRESS, logLevel: 'warn',
    node: { urls: [`http://user:pass@127.0.0.1:${nodePort}`], refreshMs: s.refreshMs ?? 30_000 },
    stratum: {
      host: '127.0.0.1', port,
      difficulty: { initial: difficulty, min: difficulty, max: difficulty },
      limits: {
        maxConnections: 20_000, maxConnectionsPerIp: 20_000, messagesPerSecond: 1e9, messageBurst: 1e9, banMaxRejects: 1e9,
        banMaxGarbage: 1e9, shareTimeoutMs: 3_600_000,
      },
    },
    api: { enabled: false },
    database: { url: dbUrl, dataDir },
  };
  (config.stratum as Record<string, unknown>).processes = s.processes ?? 1;
  const single = (s.processes ?? 1) === 1;
  const cores = single ? '0' : '0,1';
  const cfgFile = path.join(dataDir, 'config.json');
  writeFileSync(cfgFile, JSON.stringify(config));
  // HASHHUB_BENCH_LOOP_DELAY=0: without the loop-delay sampler (its 2 ms timer wakes an otherwise idle pool).
  const sampleLoop = single && process.env.HASHHUB_BENCH_LOOP_DELAY !== '0';
  const loopDelayFile = sampleLoop ? path.join(dataDir, 'loop-delay.json') : undefined;
  // HASHHUB_BENCH_HEAP_SAMPLE=<file>: where the pool allocates over the window (bench/heap-sample.cjs, heap-sites.ts).
  const heapSample = sampleLoop && process.env.HASHHUB_BENCH_HEAP_SAMPLE ? ` --require "${path.join(ROOT, 'bench', 'heap-sample.cjs')}"` : '';
  const preload = sampleLoop ? `--require "${path.join(ROOT, 'bench', 'loop-delay.cjs')}"${heapSample}` : '';
  // A process pinned to one core is started as README Deploy says (src/cli/gc-threads.ts); several processes on as
  // many cores get the flag from the cluster itself.
  const nodeFlags = single ? (process.env.HASHHUB_BENCH_NODE_FLAGS ?? '--single-threaded-gc') : '';
  const child = spawn('bash', ['-c', `ulimit -n 20000 2>/dev/null; exec taskset -c ${cores} ${process.env.HASHHUB_BENCH_POOL_WRAP ?? ''} "${process.execPath}" ${nodeFlags} ${preload} bin/hashhub.js pool --config "${cfgFile}"`], {
    cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, HASHHUB_CONFIG: '', HASHHUB_BENCH_ELD_FILE: loopDelayFile ?? '' },
  });
  let err = '';
  child.stderr!.on('data', (d) => { err += d; });
  await new Promise<void>((resolve, reject) => {
    // Not started in time: stopped here, or it stays on the pool's core through every later run (a wrapper that
    // takes its stderr hides the line this waits for).
    const t = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`hashhub did not start:\n${err}`)); }, 120_000);
    const ready = (s.processes ?? 1) > 1 ? 'Stratum processes share port' : 'hashhub pool is running';
    child.stderr!.on('data', () => { if (err.includes(ready)) { clearTimeout(t); resolve(); } });
    child.once('exit', (c) => { clearTimeout(t); reject(new Error(`hashhub exited ${c}:\n${err}`)); });
  });
  return { pid: child.pid!, port, child, loopDelayFile, stop: async () => { await stopChild(child); rmSync(dataDir, { recursive: true, force: true }); } };
}

/** ckpool with the configuration ../shared/tools/README.md gives (for comparison only). */
async function startCkpool(bin: string, work: string, nodePort: number, s: Scenario): Promise<Server> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(work, 'ckpool-'));
  const conf = {
    btcd: [{ url: `127.0.0.1:${nodePort}`, auth: 'user', pass: 'pass', notify: false }], btcaddress: ADDRESS,
    serverurl: [`127.0.0.1:${port}`], mindiff: 1, startdiff: 1, maxdiff: 0, nonce1length: 4, nonce2length: 8,
    // The refresh scenario refreshes ckpool's template as often as hashhub's (a new workbase and a notify to every
    // miner each time), so its row is comparable; otherwise ckpool's default.
    update_interval: s.refreshMs ? Math.max(1, Math.round(s.refreshMs / 1000)) : 30, donation: 0.0, logdir: path.join(dir, 'logs'),
  };
  writeFileSync(path.join(dir, 'ckpool.conf'), JSON.stringify(conf));
  const child = spawn('bash', ['-c', `ulimit -n 20000 2>/dev/null; exec taskset -c 0 "${bin}" -c "${path.join(dir, 'ckpool.conf')}" -s "${path.join(dir, 'sock')}"`], { stdio: 'ignore' });
  await waitPort(port, 30_000);
  await sleep(2000);
  return { pid: child.pid!, port, child, stop: async () => { await stopChild(child, 'SIGTERM', 5000); rmSync(dir, { recursive: true, force: true }); } };
}

/**
 * Before a measured run, the same pool takes 5 s of `random` submits from up to 500 other connections (then
 * closed): hashhub's share path is JavaScript, compiled by the JIT while it runs, and a pool runs for days, so
 * its first seconds (interpreted code, a backlog that then takes a while to drain) are not what a miner sees.
 * ckpool gets the same warm-up.
 */
async function warmUp(bin: string, server: Server, s: Scenario): Promise<void> {
  if (s.rate === 0) return;
  await runLoad(bin, server, { ...s, conns: Math.min(s.conns, 500), mode: 'random', rate: Math.min(s.rate, 10_000), duration: 5 }, 'warm-up', true);
}

/** Connections the generator opens per second (-ramp) and the seconds it waits after them (-settle). */
const RAMP_PER_S = 5000;
const SETTLE_S = 3;

async function runLoad(bin: string, server: Server, s: Scenario, label: string, quiet = false): Promise<LoadResult> {
  const a = ['-target', `127.0.0.1:${server.port}`, '-conns', String(s.conns), '-ramp', String(RAMP_PER_S), '-user', ADDRESS, '-worker', 'w',
    '-mode', s.mode, '-rate', String(s.rate), '-duration', String(s.duration), '-settle', String(SETTLE_S), '-drain', '3', '-pid', String(server.pid),
    '-label', label, '-src', 'auto', ...(quiet ? ['-settle', '0', '-drain', '1'] : [])];
  const gen = spawn('taskset', ['-c', '1', bin, ...a], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  gen.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  // The pool's own loop delay over (about) the generator's window: it starts after the ramp and the settle.
  const timers: NodeJS.Timeout[] = [];
  const windowStartMs = (s.conns / RAMP_PER_S + 0.5 + SETTLE_S) * 1000;
  // …and ends a second before the estimated end (half a second before the generator's own): the generator may stop
  // as soon as every answer is in, and its connections then close at once, which stalls any Node server's loop
  // for about 30 µs per connection (300 ms for 10k: the same in a bare net.Server), not a figure of the load.
  const windowEndMs = windowStartMs + s.duration * 1000 - 1000;
  if (server.loopDelayFile && !quiet) {
    const signal = (sig: NodeJS.Signals) => { try { process.kill(server.pid, sig); } catch { /* gone */ } };
    timers.push(setTimeout(() => signal('SIGUSR2'), windowStartMs), setTimeout(() => signal('SIGWINCH'), windowEndMs));
  }
  // The pool's core's steal time and the pool's page faults over the window: a run that reads far from its
  // neighbours can be told from one the pool caused (a VM's host taking the core, evicted pages read back).
  let noiseAt: NoiseSample | null = null;
  let noise: Noise | undefined;
  if (!quiet) {
    timers.push(setTimeout(() => { noiseAt = noiseSample(server.pid); }, windowStartMs));
    timers.push(setTimeout(() => { noise = noiseSince(noiseAt, noiseSample(server.pid)); }, windowEndMs));
  }
  let rssEarly: number | undefined;
  if (s.rssEarlyS !== undefined && !quiet) {
    timers.push(setTimeout(() => {
      try {
        rssEarly = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))?.[1]);
      } catch { /* gone */ }
    }, windowStartMs + s.rssEarlyS * 1000));
  }
  // 4 s of the wire from 5 s into the window (see wire-latency.ts), for both pools alike.
  const wire = !quiet && s.rate > 0 && wireCaptureUnavailable() === null
    ? sampleWireLatency(server.port, windowStartMs + 5000, 4, path.join(tmpdir(), `hashhub-bench-wire-${process.pid}-${server.port}.pcap`))
    : Promise.resolve(null);
  const code = await new Promise<number | null>((resolve) => gen.once('exit', resolve));
  for (const t of timers) clearTimeout(t);
  // The generator can end before the window's estimated end (it stops draining once every answer is in).
  noise ??= noiseSince(noiseAt, noiseSample(server.pid));
  if (server.loopDelayFile && !quiet && !existsSync(server.loopDelayFile)) {
    // The generator stops draining once every answer is in, which can be before the window's end as estimated.
    try { process.kill(server.pid, 'SIGWINCH'); } catch { /* gone */ }
    for (let i = 0; i < 20 && !existsSync(server.loopDelayFile); i++) await sleep(50);
  }
  if (code !== 0) throw new Error(`the load generator exited ${code}`);
  const line = out.trim().split("\n").pop()!;
  if (process.env.BENCH_DEBUG) log(line);
  const r = JSON.parse(line) as LoadResult;
  r.wire = await wire;
  r.rss_kb_early = rssEarly;
  r.noise = noise;
  if (server.loopDelayFile && !quiet) {
    try {
      r.pool_loop = JSON.parse(readFileSync(server.loopDelayFile, 'utf8')) as LoadResult['pool_loop'];
      if (r.pool_loop?.memory) log(`  pool memory at the window's end (MB): ${JSON.stringify(r.pool_loop.memory)}`);
    } catch (err) {
      log(`  (the pool's loop delay was not recorded: ${(err as Error).message})`);
    }
  }
  return r;
}

const f = (n: number | undefined, d = 0) => (n !== undefined && Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '—');
const cpuUs = (r: LoadResult) => (r.cpu_us_override ?? (r.server && r.responses_in_window > 0 ? (r.server.cpu_s_window * 1e6) / r.responses_in_window : NaN));

interface NoiseSample { steal: number; coreTotal: number; minflt: number; majflt: number; mainWaitNs: number; helperTicks: number }
interface Noise { stealPct: number; minflt: number; majflt: number; mainWaitMs: number; mainWaitPct: number; helperCpuMs: number }

/**
 * Core 0's steal and total ticks (/proc/stat), the page faults of the pool and its children (treeStat), and the
 * pool's own threads: how long its main thread (the event loop) was ready to run but waited for its core
 * (schedstat's run delay: the core ran something else, the kernel's threads or the pool's other threads), and the
 * CPU of those other threads (V8's compiler threads, the template thread, libuv's), which share its core.
 */
function noiseSample(pid: number): NoiseSample | null {
  try {
    const cpu0 = /^cpu0 (.*)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1].trim().split(/\s+/).map(Number);
    if (!cpu0) return null;
    const { minflt, majflt } = treeStat(pid);
    const mainWaitNs = Number(readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ')[1]);
    let helperTicks = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      if (Number(tid) === pid) continue;
      try {
        const f = statFields(`/proc/${pid}/task/${tid}/stat`);
        helperTicks += Number(f[11]) + Number(f[12]);
      } catch { /* gone meanwhile */ }
    }
    // user nice system idle iowait irq softirq steal (guest time is counted in user already)
    return { steal: cpu0[7] ?? 0, coreTotal: cpu0.slice(0, 8).reduce((a, b) => a + b, 0), minflt, majflt, mainWaitNs, helperTicks };
  } catch {
    return null;
  }
}

function noiseSince(a: NoiseSample | null, b: NoiseSample | null): Noise | undefined {
  if (!a || !b || b.coreTotal <= a.coreTotal) return undefined;
  const windowMs = (b.coreTotal - a.coreTotal) * 10; // USER_HZ ticks of one core
  const mainWaitMs = (b.mainWaitNs - a.mainWaitNs) / 1e6;
  return {
    stealPct: (100 * (b.steal - a.steal)) / (b.coreTotal - a.coreTotal), minflt: b.minflt - a.minflt, majflt: b.majflt - a.majflt,
    mainWaitMs, mainWaitPct: (100 * mainWaitMs) / windowMs, helperCpuMs: (b.helperTicks - a.helperTicks) * 10,
  };
}

/**
 * The fields of a /proc/<pid>/stat (or task stat) after the command (which may hold spaces and parentheses): state
 * ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime …
 */
function statFields(file: string): string[] {
  const st = readFileSync(file, 'utf8');
  return st.slice(st.lastIndexOf(')') + 2).split(' ');
}

/**
 * A process and its children (a cluster's primary and its Stratum processes), summed from /proc/<pid>/stat: CPU
 * ticks (utime + stime) and page faults.
 */
function treeStat(pid: number): { cpuTicks: number; minflt: number; majflt: number } {
  const sum = { cpuTicks: 0, minflt: 0, majflt: 0 };
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const f = statFields(`/proc/${d}/stat`);
      if (Number(d) !== pid && Number(f[1]) !== pid) continue;
      sum.cpuTicks += Number(f[11]) + Number(f[12]);
      sum.minflt += Number(f[7]);
      sum.majflt += Number(f[9]);
    } catch {
      // gone meanwhile
    }
  }
  return sum;
}

/** CPU seconds of a process and its children, from /proc. */
function treeCpuSeconds(pid: number): number {
  return treeStat(pid).cpuTicks / 100; // USER_HZ
}

/** The miners' account (the generator's user) mines SOLO: its scheme row before the pool starts. */
async function makeSolo(url: string): Promise<void> {
  const db = new PgDatabase({ url, maxConnections: 1 });
  try {
    await migrate(db);
    await db.query('INSERT INTO accounts (name) VALUES ($1) ON CONFLICT (name) DO NOTHING', [ADDRESS]);
    await db.query(`INSERT INTO account_schemes (account_id, effective_from, scheme)
      SELECT id, now() - interval '1 day', 'solo' FROM accounts WHERE name = $1`, [ADDRESS]);
  } finally {
    await db.close();
  }
}

/**
 * This harness (all its threads) on core 1 once the build is done: it reads /proc, samples and parses the wire
 * capture (tens of ms for 20 MB) during the window, which is not the pool's work. Processes it starts from here on
 * inherit core 1 unless started with a core of their own (the pools are).
 */
function pinSelfToCore1(): void {
  try {
    execFileSync('taskset', ['-apc', '1', String(process.pid)], { stdio: 'ignore' });
  } catch (err) {
    log(`could not pin this harness to core 1 (${(err as Error).message}): it may run on the pool's core`);
  }
}

/**
 * Keep the local Postgres off the pool's core: its server process and backends (forked from it, so later ones
 * too) go to core 1 with the generator. In production the database has a machine of its own; on this 2-core box,
 * left to the scheduler, it runs the pool's COPY batches on core 0 and the pool's loop waits behind it (measured:
 * 5k/s 1k p99 8.6 ms pinned, 14-48 ms not). Best effort (it needs the right to change another process's
 * affinity); returns how to put it back.
 */
async function pinPostgresToCore1(): Promise<() => void> {
  try {
    const c = new pg.Client({ connectionString: PG_ADMIN_URL });
    await c.connect();
    const backend = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    const parent = statFields(`/proc/${backend}/stat`)[1];
    await c.end();
    const postmaster = Number(parent);
    const before = execFileSync('taskset', ['-pc', String(postmaster)], { encoding: 'utf8' }).trim().split(' ').pop()!;
    const family = () => [postmaster, ...readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number).filter((pid) => {
      try { return Number(statFields(`/proc/${pid}/stat`)[1]) === postmaster; } catch { return false; }
    })];
    const set = (mask: string) => { for (const pid of family()) { try { execFileSync('taskset', ['-apc', mask, String(pid)], { stdio: 'ignore' }); } catch { /* gone */ } } };
    set('1');
    log(`Postgres (pid ${postmaster} and its backends) pinned to core 1 for the run (was ${before})`);
    return () => set(before);
  } catch (err) {
    log(`could not pin Postgres to core 1 (${(err as Error).message}): it may run on the pool's core`);
    return () => undefined;
  }
}

/** `npm run build`, checked to be what bin/hashhub.js will run (a stale build would run the sources instead). */
function buildHashhub(): void {
  execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  const entry = chooseEntry(ROOT);
  if (entry.kind !== 'dist') throw new Error('npm run build left no current build in dist/');
}

/** One run of a scenario against hashhub, on a database of its own; for the accepted path, what reached it. */
async function measureHashhub(gen: string, work: string, nodePort: number, s: Scenario, run: number): Promise<{ hashhub: LoadResult; stored?: number; catchUp?: { stored: number; seconds: number } }> {
  const db = await benchDatabase();
  if (!db) throw new Error('no Postgres at 127.0.0.1:5432 (HASHHUB_BENCH_PG_URL): hashhub writes every share to it');
  if (s.solo) await makeSolo(db.url);
  const pool = await startHashhub(work, nodePort, s, db.url).catch(async (e: unknown) => {
    await db.drop().catch((d: unknown) => console.error(`bench database not dropped: ${(d as Error).message}`));
    throw e;
  });
  let r: LoadResult;
  let stored: number | undefined;
  let catchUp: { stored: number; seconds: number } | undefined;
  try {
    log(`hashhub ${s.name}${repeat > 1 ? ` (run ${run} of ${repeat})` : ''}: ${s.what}…`);
    await warmUp(gen, pool, s);
    const cpu0 = (s.processes ?? 1) > 1 ? treeCpuSeconds(pool.pid) : 0;
    r = await runLoad(gen, pool, s, `hashhub ${s.name}`);
    // A cluster's CPU is its processes' together, over the whole run (the generator sees only the primary).
    if ((s.processes ?? 1) > 1 && r.responses > 0) r.cpu_us_override = ((treeCpuSeconds(pool.pid) - cpu0) * 1e6) / r.responses;
    if (s.mode === 'grind') {
      await sleep(3000);
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      const count = async () => Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM shares')).rows[0].n);
      stored = await count();
      // Then the writer catches up with the spool (the pool keeps running, no load): every share a miner saw
      // accepted must reach the database; how long it takes is the ingest rate left beside the share path.
      const t0 = Date.now();
      let all = stored;
      while (all < r.accepted && Date.now() - t0 < 180_000) { await sleep(1000); all = await count(); }
      catchUp = { stored: all, seconds: (Date.now() - t0) / 1000 + 3 };
      await c.end();
    }
  } finally {
    await pool.stop();
    await db.drop();
  }
  log(`  ${f(r.responses_per_s)} answered/s, p99 ${f(r.latency_ms.p99, 2)} ms, CPU ${f(cpuUs(r), 1)} µs/submit, ${f(r.server?.rss_bytes_per_conn)} B/conn${stored !== undefined ? `, ${f(stored)} stored of ${f(r.accepted)} accepted` : ''}${r.pool_loop ? `; pool loop p99 ${f(r.pool_loop.p99, 1)} / p99.9 ${f(r.pool_loop.p999, 1)} ms` : ''}${r.wire ? `; wire p99 ${f(r.wire.p99, 2)} ms` : ''}${r.noise ? `; core 0 steal ${f(r.noise.stealPct, 1)} %, pool faults ${f(r.noise.minflt)}/${f(r.noise.majflt)} major${(s.processes ?? 1) === 1 ? `, loop waited for its core ${f(r.noise.mainWaitMs)} ms, other threads ${f(r.noise.helperCpuMs)} ms CPU` : ''}` : ''}`);
  if (catchUp) log(`  ${f(catchUp.stored)} stored ${f(catchUp.seconds, 0)} s after the window`);
  return { hashhub: r, stored, catchUp };
}

/** One run of a scenario against ckpool. */
async function measureCkpool(bin: string, gen: string, work: string, nodePort: number, s: Scenario): Promise<LoadResult> {
  const c = await startCkpool(bin, work, nodePort, s);
  try {
    await warmUp(gen, c, s);
    const ck = await runLoad(gen, c, s, `ckpool ${s.name}`);
    log(`  ckpool: ${f(ck.responses_per_s)} answered/s, p99 ${f(ck.latency_ms.p99, 2)} ms, CPU ${f(cpuUs(ck), 1)} µs/submit, ${f(ck.server?.rss_bytes_per_conn)} B/conn${ck.wire ? `; wire p99 ${f(ck.wire.p99, 2)} ms` : ''}`);
    return ck;
  } finally {
    await c.stop();
  }
}

async function main() {
  const work = mkdtempSync(path.join(tmpdir(), 'hashhub-bench-stratum-'));
  const procs: ChildProcess[] = [];
  const unpinPostgres = await pinPostgresToCore1();
  try {
    log('building the load generator (Go)…');
    const gen = buildLoadGenerator(work);
    log('building hashhub (npm run build)…');
    buildHashhub();
    pinSelfToCore1();
    const nodePort = await freePort();
    const node = startFakenode(nodePort);
    procs.push(node);
    await waitPort(nodePort, 20_000);
    const results: { s: Scenario; run: number; hashhub: LoadResult; stored?: number; catchUp?: { stored: number; seconds: number }; ckpool?: LoadResult }[] = [];
    for (const s of variants ? VARIANTS : SCENARIOS) {
      if (only && !only.has(s.name)) continue;
      for (let run = 1; run <= repeat; run++) results.push({ s, run, ...(await measureHashhub(gen, work, nodePort, s, run)) });
      // ckpool once, beside hashhub's last run (it stores no shares: no accepted-path rows).
      if (ckpoolBin && s.mode !== 'grind') results[results.length - 1].ckpool = await measureCkpool(ckpoolBin, gen, work, nodePort, s);
    }
    const lines = variants ? ['## Stratum share path: SOLO accounts and several processes', '', ...provenance(`npm run bench:stratum${commandFlags(['--variants', repeat > 1 ? `--repeat ${repeat}` : ''])}`), '',
      'As the section above (fakenode, 3,000-transaction template, the Go generator pinned to core 1, every share through the spool into Postgres), for the other shapes of the share path. SOLO: the generator\'s account mines SOLO, so every share hashes that account\'s own coinbase (per-account coinb2) — compare with the pool rows above. 2 processes: `stratum.processes = 2` on both cores, one of which the generator also uses, so its throughput says little (the performance issue: report, do not chase); pool CPU is the processes\' together over the whole run (ramp included) per answered submit, and the generator\'s RSS figure (the primary\'s) is left out.', '',
      '| scenario | pool | answered/s | pool CPU µs/submit | p50 ms | p99 ms | p99.9 ms | max ms | RSS B/conn | closed | notes |',
      '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |'] : ['## Stratum share path (vs ckpool)', '', ...provenance(`npm run bench:stratum${commandFlags([quick ? '--quick' : '', ckpoolBin ? '--ckpool <bin>' : '', repeat > 1 ? `--repeat ${repeat}` : ''])}`), '',
      'fakenode serves a 3,000-transaction template (12-level branch) at network difficulty 1e12; `random` submits are fully validated and rejected (low difficulty), `grind` submits are real shares at difficulty 2^-30, each accepted and written through the spool into Postgres 15 (same machine). hashhub pinned to core 0 and started with `node --single-threaded-gc` as README Deploy says for a pool process with one core (two processes on cores 0-1 get it from the cluster), the Go load generator, fakenode, this harness and the local Postgres to core 1 (the pool\'s core is only the pool\'s, as when the database and the node have their own machines); pool CPU from /proc over the measured window; idle memory is RSS growth per connection at the end of a 60 s window, and 10 s into it in the notes (V8 shrinks the young generation it grew during the connection storm, and compacts the garbage the storm left, only tens of seconds after it); the pool\'s own event-loop delay over the window but its last second (bench/loop-delay.cjs, sampled every 2 ms; the generator\'s exit closes every connection at once, a stall of about 30 µs per connection in any Node server) in the notes, beside the generator\'s view, with the pool\'s core\'s steal time, the pool\'s page faults, how long its event loop was ready to run but waited for its core (schedstat\'s run delay: kernel threads, the pool\'s own other threads) and those other threads\' CPU (V8\'s compiler, the template thread); with tcpdump (root), latency on the wire too: 4 s of loopback traffic from 5 s into the window, each submit matched with its answer by id (bench/wire-latency.ts), for both pools, since the generator\'s p50/p99 columns also hold its own scheduling on the core it shares with Postgres. Goals (performance issue): ≤ 30 µs of pool CPU per submit at saturation, ≤ 40 µs at 5k/s, ≥ 1.5× ckpool\'s answered rate, p99 ≤ 5 ms (1k) / ≤ 10 ms (10k) at 5k/s, ≤ 10 ms at 20k/s with 10k, answered rate held at 50k/s offered with bounded memory (≤ 4 KB/conn), ≤ 2 KB/conn idle, p99.9 ≤ 20 ms through template refreshes, ≥ 15,000 accepted and stored shares/s per core with p99 ≤ 10 ms and zero loss.', '',
      '| scenario | pool | answered/s | pool CPU µs/submit | p50 ms | p99 ms | p99.9 ms | max ms | RSS B/conn | closed | notes |',
      '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |'];
    // Idle: RSS early in the window too, and the V8 heap at its end (the live part: sessions and sockets).
    const earlyRss = (s: Scenario, r: LoadResult) => {
      if (r.rss_kb_early === undefined || !r.server || s.conns === 0) return '';
      const heap = (r.pool_loop?.memory as { heapUsed?: number } | undefined)?.heapUsed;
      return `RSS ${f(((r.rss_kb_early - r.server.rss_kb_before_ramp) * 1024) / s.conns)} B/conn ${s.rssEarlyS} s into the window${heap !== undefined ? `; V8 heap used at the window's end ${f(heap, 1)} MB` : ''}`;
    };
    const noiseNote = (r: LoadResult, threads = true) => (r.noise ? `core 0 steal ${f(r.noise.stealPct, 1)} % of the window, pool page faults ${f(r.noise.minflt)} minor / ${f(r.noise.majflt)} major${threads ? `; the pool's event loop waited ${f(r.noise.mainWaitMs)} ms (${f(r.noise.mainWaitPct, 1)} % of the window) for its core, its other threads used ${f(r.noise.helperCpuMs)} ms of CPU` : ''}` : '');
    const wireNote = (r: LoadResult) => (r.wire ? `**on the wire** (4 s tcpdump sample, ${f(r.wire.answers)} answers) p50 ${f(r.wire.p50, 2)} / p99 ${f(r.wire.p99, 2)} / p99.9 ${f(r.wire.p999, 2)} / max ${f(r.wire.max, 1)} ms` : '');
    const row = (s: Scenario, who: string, r: LoadResult, note = '') => lines.push(
      `| ${s.what} | ${who} | ${f(r.responses_per_s)} | ${f(cpuUs(r), 1)} | ${f(r.latency_ms.p50, 2)} | ${f(r.latency_ms.p99, 2)} | ${f(r.latency_ms.p999, 2)} | ${f(r.latency_ms.max, 1)} | ${(s.processes ?? 1) > 1 ? '—' : f(r.server?.rss_bytes_per_conn)} | ${f(r.closed_by_server)} | ${note} |`);
    for (const { s, run, hashhub, stored, catchUp, ckpool } of results) {
      const notes = [
        hashhub.unanswered ? `${f(hashhub.unanswered)} unanswered` : '',
        hashhub.behind_skipped ? `generator behind by ${f(hashhub.behind_skipped)}` : '',
        stored !== undefined ? `${f(stored)} stored of ${f(hashhub.accepted)} accepted 3 s after the window` : '',
        catchUp ? `${f(catchUp.stored)} stored ${f(catchUp.seconds, 0)} s after it (${catchUp.stored >= hashhub.accepted ? 'none lost' : 'NOT ALL: the rest still in the spool'})` : '',
        `generator CPU ${f(hashhub.self_cpu_s_window, 1)} s of ${f(hashhub.window_s, 0)} s`,
        earlyRss(s, hashhub),
        hashhub.pool_loop ? `pool's own loop delay p99 ${f(hashhub.pool_loop.p99, 1)} / p99.9 ${f(hashhub.pool_loop.p999, 1)} / max ${f(hashhub.pool_loop.max, 1)} ms` : '',
        wireNote(hashhub),
        noiseNote(hashhub, (s.processes ?? 1) === 1), // a cluster's pid is its primary, not a Stratum process
      ].filter(Boolean).join('; ');
      row(s, repeat > 1 ? `hashhub (run ${run} of ${repeat})` : 'hashhub', hashhub, notes);
      if (ckpool) row(s, 'ckpool (same run)', ckpool, [ckpool.unanswered ? `${f(ckpool.unanswered)} unanswered` : '', earlyRss(s, ckpool), wireNote(ckpool), noiseNote(ckpool, false)].filter(Boolean).join('; '));
    }
    writeSection(variants ? 'stratum-variants' : 'stratum', lines);
    log(`written to BENCHMARKS.md (section ${variants ? 'stratum-variants' : 'stratum'})`);
  } finally {
    unpinPostgres();
    for (const p of procs) await stopChild(p, 'SIGTERM', 3000);
    rmSync(work, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (err) => { log(`bench:stratum failed: ${(err as Error).stack ?? err}`); process.exit(1); });
