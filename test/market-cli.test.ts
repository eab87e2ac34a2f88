import { emptyBlockCounters } from '../src/shares/block-state.ts';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApi, listenApi } from '../src/api/app.ts';
import { createMetrics } from '../src/api/metrics.ts';
import type { MarketPrincipal } from '../src/api/routes/market.ts';
import { MarketService } from '../src/market/service.ts';
import { emptyOutcomeCounts } from '../src/shares/outcome.ts';
import type { Database } from '../src/store/db.ts';
import { PgDatabase } from '../src/store/pg.ts';
import type { StatsReader } from '../src/store/types.ts';
import { TestCapacity, TestDelivery, TestLedger, TestRoutes, migrated, seedAccounts, testConfig } from './helpers/market.ts';
import { SKIP_PG, createTestPg } from './helpers/pg.ts';

// The CLI as a user runs it (a child process): `hashhub market …` against a listening API, and
// `hashhub index compute --day D` against the database, bit-identical to what was published.

const ROOT = path.resolve(import.meta.dirname, '..');
const T0 = Date.UTC(2031, 2, 10);
const TICK = 60_000;

function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: ROOT, env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('hashhub market / hashhub index (CLI)', { skip: SKIP_PG }, () => {
  let db: Database;
  let dbUrl: string;
  let drop: () => Promise<void>;
  let app: FastifyInstance;
  let apiUrl: string;
  let market: MarketService;
  let delivery: TestDelivery;
  let routes: TestRoutes;
  const clock = { now: T0 + 1000 };
  const dataDir = mkdtempSync(path.join(tmpdir(), 'hashhub-market-cli-'));

  before(async () => {
    const pg = await createTestPg();
    dbUrl = pg.url;
    db = new PgDatabase({ url: pg.url, maxConnections: 4 });
    drop = async () => { await db.close(); await pg.drop(); };
    await migrated(db);
    const ledger = await TestLedger.install(db);
    const capacity = new TestCapacity();
    delivery = new TestDelivery();
    routes = new TestRoutes();
    market = new MarketService({ db, ledger, routes, delivery, capacity, config: testConfig({ index: { minVolumeHashes: 1n, minMidTicks: 60, publishAfterSeconds: 1800 } }), now: () => clock.now });
    const { account, worker } = await seedAccounts(db, { bob: [], sue: ['r1', 'r2'] });
    for (const w of worker.values()) capacity.workers.set(w, { hs: 10n ** 14n, shares: 600 });
    await ledger.deposit(db, account.get('bob')!, 100_000n);
    const tokens = new Map<string, MarketPrincipal>([['tok-bob', { role: 'owner', accountId: account.get('bob')! }], ['tok-sue', { role: 'owner', accountId: account.get('sue')! }]]);
    const pool = () => ({ connections: 0, authorizedSessions: 0, shares: emptyOutcomeCounts(), blocks: emptyBlockCounters(), blockResults: {}, lastBlock: null, template: null, network: null, draining: false });
    app = buildApi({
      stats: {} as StatsReader, pool, health: { db: async () => {}, node: async () => ({ synced: true, height: 1 }), templateAgeMs: () => 0, draining: () => false },
      metrics: createMetrics({ pool }, { defaultMetrics: false }), market: { market, db, auth: { resolve: async (t) => tokens.get(t) ?? null } },
    }, { docs: false });
    apiUrl = `http://127.0.0.1:${await listenApi(app, '127.0.0.1', 0)}`;
  });
  after(async () => { await app?.close(); await drop?.(); rmSync(dataDir, { recursive: true, force: true }); });

  const env = () => ({ HASHHUB_DATA_DIR: dataDir, HASHHUB_API_URL: apiUrl });

  test('bid, ask, book, orders, cancel through the API; an API refusal is one line with its code and exit 1', async () => {
    const bid = await cli(['market', 'bid', '--price', '50000', '--limit', '0.2', '--budget', '20000', '--pool', 'stratum+tcp://pool.example:3333', '--user', 'bob.rig', '--token', 'tok-bob', '--client-id', 'cli-1'], env());
    assert.equal(bid.code, 0, bid.stderr);
    assert.match(bid.stdout, /^bid 1 {2}pending-probe {2}max 50000 sat\/PH\/day, limit 0.2 PH\/s, budget 20000 sat/);
    const ask = await cli(['market', 'ask', '--price', '40000', '--workers', 'r1,r2', '--token', 'tok-sue'], env());
    assert.equal(ask.code, 0, ask.stderr);
    await market.runOnce(clock.now);
    const book = await cli(['market', 'book'], env());
    assert.equal(book.code, 0, book.stderr);
    assert.match(book.stdout, /tick \d+: price 45000/);
    assert.match(book.stdout, /40000 +0.2 +1/);
    const orders = await cli(['market', 'orders', '--token', 'tok-bob'], env());
    assert.match(orders.stdout, /bid 1 {2}active .* fill 0.2 PH\/s, queue #1/);
    // "45,000" is not a price (it was sent as null, and an ask stored with a floor of 0): nothing reaches the API.
    const comma = await cli(['market', 'ask', '--price', '45,000', '--workers', 'r1', '--token', 'tok-sue'], env());
    assert.equal(comma.code, 1);
    assert.match(comma.stderr, /--price must be a whole number of sat\/PH\/day \(got "45,000"\)/);
    const broke = await cli(['market', 'bid', '--price', '50000', '--limit', '1', '--budget', '999999999', '--pool', 'stratum+tcp://p:1', '--user', 'u', '--token', 'tok-bob'], env());
    assert.equal(broke.code, 1);
    assert.match(broke.stderr, /^hashhub: INSUFFICIENT_FUNDS: budget 999999999 sat exceeds the available balance of 80000 sat\n$/);
  });

  test('without --api or HASHHUB_API_URL it calls the API the config names (HASHHUB_API_HOST / _PORT), as `hashhub accounting` does', async () => {
    const port = new URL(apiUrl).port;
    // Not the default 127.0.0.1:8080: the token goes to the configured API and nowhere else.
    const env = { HASHHUB_DATA_DIR: dataDir, HASHHUB_API_URL: undefined, HASHHUB_CONFIG: undefined, HASHHUB_API_HOST: '0.0.0.0', HASHHUB_API_PORT: port };
    const book = await cli(['market', 'book'], env);
    assert.equal(book.code, 0, book.stderr);
    assert.match(book.stdout, /tick \d+: price 45000/);
    const orders = await cli(['market', 'orders', '--token', 'tok-bob'], env);
    assert.equal(orders.code, 0, orders.stderr);
    assert.match(orders.stdout, /^bid 1 /);
  });

  test('index compute --day D: identical to the published index; after the stored trades change, it says DIFFERS and exits 1', async () => {
    for (let k = 0; k < 3; k++) {
      clock.now = T0 + k * TICK + 31_000;
      delivery.mark = new Date(T0 + k * TICK);
      await market.runOnce(clock.now);
      const r = routes.applied.filter((a) => a.tick === T0 / TICK + k).at(-1)?.routes ?? [];
      delivery.set(T0 + k * TICK, r.flatMap((x) => x.workerIds.map((workerId) => ({ bidId: x.bidId, workerId, acceptedHashes: 6n * 10n ** 18n + BigInt(k), acceptedShares: 10, rejectedShares: 0, staleBySwitchShares: 0 }))));
    }
    delivery.mark = new Date(T0 + 86_400_000);
    clock.now = T0 + 86_400_000 + 1_800_001;
    await market.settleDue(clock.now);
    const [published] = await market.publishDue(clock.now);
    assert.equal(published.day, '2031-03-10');
    const same = await cli(['index', 'compute', '--day', '2031-03-10'], { ...env(), DATABASE_URL: dbUrl });
    assert.equal(same.code, 0, same.stderr);
    assert.match(same.stdout, new RegExp(`^2031-03-10: ${published.value} sat/PH/day \\(vwap, exact `));
    assert.match(same.stdout, /published: .*: identical/);
    const json = JSON.parse((await cli(['index', 'compute', '--day', '2031-03-10', '--json'], { ...env(), DATABASE_URL: dbUrl })).stdout);
    assert.equal(json.digest, published.inputsDigest);
    await db.query(`UPDATE market_trades SET accepted_hashes = accepted_hashes + 1 WHERE tick = $1`, [T0 / TICK]);
    const differs = await cli(['index', 'compute', '--day', '2031-03-10'], { ...env(), DATABASE_URL: dbUrl });
    assert.equal(differs.code, 1);
    assert.match(differs.stdout, /DIFFERS/);
  });
});
