import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { StratumMiner } from '../src/miner/client.ts';
import { type PoolProcess, exited, killAll, startPoolProcess } from './helpers/child-pool.ts';
import { freePort } from './helpers/free-port.ts';
import { SKIP_PG, createTestPg } from './helpers/pg.ts';
import { until } from './helpers/until.ts';

// Two real hashhubs, each with its own embedded chain and database: pool A routes its miners to pool B (with
// `hashhub route add`), B's own API shows exactly the accepted shares and difficulty A metered as accepted, B finds
// a block with A's miners (B's block, never submitted by A); B killed mid-route: A's miners are back on A's work
// within 5 s and the route resumes by itself when B returns.

const ROOT = path.resolve(import.meta.dirname, '..');
const run = promisify(execFile);
const TOKEN = 'routing-e2e-operator-token-0123456789';
/** B's fixed share difficulty (vardiff pinned): accepted difficulty = count × D, exactly. */
const D = 0.00002;

async function getJson(url: string, token?: string): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

async function cli(apiPort: number, ...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'route', ...args, '--api', `http://127.0.0.1:${apiPort}`, '--token', TOKEN], { cwd: ROOT, env: { ...process.env, HASHHUB_CONFIG: '' } });
  return stdout;
}

test('hashhub A routes its miners to hashhub B: B counts exactly what A metered; B killed → back on A in 5 s, resumes', { skip: SKIP_PG, timeout: 240_000 }, async () => {
  const [dbA, dbB] = await Promise.all([createTestPg(), createTestPg()]);
  const dirA = fs.mkdtempSync(path.join(tmpdir(), 'hashhub-route-a-'));
  const dirB = fs.mkdtempSync(path.join(tmpdir(), 'hashhub-route-b-'));
  const [portA, apiA, portB, apiB] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const base = (): NodeJS.ProcessEnv => {
    const env: NodeJS.ProcessEnv = { ...process.env, HASHHUB_STRATUM_HOST: '127.0.0.1', HASHHUB_API_HOST: '127.0.0.1', HASHHUB_API_ENABLED: 'true', HASHHUB_LOG_LEVEL: 'warn', HASHHUB_NODE_POLL_MS: '200', HASHHUB_OPERATOR_TOKEN: TOKEN, HASHHUB_ACCOUNTING_ENABLED: 'false', HASHHUB_MARKET_ENABLED: 'false' };
    delete env.HASHHUB_CONFIG;
    return env;
  };
  const envA = { ...base(), DATABASE_URL: dbA.url, HASHHUB_DATA_DIR: dirA, HASHHUB_STRATUM_PORT: String(portA), HASHHUB_API_PORT: String(apiA),
    HASHHUB_DIFFICULTY: '0.00002', HASHHUB_EMBEDDED_DIFFICULTY: '1000', HASHHUB_ROUTING_SYNC_MS: '300', HASHHUB_ROUTING_RECONNECT_HOST: '127.0.0.1' };
  const envB = { ...base(), DATABASE_URL: dbB.url, HASHHUB_DATA_DIR: dirB, HASHHUB_STRATUM_PORT: String(portB), HASHHUB_API_PORT: String(apiB),
    HASHHUB_DIFFICULTY: String(D), HASHHUB_MIN_DIFFICULTY: String(D), HASHHUB_MAX_DIFFICULTY: String(D), HASHHUB_EMBEDDED_DIFFICULTY: '0.0002',
    HASHHUB_ROUTING_ENABLED: 'false', HASHHUB_INGEST_FLUSH_MS: '50' };
  let a: PoolProcess | null = null;
  let b: PoolProcess | null = null;
  const miners: StratumMiner[] = [];
  try {
    [a, b] = await Promise.all([startPoolProcess(envA), startPoolProcess(envB)]);
    // One miner that takes set_extranonce, one that must be moved by client.reconnect (as cpuminer).
    for (const [user, xn] of [['seller.xn', true], ['seller.rc', false]] as const) {
      miners.push(new StratumMiner({ host: '127.0.0.1', port: portA, user, extranonceSubscribe: xn, hashrate: 150_000, reconnectInitialMs: 50, reconnectMaxMs: 300 }).start());
    }
    const onRoute = (m: StratumMiner) => m.currentJob?.jobId.startsWith('r') === true;
    const onPool = (m: StratumMiner) => m.currentJob !== null && !onRoute(m);
    await until(() => miners.every(onPool), 30_000, 'miners on A\'s work');

    // ---- phase 1: route, deliver, stop; compare A's metering with B's own API ----
    const added = await cli(apiA, 'add', '--workers', 'seller', '--url', `stratum+tcp://127.0.0.1:${portB}`, '--user', 'buyer.fromA', '--json');
    const id = (JSON.parse(added) as { id: number }).id;
    let last: unknown = null;
    const route = async () => { last = (await getJson(`http://127.0.0.1:${apiA}/api/v1/routes`, TOKEN)).items.find((r: { id: number }) => r.id === id); return last as any; }; // eslint-disable-line @typescript-eslint/no-explicit-any
    await until(async () => (await route()).state === 'ready' && miners.every(onRoute), 60_000, () => `route ready with both miners (${JSON.stringify(last)})`);
    await until(async () => (await route()).totals.accepted >= 20 && (await getJson(`http://127.0.0.1:${apiB}/api/v1/blocks`)).total >= 1, 90_000,
      () => `20 accepted shares and a block at B (${JSON.stringify(last)})`);
    const listed = await cli(apiA, 'list');
    assert.match(listed, new RegExp(`#${id} ready`));
    await cli(apiA, 'stop', String(id));
    await until(() => miners.every(onPool), 5000, 'back on A\'s work after the stop');
    await until(async () => { const t = (await route()).totals; return t.forwarded === t.accepted + t.probeAccepted + t.rejected + t.stale + t.noAnswer; }, 35_000, 'every forwarded share answered');
    const t = (await route()).totals;
    const poolB = await getJson(`http://127.0.0.1:${apiB}/api/v1/pool`);
    assert.equal(t.accepted + t.probeAccepted, poolB.sinceStart.shares.accepted, `B accepted ${poolB.sinceStart.shares.accepted}; A metered ${t.accepted} + probe ${t.probeAccepted}`);
    // No share is refused for cause. A share in flight when B's tip moves (B finds blocks here) is stale at B, as at
    // any pool: both sides count it the same, and only as many as B had new tips.
    assert.equal(t.rejected, 0, JSON.stringify(t));
    assert.equal(t.stale, poolB.sinceStart.shares.stale ?? 0, `A metered ${t.stale} stale, B counted ${poolB.sinceStart.shares.stale}`);
    assert.ok(t.stale <= (await getJson(`http://127.0.0.1:${apiB}/api/v1/blocks`)).total, `${t.stale} stale with ${poolB.sinceStart.blocks.found} blocks at B`);
    assert.ok(Math.abs(t.acceptedDifficulty - t.accepted * D) <= 1e-9 * t.accepted * D, `A's accepted difficulty ${t.acceptedDifficulty} = ${t.accepted} × ${D}`);
    // B's stored difficulty, through its API: Σd = hashrate × seconds / 2^32 over its 1 h window.
    await until(async () => (await getJson(`http://127.0.0.1:${apiB}/api/v1/accounts/buyer/workers`)).items[0]?.shares24h.accepted === poolB.sinceStart.shares.accepted, 10_000, 'B\'s worker rollups');
    const w1h = (await getJson(`http://127.0.0.1:${apiB}/api/v1/accounts/buyer/workers`)).items[0].hashrate['1h'];
    const sumDB = (w1h.hashrate * w1h.seconds) / 2 ** 32;
    const sumDA = t.acceptedDifficulty + t.probeAccepted * D;
    assert.ok(Math.abs(sumDB - sumDA) <= 1e-6 * sumDA, `B's accepted difficulty ${sumDB} = A's metered ${sumDA}`);
    // B's stored rollups (its database, through its API) hold the same count.
    await until(async () => (await getJson(`http://127.0.0.1:${apiB}/api/v1/accounts/buyer`)).shares24h.accepted === poolB.sinceStart.shares.accepted, 10_000, 'B\'s rollups');
    // A's database: the minute buckets sum to the same.
    const detail = await getJson(`http://127.0.0.1:${apiA}/api/v1/routes/${id}`, TOKEN);
    await until(async () => (await getJson(`http://127.0.0.1:${apiA}/api/v1/routes/${id}`, TOKEN)).deliveredLastHour.reduce((s: number, r: { accepted: number }) => s + r.accepted, 0) === t.accepted, 5000, 'A\'s minute buckets');
    assert.ok(detail.events.some((e: { kind: string; data?: { method?: string } }) => e.kind === 'moved' && e.data?.method === 'set_extranonce'));
    assert.ok(detail.events.some((e: { kind: string; data?: { method?: string } }) => e.kind === 'moved' && e.data?.method === 'resume'));
    // The block is B's: found on routed work, in B's chain, never submitted by A.
    const blocksB = await getJson(`http://127.0.0.1:${apiB}/api/v1/blocks`);
    assert.equal(blocksB.items[0].account, 'buyer');
    assert.equal((await getJson(`http://127.0.0.1:${apiA}/api/v1/blocks`)).total, 0);

    // ---- phase 2: B killed mid-route → A's work within 5 s; B back → the route resumes by itself ----
    const id2 = (JSON.parse(await cli(apiA, 'add', '--workers', 'seller', '--url', `stratum+tcp://127.0.0.1:${portB}`, '--user', 'buyer.fromA', '--json')) as { id: number }).id;
    const route2 = async () => (await getJson(`http://127.0.0.1:${apiA}/api/v1/routes/${id2}`, TOKEN));
    await until(async () => (await route2()).state === 'ready' && miners.every(onRoute), 60_000, 'second route ready');
    const t0 = Date.now();
    b.child.kill('SIGKILL');
    await exited(b.child);
    await until(() => miners.every(onPool), 5000, 'both miners on A\'s work within 5 s of B\'s death');
    const backMs = Date.now() - t0;
    const paused = await route2();
    assert.equal(paused.state, 'paused');
    // The route's code now follows its reconnect attempts: 'disconnected' when B dropped it, then 'unreachable'
    // once an attempt is refused (a CI run read it after one). The pause itself is recorded as the disconnect
    // (checked on its history below).
    assert.ok(['disconnected', 'unreachable'].includes(paused.code), paused.code);
    b = await startPoolProcess(envB);
    await until(async () => (await route2()).state === 'ready' && miners.every(onRoute), 60_000, 'resumed');
    const r2 = await route2();
    assert.ok(r2.pauses.length >= 1 && r2.pauses[0].code === 'disconnected' && r2.pauses[0].endedAt !== null, JSON.stringify(r2.pauses));
    process.stderr.write(`# e2e: phase 1 ${t.accepted} accepted (+${t.probeAccepted} probe) = B's ${poolB.sinceStart.shares.accepted}, switch-lost ${t.switchLost}; ` +
      `B killed → both miners on A's work in ${backMs} ms, shares without an answer at the kill ${r2.totals.noAnswer}, switch-lost ${r2.totals.switchLost}; resumed\n`);
  } finally {
    await Promise.all(miners.map((m) => m.stop()));
    await killAll([a, b]);
    await Promise.all([dbA.drop(), dbB.drop()]);
    fs.rmSync(dirA, { recursive: true, force: true });
    fs.rmSync(dirB, { recursive: true, force: true });
  }
});
