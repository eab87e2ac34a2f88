// Issue 10 item 18: with the database down the API answers 503 with a code naming the database (not 500
// INTERNAL), and /health/ready is never 200 before the migrations have run. A real Postgres behind a TCP proxy
// the test cuts and restores.

import { emptyBlockCounters } from '../src/shares/block-state.ts';
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { buildApi } from '../src/api/app.ts';
import { createMetrics } from '../src/api/metrics.ts';
import type { PoolSnapshot } from '../src/api/deps.ts';
import { emptyOutcomeCounts } from '../src/shares/outcome.ts';
import { type Store, migrate, openStore } from '../src/store/index.ts';
import { PgDatabase } from '../src/store/pg.ts';
import { SKIP_PG, type TestPg, createTestPg } from './helpers/pg.ts';
import { TcpProxy } from './helpers/proxy.ts';
import { until } from './helpers/until.ts';

const log = pino({ level: process.env.TEST_LOG ?? 'silent' });

const snapshot: PoolSnapshot = {
  connections: 0, authorizedSessions: 0, shares: emptyOutcomeCounts(), blocks: emptyBlockCounters(),
  blockResults: {}, lastBlock: null, template: { height: 1, ageMs: 1 }, network: { height: 0, difficulty: 1 }, draining: false,
};

async function setup(t: TestContext, opts: { autoMigrate: boolean; cutAtStart: boolean }): Promise<{ pg: TestPg; proxy: TcpProxy; store: Store; app: FastifyInstance }> {
  const pg = await createTestPg();
  const proxy = await TcpProxy.start({ host: '127.0.0.1', port: 5432 });
  if (opts.cutAtStart) await proxy.cut();
  const store = await openStore({
    url: pg.urlVia('127.0.0.1', proxy.port), dataDir: '/nonexistent-not-used', autoMigrate: opts.autoMigrate,
    maxConnections: 2, connectTimeoutMs: 500, queryTimeoutMs: 2000, writeTimeoutMs: 2000,
    retention: { shareDays: 30, compactAfterDays: 7, partitionsAhead: 2 }, maintenanceIntervalMs: 600_000, onlineMinutes: 10,
    logger: log, schemaRetryMaxMs: 200,
  });
  const app = buildApi({
    stats: store.reader,
    pool: () => snapshot,
    metrics: createMetrics({ pool: () => snapshot }, { defaultMetrics: false }),
    health: { db: () => store.ready(), node: async () => ({ synced: true, height: 0 }), templateAgeMs: () => 1000, draining: () => false },
  }, { docs: false });
  t.after(async () => {
    await app.close();
    await store.close().catch(() => undefined);
    await proxy.close();
    await pg.drop();
  });
  return { pg, proxy, store, app };
}

const get = async (app: FastifyInstance, url: string) => {
  const r = await app.inject({ method: 'GET', url });
  return { status: r.statusCode, body: r.json() as { error?: { code: string; message: string }; failing?: string[]; checks?: Record<string, { error?: string }> }, headers: r.headers };
};

const ROUTES = ['/api/v1/pool', '/api/v1/blocks', '/api/v1/accounts/alice', '/api/v1/accounts/alice/workers', '/api/v1/accounts/alice/hashrate'];

test('database down: every /api/v1 route answers 503 DATABASE_UNAVAILABLE with Retry-After, and 200 again once it is back', { skip: SKIP_PG, timeout: 60_000 }, async (t) => {
  const { proxy, app } = await setup(t, { autoMigrate: true, cutAtStart: false });
  assert.equal((await get(app, '/api/v1/pool')).status, 200, 'up: 200');
  await proxy.cut();
  for (const url of ROUTES) {
    const r = await get(app, url);
    assert.equal(r.status, 503, `${url}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error?.code, 'DATABASE_UNAVAILABLE', url);
    assert.match(r.body.error?.message ?? '', /database/i);
    assert.equal(r.headers['retry-after'], '5');
  }
  const ready = await get(app, '/health/ready');
  assert.equal(ready.status, 503);
  assert.deepEqual(ready.body.failing, ['db']);
  await proxy.restore();
  await until(async () => (await get(app, '/api/v1/pool')).status === 200, 10_000, 'the API to answer again');
  assert.equal((await get(app, '/api/v1/accounts/alice')).status, 404, 'an unknown account is still a 404, not a 503');
});

test('unreachable at start with automatic migrations: ready only once they have run, without waiting for a share', { skip: SKIP_PG, timeout: 60_000 }, async (t) => {
  const { pg, proxy, app, store } = await setup(t, { autoMigrate: true, cutAtStart: true });
  let r = await get(app, '/health/ready');
  assert.equal(r.status, 503);
  assert.match(r.body.checks?.db?.error ?? '', /database unreachable, migrations not applied yet/);
  assert.equal((await get(app, '/api/v1/pool')).body.error?.code, 'DATABASE_UNAVAILABLE');
  await proxy.restore();
  // Nothing is written meanwhile: the store migrates by itself once the database answers.
  await until(async () => (await get(app, '/health/ready')).status === 200, 15_000, 'ready after the migrations');
  assert.equal(store.schemaStatus(), null);
  const direct = new PgDatabase({ url: pg.url });
  try {
    const n = await direct.query<{ n: number }>('SELECT count(*)::int AS n FROM schema_migrations');
    assert.ok(n.rows[0].n >= 3, 'the migrations had run when ready turned 200');
  } finally {
    await direct.close();
  }
  r = await get(app, '/api/v1/pool');
  assert.equal(r.status, 200, JSON.stringify(r.body));
});

test('schema behind (autoMigrate off): ready stays 503 naming the fix, reads answer DATABASE_NOT_MIGRATED, until `migrate` runs', { skip: SKIP_PG, timeout: 60_000 }, async (t) => {
  const { pg, proxy, app } = await setup(t, { autoMigrate: false, cutAtStart: true });
  await proxy.restore();
  // The database answers now (SELECT 1 works), but its schema is empty: that is not ready.
  await until(async () => /hashhub migrate/.test((await get(app, '/health/ready')).body.checks?.db?.error ?? ''), 10_000, 'ready to name the missing migrations');
  const ready = await get(app, '/health/ready');
  assert.equal(ready.status, 503);
  assert.deepEqual(ready.body.failing, ['db']);
  const pool = await get(app, '/api/v1/pool');
  assert.equal(pool.status, 503);
  assert.equal(pool.body.error?.code, 'DATABASE_NOT_MIGRATED');
  const direct = new PgDatabase({ url: pg.url });
  try {
    await migrate(direct);
  } finally {
    await direct.close();
  }
  await until(async () => (await get(app, '/health/ready')).status === 200, 10_000, 'ready once migrated');
  assert.equal((await get(app, '/api/v1/pool')).status, 200);
});
