import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runFleet } from '../src/miner/fleet.ts';
import { DEFAULT_REGTEST_ADDRESS } from '../src/cli/config.ts';

export interface FleetPhase { connections: number; sharesPerSec: number; localAddress: string; apiLoad?: boolean }
export interface FleetResult extends FleetPhase {
  connected: number;
  answered: number;
  accepted: number;
  rejected: number;
  seconds: number;
  answeredPerSec: number;
  p50: number;
  p99: number;
  max: number;
  api?: { requests: number; perSecond: number; p50: number; p99: number; errors: number };
  poolCpuPct: number;
  poolCpuUsPerShare: number;
  poolRssMb: number;
  kbPerConnection: number;
}

/** Pool difficulty fixed at 2^-30 (4 hashes per share) so the load client spends its CPU on the protocol. */
const DIFF = 2 ** -30;

function readProc(pid: number): { rssKb: number; cpuTicks: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return { rssKb, cpuTicks: Number(stat[11]) + Number(stat[12]) };
}

/** The pool in its own process (its own core), on the embedded chain with a 3,000-transaction template. */
/** The embedded chain as its own process (bench/node-child.ts): the pool's env to use it as its node. */
export async function startNodeProcess(env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; poolEnv: NodeJS.ProcessEnv; stop(): Promise<void> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/node-child.ts'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error('the node process did not start in 60 s')), 60_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) { clearTimeout(t); resolve(out.slice(0, nl)); }
    });
    child.once('exit', (code) => reject(new Error(`the node process exited with ${code}`)));
  });
  const [url, user, password] = line.split(' ');
  return {
    child,
    poolEnv: { HASHHUB_NODE_URLS: url, HASHHUB_NODE_USER: user, HASHHUB_NODE_PASSWORD: password, HASHHUB_NETWORK: 'regtest', HASHHUB_PAYOUT_ADDRESS: DEFAULT_REGTEST_ADDRESS },
    stop: () => new Promise((resolve) => { if (child.exitCode !== null) return resolve(); child.once('exit', () => resolve()); child.kill('SIGTERM'); setTimeout(() => child.kill('SIGKILL'), 10_000).unref(); }),
  };
}

export async function startPoolProcess(databaseUrl?: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; port: number; apiPort: number; stop(): Promise<void> }> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'hashhub-bench-'));
  const child = spawn(process.execPath, [...(process.env.HASHHUB_BENCH_POOL_NODE_ARGS?.split(' ').filter(Boolean) ?? []), '--import', 'tsx', 'src/cli/main.ts', 'pool'], {
    env: {
      ...process.env,
      HASHHUB_STRATUM_HOST: '127.0.0.1', HASHHUB_STRATUM_PORT: '0', HASHHUB_LOG_LEVEL: 'warn',
      HASHHUB_EMBEDDED_DIFFICULTY: '1', HASHHUB_EMBEDDED_MEMPOOL_TXS: '3000', HASHHUB_TEMPLATE_REFRESH_MS: '10000',
      HASHHUB_DIFFICULTY: String(DIFF), HASHHUB_MIN_DIFFICULTY: String(DIFF), HASHHUB_MAX_DIFFICULTY: String(DIFF),
      HASHHUB_MAX_CONNECTIONS_PER_IP: '20000',
      // Shares go through the durable spool into Postgres, as in production (PGlite would share the pool's thread).
      HASHHUB_DATA_DIR: dataDir,
      ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
      HASHHUB_API_HOST: '127.0.0.1', HASHHUB_API_PORT: '0',
      ...extraEnv,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const [port, apiPort] = await new Promise<[number, number]>((resolve, reject) => {
    let err = '';
    const t = setTimeout(() => reject(new Error(`pool did not start: ${err}`)), 60_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /Stratum:\s+stratum\+tcp:\/\/[^:]+:(\d+)/.exec(err);
      const a = /API:\s+http:\/\/[^:]+:(\d+)/.exec(err);
      if (m && a) { clearTimeout(t); resolve([Number(m[1]), Number(a[1])]); }
    });
    child.once('exit', (code) => reject(new Error(`pool exited with ${code}: ${err}`)));
  });
  return {
    child, port, apiPort,
    stop: () => new Promise((resolve) => { child.once('exit', () => { rmSync(dataDir, { recursive: true, force: true }); resolve(); }); child.kill('SIGTERM'); setTimeout(() => child.kill('SIGKILL'), 10_000).unref(); }),
  };
}

/** Bounded HTTP load: `concurrency` clients looping over the API's read routes until `untilMs`. */
async function apiLoad(apiPort: number, untilMs: number, concurrency = 4) {
  const paths = ['/api/v1/pool', '/api/v1/accounts/bench', '/api/v1/accounts/bench/workers?limit=50', '/api/v1/accounts/bench/hashrate?window=1h&bucket=60', '/api/v1/blocks'];
  const lat: number[] = [];
  let errors = 0;
  await Promise.all(Array.from({ length: concurrency }, async (_, k) => {
    for (let i = k; Date.now() < untilMs && lat.length < 200_000; i++) {
      const t0 = performance.now();
      try {
        const r = await fetch(`http://127.0.0.1:${apiPort}${paths[i % paths.length]}`);
        await r.arrayBuffer();
        if (r.status !== 200) errors++;
      } catch {
        errors++;
      }
      lat.push(performance.now() - t0);
    }
  }));
  lat.sort((a, b) => a - b);
  return { lat, errors };
}

export async function runFleetPhase(pool: { child: ChildProcess; port: number; apiPort: number }, phase: FleetPhase, measureSeconds: number): Promise<FleetResult> {
  const pid = pool.child.pid!;
  const before = readProc(pid);
  let inWindow = false;
  const lat: number[] = [];
  let accepted = 0;
  let rejected = 0;
  const fleet = runFleet({
    count: phase.connections, totalHashrate: phase.sharesPerSec * DIFF * 2 ** 32, url: `stratum+tcp://127.0.0.1:${pool.port}`,
    user: 'bench', localAddresses: [phase.localAddress], connectRatePerSec: 2000, reconnect: false, latencyReservoirSize: 16,
    onShare: (_m, s) => {
      if (!inWindow) return;
      if (Number.isFinite(s.latencyMs)) lat.push(s.latencyMs);
      if (s.accepted) accepted++; else rejected++;
    },
  });
  await fleet.rampedUp;
  const rampEnd = Date.now() + 30_000;
  while (fleet.stats().connected < phase.connections && Date.now() < rampEnd) await new Promise((r) => setTimeout(r, 200));
  await new Promise((r) => setTimeout(r, 3000)); // warm-up
  const mid = readProc(pid);
  inWindow = true;
  const t0 = process.hrtime.bigint();
  const apiRun = phase.apiLoad ? apiLoad(pool.apiPort, Date.now() + measureSeconds * 1000) : null;
  await new Promise((r) => setTimeout(r, measureSeconds * 1000));
  const apiRes = apiRun ? await apiRun : null;
  inWindow = false;
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const after = readProc(pid);
  const connected = fleet.stats().connected;
  await fleet.stop(500);
  lat.sort((a, b) => a - b);
  const q = (p: number) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))] : NaN);
  const answered = accepted + rejected;
  const cpuSec = (after.cpuTicks - mid.cpuTicks) / 100;
  return {
    ...phase, connected, answered, accepted, rejected, seconds, answeredPerSec: answered / seconds,
    p50: q(50), p99: q(99), max: lat[lat.length - 1] ?? NaN,
    api: apiRes ? {
      requests: apiRes.lat.length, perSecond: apiRes.lat.length / seconds, errors: apiRes.errors,
      p50: apiRes.lat[Math.floor(apiRes.lat.length * 0.5)] ?? NaN, p99: apiRes.lat[Math.floor(apiRes.lat.length * 0.99)] ?? NaN,
    } : undefined,
    poolCpuPct: (100 * cpuSec) / seconds, poolCpuUsPerShare: answered ? (cpuSec * 1e6) / answered : NaN,
    poolRssMb: after.rssKb / 1024, kbPerConnection: (mid.rssKb - before.rssKb) / Math.max(1, connected),
  };
}
