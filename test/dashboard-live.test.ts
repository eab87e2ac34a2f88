import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { buildApi } from '../src/api/app.ts';
import { CSP } from '../src/api/dashboard.ts';
import { LiveStats, nbitsDifficulty } from '../src/api/live.ts';
import { createMetrics } from '../src/api/metrics.ts';
import { hashprice } from '../src/api/routes/live.ts';
import { emptyBlockCounters } from '../src/shares/block-state.ts';
import type { ShareEvent } from '../src/shares/events.ts';
import { emptyOutcomeCounts } from '../src/shares/outcome.ts';
import type { StatsReader } from '../src/store/types.ts';

const T0 = Date.UTC(2031, 0, 1, 12, 0, 0);
const MIN = 60_000;
const TWO32 = 2 ** 32;

function share(time: number, over: Partial<ShareEvent> = {}): ShareEvent {
  return {
    id: `s${time}${Math.random()}`, time, account: 'alice', worker: 'w1', sessionId: 's', remoteAddress: '127.0.0.1', jobId: 'j', height: 100,
    outcome: 'accepted', poolDifficulty: 1, shareDifficulty: 1, block: false, nbits: 0x1d00ffff, ...over,
  };
}

test('live rates: Σ accepted difficulty × 2^32 over the time covered, rejects by reason, 95 % band from the share count', () => {
  const clock = { now: T0 };
  const live = new LiveStats({ now: () => clock.now });
  // 10 minutes: 120 shares of difficulty 2 a minute from w1, 60 of difficulty 1 from w2, and some rejects.
  for (let m = 0; m < 10; m++) {
    for (let i = 0; i < 120; i++) live.addShare(share(T0 + m * MIN + i * 500, { poolDifficulty: 2 }));
    for (let i = 0; i < 60; i++) live.addShare(share(T0 + m * MIN + i * 1000, { worker: 'w2' }));
    live.addShare(share(T0 + m * MIN + 10, { outcome: 'stale' }));
  }
  clock.now = T0 + 10 * MIN;
  const p = live.poolFigures();
  // 1 h window, process 10 min old: 10 minutes covered.
  assert.equal(p.hashrate['1h'].seconds, 600);
  assert.equal(p.hashrate['1h'].shares, 1800);
  assert.ok(Math.abs(p.hashrate['1h'].hashrate - ((10 * (240 + 60)) * TWO32) / 600) < 1);
  assert.ok(Math.abs(p.hashrate['1h'].error! - 1.96 / Math.sqrt(1800)) < 1e-12);
  // 5 min window: the buckets of minutes 5..9 (and the current, empty one).
  assert.equal(p.hashrate['5m'].shares, 5 * 180);
  assert.equal(p.shares24h.accepted, 1800);
  assert.equal(p.shares24h.rejected.stale, 10);
  assert.equal(p.shares24h.rejected['low-difficulty'], 0);
  assert.equal(p.workersOnline, 2);
  assert.equal(p.minersOnline, 1);

  const a = live.account('alice')!;
  assert.deepEqual(a.workers.map((w) => w.worker), ['w1', 'w2']);
  assert.equal(a.workers[0].hashrate['1h'].shares, 1200);
  assert.equal(a.workers[1].hashrate['1h'].shares, 600);
  assert.equal(a.workers[0].shares24h.rejected.stale, 10);
  assert.equal(a.shares24h.accepted, 1800);
  assert.ok(Math.abs(a.hashrate['1h'].hashrate - p.hashrate['1h'].hashrate) < 1, 'an account of all the pool’s workers has the pool’s rate');
  assert.equal(live.account('bob'), null);
  const hour = live.accountSeries('alice', '1h');
  assert.equal(hour.points.length, 60);
  assert.equal(hour.points.reduce((n, x) => n + x.accepted, 0), 1800);
  const day = live.accountSeries('alice', '24h');
  assert.equal(day.points.length, 96);
  assert.equal(day.points.reduce((n, x) => n + x.accepted, 0), 1800);
  assert.equal(day.points.reduce((n, x) => n + x.rejected, 0), 10);

  // 11 minutes later nobody is online; a day later nothing is left in the 24 h counts.
  clock.now = T0 + 21 * MIN;
  assert.equal(live.poolFigures().workersOnline, 0);
  assert.equal(live.account('alice')!.workersOffline, 2);
  clock.now = T0 + 25 * 60 * MIN;
  assert.equal(live.poolFigures().shares24h.accepted, 0);
  assert.equal(live.account('alice')!.shares24h.accepted, 0);
});

test('workers silent for a day are forgotten (memory follows the active workers); names never collide', () => {
  const clock = { now: T0 };
  const live = new LiveStats({ now: () => clock.now });
  live.addShare(share(T0, { account: 'a', worker: 'b.c' }));
  live.addShare(share(T0, { account: 'a.b', worker: 'c' }));
  assert.equal(live.workerCount, 2, 'a.(b.c) and (a.b).c are two workers');
  live.addShare(share(T0 + 23 * 60 * MIN, { account: 'a', worker: 'b.c' }));
  clock.now = T0 + 25 * 60 * MIN;
  live.addShare(share(clock.now, { account: 'z', worker: 'w' }));
  assert.equal(live.workerCount, 2);
  assert.equal(live.account('a.b'), null);
  assert.equal(live.account('a')!.workers.length, 1);
});

test('live series: one point per bucket, the chart’s sum equals the shares counted', () => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 59 * MIN }), fc.double({ min: 0.001, max: 1000, noNaN: true })), { maxLength: 300 }), (shares) => {
    const clock = { now: T0 };
    const live = new LiveStats({ now: () => clock.now });
    for (const [dt, d] of shares) live.addShare(share(T0 + dt, { poolDifficulty: d }));
    clock.now = T0 + 60 * MIN - 1;
    const s = live.series('1h');
    assert.equal(s.points.length, 60);
    assert.equal(s.points.reduce((n, x) => n + x.accepted, 0), shares.length);
    // Each point's rate is over the part of its minute that has passed (all of it here: now is the last ms).
    const work = s.points.reduce((n, x) => n + (x.hashrate * Math.min(60, (clock.now + 1 - Date.parse(x.time)) / 1000)) / TWO32, 0);
    const expected = shares.reduce((n, [, d]) => n + d, 0);
    assert.ok(Math.abs(work - expected) <= 1e-6 * Math.max(1, expected), `${work} vs ${expected}`);
  }), { numRuns: 50 });
});

test('a ring slot reused a week later does not count last week’s shares', () => {
  const clock = { now: T0 };
  const live = new LiveStats({ now: () => clock.now });
  live.addShare(share(T0));
  clock.now = T0 + 7 * 1440 * MIN; // the same slot of the 7-day ring
  live.addShare(share(clock.now, { poolDifficulty: 5 }));
  assert.equal(live.poolFigures().shares24h.accepted, 1);
  assert.equal(live.series('7d').points.reduce((n, p) => n + p.accepted, 0), 1);
});

test('blocks: luck = network difficulty / work since the previous block; status changes follow', () => {
  const live = new LiveStats({ now: () => T0 + MIN });
  const nbits = 0x207fffff; // regtest
  const netDiff = nbitsDifficulty(nbits);
  for (let i = 0; i < 4; i++) live.addShare(share(T0 + i, { nbits, poolDifficulty: netDiff / 8 }));
  const changes: string[] = [];
  live.onBlockChange((b) => changes.push(`${b.height}:${b.status}`));
  live.addBlock({ kind: 'candidate', time: T0 + 10, height: 101, hash: 'aa', prevHash: 'bb', account: 'alice', worker: 'w1', reward: 5_000_000_000n, blockHex: '' });
  live.addBlock({ kind: 'status', time: T0 + 20, hash: 'aa', status: 'pending', result: null, confirmations: 1, settled: false });
  const [b] = live.poolFigures().blocks;
  assert.equal(b.luck, 200); // half the expected work
  assert.equal(b.status, 'pending');
  assert.equal(b.reward, '5000000000');
  assert.deepEqual(changes, ['101:submitted', '101:pending']);
  assert.equal(nbitsDifficulty(0x1d00ffff), 1);
});

test('hashprice: sat/PH/day at a difficulty and reward', () => {
  // Difficulty 1e14, 3.125 BTC + 0.1 BTC fees: about 65,000 sat/PH/day.
  const v = hashprice(322_500_000, 1e14);
  assert.ok(Math.abs(v - (322_500_000 * 86_400 * 1e15) / (1e14 * TWO32)) < 1e-6);
  assert.ok(v > 60_000 && v < 70_000);
});

function fakeApi(dashboard: string | false) {
  const pool = () => ({
    connections: 3, authorizedSessions: 2, shares: emptyOutcomeCounts(), blocks: emptyBlockCounters(), blockResults: {}, lastBlock: null,
    template: { height: 101, ageMs: 5 }, network: { height: 100, difficulty: 2 }, draining: false,
  });
  const live = new LiveStats();
  live.addShare(share(Date.now()));
  return buildApi({
    stats: {} as StatsReader, pool,
    health: { db: async () => {}, node: async () => ({ synced: true, height: 100 }), templateAgeMs: () => 5, draining: () => false },
    metrics: createMetrics({ pool }, { defaultMetrics: false }),
    live: { stats: live, reward: () => 5_000_000_000, healthEveryMs: 60_000 },
  }, { dashboard });
}

test('API: /api/v1/pool/live and /api/v1/pool/hashrate from memory; / serves the dashboard under the strict CSP; unknown paths stay JSON 404s', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hashhub-web-'));
  mkdirSync(path.join(dir, 'assets'));
  writeFileSync(path.join(dir, 'index.html'), '<!doctype html><script type="module" src="/assets/a.js"></script>');
  writeFileSync(path.join(dir, 'assets', 'a.js'), 'export {}');
  const app = fakeApi(dir);
  try {
    const live = await app.inject('/api/v1/pool/live');
    assert.equal(live.statusCode, 200);
    const body = live.json();
    assert.equal(body.shares24h.accepted, 1);
    assert.equal(body.network.hashprice, hashprice(5_000_000_000, 2));
    assert.equal(body.connections.current, 3);
    const series = await app.inject('/api/v1/pool/hashrate?window=24h');
    assert.equal(series.json().points.length, 288);
    assert.equal((await app.inject('/api/v1/pool/hashrate?window=2d')).statusCode, 400);
    const acc = (await app.inject('/api/v1/accounts/alice/live')).json();
    assert.equal(acc.seen, true);
    assert.equal(acc.workers[0].worker, 'w1');
    assert.equal((await app.inject('/api/v1/accounts/nobody/live')).json().seen, false);

    const index = await app.inject('/');
    assert.equal(index.statusCode, 200);
    assert.equal(index.headers['content-security-policy'], CSP);
    assert.match(index.body, /assets\/a\.js/);
    const asset = await app.inject('/assets/a.js');
    assert.equal(asset.statusCode, 200);
    assert.equal(asset.headers['content-security-policy'], CSP);
    assert.match(String(asset.headers['cache-control']), /immutable/);
    const doc = (await app.inject('/docs/json')).json() as { paths: Record<string, unknown> };
    for (const p of ['/api/v1/pool/live', '/api/v1/pool/hashrate', '/api/v1/accounts/{account}/live', '/api/v1/accounts/{account}/live/hashrate']) assert.ok(doc.paths[p], `${p} in the OpenAPI document`);
    const missing = await app.inject('/api/v1/nope');
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().error.code, 'ROUTE_NOT_FOUND');
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without a build, / says how to build the dashboard', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hashhub-noweb-'));
  const app = fakeApi(dir);
  try {
    const r = await app.inject('/');
    assert.equal(r.statusCode, 503);
    assert.match(r.body, /npm run build:web/);
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
