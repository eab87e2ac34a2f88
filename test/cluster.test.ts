import { type TestContext, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { runFleet } from '../src/miner/fleet.ts';
import { exited, killAll, startPoolProcess, type PoolProcess } from './helpers/child-pool.ts';
import { freePort } from './helpers/free-port.ts';
import { LineClient } from './helpers/line-client.ts';
import { SKIP_PG, createTestPg } from './helpers/pg.ts';
import { until } from './helpers/until.ts';

// `stratum.processes = 2`: two Stratum processes share the port (Node's cluster), each with its own node id
// (extranonce1 prefix), spool and block journal; the lead also runs the API and the books. Connections reach both,
// no two connections get the same work, every accepted share is stored exactly once (a follower SIGKILLed
// mid-run is restarted by the primary and replays its spool), and a stop is graceful for all of them.

/** The cluster's worker processes (children of the primary) and their index. */
function workers(primaryPid: number): { pid: number; index: number }[] {
  const out: { pid: number; index: number }[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== primaryPid) continue;
      const env = readFileSync(`/proc/${d}/environ`, 'utf8').split('\0').find((e) => e.startsWith('HASHHUB_CLUSTER_INDEX='));
      if (env) out.push({ pid: Number(d), index: Number(env.split('=')[1]) });
    } catch {
      // gone meanwhile
    }
  }
  return out.sort((a, b) => a.index - b.index);
}

async function subscribe(port: number, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const c = new LineClient(port);
    await c.connected();
    const r = await c.request(1, 'mining.subscribe', ['cluster-test/1']);
    out.push((r.result as unknown[])[1] as string);
    c.socket.destroy();
  }
  return out;
}

/** Two Stratum processes on their own database and data directory, started and both listening. */
async function startCluster(t: TestContext): Promise<{ pool: PoolProcess; port: number; dbUrl: string }> {
  const tpg = await createTestPg();
  t.after(() => tpg.drop());
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hashhub-cluster-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env, DATABASE_URL: tpg.url, HASHHUB_DATA_DIR: dir, HASHHUB_STRATUM_PROCESSES: '2', HASHHUB_NODE_ID: '7',
    HASHHUB_STRATUM_HOST: '127.0.0.1', HASHHUB_STRATUM_PORT: String(port), HASHHUB_API_PORT: String(await freePort()),
    // Vardiff aims at a share every 0.5 s per miner, not 10 s: the test waits for tens of shares after a restart, and
    // at 10 s a share eight miners took about a minute for 40 of them (failed in CI under load: 39 in 60 s).
    HASHHUB_DIFFICULTY: '0.00001', HASHHUB_SHARE_SECONDS: '0.5', HASHHUB_LOG_LEVEL: process.env.CLUSTER_LOG ?? 'warn', HASHHUB_MARKET_ENABLED: 'false',
  };
  delete env.HASHHUB_CONFIG;
  const pool = await startPoolProcess(env);
  t.after(() => killAll([pool]));
  await until(() => pool.output().includes('2 Stratum processes share port'), 60_000, 'both processes listening');
  return { pool, port, dbUrl: tpg.url };
}

/** The pool's exit after a stop, or a failure with the end of its log after 60 s. */
function exitWithin60s(pool: PoolProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return Promise.race([
    exited(pool.child),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`the pool did not stop within 60 s:\n${pool.output().slice(-4000)}`)), 60_000).unref()),
  ]);
}

test('two Stratum processes share the port: distinct work, every accepted share stored once, a dead one restarted', { skip: SKIP_PG, timeout: 240_000 }, async (t) => {
  const { pool, port, dbUrl } = await startCluster(t);
  assert.deepEqual(workers(pool.child.pid!).map((w) => w.index), [0, 1]);
  // No more processes than cores: each collects garbage on its own thread (src/cli/gc-threads.ts).
  for (const w of workers(pool.child.pid!)) {
    const args = readFileSync(`/proc/${w.pid}/cmdline`, 'utf8').split('\0');
    assert.equal(args.includes('--single-threaded-gc'), 2 >= os.availableParallelism(), `process ${w.index}: ${args.join(' ')}`);
  }

  // Connections are handed out to both; extranonce1 = node id ‖ counter, never the same twice.
  const en1 = await subscribe(port, 16);
  assert.equal(new Set(en1).size, 16, 'no two connections get the same extranonce1');
  assert.deepEqual([...new Set(en1.map((e) => e.slice(0, 2)))].sort(), ['07', '08'], 'both node ids (7 and 8) hand out work');

  const fleet = runFleet({ count: 8, totalHashrate: 0, url: `stratum+tcp://127.0.0.1:${port}`, user: 'acct', connectRatePerSec: 100,
    reconnect: true, reconnectInitialMs: 100, reconnectMaxMs: 500 });
  try {
    await until(() => fleet.stats().accepted >= 40, 60_000, () => `shares accepted (${fleet.stats().accepted})`);
    // The follower dies hard; the primary starts it again, its miners come back, its spool replays.
    const follower = workers(pool.child.pid!).find((w) => w.index === 1)!;
    process.kill(follower.pid, 'SIGKILL');
    await until(() => pool.output().includes('a Stratum process died; starting it again'), 20_000, 'the primary saw the follower die');
    await until(() => workers(pool.child.pid!).some((w) => w.index === 1 && w.pid !== follower.pid), 30_000, 'the follower started again');
    // Listening again, so its spool has been read back (a stop before that leaves the spool for the next start).
    await until(() => pool.output().includes('the Stratum process started again is listening'), 60_000, 'the follower listening again');
    const before = fleet.stats().accepted;
    await until(() => fleet.stats().accepted >= before + 40 && fleet.stats().connected === 8, 60_000,
      () => `mining again on both (${fleet.stats().accepted - before} more, ${fleet.stats().connected} connected)`);
  } finally {
    await fleet.stop(2000);
  }
  const accepted = fleet.stats().accepted;

  // A stop reaches every process once and each flushes its spool into the database, in bounded time.
  pool.child.kill('SIGTERM');
  const { code } = await exitWithin60s(pool);
  assert.equal(code, 0);
  const c = new pg.Client({ connectionString: dbUrl });
  await c.connect();
  try {
    const r = await c.query<{ n: string; ids: string; prefixes: string }>(
      "SELECT count(*)::text AS n, count(DISTINCT id)::text AS ids, count(DISTINCT split_part(id, '-', 1))::text AS prefixes FROM shares");
    assert.equal(Number(r.rows[0].n), accepted, 'every accepted share stored');
    assert.equal(r.rows[0].ids, r.rows[0].n, 'each once');
    // Share ids start with their spool's id: shares from both processes (the restarted one keeps its spool's).
    assert.equal(r.rows[0].prefixes, '2', 'shares from both processes');
    const sources = await c.query('SELECT source FROM ingest_watermarks');
    assert.equal(sources.rows.length, 2, 'one ingest source per spool (a restarted process keeps its own)');
  } finally {
    await c.end();
  }
});

test('a stop while a Stratum process is starting again stops it too: the cluster exits', { skip: SKIP_PG, timeout: 180_000 }, async (t) => {
  // Failed before (seen in CI as a hung cluster test): the primary asked its processes to stop by a message, and one
  // still loading (started again after a crash) had no listener for it yet, so the message was dropped; that process
  // started, ran on, and the primary waited for it for ever.
  const { pool } = await startCluster(t);
  const follower = workers(pool.child.pid!).find((w) => w.index === 1)!;
  process.kill(follower.pid, 'SIGKILL');
  // The moment its replacement exists, long before it can have loaded: stop.
  await until(() => workers(pool.child.pid!).some((w) => w.index === 1 && w.pid !== follower.pid), 30_000, 'the follower started again');
  const replacement = workers(pool.child.pid!).find((w) => w.index === 1)!;
  pool.child.kill('SIGTERM');
  const { code } = await exitWithin60s(pool);
  assert.equal(code, 0);
  await until(() => { try { process.kill(replacement.pid, 0); return false; } catch { return true; } }, 10_000, 'the replacement process gone');
});
