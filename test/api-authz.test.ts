import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { createRequire } from 'node:module';
import { createAccount, issueToken, revokeToken } from '../src/accounting/accounts.ts';
import { buildApi, listenApi, urlForLog } from '../src/api/app.ts';
import { Auth } from '../src/api/auth.ts';
import { createMetrics } from '../src/api/metrics.ts';
import { marketAuthFrom } from '../src/cli/market-wiring.ts';
import { MarketService } from '../src/market/service.ts';
import { emptyBlockCounters } from '../src/shares/block-state.ts';
import { emptyOutcomeCounts } from '../src/shares/outcome.ts';
import type { Database } from '../src/store/db.ts';
import { PgDatabase } from '../src/store/pg.ts';
import type { StatsReader } from '../src/store/types.ts';
import { captureLogger } from './helpers/capture-logger.ts';
import { DEST, TestCapacity, TestDelivery, TestLedger, TestRoutes, migrated, testConfig } from './helpers/market.ts';
import { SKIP_PG, createTestPg } from './helpers/pg.ts';

// Authorization seen from another account on the same pool: the API as `hashhub pool` wires it (accounting's Auth
// behind the market's), over a real socket, with its request log captured at debug level.

const OPERATOR = 'op-token-0123456789abcdef';

// A real WebSocket client over the wire (the ws package, a dependency of @fastify/websocket; it has no types here).
interface Ws { on(ev: string, fn: (...a: never[]) => void): void; close(): void; readyState: number }
const WebSocket = createRequire(import.meta.url)('ws') as new (url: string, o?: { headers?: Record<string, string> }) => Ws;

describe('API authorization', { skip: SKIP_PG }, () => {
  let db: Database;
  let drop: () => Promise<void>;
  let app: FastifyInstance;
  let auth: Auth;
  let ledger: TestLedger;
  let base = '';
  const { logger, lines } = captureLogger();
  const acct = { id: 0n, owner: '' };

  before(async () => {
    const pg = await createTestPg();
    db = new PgDatabase({ url: pg.url, maxConnections: 4 });
    drop = async () => { await db.close(); await pg.drop(); };
    await migrated(db);
    ledger = await TestLedger.install(db);
    const market = new MarketService({ db, ledger, routes: new TestRoutes(), delivery: new TestDelivery(), capacity: new TestCapacity(), config: testConfig() });
    const r = await db.transaction((tx) => createAccount(tx, 'sue', false));
    acct.id = r.accountId;
    acct.owner = r.ownerToken;
    await ledger.deposit(db, Number(acct.id), 1_000_000n);
    auth = new Auth(db, OPERATOR);
    const pool = () => ({
      connections: 0, authorizedSessions: 0, shares: emptyOutcomeCounts(), blocks: emptyBlockCounters(),
      blockResults: {}, lastBlock: null, template: null, network: null, draining: false,
    });
    app = buildApi({
      stats: {} as StatsReader, pool,
      health: { db: async () => {}, node: async () => ({ synced: true, height: 1 }), templateAgeMs: () => 0, draining: () => false },
      metrics: createMetrics({ pool }, { defaultMetrics: false }),
      market: { market, db, auth: marketAuthFrom(auth) },
    }, { logger, docs: false, dashboard: false });
    base = `127.0.0.1:${await listenApi(app, '127.0.0.1', 0)}`;
  });
  after(async () => { await app?.close(); await drop?.(); });

  const open = (path: string, headers: Record<string, string> = {}) => new Promise<{ ws: Ws; got: { type: string; [k: string]: unknown }[] }>((resolve, reject) => {
    const ws = new WebSocket(`ws://${base}${path}`, { headers });
    const got: { type: string; [k: string]: unknown }[] = [];
    ws.on('message', (m: Buffer) => got.push(JSON.parse(m.toString())));
    ws.on('open', () => resolve({ ws, got }));
    ws.on('error', reject);
  });
  const until = async (pred: () => boolean, what: string, ms = 5000) => {
    const end = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  test('a token sent as ?token= to the market feed never reaches the log', async () => {
    const { ws, got } = await open(`/api/v1/market/ws?token=${acct.owner}`);
    try {
      await until(() => got.some((g) => g.type === 'hello'), 'hello');
      assert.equal(got.find((g) => g.type === 'hello')!.authenticated, true);
    } finally {
      ws.close();
    }
    const logged = lines.filter((l) => JSON.stringify(l).includes(acct.owner.slice(4)));
    assert.deepEqual(logged, [], 'the owner token is in the request log');
    const seen = lines.find((l) => JSON.stringify(l).includes('/api/v1/market/ws'));
    assert.ok(seen, 'the request is still logged');
    assert.match(JSON.stringify(seen), /token=\*\*\*/);
    assert.equal(urlForLog('/a?x=1&%74oken=hho_s&token=hhw_t&tokens=2'), '/a?x=1&%74oken=***&token=***&tokens=2');
    assert.equal(urlForLog('/api/v1/market/ws'), '/api/v1/market/ws');
  });

  test('a revoked token stops getting its account\'s order updates on a feed it opened before', async () => {
    const watcher = await issueToken(db, acct.id, 'watcher', 'feed');
    const { ws, got } = await open('/api/v1/market/ws', { authorization: `Bearer ${watcher.token}` });
    let closed = false;
    ws.on('close', () => { closed = true; });
    try {
      await until(() => got.some((g) => g.type === 'hello'), 'hello');
      assert.equal(got.find((g) => g.type === 'hello')!.authenticated, true);
      const place = () => fetch(`http://${base}/api/v1/market/bids`, {
        method: 'POST', headers: { authorization: `Bearer ${acct.owner}`, 'content-type': 'application/json' },
        body: JSON.stringify({ maxPrice: 50_000, limit: '0.25', budget: '1000', destinations: DEST }),
      }).then(async (r) => { assert.equal(r.status, 201); return ((await r.json()) as { id: number }).id; });
      const first = await place();
      await until(() => got.some((g) => g.type === 'order' && (g.order as { id: number }).id === first), 'the first bid on the feed');
      // Revoked as DELETE /api/v1/accounts/{a}/tokens/{id} does it.
      await revokeToken(db, acct.id, watcher.id);
      auth.tokensChanged();
      const second = await place();
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(got.some((g) => g.type === 'order' && (g.order as { id: number }).id === second), false, 'the revoked token saw the new bid');
      await until(() => closed, 'the server to close the feed');
    } finally {
      ws.close();
    }
  });

  test('guessing tokens on the market API is rate limited per address, like requests without a token', async () => {
    // Failed before: an unknown token was refused (401) before anything was counted, so a client without a token
    // met the limit and one guessing tokens never did.
    const limited = buildApi({
      stats: {} as StatsReader, pool: () => ({} as never),
      health: { db: async () => {}, node: async () => ({ synced: true, height: 1 }), templateAgeMs: () => 0, draining: () => false },
      metrics: createMetrics({ pool: () => ({} as never) }, { defaultMetrics: false }),
      market: { market: new MarketService({ db, ledger, routes: new TestRoutes(), delivery: new TestDelivery(), capacity: new TestCapacity(), config: testConfig() }), db, auth: marketAuthFrom(auth), rateLimitPerMinute: 5 },
    }, { docs: false, dashboard: false });
    try {
      // Windows are wall-clock minutes: keep the calls below in one.
      if (Date.now() % 60_000 > 50_000) await new Promise((r) => setTimeout(r, 60_000 - (Date.now() % 60_000) + 100));
      const get = (token: string) => limited.inject({ method: 'GET', url: '/api/v1/market/account', headers: { authorization: `Bearer ${token}` } });
      const codes: number[] = [];
      for (let i = 0; i < 8; i++) codes.push((await get(`hho_${'A'.repeat(42)}${i}`)).statusCode);
      assert.deepEqual(codes, [401, 401, 401, 401, 401, 429, 429, 429]);
      const right = await get(acct.owner);
      assert.equal(right.statusCode, 429, 'a right guess past the limit is not told apart from a wrong one');
      assert.equal(right.json().error.code, 'RATE_LIMITED');
      assert.ok(Number(right.headers['retry-after']) >= 1);
      const fromElsewhere = await limited.inject({ method: 'GET', url: '/api/v1/market/account', remoteAddress: '10.0.0.9', headers: { authorization: `Bearer ${acct.owner}` } });
      assert.equal(fromElsewhere.statusCode, 200, fromElsewhere.body);
    } finally {
      await limited.close();
    }
  });
});
