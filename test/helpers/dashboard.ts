// A running pool for the dashboard's browser tests, wired as `hashhub pool` wires it: runPool (src/cli/run-pool.ts:
// the embedded chain, Postgres, the durable share log, the books, routing and the market on the pool's own
// database and ledger, with the real capacity and delivery meters) and the API from poolApiWiring
// (src/cli/pool-command.ts) on port 0, serving the built dashboard. Around it, what a market needs from outside:
// a buyer's pool for bids to route to (an in-process Stratum server, ./stub-upstream.ts, probed by routing like
// any destination), and the project's miner fleet mining into the pool.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino, { type Logger } from 'pino';
import { Auth, resolveOperatorToken } from '../../src/api/auth.ts';
import { type Config, loadConfig } from '../../src/cli/config.ts';
import { apiConfigFrom, poolApiWiring } from '../../src/cli/pool-command.ts';
import { startApi } from '../../src/cli/run-api.ts';
import { type RunningPool, runPool } from '../../src/cli/run-pool.ts';
import type { MarketService } from '../../src/market/service.ts';
import { type Fleet, runFleet } from '../../src/miner/fleet.ts';
import { type TestPg, createTestPg } from './pg.ts';
import { StubUpstream } from './stub-upstream.ts';

export const OPERATOR_TOKEN = 'dashboard-test-operator-token';
/** The market's tick in these tests, seconds (the config's minimum): a clearing every 5 s. */
export const TICK_SECONDS = 5;

export interface PoolApi {
  running: RunningPool;
  base: string;
  stop(): Promise<void>;
}

/** runPool, then the API exactly as `hashhub pool` serves it (one Auth for accounting, routing and the market). */
export async function startPoolApi(cfg: Config, log: Logger): Promise<PoolApi> {
  const running = await runPool(cfg, log);
  try {
    const op = resolveOperatorToken({ token: cfg.api.operatorToken, dataDir: cfg.database.dataDir });
    const api = await startApi(poolApiWiring(cfg, running, new Auth(running.store.db, op.token)), apiConfigFrom(cfg), log);
    return {
      running,
      base: `http://127.0.0.1:${api.port}`,
      async stop() {
        // As `hashhub pool` stops: the pool (its market and routing included), then the API.
        await running.stop();
        await api.app.close();
      },
    };
  } catch (e) {
    await running.stop().catch(() => undefined);
    throw e;
  }
}

export interface DashboardPool {
  base: string;
  running: RunningPool;
  market: MarketService;
  /** The buyer's pool: a Stratum server that bids name as their destination. */
  buyerPool: StubUpstream;
  /** stratum+tcp://127.0.0.1:<port> of the buyer's pool. */
  buyerPoolUrl: string;
  tokens: { alice: string; bob: string };
  fleet: Fleet | null;
  startFleet(opts?: { count?: number; hashrate?: number }): Fleet;
  stop(): Promise<void>;
}

async function post(url: string, body: unknown, token?: string): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
}

export async function startDashboardPool(opts: { shareDifficulty?: number; chainDifficulty?: number } = {}): Promise<DashboardPool> {
  const tpg: TestPg = await createTestPg();
  const d = opts.shareDifficulty ?? 0.0000005;
  const dataDir = mkdtempSync(path.join(tmpdir(), 'hashhub-dashboard-'));
  const cfg = loadConfig({
    env: {},
    overrides: {
      'database.dataDir': dataDir,
      'database.url': tpg.url,
      'api.host': '127.0.0.1',
      'api.port': 0,
      'api.operatorToken': OPERATOR_TOKEN,
      'stratum.host': '127.0.0.1',
      'stratum.port': 0,
      'stratum.difficulty.initial': d,
      'stratum.difficulty.min': d,
      'stratum.difficulty.max': d,
      // About one share in forty is a block: a few blocks while the pages are looked at.
      'node.embedded.difficulty': opts.chainDifficulty ?? 0.00002,
      'node.pollMs': 200,
      'database.ingest.flushMs': 50,
      'blocks.checkIntervalMs': 500,
      // The market and routing as `hashhub pool` runs them (both on by default), on a test's time scale: a
      // clearing every 5 s, billed from 5 s metering buckets (a tick is whole buckets), capacity measured over the
      // last 2 minutes (the rollups are per minute: 2 always hold a whole one) from at least one share; routes read
      // and metering written several times a tick; a tick settles 1 s after its end.
      'market.tickSeconds': TICK_SECONDS,
      'market.capacityWindowMinutes': 2,
      'market.minShares': 1,
      'market.answerTimeoutSeconds': 1,
      'market.routeLeaseSeconds': 10,
      'routing.meterBucketSeconds': TICK_SECONDS,
      'routing.syncMs': 300,
      'routing.flushMs': 200,
      'routing.answerTimeoutSeconds': 2,
      'routing.reconnectHost': '127.0.0.1',
    },
  });
  const log = pino({ level: process.env.TEST_LOG ?? 'silent' });
  // The buyer's pool: it answers subscribe and authorize, sends work (a new job every 10 s, as pools do) and accepts
  // what is submitted; routing validates each share against its target before forwarding it.
  const buyerPool = new StubUpstream({ difficulty: 1e-6, jobEveryMs: 10_000 });
  await buyerPool.listen();
  let api: PoolApi;
  try {
    api = await startPoolApi(cfg, log);
  } catch (e) {
    await buyerPool.close();
    await tpg.drop();
    rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
  const { running, base } = api;
  const cleanUp = async () => {
    await api.stop().catch(() => undefined);
    await buyerPool.close();
    await tpg.drop();
    rmSync(dataDir, { recursive: true, force: true });
  };
  let tokens: { alice: string; bob: string };
  try {
    if (!running.market || !running.routing) throw new Error('the dashboard tests need the pool’s market and routing (market.enabled, routing.enabled)');
    // Accounts made the way a person makes them: POST /api/v1/accounts answers with the owner token.
    const create = async (name: string) => {
      const r = await post(`${base}/api/v1/accounts`, { name });
      if (r.status !== 201) throw new Error(`POST /api/v1/accounts ${name}: ${r.status} ${await r.text()}`);
      return ((await r.json()) as { ownerToken: string }).ownerToken;
    };
    tokens = { alice: await create('alice'), bob: await create('bob') };
    // The buyer's money: an operator credit through the API (from the books' operator adjustments), as an operator
    // funds an account that paid outside the pool.
    const credit = await post(`${base}/api/v1/accounts/bob/credits`, { amount: '10000000', reason: 'dashboard test: the buyer’s budget', key: 'dashboard-test-fund-bob' }, OPERATOR_TOKEN);
    if (credit.status !== 200) throw new Error(`POST /api/v1/accounts/bob/credits: ${credit.status} ${await credit.text()}`);
  } catch (e) {
    await cleanUp();
    throw e;
  }
  const market = running.market;

  const url = `stratum+tcp://127.0.0.1:${running.port}`;
  const fleets: Fleet[] = [];
  const self: DashboardPool = {
    base, running, market, buyerPool, buyerPoolUrl: `stratum+tcp://127.0.0.1:${buyerPool.port}`, tokens, fleet: null,
    startFleet(o = {}) {
      // extranonce.subscribe: routing moves these miners to the buyer's work with mining.set_extranonce on the same
      // connection (a miner without it gets client.reconnect, which a fleet without reconnects would not follow).
      const f = runFleet({ count: o.count ?? 2, totalHashrate: o.hashrate ?? 20_000, url, user: 'alice', connectRatePerSec: 50, reconnect: false, extranonceSubscribe: true });
      fleets.push(f);
      self.fleet = f;
      return f;
    },
    async stop() {
      await Promise.all(fleets.map((f) => f.stop(200)));
      await cleanUp();
    },
  };
  return self;
}
