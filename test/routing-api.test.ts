import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { buildApi, listenApi } from '../src/api/app.ts';
import { Auth } from '../src/api/auth.ts';
import type { PoolSnapshot } from '../src/api/deps.ts';
import { createMetrics } from '../src/api/metrics.ts';
import { emptyOutcomeCounts } from '../src/shares/outcome.ts';
import { RoutingService } from '../src/routing/service.ts';
import { migrate } from '../src/store/migrate.ts';
import { PgDatabase } from '../src/store/pg.ts';
import type { StatsReader } from '../src/store/types.ts';
import { SKIP_PG, createTestPg } from './helpers/pg.ts';

// /api/v1/routes: operator token only, URL errors with their code, passwords never shown, OpenAPI, metrics.

const TOKEN = 'routing-api-operator-token-000000';
let db: PgDatabase;
let drop: () => Promise<void>;
let service: RoutingService;

before(async () => {
  if (SKIP_PG) return;
  const pg = await createTestPg();
  db = new PgDatabase({ url: pg.url, maxConnections: 2 });
  drop = async () => { await db.close(); await pg.drop(); };
  await migrate(db);
  service = new RoutingService(db, { router: { reconnectHost: '127.0.0.1', reconnectPort: 1 }, syncMs: 60_000, flushMs: 60_000, node: 'n' }, pino({ level: 'silent' }));
  await service.start();
});
after(async () => { await service?.stop(); await drop?.(); });

const snapshot = (): PoolSnapshot => ({
  connections: 0, authorizedSessions: 0, shares: emptyOutcomeCounts(),
  blocks: { candidates: 0, submissions: 0, recovered: 0, superseded: 0, submitted: 0, unconfirmed: 0, pending: 0, confirmed: 0, orphaned: 0, rejected: 0 },
  blockResults: {}, lastBlock: null, template: null, network: null, draining: false,
});

test('/api/v1/routes: operator only, specific URL errors, no passwords, stop, OpenAPI and metrics', { skip: SKIP_PG }, async () => {
  const metrics = createMetrics({ pool: snapshot }, { defaultMetrics: false });
  const app = buildApi({ stats: {} as StatsReader, pool: snapshot, metrics, health: { db: async () => {}, node: async () => ({ synced: true, height: 1 }), templateAgeMs: () => 0, draining: () => false },
    routing: { service, auth: new Auth(db, TOKEN) } });
  try {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const body = { workers: ['seller'], destinations: [{ url: 'stratum+tcp://127.0.0.1:1', user: 'buyer.rig', password: 'sekret' }] };
    assert.equal((await app.inject({ method: 'POST', url: '/api/v1/routes', payload: body })).statusCode, 401);
    assert.equal((await app.inject({ method: 'GET', url: '/api/v1/routes', headers: { authorization: 'Bearer not-the-token' } })).statusCode, 401);
    const bad = await app.inject({ method: 'POST', url: '/api/v1/routes', headers: auth, payload: { ...body, destinations: [{ url: 'http://x:1', user: 'u' }] } });
    assert.equal(bad.statusCode, 400);
    assert.match(bad.json().error.message, /^unknown-scheme:/);
    const created = await app.inject({ method: 'POST', url: '/api/v1/routes', headers: auth, payload: body });
    assert.equal(created.statusCode, 201, created.body);
    const id = created.json().id as number;
    assert.ok(!created.body.includes('sekret'), 'the destination password is never shown');
    assert.equal(service.router.routes.has(id), true, 'applied at once in this process');
    const list = await app.inject({ method: 'GET', url: '/api/v1/routes', headers: auth });
    assert.equal(list.json().items[0].id, id);
    assert.ok(!list.body.includes('sekret'));
    const m = await app.inject({ method: 'GET', url: '/metrics' });
    assert.match(m.body, new RegExp(`hashhub_route_ready\\{route="${id}"\\} 0`));
    const stopped = await app.inject({ method: 'POST', url: `/api/v1/routes/${id}/stop`, headers: auth });
    assert.equal(stopped.json().state, 'stopped');
    assert.equal(service.router.routes.has(id), false);
    assert.equal((await app.inject({ method: 'POST', url: '/api/v1/routes/999/stop', headers: auth })).statusCode, 404);
    const doc = await app.inject({ method: 'GET', url: '/docs/json' });
    assert.ok(doc.json().paths['/api/v1/routes'] && doc.json().paths['/api/v1/routes/{id}/stop']);
  } finally {
    await app.close();
  }
});

test('hashhub route … calls the API the config file names (api.host / api.port), as `hashhub accounting` does', { skip: SKIP_PG }, async () => {
  const metrics = createMetrics({ pool: snapshot }, { defaultMetrics: false });
  const app = buildApi({ stats: {} as StatsReader, pool: snapshot, metrics, health: { db: async () => {}, node: async () => ({ synced: true, height: 1 }), templateAgeMs: () => 0, draining: () => false },
    routing: { service, auth: new Auth(db, TOKEN) } }, { docs: false });
  const dir = mkdtempSync(path.join(tmpdir(), 'hashhub-route-cli-'));
  try {
    const port = await listenApi(app, '127.0.0.1', 0);
    // Not the default 127.0.0.1:8080: the operator token goes to the configured API and nowhere else.
    const config = path.join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ api: { host: '127.0.0.1', port } }));
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'route', 'list', '--json', '--config', config], {
        cwd: path.resolve(import.meta.dirname, '..'), timeout: 60_000,
        env: { ...process.env, HASHHUB_API_URL: undefined, HASHHUB_CONFIG: undefined, HASHHUB_DATA_DIR: dir, HASHHUB_OPERATOR_TOKEN: TOKEN },
      }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
    });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(Array.isArray(JSON.parse(r.stdout).items));
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
