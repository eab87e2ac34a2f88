import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { emptyBlockCounters } from '../src/shares/block-state.ts';
import Fastify from 'fastify';
import { buildApi } from '../src/api/app.ts';
import { installErrorHandling } from '../src/api/errors.ts';
import { createMetrics } from '../src/api/metrics.ts';
import { type MarketAuth, type MarketPrincipal, marketRoutes } from '../src/api/routes/market.ts';
import { MarketService } from '../src/market/service.ts';
import { emptyOutcomeCounts } from '../src/shares/outcome.ts';
import type { Database } from '../src/store/db.ts';
import { PgDatabase } from '../src/store/pg.ts';
import type { StatsReader } from '../src/store/types.ts';
import { TestCapacity, TestDelivery, TestLedger, TestRoutes, migrated, seedAccounts, testConfig } from './helpers/market.ts';
import { SKIP_PG, createTestPg } from './helpers/pg.ts';

// The market's REST API and WebSocket feed through inject(), on the real Postgres: tokens and roles, the JSON
// error codes, idempotent placement, rate-limit headers, OpenAPI, and a bid's explanation after a tick.

const T0 = Date.UTC(2031, 2, 10, 0, 0, 0);
const TH = 10n ** 12n;

describe('market API', { skip: SKIP_PG }, () => {
  let db: Database;
  let drop: () => Promise<void>;
  let app: FastifyInstance;
  let market: MarketService;
  let routes: TestRoutes;
  const clock = { now: T0 + 1000 };
  let sueId = 0;

  before(async () => {
    const pg = await createTestPg();
    db = new PgDatabase({ url: pg.url, maxConnections: 4 });
    drop = async () => { await db.close(); await pg.drop(); };
    await migrated(db);
    const ledger = await TestLedger.install(db);
    routes = new TestRoutes();
    const capacity = new TestCapacity();
    market = new MarketService({ db, ledger, routes, delivery: new TestDelivery(), capacity, config: testConfig(), now: () => clock.now });
    const { account, worker } = await seedAccounts(db, { bob: [], sue: ['r1', 'r2', 'r3'], eve: [] });
    for (const w of worker.values()) capacity.workers.set(w, { hs: 100n * TH, shares: 600 });
    await ledger.deposit(db, account.get('bob')!, 500_000n);
    sueId = account.get('sue')!;
    const tokens = new Map<string, MarketPrincipal>([
      ['tok-bob', { role: 'owner', accountId: account.get('bob')! }],
      ['tok-sue', { role: 'owner', accountId: account.get('sue')! }],
      ['tok-eve', { role: 'owner', accountId: account.get('eve')! }],
      ['tok-watch', { role: 'watcher', accountId: account.get('bob')! }],
      ['tok-op', { role: 'operator' }],
    ]);
    const auth: MarketAuth = { resolve: async (t) => tokens.get(t) ?? null };
    const pool = () => ({
      connections: 0, authorizedSessions: 0, shares: emptyOutcomeCounts(), blocks: emptyBlockCounters(),
      blockResults: {}, lastBlock: null, template: null, network: null, draining: false,
    });
    app = buildApi({
      stats: {} as StatsReader, pool,
      health: { db: async () => {}, node: async () => ({ synced: true, height: 1 }), templateAgeMs: () => 0, draining: () => false },
      metrics: createMetrics({ pool }, { defaultMetrics: false }),
      market: { market, db, auth, rateLimitPerMinute: 40 },
    });
    await app.ready();
  });
  after(async () => { await app?.close(); await drop?.(); });

  const call = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, token?: string, body?: unknown, headers: Record<string, string> = {}) =>
    app.inject({ method, url, payload: body as object, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers } });
  const bid = (over: Record<string, unknown> = {}) => ({
    maxPrice: 50_000, limit: '0.25', budget: '100000', destinations: [{ url: 'stratum+tcp://pool.example:3333', user: 'bob.rig', password: 'x' }], ...over,
  });

  test('placing a bid: 201, then the same clientOrderId returns the first order (200); conflicts and refusals are JSON errors with codes', async () => {
    const a = await call('POST', '/api/v1/market/bids', 'tok-bob', bid({ clientOrderId: 'api-1' }));
    assert.equal(a.statusCode, 201, a.body);
    const order = a.json();
    assert.equal(order.state, 'pending-probe');
    assert.equal(order.limit, '0.25');
    assert.equal(order.escrow, '100000');
    assert.equal(order.destinations[0].password, undefined, 'a pool password is never echoed');
    const again = await call('POST', '/api/v1/market/bids', 'tok-bob', bid({ clientOrderId: 'api-1' }));
    assert.equal(again.statusCode, 200);
    assert.equal(again.json().id, order.id);
    const conflict = await call('POST', '/api/v1/market/bids', 'tok-bob', bid({ clientOrderId: 'api-1', maxPrice: 49_000 }));
    assert.equal(conflict.statusCode, 409);
    assert.equal(conflict.json().error.code, 'IDEMPOTENCY_CONFLICT');
    const broke = await call('POST', '/api/v1/market/bids', 'tok-bob', bid({ budget: '900000' }));
    assert.equal(broke.statusCode, 422);
    assert.equal(broke.json().error.code, 'INSUFFICIENT_FUNDS');
    assert.equal(broke.json().error.availableSat, '400000');
    const scheme = await call('POST', '/api/v1/market/bids', 'tok-bob', bid({ destinations: [{ url: 'http://pool:3333', user: 'u' }] }));
    assert.equal(scheme.statusCode, 400);
    assert.equal(scheme.json().error.code, 'INVALID_DESTINATION');
    assert.equal(scheme.json().error.details[0].path, '/destinations/0/url');
    const badRate = await call('POST', '/api/v1/market/bids', 'tok-bob', bid({ limit: '1e-3' }));
    assert.equal(badRate.json().error.code, 'INVALID_HASHRATE');
    const missing = await call('POST', '/api/v1/market/bids', 'tok-bob', { maxPrice: 1 });
    assert.equal(missing.statusCode, 400);
    assert.equal(missing.json().error.code, 'VALIDATION_FAILED');
  });

  test('a price in a body must be a JSON number: null or false is not a floor of 0, true is not 1 sat', async () => {
    // Failed before: the API's type coercion (meant for query strings) turned "minPrice": null into 0 and stored an
    // ask that sells at any clearing price (201); false did the same, and "maxPrice": true became a 1 sat bid.
    for (const minPrice of [null, false, true, '40000']) {
      const r = await call('POST', '/api/v1/market/asks', 'tok-sue', { minPrice, workers: ['r3'] });
      assert.equal(r.statusCode, 400, `minPrice ${JSON.stringify(minPrice)}: ${r.body}`);
      assert.equal(r.json().error.code, 'INVALID_PRICE');
      assert.equal(r.json().error.details[0].path, '/minPrice');
    }
    for (const maxPrice of [null, true]) {
      const r = await call('POST', '/api/v1/market/bids', 'tok-bob', bid({ maxPrice }));
      assert.equal(r.statusCode, 400, `maxPrice ${JSON.stringify(maxPrice)}: ${r.body}`);
      assert.equal(r.json().error.code, 'INVALID_PRICE');
    }
    const ask = await call('POST', '/api/v1/market/asks', 'tok-sue', { minPrice: 40_000, workers: ['r3'] });
    assert.equal(ask.statusCode, 201, ask.body);
    const edit = await call('PATCH', `/api/v1/market/asks/${ask.json().id}`, 'tok-sue', { minPrice: null });
    assert.equal(edit.statusCode, 400, edit.body);
    assert.equal((await call('GET', `/api/v1/market/asks/${ask.json().id}`, 'tok-sue')).json().minPrice, 40_000);
    const del = await call('DELETE', `/api/v1/market/asks/${ask.json().id}`, 'tok-sue');
    assert.equal(del.statusCode, 200, del.body);
  });

  test('tokens and roles: no token 401, unknown token 401, a watcher reads but cannot write, another account sees "not found"', async () => {
    assert.equal((await call('GET', '/api/v1/market/bids')).json().error.code, 'UNAUTHORIZED');
    assert.equal((await call('GET', '/api/v1/market/bids', 'nope')).statusCode, 401);
    const list = await call('GET', '/api/v1/market/bids', 'tok-watch');
    assert.equal(list.statusCode, 200);
    assert.ok(list.json().bids.length >= 1);
    const w = await call('POST', '/api/v1/market/bids', 'tok-watch', bid());
    assert.equal(w.statusCode, 403);
    assert.equal(w.json().error.code, 'FORBIDDEN');
    const id = list.json().bids[0].id;
    assert.equal((await call('GET', `/api/v1/market/bids/${id}`, 'tok-eve')).json().error.code, 'ORDER_NOT_FOUND');
    assert.equal((await call('DELETE', `/api/v1/market/bids/${id}`, 'tok-eve')).statusCode, 404);
    // The operator acts for a named account.
    const op = await call('GET', '/api/v1/market/bids', 'tok-op', undefined, { 'x-hashhub-account': 'bob' });
    assert.equal(op.json().bids.length, list.json().bids.length);
    assert.equal((await call('GET', '/api/v1/market/bids', 'tok-op')).json().error.code, 'INVALID_ORDER');
  });

  test('a tick later the bid shows its fill, queue position and the clearing; the book and ticks are public; cancel releases', async () => {
    const sue = await call('POST', '/api/v1/market/asks', 'tok-sue', { minPrice: 40_000, workers: ['r1', 'r2', 'r3'] });
    assert.equal(sue.statusCode, 201, sue.body);
    const mine = (await call('GET', '/api/v1/market/bids?state=pending-probe', 'tok-bob')).json().bids;
    // The public book is read once and kept until an order or a tick changes it: read it now, so the reads
    // below show that the tick and the cancel each made it read again.
    assert.equal((await call('GET', '/api/v1/market/book')).json().tick, null);
    await market.runOnce(clock.now);
    const b = (await call('GET', `/api/v1/market/bids/${mine[0].id}`, 'tok-bob')).json();
    assert.equal(b.state, 'active');
    assert.equal(b.lastTick.fill, '0.2'); // 0.25 PH/s limit, 0.1 PH/s workers: two fit
    assert.equal(b.lastTick.queuePosition, 1);
    assert.equal(b.lastTick.reason.code, 'no-fitting-worker');
    const book = (await call('GET', '/api/v1/market/book')).json();
    assert.equal(book.tick.price, 45_000);
    assert.deepEqual(book.asks[0], { price: 40_000, orders: 1, hashrate: '0.3' });
    assert.equal(book.tick.depth.available, '0.1');
    const ticks = (await call('GET', '/api/v1/market/ticks?limit=5')).json().ticks;
    assert.equal(ticks.length, 1);
    const workers = (await call('GET', `/api/v1/market/asks/${sue.json().id}/workers`, 'tok-sue')).json().workers;
    assert.deepEqual(workers.map((x: { worker: string; capacity: string; shares: number; errorPct: number; status: string }) => [x.worker, x.capacity, x.shares, x.errorPct, x.status]),
      [['r1', '0.1', 600, 4.08, 'sold'], ['r2', '0.1', 600, 4.08, 'sold'], ['r3', '0.1', 600, 4.08, 'unsold']]);
    assert.equal((await call('GET', `/api/v1/market/asks/${sue.json().id}/workers`, 'tok-bob')).statusCode, 404);
    const fees = (await call('GET', '/api/v1/market/fees')).json();
    assert.deepEqual([fees.orderPlacement, fees.orderEdit, fees.orderCancel, fees.tradeFeeBps], [0, 0, 0, 100]);
    const orders = (x: { bids: { orders: number }[] }) => x.bids.reduce((n, l) => n + l.orders, 0);
    const bidsBefore = orders((await call('GET', '/api/v1/market/book')).json());
    const c = await call('DELETE', `/api/v1/market/bids/${b.id}`, 'tok-bob');
    assert.equal(c.statusCode, 200);
    assert.equal(orders((await call('GET', '/api/v1/market/book')).json()), bidsBefore - 1, 'the cancelled bid left the public book at once');
    assert.equal(c.json().state, 'cancelled');
    assert.ok(Number(c.json().releasedNow) > 0);
    const events = (await call('GET', `/api/v1/market/bids/${b.id}/events`, 'tok-bob')).json().events;
    assert.ok(events.some((e: { to: string }) => e.to === 'cancelled'));
  });

  test('auth: the scheme "Bearer" in any case, as the rest of the API; a ?token= counts on the WebSocket route only', async () => {
    for (const scheme of ['bearer', 'BEARER', 'Bearer']) {
      const r = await app.inject({ method: 'GET', url: '/api/v1/market/bids', headers: { authorization: `${scheme} tok-bob` } });
      assert.equal(r.statusCode, 200, `${scheme}: ${r.body}`);
    }
    // A query token on any other URL, even one that mentions /ws, is not a credential.
    for (const url of ['/api/v1/market/bids?x=/ws&token=tok-bob', '/api/v1/market/bids?token=tok-bob']) {
      const r = await app.inject({ method: 'GET', url });
      assert.equal(r.statusCode, 401, `${url}: ${r.body}`);
      assert.equal(r.json().error.code, 'UNAUTHORIZED');
    }
    assert.equal((await app.inject({ method: 'GET', url: '/api/v1/market/book?x=/ws&token=unknown' })).statusCode, 200, 'ignored, not looked up');
  });

  test('dates the format lets through but no calendar or database has (month 13, a leap second, year 0) are 400, not 500', async () => {
    const refused = async (url: string, param: string, msg: RegExp) => {
      const r = await call('GET', url);
      assert.equal(r.statusCode, 400, `${url} → ${r.body}`);
      assert.equal(r.json().error.code, 'VALIDATION_FAILED');
      assert.deepEqual(r.json().error.details.map((d: { in: string; path: string }) => [d.in, d.path]), [['querystring', `/${param}`]]);
      assert.match(r.json().error.message, msg);
      assert.ok(!r.body.includes('\n'));
    };
    await refused('/api/v1/market/index?to=2024-13-45', 'to', /^querystring\.to is not a calendar day: 2024-13-45$/);
    await refused('/api/v1/market/index?from=2024-13-45&to=2024-01-01', 'from', /not a calendar day/);
    await refused('/api/v1/market/index?to=2024-02-30', 'to', /not a calendar day/);
    await refused('/api/v1/market/index?to=0000-01-01', 'to', /outside the supported range 0001-01-01 to 9999-12-31/);
    await refused('/api/v1/market/candles?interval=1d&to=9999-12-31T23:59:60Z', 'to', /not a valid time/);
    await refused('/api/v1/market/candles?interval=1m&to=0000-01-01T00:00:00Z', 'to', /outside the supported range/);
    await refused('/api/v1/market/candles?interval=1m&from=2024-01-01T00:00:00Z&to=9999-12-31T23:59:59-01:00', 'to', /outside the supported range/);
    // The edges of the range answer: a default `from` before year 1 starts at year 1.
    for (const url of ['/api/v1/market/index?to=0001-01-01', '/api/v1/market/index?from=0001-01-01&to=9999-12-31',
      '/api/v1/market/candles?interval=1d&to=0001-01-01T00:00:00Z', '/api/v1/market/candles?interval=1m&from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59.999Z']) {
      const r = await call('GET', url);
      assert.equal(r.statusCode, 200, `${url} → ${r.body}`);
    }
  });

  test('an endTime past year 9999 in UTC, or one the format takes but no calendar has, is a 400 naming endTime, not a 500', async () => {
    for (const [i, endTime] of ['9999-12-31T23:59:59-01:00', '2030-02-30T00:00:00Z', '2030-01-01T23:59:60Z', '2030-00-10T00:00:00Z'].entries()) {
      for (const [path, body] of [['bids', bid({ endTime, clientOrderId: `far-b${i}` })], ['asks', { minPrice: 1, workers: 'all', endTime, clientOrderId: `far-a${i}` }]] as const) {
        const r = await call('POST', `/api/v1/market/${path}`, path === 'bids' ? 'tok-bob' : 'tok-sue', body);
        assert.equal(r.statusCode, 400, `${path} endTime ${endTime} → ${r.statusCode} ${r.body}`);
        assert.match(r.json().error.message, /endTime/);
        assert.ok(!r.body.includes('\n'));
      }
    }
    // The last time the range has still places a bid.
    const edge = await call('POST', '/api/v1/market/bids', 'tok-bob', bid({ endTime: '9999-12-31T23:59:59Z', clientOrderId: 'far-edge', budget: '1000' }));
    assert.equal(edge.statusCode, 201, edge.body);
    assert.equal(edge.json().endTime, '9999-12-31T23:59:59.000Z');
    assert.equal((await call('DELETE', `/api/v1/market/bids/${edge.json().id}`, 'tok-bob')).statusCode, 200);
  });

  test('rate-limit headers on every answer, 429 with a JSON error past the limit', async () => {
    let r = await call('GET', '/api/v1/market/fees', 'tok-eve');
    // Windows are wall-clock minutes: near a window's end, start in the next one, so the 45 calls below stay in one
    // window (a limiter letting through more than 40 in a window must fail here).
    if (Number(r.headers['x-ratelimit-reset']) < 15) {
      await new Promise((res) => setTimeout(res, Number(r.headers['x-ratelimit-reset']) * 1000 + 200));
      r = await call('GET', '/api/v1/market/fees', 'tok-eve');
    }
    assert.ok(Number(r.headers['x-ratelimit-limit']) === 40);
    assert.ok(Number(r.headers['x-ratelimit-remaining']) <= 39);
    assert.ok(Number(r.headers['x-ratelimit-reset']) >= 1);
    let last = r;
    for (let i = 0; i < 45 && last.statusCode !== 429; i++) last = await call('GET', '/api/v1/market/fees', 'tok-eve');
    assert.equal(last.statusCode, 429);
    assert.equal(last.json().error.code, 'RATE_LIMITED');
    assert.ok(Number(last.headers['retry-after']) >= 1);
  });

  test('OpenAPI lists the market routes', async () => {
    const doc = (await call('GET', '/docs/json')).json();
    for (const p of ['/api/v1/market/bids', '/api/v1/market/bids/{id}', '/api/v1/market/asks', '/api/v1/market/book', '/api/v1/market/index/{day}', '/api/v1/market/fees']) {
      assert.ok(doc.paths[p], `${p} in OpenAPI`);
    }
    assert.ok(doc.components.securitySchemes.bearer);
  });

  test('WebSocket: a browser (no headers) authenticates with ?token= on the feed\'s own route', async () => {
    let ctx: FastifyInstance | null = null;
    const wsApp = Fastify();
    installErrorHandling(wsApp);
    await wsApp.register(async (m) => { await marketRoutes(m, { market, db, auth: { resolve: async (t) => (t === 'tok-sue' ? { role: 'owner', accountId: sueId } : null) } }); ctx = m; });
    await wsApp.ready();
    type Ws = import('node:events').EventEmitter & { terminate(): void };
    const hello = (url: string) => new Promise<{ authenticated: boolean }>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no hello on ${url}`)), 5000);
      let ws: Ws | null = null;
      (ctx as unknown as { injectWS(path: string, ctx: object, o: { onInit(ws: Ws): void }): Promise<Ws> })
        .injectWS(url, {}, { onInit: (w) => { ws = w; w.on('message', (m: Buffer) => { const g = JSON.parse(m.toString()); if (g.type === 'hello') { clearTimeout(t); ws?.terminate(); resolve(g); } }); } })
        .catch(reject);
    });
    try {
      assert.equal((await hello('/api/v1/market/ws?token=tok-sue')).authenticated, true);
      assert.equal((await hello('/api/v1/market/ws')).authenticated, false);
    } finally {
      await wsApp.close();
    }
  });

  test('WebSocket: hello, then the tick and the book, and my order updates', async () => {
    // The plugin in an app of its own, to reach the context @fastify/websocket decorates with injectWS.
    let ctx: FastifyInstance | null = null;
    const wsApp = Fastify();
    installErrorHandling(wsApp);
    await wsApp.register(async (m) => { await marketRoutes(m, { market, db, auth: { resolve: async (t) => (t === 'tok-sue' ? { role: 'owner', accountId: sueId } : null) } }); ctx = m; });
    await wsApp.ready();
    const got: { type: string; [k: string]: unknown }[] = [];
    type Ws = import('node:events').EventEmitter & { terminate(): void };
    const ws = await (ctx as unknown as { injectWS(path: string, ctx: object, o: { onInit(ws: Ws): void }): Promise<Ws> })
      .injectWS('/api/v1/market/ws', { headers: { authorization: 'Bearer tok-sue' } }, { onInit: (w) => w.on('message', (m: Buffer) => got.push(JSON.parse(m.toString()))) });
    try {
      const waitFor = (pred: (g: { type: string; [k: string]: unknown }) => boolean, what: string, from = 0) => new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no ${what}; got ${got.map((g) => g.type)}`)), 5000);
        const check = () => { if (got.slice(from).some(pred)) { clearTimeout(t); resolve(); } else setTimeout(check, 10); };
        check();
      });
      await waitFor((g) => g.type === 'hello', 'hello');
      assert.equal(got.find((g) => g.type === 'hello')!.authenticated, true);
      await waitFor((g) => g.type === 'book', 'book');
      await waitFor((g) => g.type === 'order', 'order'); // sue's ask
      const n = got.length;
      const askId = (got.find((g) => g.type === 'order')!.order as { id: number }).id;
      const r = await call('PATCH', `/api/v1/market/asks/${askId}`, 'tok-sue', { minPrice: 41_000 });
      assert.equal(r.statusCode, 200, r.body);
      await waitFor((g) => g.type === 'order' && (g.order as { minPrice: number }).minPrice === 41_000, 'order update after the edit', n);
    } finally {
      ws.terminate();
      await wsApp.close();
    }
  });
});
