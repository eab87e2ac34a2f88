// REST API, probes and metrics through inject(): fakes stand in for the store, the pool and the health checks,
// so every answer can be compared with exactly what was fed in.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { type ApiOptions, buildApi } from '../src/api/app.ts';
import type { ApiDeps, HealthChecks, IngestSnapshot, PoolSnapshot } from '../src/api/deps.ts';
import { createMetrics } from '../src/api/metrics.ts';
import { type PoolView, poolSnapshot } from '../src/api/pool-snapshot.ts';
import { emptyOutcomeCounts } from '../src/shares/outcome.ts';
import type { BlockRow, HashrateWindows, RejectCounts, SeriesPoint, StatsReader, Window, WorkerSummary } from '../src/store/types.ts';

// ---- fakes -----------------------------------------------------------------------------------------------

const HR: HashrateWindows = {
  '5m': { hashrate: 1.5e15, seconds: 30, shares: 3 },
  '1h': { hashrate: 1.2e15, seconds: 30, shares: 3 },
  '24h': { hashrate: 1.1e15, seconds: 30, shares: 3 },
};
const COUNTS: RejectCounts = { accepted: 9_000, rejected: { stale: 600, duplicate: 400 }, rejectRate: 0.1 };

function blockRow(i: number): BlockRow {
  return {
    height: 900_000 - i,
    hash: i.toString(16).padStart(64, '0'),
    account: 'alice',
    worker: 'rig1',
    // Above 2^53 on purpose: a JSON number would lose the last digit.
    reward: i === 0 ? '9007199254740993' : '312500000',
    status: 'confirmed',
    settled: true,
    result: null,
    time: new Date(Date.UTC(2025, 0, 1) - i * 600_000).toISOString(),
    confirmations: 100 + i,
  };
}
const BLOCKS = Array.from({ length: 120 }, (_, i) => blockRow(i));
const WORKERS: WorkerSummary[] = Array.from({ length: 75 }, (_, i) => ({
  account: 'alice',
  worker: `rig${i}`,
  firstSeen: '2025-01-01T00:00:00.000Z',
  lastSeen: '2025-01-02T00:00:00.000Z',
  online: i % 2 === 0,
  hashrate: HR,
  shares24h: COUNTS,
}));

class FakeStats implements StatsReader {
  calls: { method: string; args: unknown[] }[] = [];
  fail: Error | null = null;

  private call(method: string, args: unknown[]): void {
    this.calls.push({ method, args });
    if (this.fail) throw this.fail;
  }

  async poolHashrate() {
    this.call('poolHashrate', []);
    return { ...HR, miners: 12, workers: 75, shares24h: COUNTS };
  }

  async account(account: string) {
    this.call('account', [account]);
    return account === 'alice' ? { account, hashrate: HR, workers: 75, workersOnline: 38, shares24h: COUNTS } : null;
  }

  async workers(account: string, page: { limit: number; offset: number }) {
    this.call('workers', [account, page]);
    const mine = account === 'alice' ? WORKERS : [];
    return { total: mine.length, items: mine.slice(page.offset, page.offset + page.limit) };
  }

  async hashrateSeries(scope: { account?: string; worker?: string }, window: Window, bucketSeconds: number): Promise<SeriesPoint[]> {
    this.call('hashrateSeries', [scope, window, bucketSeconds]);
    return [
      { time: '2025-01-01T00:00:00.000Z', hashrate: 1e15, accepted: 10, rejected: 1 },
      { time: '2025-01-01T01:00:00.000Z', hashrate: 2e15, accepted: 20, rejected: 0 },
    ];
  }

  async blocks(page: { limit: number; offset: number }) {
    this.call('blocks', [page]);
    return { total: BLOCKS.length, items: BLOCKS.slice(page.offset, page.offset + page.limit) };
  }

  async lastBlock() {
    this.call('lastBlock', []);
    return BLOCKS[0]!;
  }

  async poolWork(from: Date, to: Date) {
    this.call('poolWork', [from, to]);
    return [];
  }
}

function snapshot(over: Partial<PoolSnapshot> = {}): PoolSnapshot {
  return {
    connections: 40,
    authorizedSessions: 37,
    shares: { ...emptyOutcomeCounts(), accepted: 1_000, stale: 7, 'low-difficulty': 3 },
    blocks: { candidates: 2, submissions: 2, recovered: 0, superseded: 0, submitted: 0, unconfirmed: 0, pending: 1, confirmed: 0, orphaned: 0, rejected: 1 },
    blockResults: { accepted: 1, 'high-hash': 1 },
    lastBlock: { height: 899_999, hash: 'ab'.repeat(32), account: 'alice', worker: 'rig1', result: null, time: Date.UTC(2025, 0, 1) },
    template: { height: 900_001, ageMs: 1_234 },
    network: { height: 900_000, difficulty: 1.1e14 },
    draining: false,
    ...over,
  };
}

interface Harness {
  app: FastifyInstance;
  stats: FakeStats;
  state: { pool: PoolSnapshot; ingest: IngestSnapshot };
  health: HealthChecks;
  metrics: ApiDeps['metrics'];
}

const apps: FastifyInstance[] = [];
after(async () => { await Promise.all(apps.map((a) => a.close())); });

function harness(opts: ApiOptions = {}, health: Partial<HealthChecks> = {}): Harness {
  const stats = new FakeStats();
  const state = { pool: snapshot(), ingest: { queueDepth: 17, spoolBytes: 4096, dbUp: true } };
  const checks: HealthChecks = {
    db: async () => {},
    node: async () => ({ synced: true, height: 900_000 }),
    templateAgeMs: () => 1_000,
    draining: () => false,
    ...health,
  };
  // Default Node metrics off here (one registry is enough to check them, below): keeps every app cheap.
  const metrics = createMetrics({ pool: () => state.pool, ingest: () => state.ingest }, { defaultMetrics: false });
  const app = buildApi({ stats, pool: () => state.pool, health: checks, metrics }, opts);
  apps.push(app);
  return { app, stats, state, health: checks, metrics };
}

const get = (app: FastifyInstance, url: string, headers: Record<string, string> = {}) => app.inject({ method: 'GET', url, headers });

function assertError(res: { statusCode: number; json(): any }, status: number, code: string): any {
  assert.equal(res.statusCode, status);
  const body = res.json();
  assert.deepEqual(Object.keys(body), ['error']);
  assert.equal(body.error.code, code);
  assert.equal(typeof body.error.message, 'string');
  return body.error;
}

// ---- routes ----------------------------------------------------------------------------------------------

describe('GET /api/v1/pool', () => {
  it('combines store windows and the pool snapshot', async () => {
    const { app } = harness();
    const res = await get(app, '/api/v1/pool');
    assert.equal(res.statusCode, 200);
    const body = res.json();
    assert.deepEqual(body.hashrate, HR);
    assert.equal(body.miners, 12);
    assert.equal(body.workers, 75);
    assert.deepEqual(body.connections, { current: 40, authorized: 37 });
    assert.deepEqual(body.network, { height: 900_000, difficulty: 1.1e14 });
    assert.deepEqual(body.template, { height: 900_001, ageMs: 1_234 });
    assert.deepEqual(body.lastBlock, BLOCKS[0]);
    assert.equal(body.lastBlock.reward, '9007199254740993');
    assert.equal(body.shares24h.accepted, 9_000);
    assert.deepEqual(body.shares24h.rejected, { stale: 600, duplicate: 400 });
    assert.equal(body.shares24h.rejectRate, 0.1);
    assert.equal(body.shares24h.perSecond.accepted, 9_000 / 86_400);
    assert.equal(body.shares24h.perSecond.rejected, 1_000 / 86_400);
    assert.equal(body.shares24h.rejectRateByClass.stale, 0.06);
    assert.equal(body.shares24h.rejectRateByClass.duplicate, 0.04);
    assert.equal(body.shares24h.rejectRateByClass['low-difficulty'], 0);
    assert.equal(body.sinceStart.shares.accepted, 1_000);
    assert.deepEqual(body.sinceStart.blocks, { candidates: 2, submissions: 2, recovered: 0, superseded: 0, submitted: 0, unconfirmed: 0, pending: 1, confirmed: 0, orphaned: 0, rejected: 1 });
    assert.equal(body.sinceStart.lastBlock.time, '2025-01-01T00:00:00.000Z');
    assert.equal(body.draining, false);
  });

  it('reports null network and template before the first template', async () => {
    const h = harness();
    h.state.pool = snapshot({ template: null, network: null, lastBlock: null });
    const body = (await get(h.app, '/api/v1/pool')).json();
    assert.equal(body.network, null);
    assert.equal(body.template, null);
    assert.equal(body.sinceStart.lastBlock, null);
  });

  it('answers 500 in the catalogue format, without the cause, when the store fails', async () => {
    const h = harness();
    h.stats.fail = new Error('connection refused to 10.0.0.5:5432 password=hunter2');
    const err = assertError(await get(h.app, '/api/v1/pool'), 500, 'INTERNAL');
    assert.doesNotMatch(err.message, /hunter2|10\.0\.0\.5/);
  });
});

describe('GET /api/v1/blocks', () => {
  const { app, stats } = harness();

  it('pages with limit 50 by default and gives the total', async () => {
    const body = (await get(app, '/api/v1/blocks')).json();
    assert.equal(body.total, 120);
    assert.equal(body.limit, 50);
    assert.equal(body.offset, 0);
    assert.equal(body.items.length, 50);
    assert.deepEqual(body.items[0], BLOCKS[0]);
    assert.deepEqual(stats.calls.at(-1), { method: 'blocks', args: [{ limit: 50, offset: 0 }] });
  });

  it('coerces limit and offset from the query string', async () => {
    const body = (await get(app, '/api/v1/blocks?limit=30&offset=100')).json();
    assert.equal(body.items.length, 20);
    assert.equal(body.items[0].height, BLOCKS[100]!.height);
    assert.deepEqual(stats.calls.at(-1)!.args, [{ limit: 30, offset: 100 }]);
    const max = (await get(app, '/api/v1/blocks?limit=500')).json();
    assert.equal(max.items.length, 120);
  });

  it('rejects bad pagination with 400 VALIDATION_FAILED and where it failed', async () => {
    const before = stats.calls.length;
    const err = assertError(await get(app, '/api/v1/blocks?limit=10000'), 400, 'VALIDATION_FAILED');
    assert.deepEqual(err.details, [{ in: 'querystring', path: '/limit', message: 'must be <= 500' }]);
    assertError(await get(app, '/api/v1/blocks?limit=0'), 400, 'VALIDATION_FAILED');
    assertError(await get(app, '/api/v1/blocks?limit=ten'), 400, 'VALIDATION_FAILED');
    assertError(await get(app, '/api/v1/blocks?offset=-1'), 400, 'VALIDATION_FAILED');
    assertError(await get(app, '/api/v1/blocks?limit=2.5'), 400, 'VALIDATION_FAILED');
    assert.equal(stats.calls.length, before, 'the store is not asked for an invalid request');
  });
});

describe('GET /api/v1/accounts/{account}', () => {
  const { app } = harness();

  it('returns the account summary', async () => {
    const res = await get(app, '/api/v1/accounts/alice');
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { account: 'alice', hashrate: HR, workers: 75, workersOnline: 38, shares24h: COUNTS });
  });

  it('answers 404 ACCOUNT_NOT_FOUND for an unknown account', async () => {
    const err = assertError(await get(app, '/api/v1/accounts/bob'), 404, 'ACCOUNT_NOT_FOUND');
    assert.match(err.message, /bob/);
  });

  it('answers 400 for a name no miner could have', async () => {
    const err = assertError(await get(app, `/api/v1/accounts/${'x'.repeat(101)}`), 400, 'VALIDATION_FAILED');
    assert.equal(err.details[0].in, 'params');
    assertError(await get(app, '/api/v1/accounts/a%20b'), 400, 'VALIDATION_FAILED');
    // Past the router's own limit the answer is still in the catalogue format.
    assertError(await get(app, `/api/v1/accounts/${'x'.repeat(300)}`), 414, 'URI_TOO_LONG');
  });

  it('answers 404 ROUTE_NOT_FOUND in the same format for an unknown route', async () => {
    assertError(await get(app, '/api/v1/nothing'), 404, 'ROUTE_NOT_FOUND');
  });
});

describe('GET /api/v1/accounts/{account}/workers', () => {
  const { app, stats } = harness();

  it('pages the workers', async () => {
    const body = (await get(app, '/api/v1/accounts/alice/workers?limit=20&offset=60')).json();
    assert.equal(body.total, 75);
    assert.equal(body.items.length, 15);
    assert.deepEqual(body.items[0], WORKERS[60]);
    assert.deepEqual(stats.calls.find((c) => c.method === 'workers')!.args, ['alice', { limit: 20, offset: 60 }]);
  });

  it('answers 404 for an unknown account and 400 for a bad limit', async () => {
    assertError(await get(app, '/api/v1/accounts/bob/workers'), 404, 'ACCOUNT_NOT_FOUND');
    assertError(await get(app, '/api/v1/accounts/alice/workers?limit=10000'), 400, 'VALIDATION_FAILED');
  });
});

describe('GET /api/v1/accounts/{account}/hashrate', () => {
  const { app, stats } = harness();
  const lastSeries = () => stats.calls.filter((c) => c.method === 'hashrateSeries').at(-1)!.args;

  it('returns the series for a window and bucket', async () => {
    const res = await get(app, '/api/v1/accounts/alice/hashrate?window=24h&bucket=3600');
    assert.equal(res.statusCode, 200);
    const body = res.json();
    assert.deepEqual({ ...body, points: undefined }, { account: 'alice', worker: null, window: '24h', bucket: 3600, points: undefined });
    assert.equal(body.points.length, 2);
    assert.deepEqual(body.points[1], { time: '2025-01-01T01:00:00.000Z', hashrate: 2e15, accepted: 20, rejected: 0 });
    assert.deepEqual(lastSeries(), [{ account: 'alice' }, '24h', 3600]);
  });

  it('defaults the window and bucket, and narrows to one worker', async () => {
    assert.equal((await get(app, '/api/v1/accounts/alice/hashrate')).json().bucket, 60);
    assert.deepEqual(lastSeries(), [{ account: 'alice' }, '1h', 60]);
    await get(app, '/api/v1/accounts/alice/hashrate?window=24h');
    assert.deepEqual(lastSeries(), [{ account: 'alice' }, '24h', 900]);
    const body = (await get(app, '/api/v1/accounts/alice/hashrate?window=5m&worker=rig1')).json();
    assert.equal(body.worker, 'rig1');
    assert.deepEqual(lastSeries(), [{ account: 'alice', worker: 'rig1' }, '5m', 60]);
  });

  it('rejects windows and buckets that are unknown or would ask for too many points', async () => {
    const before = stats.calls.filter((c) => c.method === 'hashrateSeries').length;
    assert.equal(assertError(await get(app, '/api/v1/accounts/alice/hashrate?window=7m'), 400, 'VALIDATION_FAILED').details[0].path, '/window');
    assert.equal(assertError(await get(app, '/api/v1/accounts/alice/hashrate?bucket=0'), 400, 'VALIDATION_FAILED').details[0].path, '/bucket');
    assertError(await get(app, '/api/v1/accounts/alice/hashrate?window=24h&bucket=1'), 400, 'VALIDATION_FAILED');
    assertError(await get(app, '/api/v1/accounts/alice/hashrate?bucket=90'), 400, 'VALIDATION_FAILED');
    assertError(await get(app, '/api/v1/accounts/alice/hashrate?bucket=999999999'), 400, 'VALIDATION_FAILED');
    const err = assertError(await get(app, '/api/v1/accounts/alice/hashrate?window=5m&bucket=3600'), 400, 'VALIDATION_FAILED');
    assert.match(err.message, /at most the window/);
    assert.equal(stats.calls.filter((c) => c.method === 'hashrateSeries').length, before);
  });

  it('answers 404 for an unknown account', async () => {
    assertError(await get(app, '/api/v1/accounts/bob/hashrate?window=1h'), 404, 'ACCOUNT_NOT_FOUND');
  });
});

describe('OpenAPI', () => {
  const { app } = harness();

  it('documents every route with its responses, and serves the UI at /docs', async () => {
    const doc = (await get(app, '/docs/json')).json();
    assert.equal(doc.openapi, '3.0.3');
    assert.deepEqual(Object.keys(doc.paths).sort(), [
      '/api/v1/accounts/{account}',
      '/api/v1/accounts/{account}/hashrate',
      '/api/v1/accounts/{account}/workers',
      '/api/v1/blocks',
      '/api/v1/pool',
      '/health/live',
      '/health/ready',
      '/metrics',
    ]);
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      assert.ok(item.get.responses['200'], `${path} documents 200`);
      if (path.startsWith('/api/')) assert.equal(item.get.responses['400'].content['application/json'].schema.$ref, '#/components/schemas/Error');
    }
    const series = doc.paths['/api/v1/accounts/{account}/hashrate'].get;
    assert.deepEqual(series.parameters.map((p: any) => `${p.in}:${p.name}`).sort(), ['path:account', 'query:bucket', 'query:window', 'query:worker']);
    assert.ok(series.responses['404']);
    assert.deepEqual(Object.keys(doc.components.schemas).sort(), ['Block', 'Error', 'HashrateWindows', 'RejectCounts', 'SeriesPoint', 'Worker']);
    const ui = await get(app, '/docs');
    assert.equal(ui.statusCode, 200);
    assert.match(ui.headers['content-type'] as string, /text\/html/);
  });
});

describe('CORS', () => {
  const origin = 'https://dash.example';

  it('is off by default', async () => {
    const res = await get(harness().app, '/api/v1/pool', { origin });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['access-control-allow-origin'], undefined);
  });

  it('allows exactly the configured origins', async () => {
    const { app } = harness({ cors: [origin] });
    assert.equal((await get(app, '/api/v1/pool', { origin })).headers['access-control-allow-origin'], origin);
    assert.equal((await get(app, '/api/v1/pool', { origin: 'https://evil.example' })).headers['access-control-allow-origin'], undefined);
    const preflight = await app.inject({ method: 'OPTIONS', url: '/api/v1/blocks', headers: { origin, 'access-control-request-method': 'GET' } });
    assert.equal(preflight.statusCode, 204);
    assert.equal(preflight.headers['access-control-allow-origin'], origin);
  });

  it('allows any origin with cors: true', async () => {
    const { app } = harness({ cors: true });
    assert.equal((await get(app, '/api/v1/pool', { origin })).headers['access-control-allow-origin'], '*');
  });
});

// ---- probes ----------------------------------------------------------------------------------------------

describe('GET /health/ready', () => {
  async function ready(health: Partial<HealthChecks>, opts: ApiOptions = {}) {
    // No docs: these apps only answer probes, and skipping swagger keeps each one cheap to build.
    const res = await get(harness({ docs: false, ...opts }, health).app, '/health/ready');
    return { status: res.statusCode, body: res.json() };
  }

  it('is 200 when every check passes', async () => {
    const { status, body } = await ready({});
    assert.equal(status, 200);
    assert.equal(body.status, 'ready');
    assert.deepEqual(body.failing, []);
    assert.equal(body.checks.node.height, 900_000);
  });

  it('is 503 naming the database when its ping throws', async () => {
    const { status, body } = await ready({ db: async () => { throw new Error('ECONNREFUSED'); } });
    assert.equal(status, 503);
    assert.equal(body.status, 'not-ready');
    assert.deepEqual(body.failing, ['db']);
    assert.deepEqual({ ...body.checks.db, ms: 0 }, { ok: false, error: 'ECONNREFUSED', ms: 0 });
  });

  it('is 503 when the node is in initial block download, unreachable or silent', async () => {
    const ibd = await ready({ node: async () => ({ synced: false, height: 120 }) });
    assert.equal(ibd.status, 503);
    assert.deepEqual(ibd.body.failing, ['node']);
    assert.equal(ibd.body.checks.node.synced, false);
    assert.match(ibd.body.checks.node.error, /initial block download/);

    const down = await ready({ node: () => Promise.reject(new Error('all nodes failed')) });
    assert.deepEqual(down.body.failing, ['node']);
    assert.equal(down.body.checks.node.error, 'all nodes failed');

    const hung = await ready({ node: () => new Promise(() => {}) }, { health: { checkTimeoutMs: 30 } });
    assert.equal(hung.status, 503);
    assert.match(hung.body.checks.node.error, /no answer within 30 ms/);
  });

  it('is 503 when the template is stale or missing', async () => {
    const stale = await ready({ templateAgeMs: () => 61_000 });
    assert.equal(stale.status, 503);
    assert.deepEqual(stale.body.failing, ['template']);
    assert.deepEqual(stale.body.checks.template, { ok: false, error: 'template is 61000 ms old', ageMs: 61_000, maxAgeMs: 60_000 });
    assert.equal((await ready({ templateAgeMs: () => 5_000 }, { health: { templateMaxAgeMs: 4_000 } })).status, 503);
    assert.deepEqual((await ready({ templateAgeMs: () => null })).body.failing, ['template']);
  });

  it('is 503 while draining, listing every failing check', async () => {
    const drain = await ready({ draining: () => true });
    assert.equal(drain.status, 503);
    assert.deepEqual(drain.body.failing, ['draining']);
    const all = await ready({ db: async () => { throw new Error('x'); }, node: async () => ({ synced: false, height: 0 }), templateAgeMs: () => null, draining: () => true });
    assert.deepEqual(all.body.failing, ['db', 'node', 'template', 'draining']);
  });
});

describe('GET /health/live', () => {
  it('is 200 and reports the event-loop delay', async () => {
    const res = await get(harness().app, '/health/live');
    assert.equal(res.statusCode, 200);
    const body = res.json();
    assert.equal(body.status, 'ok');
    assert.equal(typeof body.eventLoopDelayMs.max, 'number');
    assert.equal(body.thresholdMs, 1_000);
  });

  it('is 503 after the event loop was blocked beyond the threshold', async () => {
    const { app } = harness({ health: { maxEventLoopDelayMs: 60 } });
    await app.ready();
    // Node's histogram ignores the interval before its first tick (and after a reset): let it tick once.
    await new Promise((r) => setTimeout(r, 30));
    const until = Date.now() + 150;
    while (Date.now() < until); // block the loop, as a runaway synchronous task would
    await new Promise((r) => setTimeout(r, 25)); // let the monitor's timer record the late tick
    const res = await get(app, '/health/live');
    assert.equal(res.statusCode, 503);
    assert.equal(res.json().status, 'stalled');
    assert.ok(res.json().eventLoopDelayMs.max > 60);
  });
});

// ---- metrics ---------------------------------------------------------------------------------------------

/** Sample values of a Prometheus text exposition, keyed by name{labels}. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

describe('GET /metrics', () => {
  it('exports what the pool and ingest report, in the text format', async () => {
    const h = harness();
    h.metrics.observeSubmit(0.00007);
    h.metrics.observeSubmit(0.002);
    h.metrics.observeDbWrite(0.004);
    const res = await get(h.app, '/metrics');
    assert.equal(res.statusCode, 200);
    assert.match(res.headers['content-type'] as string, /^text\/plain; version=0\.0\.4/);
    assert.match(res.body, /# TYPE hashhub_shares_total counter/);
    assert.match(res.body, /# TYPE hashhub_share_submit_seconds histogram/);
    const m = samples(res.body);
    const expected: Record<string, number> = {
      hashhub_stratum_connections: 40,
      hashhub_stratum_authorized_sessions: 37,
      'hashhub_shares_total{outcome="accepted"}': 1_000,
      'hashhub_shares_total{outcome="stale"}': 7,
      'hashhub_shares_total{outcome="low-difficulty"}': 3,
      'hashhub_shares_total{outcome="duplicate"}': 0,
      hashhub_blocks_found_total: 2,
      'hashhub_block_submits_total{result="accepted"}': 1,
      'hashhub_block_submits_total{result="high-hash"}': 1,
      hashhub_template_age_seconds: 1.234,
      hashhub_template_height: 900_001,
      hashhub_network_difficulty: 1.1e14,
      hashhub_pool_draining: 0,
      hashhub_ingest_queue_depth: 17,
      hashhub_spool_bytes: 4096,
      hashhub_db_up: 1,
      'hashhub_share_submit_seconds_bucket{le="0.00005"}': 0,
      'hashhub_share_submit_seconds_bucket{le="0.0001"}': 1,
      'hashhub_share_submit_seconds_bucket{le="0.0025"}': 2,
      'hashhub_share_submit_seconds_bucket{le="1"}': 2,
      hashhub_share_submit_seconds_count: 2,
      'hashhub_db_write_seconds_bucket{le="0.005"}': 1,
      hashhub_db_write_seconds_count: 1,
    };
    for (const [k, v] of Object.entries(expected)) assert.equal(m.get(k), v, k);
  });

  it('keeps counters monotonic when fed running totals, even if the source restarts', async () => {
    const h = harness();
    const accepted = async () => samples((await get(h.app, '/metrics')).body).get('hashhub_shares_total{outcome="accepted"}');
    assert.equal(await accepted(), 1_000);
    h.state.pool = snapshot({ shares: { ...emptyOutcomeCounts(), accepted: 1_500 } });
    assert.equal(await accepted(), 1_500);
    // A new Pool (totals from 0): its 20 shares are new shares, not a decrease.
    h.state.pool = snapshot({ shares: { ...emptyOutcomeCounts(), accepted: 20 } });
    assert.equal(await accepted(), 1_520);
    assert.equal(await accepted(), 1_520);
  });

  it('collapses unbounded submit errors into one label, and shows no template as NaN', async () => {
    const h = harness();
    h.state.pool = snapshot({ blockResults: { 'error: connect ECONNREFUSED 10.0.0.1:8332': 1, 'error: timeout after 5000 ms': 2 }, template: null, network: null });
    const m = samples((await get(h.app, '/metrics')).body);
    assert.equal(m.get('hashhub_block_submits_total{result="error"}'), 3);
    assert.ok(Number.isNaN(m.get('hashhub_template_age_seconds')));
  });

  it('counts block templates by where they were read, both labels from the first scrape', async () => {
    const reads = { thread: 0, eventLoop: 0 };
    const metrics = createMetrics({ pool: () => snapshot(), templateReads: () => reads }, { defaultMetrics: false });
    const app = buildApi({ stats: new FakeStats(), pool: () => snapshot(), health: harness().health, metrics });
    const scrape = async () => samples((await get(app, '/metrics')).body);
    let m = await scrape();
    assert.equal(m.get('hashhub_template_reads_total{where="thread"}'), 0);
    assert.equal(m.get('hashhub_template_reads_total{where="event_loop"}'), 0);
    reads.thread = 12;
    reads.eventLoop = 1; // the thread failed once
    m = await scrape();
    assert.equal(m.get('hashhub_template_reads_total{where="thread"}'), 12);
    assert.equal(m.get('hashhub_template_reads_total{where="event_loop"}'), 1);
    // Without the source (an API over a pool with no RPC of its own) the counter is not exported at all.
    const none = samples((await get(harness().app, '/metrics')).body);
    assert.ok(![...none.keys()].some((k) => k.startsWith('hashhub_template_reads_total')));
  });

  it('includes the default Node process metrics under the hashhub_ prefix, and no ingest gauges without ingest', async () => {
    const metrics = createMetrics({ pool: () => snapshot() });
    const app = buildApi({ stats: new FakeStats(), pool: () => snapshot(), health: harness().health, metrics });
    apps.push(app);
    const body = (await get(app, '/metrics')).body;
    assert.match(body, /^hashhub_process_cpu_user_seconds_total /m);
    assert.match(body, /^hashhub_nodejs_eventloop_lag_seconds /m);
    assert.doesNotMatch(body, /hashhub_ingest_queue_depth|hashhub_db_up/);
  });
});

describe('poolSnapshot', () => {
  it('reads a Pool-shaped object; network height and difficulty come from the template', () => {
    const view: PoolView = {
      stats: { shares: { ...emptyOutcomeCounts(), accepted: 5 }, blocks: { candidates: 1, submissions: 1, recovered: 0, superseded: 0, submitted: 0, unconfirmed: 0, pending: 1, confirmed: 0, orphaned: 0, rejected: 0 }, blockResults: { accepted: 1 }, lastBlock: null },
      server: { stats: { connections: 3, authorized: 2 }, isDraining: true },
      // Mainnet block 840000's bits: difficulty 86,388,558,925,171.02.
      templates: { status: { templateAgeMs: 250 }, current: { height: 840_001, bits: '17034219' } },
    };
    const s = poolSnapshot(view);
    assert.equal(s.connections, 3);
    assert.equal(s.authorizedSessions, 2);
    assert.equal(s.draining, true);
    assert.deepEqual(s.template, { height: 840_001, ageMs: 250 });
    assert.equal(s.network!.height, 840_000);
    assert.equal(Math.round(s.network!.difficulty), 86_388_558_925_171);
    view.stats.shares.accepted++;
    assert.equal(s.shares.accepted, 5, 'a snapshot is a copy');
    assert.equal(poolSnapshot({ ...view, templates: { status: { templateAgeMs: null }, current: undefined } }).network, null);
  });
});
