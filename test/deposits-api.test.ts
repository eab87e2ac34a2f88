import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { Transaction, p2wpkh } from '@scure/btc-signer';
import { pubECDSA } from '@scure/btc-signer/utils.js';
import { Ledger, owned } from '../src/accounting/ledger.ts';
import { registerAccountingMetrics } from '../src/accounting/metrics.ts';
import { AccountingService, DEFAULT_ACCOUNTING } from '../src/accounting/service.ts';
import { buildApi } from '../src/api/app.ts';
import { Auth, resolveOperatorToken } from '../src/api/auth.ts';
import { createMetrics } from '../src/api/metrics.ts';
import { BitcoinRpc } from '../src/node/rpc.ts';
import { type EmbeddedChainHandle, REGTEST_NETWORK, startEmbeddedChain } from '../src/node/regtest/index.ts';
import { emptyBlockCounters } from '../src/shares/block-state.ts';
import { emptyOutcomeCounts } from '../src/shares/outcome.ts';
import type { Database } from '../src/store/db.ts';
import { SqlStatsReader } from '../src/store/stats-reader.ts';
import { BACKENDS, accountId, openMigrated } from './helpers/accounting.ts';
import { SKIP_PG } from './helpers/pg.ts';

// Funding over HTTP and the CLI: the deposit address (owner or operator; made once), a deposit credited by the
// accounting service's own tick after the configured confirmations and listed, operator credits (operator only,
// idempotent by key, one-line JSON errors for a missing reason or a bad amount), `hashhub accounts credit`.

const pg = BACKENDS.find((b) => b.name === 'postgres')!;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CONF = 2;

describe('funding API', { skip: SKIP_PG }, () => {
  let db: Database;
  let cleanup: () => Promise<void>;
  let h: EmbeddedChainHandle;
  let rpc: BitcoinRpc;
  let app: FastifyInstance;
  let service: AccountingService;
  let operator: string;
  let owner: string;
  let watcher: string;
  let dataDir: string;
  let clock = Date.now();
  const ledger = new Ledger();
  const buyerKey = randomBytes(32);
  const buyer = p2wpkh(pubECDSA(buyerKey, true), REGTEST_NETWORK);
  const mine = (n: number) => rpc.call<string[]>('generatetoaddress', [n, p2wpkh(pubECDSA(randomBytes(32), true), REGTEST_NETWORK).address!]);

  before(async () => {
    ({ db, cleanup } = await openMigrated(pg));
    h = await startEmbeddedChain({ mempoolTxs: 0, mempoolRefreshMs: 0 });
    rpc = new BitcoinRpc({ endpoints: [{ url: h.url, user: h.user, password: h.password }], timeoutMs: 20_000 });
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hashhub-funding-api-'));
    operator = resolveOperatorToken({ dataDir }).token;
    service = new AccountingService({
      db, node: rpc, network: 'regtest', logger: pino({ level: 'silent' }), now: () => clock,
      config: { ...DEFAULT_ACCOUNTING, periodSeconds: 10, deposits: { enabled: true, confirmations: CONF, reorgWatchBlocks: 144 } },
    });
    await service.init();
    clock = service.frame!.startedAt + 3000;
    const metrics = createMetrics({ pool: () => snapshot() }, { defaultMetrics: false });
    registerAccountingMetrics(metrics.registry, service, () => clock);
    app = buildApi({
      stats: new SqlStatsReader(db), pool: () => snapshot(), metrics,
      health: { db: async () => {}, node: async () => ({ synced: true, height: 1 }), templateAgeMs: () => 0, draining: () => false },
      accounting: { service, auth: new Auth(db, operator), openRegistration: true, now: () => clock },
    });
    owner = (await req('POST', '/api/v1/accounts', undefined, { name: 'dana' })).json().ownerToken;
    watcher = (await req('POST', '/api/v1/accounts/dana/tokens', owner, { role: 'watcher' })).json().token;
  });
  after(async () => {
    await app?.close(); rpc?.close(); await h?.close(); await cleanup?.();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  function snapshot() {
    return { connections: 0, authorizedSessions: 0, shares: emptyOutcomeCounts(), blocks: emptyBlockCounters(), blockResults: {}, lastBlock: null, template: null, network: null, draining: false };
  }
  const req = (method: 'GET' | 'POST' | 'PATCH', url: string, token?: string, payload?: unknown) =>
    app.inject({ method, url, headers: token ? { authorization: `Bearer ${token}` } : {}, payload: payload as never });

  test('deposit address: the owner (or operator) gets one address, made once; a watcher may not make one; others are refused', async () => {
    const r = await req('GET', '/api/v1/accounts/dana/deposit-address', owner);
    assert.equal(r.statusCode, 200, r.body);
    const { address, label, confirmations } = r.json();
    assert.match(address, /^bcrt1/);
    assert.equal(label, 'hashhub:dana');
    assert.equal(confirmations, CONF);
    assert.equal((await req('GET', '/api/v1/accounts/dana/deposit-address', operator)).json().address, address);
    assert.equal((await req('GET', '/api/v1/accounts/dana/deposit-address', watcher)).statusCode, 403);
    assert.equal((await req('GET', '/api/v1/accounts/dana/deposit-address')).statusCode, 401);
    assert.equal((await req('GET', '/api/v1/accounts/nobody/deposit-address', operator)).json().error.code, 'ACCOUNT_NOT_FOUND');
  });

  test('a payout address that is one of the pool\'s deposit addresses is refused (payouts to it would come back as deposits, the pool paying the fee every round)', async () => {
    const own = (await req('GET', '/api/v1/accounts/dana/deposit-address', owner)).json().address as string;
    const r = await req('PATCH', '/api/v1/accounts/dana/settings', owner, { payoutAddress: own });
    assert.equal(r.statusCode, 400, r.body);
    assert.match(r.json().error.message, /deposit address of this pool/);
    // Another account's deposit address too (two accounts paying each other round and round).
    const other = (await req('POST', '/api/v1/accounts', undefined, { name: 'erin' })).json().ownerToken as string;
    const erinDeposit = (await req('GET', '/api/v1/accounts/erin/deposit-address', other)).json().address as string;
    assert.equal((await req('PATCH', '/api/v1/accounts/dana/settings', owner, { payoutAddress: erinDeposit })).statusCode, 400);
    // An address outside the pool's wallet is fine.
    assert.equal((await req('PATCH', '/api/v1/accounts/dana/settings', owner, { payoutAddress: buyer.address })).statusCode, 200);
    assert.equal((await req('GET', '/api/v1/accounts/dana/settings', owner)).json().payoutAddress, buyer.address);
    assert.equal((await req('PATCH', '/api/v1/accounts/dana/settings', owner, { payoutAddress: null })).statusCode, 200);
  });

  test('a deposit is credited by the service tick after the configured confirmations and listed for the owner and watcher', async () => {
    const address = (await req('GET', '/api/v1/accounts/dana/deposit-address', owner)).json().address as string;
    const [cbBlock] = await rpc.call<string[]>('generatetoaddress', [1, buyer.address]);
    await mine(100);
    const cb = (await rpc.call<{ tx: { txid: string; vout: { value: number }[] }[] }>('getblock', [cbBlock, 2])).tx[0];
    const value = BigInt(Math.round(cb.vout[0].value * 1e8));
    const tx = new Transaction();
    tx.addInput({ txid: cb.txid, index: 0, witnessUtxo: { script: buyer.script, amount: value } });
    tx.addOutputAddress(address, 2_000_000n, REGTEST_NETWORK);
    tx.addOutputAddress(buyer.address!, value - 2_000_000n - 1000n, REGTEST_NETWORK);
    tx.sign(buyerKey);
    tx.finalize();
    const txid = await rpc.call<string>('sendrawtransaction', [tx.hex]);
    await service.tick();
    let list = (await req('GET', '/api/v1/accounts/dana/deposits', watcher)).json();
    assert.deepEqual(list.items.map((d: { txid: string; state: string }) => [d.txid, d.state]), [[txid, 'seen']]);
    await mine(CONF - 1);
    await service.tick();
    assert.equal((await req('GET', '/api/v1/accounts/dana/balance', owner)).json().balance, '0', 'not credited below the threshold');
    await mine(1);
    await service.tick();
    await service.tick();
    list = (await req('GET', '/api/v1/accounts/dana/deposits', owner)).json();
    assert.equal(list.total, 1);
    assert.equal(list.items[0].state, 'credited');
    assert.equal(list.items[0].amount, '2000000');
    assert.equal((await req('GET', '/api/v1/accounts/dana/balance', owner)).json().balance, '2000000');
    assert.equal(service.stats.depositsCredited, 1);
    assert.deepEqual((await req('GET', '/api/v1/accounting/verify', operator)).json(), { ok: true, problems: [] });
    assert.equal(list.items[0].confirmations, CONF);
    await mine(1);
    await service.tick();
    assert.equal((await req('GET', '/api/v1/accounts/dana/deposits', owner)).json().items[0].confirmations, CONF + 1, 'depth kept current');
    // A restarted service (a new process on the same database, its cursor and deposits as stored): no second credit.
    const restarted = new AccountingService({
      db, node: rpc, network: 'regtest', logger: pino({ level: 'silent' }), now: () => clock,
      config: { ...DEFAULT_ACCOUNTING, periodSeconds: 10, deposits: { enabled: true, confirmations: CONF, reorgWatchBlocks: 144 } },
    });
    await restarted.tick();
    await db.query('DELETE FROM deposit_scan');
    await restarted.tick();
    await restarted.stop();
    assert.equal(restarted.stats.depositsCredited, 0);
    assert.equal((await req('GET', '/api/v1/accounts/dana/balance', owner)).json().balance, '2000000');
    const keys = await db.query<{ k: string }>("SELECT idempotency_key AS k FROM journal_entries WHERE idempotency_key LIKE 'deposit:%'");
    assert.deepEqual(keys.rows.map((r) => r.k), [`deposit:${txid}:0`]);
    const m = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    assert.match(m, /hashhub_deposits\{state="credited"\} 1/);
    assert.match(m, /hashhub_deposit_shortfall_sats 0/);
    const docs = (await app.inject({ method: 'GET', url: '/docs/json' })).json();
    for (const p of ['/api/v1/accounts/{account}/deposit-address', '/api/v1/accounts/{account}/deposits', '/api/v1/accounts/{account}/credits']) assert.ok(docs.paths[p], p);
  });

  test('operator credits: operator only, idempotent by key, one-line JSON errors for a missing reason or a bad amount', async () => {
    const before = await ledger.balance(db, owned('balance', await accountId(db, 'dana')));
    const body = { amount: '300000', reason: 'refund for an outage, ticket 7', key: 'ticket-7' };
    const r1 = await req('POST', '/api/v1/accounts/dana/credits', operator, body);
    assert.equal(r1.statusCode, 200, r1.body);
    assert.equal(r1.json().status, 'posted');
    assert.equal(r1.json().balance, (before + 300_000n).toString());
    assert.equal((await req('POST', '/api/v1/accounts/dana/credits', operator, body)).json().status, 'duplicate');
    assert.equal((await req('POST', '/api/v1/accounts/dana/credits', owner, body)).statusCode, 403);
    const conflict = await req('POST', '/api/v1/accounts/dana/credits', operator, { ...body, amount: '1' });
    assert.equal(conflict.statusCode, 409);
    for (const bad of [{ amount: '300000', key: 'k1' }, { ...body, key: 'k2', reason: '   ' }, { ...body, key: 'k3', amount: '0' },
      { ...body, key: 'k4', amount: '-5' }, { ...body, key: 'k5', amount: '1.5' }, { ...body, key: 'k6', amount: 'lots' }]) {
      const r = await req('POST', '/api/v1/accounts/dana/credits', operator, bad);
      assert.equal(r.statusCode, 400, `${JSON.stringify(bad)} → ${r.body}`);
      assert.equal(r.json().error.code, 'VALIDATION_FAILED');
      assert.ok(!r.body.includes('\n'), 'one line');
    }
    assert.equal(await ledger.balance(db, owned('balance', await accountId(db, 'dana'))), before + 300_000n);
    const logged = await db.query<{ who: string; reason: string }>('SELECT who, reason FROM operator_credits');
    assert.equal(logged.rows.length, 1);
    assert.match(logged.rows[0].who, /^operator from /);
    assert.equal(logged.rows[0].reason, body.reason);
  });

  test('hashhub accounts credit / deposits through the running API; errors are one line', async () => {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const port = (app.server.address() as { port: number }).port;
    const cli = (...args: string[]) => new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args, '--api', `http://127.0.0.1:${port}`],
        { cwd: ROOT, env: { ...process.env, HASHHUB_DATA_DIR: dataDir, HASHHUB_OPERATOR_TOKEN: operator } },
        (err, stdout, stderr) => resolve({ status: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
    });
    // Three spawns only (each is a tsx start-up, seconds on a busy machine); the API's own checks are above.
    const ok = await cli('accounts', 'credit', 'dana', '1000', '--reason', 'cli test', '--key', 'cli-1');
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /^credited 1,000 sat to dana; balance /);
    const badAmount = await cli('accounts', 'credit', 'dana', '12abc', '--reason', 'x', '--key', 'cli-3');
    assert.equal(badAmount.status, 1);
    assert.match(badAmount.stderr, /^hashhub: "12abc" is not a positive whole number of satoshis\n$/);
    const deps = await cli('accounts', 'deposits', 'dana');
    assert.equal(deps.status, 0, deps.stderr);
    assert.match(deps.stdout, /credited/);
  });
});
