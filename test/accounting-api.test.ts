import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { createAccount } from '../src/accounting/accounts.ts';
import { Ledger, credit, debit, owned, pool } from '../src/accounting/ledger.ts';
import { registerAccountingMetrics } from '../src/accounting/metrics.ts';
import { AccountingService, DEFAULT_ACCOUNTING } from '../src/accounting/service.ts';
import { buildApi } from '../src/api/app.ts';
import { Auth, resolveOperatorToken } from '../src/api/auth.ts';
import { createMetrics } from '../src/api/metrics.ts';
import { emptyOutcomeCounts } from '../src/shares/outcome.ts';
import { BitcoinRpc } from '../src/node/rpc.ts';
import { type EmbeddedChainHandle, startEmbeddedChain } from '../src/node/regtest/index.ts';
import type { Database } from '../src/store/db.ts';
import { SqlStatsReader } from '../src/store/stats-reader.ts';
import { emptyBlockCounters } from '../src/shares/block-state.ts';
import { BACKENDS, accountId, insertBlock, openMigrated, setBlockValue, setWatermark, share, writeShares } from './helpers/accounting.ts';
import { blockHex, poolScript } from './helpers/accounting-blocks.ts';
import { SKIP_PG } from './helpers/pg.ts';

// The accounting API: who may see and change what (operator, owner, watcher, nobody), bad input named by field
// with nothing stored, and a payout driven end to end through it.

const pg = BACKENDS.find((b) => b.name === 'postgres')!;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MAINNET = 'bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4';
const REGTEST = 'bcrt1q0ht9tyks4vh7p5p904t340cr9nvahy7uevmqwj';

describe('accounting API', { skip: SKIP_PG }, () => {
  let db: Database;
  let cleanup: () => Promise<void>;
  let h: EmbeddedChainHandle;
  let rpc: BitcoinRpc;
  let app: FastifyInstance;
  let service: AccountingService;
  let operator: string;
  let dataDir: string;
  let clock = Date.now();
  const ledger = new Ledger();

  before(async () => {
    ({ db, cleanup } = await openMigrated(pg));
    h = await startEmbeddedChain({ mempoolTxs: 0, mempoolRefreshMs: 0 });
    rpc = new BitcoinRpc({ endpoints: [{ url: h.url, user: h.user, password: h.password }], timeoutMs: 20_000 });
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hashhub-acct-api-'));
    const op = resolveOperatorToken({ dataDir });
    assert.equal(op.created, true);
    assert.equal(fs.statSync(op.file!).mode & 0o777, 0o600);
    assert.equal(resolveOperatorToken({ dataDir }).token, op.token, 'generated once, then read back');
    operator = op.token;
    service = new AccountingService({
      db, node: rpc, network: 'regtest', logger: pino({ level: 'silent' }), now: () => clock,
      config: { ...DEFAULT_ACCOUNTING, periodSeconds: 10, payouts: { ...DEFAULT_ACCOUNTING.payouts, addressChangeDelaySeconds: 0, defaultThreshold: 50_000n, minThreshold: 10_000n, confirmations: 1, fallbackSatVb: 2 } },
    });
    await service.init();
    // Inside the first credit period: a scheme change then waits for the next one.
    clock = service.frame!.startedAt + 3000;
    const metrics = createMetrics({ pool: () => snapshot() }, { defaultMetrics: false });
    registerAccountingMetrics(metrics.registry, service, () => clock);
    app = buildApi({
      stats: new SqlStatsReader(db), pool: () => snapshot(), metrics,
      health: { db: async () => {}, node: async () => ({ synced: true, height: 1 }), templateAgeMs: () => 0, draining: () => false },
      accounting: { service, auth: new Auth(db, operator), openRegistration: true, now: () => clock },
    });
  });
  after(async () => {
    await app?.close(); rpc?.close(); await h?.close(); await cleanup?.();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  function snapshot() {
    return { connections: 0, authorizedSessions: 0, shares: emptyOutcomeCounts(), blocks: emptyBlockCounters(), blockResults: {}, lastBlock: null, template: null, network: null, draining: false };
  }
  const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
  const req = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, token?: string, payload?: unknown) =>
    app.inject({ method, url, headers: token ? bearer(token) : {}, payload: payload as never });

  let owner = '';
  let watcher = '';

  test('accounts: anyone registers a new name and gets its owner token once; a name that mined is the operator\'s to give', async () => {
    const r = await req('POST', '/api/v1/accounts', undefined, { name: 'alice' });
    assert.equal(r.statusCode, 201);
    owner = r.json().ownerToken;
    assert.match(owner, /^hho_/);
    assert.equal((await req('POST', '/api/v1/accounts', undefined, { name: 'alice' })).statusCode, 409);
    assert.equal((await req('POST', '/api/v1/accounts', undefined, { name: 'bad name!' })).json().error.code, 'VALIDATION_FAILED');
    await accountId(db, 'miner-without-owner');
    const claim = await req('POST', '/api/v1/accounts', undefined, { name: 'miner-without-owner' });
    assert.equal(claim.statusCode, 409);
    assert.match(claim.json().error.message, /operator/);
    const byOp = await req('POST', '/api/v1/accounts', operator, { name: 'miner-without-owner' });
    assert.equal(byOp.statusCode, 201);
    assert.equal(byOp.json().existed, true);
    // The database never holds a usable token.
    const stored = await db.query<{ h: Buffer }>('SELECT token_hash AS h FROM account_tokens');
    assert.ok(stored.rows.every((x) => !x.h.toString('utf8').includes(owner.slice(4, 20))));
  });

  test('accounts: an address of the pool\'s network is not open for registration; two registrations of one name at once give one owner', async () => {
    // Failed before: anyone could register the account of an address before its miner first mined, hold its owner
    // token and set another payout address (its earnings then paid the registrant); and two registrations of one
    // new name at once both got an owner token (the existence check and the insert were separate steps).
    const addr = REGTEST;
    const open = await req('POST', '/api/v1/accounts', undefined, { name: addr });
    assert.equal(open.statusCode, 409);
    assert.match(open.json().error.message, /is a Bitcoin address: it is created by mining to it .*operator/);
    assert.equal((await db.query('SELECT 1 FROM accounts WHERE name = $1', [addr])).rows.length, 0, 'nothing created');
    // Another network's address is only a name here (it pays nowhere by itself).
    assert.equal((await req('POST', '/api/v1/accounts', undefined, { name: 'bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq' })).statusCode, 201);
    assert.equal((await req('POST', '/api/v1/accounts', operator, { name: addr })).statusCode, 201, 'the operator gives it');

    for (let i = 0; i < 10; i++) {
      const both = await Promise.allSettled([0, 1].map(() => db.transaction((tx) => createAccount(tx, `racer${i}`, false, 'regtest'))));
      assert.deepEqual(both.map((x) => x.status).sort(), ['fulfilled', 'rejected'], `round ${i}`);
      const viaApi = await Promise.all([0, 1].map(() => req('POST', '/api/v1/accounts', undefined, { name: `racer-api${i}` })));
      assert.deepEqual(viaApi.map((x) => x.statusCode).sort(), [201, 409], `API round ${i}`);
    }
    await accountId(db, 'mined-meanwhile');
    const ops = await Promise.allSettled([0, 1].map(() => db.transaction((tx) => createAccount(tx, 'mined-meanwhile', true, 'regtest'))));
    assert.deepEqual(ops.map((x) => x.status).sort(), ['fulfilled', 'rejected'], 'two operator calls on an account without an owner: one owner');
    const doubled = await db.query(`SELECT account_id FROM account_tokens WHERE role = 'owner' AND revoked_at IS NULL GROUP BY account_id HAVING count(*) > 1`);
    assert.equal(doubled.rows.length, 0, 'no account has two live owner tokens');
  });

  test('private data needs this account\'s token; watchers read, only owners (and the operator) write', async () => {
    assert.equal((await req('GET', '/api/v1/accounts/alice/balance')).statusCode, 401);
    assert.equal((await req('GET', '/api/v1/accounts/alice/balance', 'hho_' + 'x'.repeat(43))).statusCode, 401);
    const other = (await req('POST', '/api/v1/accounts', undefined, { name: 'bob' })).json().ownerToken;
    assert.equal((await req('GET', '/api/v1/accounts/alice/balance', other)).statusCode, 403);
    const w = await req('POST', '/api/v1/accounts/alice/tokens', owner, { label: 'dashboard' });
    assert.equal(w.statusCode, 201);
    watcher = w.json().token;
    assert.match(watcher, /^hhw_/);
    const bal = await req('GET', '/api/v1/accounts/alice/balance', watcher);
    assert.equal(bal.statusCode, 200);
    assert.deepEqual(Object.keys(bal.json()).sort(), ['account', 'balance', 'fppsCarryMsat', 'immature', 'inFlight', 'paid', 'payoutAddress', 'scheme', 'soloEarnings', 'threshold']);
    assert.equal((await req('PATCH', '/api/v1/accounts/alice/settings', watcher, { threshold: 60_000 })).statusCode, 403);
    assert.equal((await req('POST', '/api/v1/accounts/alice/tokens', watcher, {})).statusCode, 403);
    assert.equal((await req('POST', '/api/v1/accounts/alice/tokens', owner, { role: 'owner' })).statusCode, 403);
    const list = await req('GET', '/api/v1/accounts/alice/tokens', owner);
    assert.equal(list.json().items.length, 2);
    assert.ok(!JSON.stringify(list.json()).includes(watcher));
    // Revoked: the token stops working at once, though a request a moment before had it looked up (and cached).
    const extra = (await req('POST', '/api/v1/accounts/alice/tokens', owner, {})).json();
    assert.equal((await req('GET', '/api/v1/accounts/alice/balance', extra.token)).statusCode, 200);
    assert.equal((await req('DELETE', `/api/v1/accounts/alice/tokens/${extra.id}`, owner)).statusCode, 204);
    assert.equal((await req('GET', '/api/v1/accounts/alice/balance', extra.token)).statusCode, 401);
    // Operator-only routes.
    assert.equal((await req('GET', '/api/v1/payouts')).statusCode, 401);
    assert.equal((await req('GET', '/api/v1/payouts', owner)).statusCode, 403);
    assert.equal((await req('GET', '/api/v1/payouts', operator)).statusCode, 200);
    assert.equal((await req('GET', '/api/v1/accounting/verify', operator)).json().ok, true);
  });

  test('bad settings are refused with the field named, and nothing is stored', async () => {
    const bad = async (body: unknown, field: string, msg: RegExp) => {
      const r = await req('PATCH', '/api/v1/accounts/alice/settings', owner, body);
      assert.equal(r.statusCode, 400, JSON.stringify(body));
      const e = r.json().error;
      assert.equal(e.code, 'VALIDATION_FAILED');
      assert.equal(e.details[0].path, `/${field}`);
      assert.match(e.message, msg);
    };
    await bad({ payoutAddress: MAINNET }, 'payoutAddress', /mainnet address; this pool runs on regtest/);
    await bad({ payoutAddress: ` ${REGTEST}` }, 'payoutAddress', /whitespace/);
    await bad({ payoutAddress: `${REGTEST}\n` }, 'payoutAddress', /whitespace/);
    await bad({ payoutAddress: REGTEST.slice(0, -1) + (REGTEST.endsWith('j') ? 'k' : 'j') }, 'payoutAddress', /not a valid regtest address/);
    await bad({ payoutAddress: REGTEST, threshold: 100 }, 'threshold', /below this pool's minimum/);
    await bad({ scheme: 'pps' }, 'scheme', /unknown scheme/);
    await bad({ threshold: '12abc' }, 'threshold', /whole number/);
    const s = (await req('GET', '/api/v1/accounts/alice/settings', owner)).json();
    assert.equal(s.payoutAddress, null, 'the address of a refused request was not stored');
    const ok = await req('PATCH', '/api/v1/accounts/alice/settings', owner, { payoutAddress: REGTEST, threshold: '60000', scheme: 'fpps' });
    assert.equal(ok.statusCode, 200);
    assert.equal(ok.json().payoutAddress, REGTEST);
    assert.equal(ok.json().threshold, '60000');
    assert.equal(ok.json().nextScheme.scheme, 'fpps');
    const log = (await req('GET', '/api/v1/accounts/alice/settings/address-log', watcher)).json().items;
    assert.equal(log.length, 1);
    assert.match(log[0].source, /^owner token \d+ from /);
  });

  test('amounts past 21 M BTC and cursors past bigint are refused (400, field named), never a database error (500)', async () => {
    // 21,000,000 BTC + 1 sat, and a 19-digit number past Postgres' bigint (9223372036854775807).
    for (const amount of ['2100000000000001', '9999999999999999999']) {
      const t = await req('PATCH', '/api/v1/accounts/alice/settings', owner, { threshold: amount });
      assert.equal(t.statusCode, 400, `threshold ${amount} → ${t.body}`);
      assert.equal(t.json().error.details[0].path, '/threshold');
      assert.match(t.json().error.message, /above 21,000,000 BTC/);
      const f = await req('POST', '/api/v1/accounting/fund', operator, { amount, reason: 'too much', key: `too-much-${amount.length}` });
      assert.equal(f.statusCode, 400, `fund ${amount} → ${f.body}`);
      assert.equal(f.json().error.details[0].path, '/amount');
    }
    assert.equal((await req('PATCH', '/api/v1/accounts/alice/settings', owner, { threshold: 2_100_000_000_000_001 })).statusCode, 400, 'as a JSON number too');
    const l = await req('GET', '/api/v1/accounts/alice/ledger?before=99999999999999999999999', owner);
    assert.equal(l.statusCode, 400, l.body);
    assert.equal(l.json().error.code, 'VALIDATION_FAILED');
    assert.match(l.json().error.message, /^querystring\.before /);
    // A posting id (bigint) cursor has at most 18 digits, as the other id parameters: 19 can pass the bigint.
    assert.equal((await req('GET', '/api/v1/accounts/alice/ledger?before=999999999999999999', owner)).statusCode, 200);
    assert.equal((await req('GET', '/api/v1/accounts/alice/ledger?before=9999999999999999999', owner)).statusCode, 400);
    assert.equal((await req('GET', '/api/v1/accounts/alice/settings', owner)).json().threshold, '60000', 'nothing stored');
    assert.equal((await req('GET', '/api/v1/accounting/verify', operator)).json().ok, true);
  });

  test('earnings per period with the shares they came from; blocks public by totals, per account for the operator', async () => {
    // alice chose FPPS (from the second period): her shares there are credited per period.
    const frame = service.frame!;
    const start = frame.startedAt + 10_000;
    await setBlockValue(db, 1, 5_000_000_000n, 0x1d00ffff);
    await writeShares(db, [0, 1, 2].map((i) => share({ time: start + 1000 + i, account: 'alice', poolDifficulty: 0.5, height: 1, nbits: 0x1d00ffff })));
    await insertBlock(db, { hash: 'cd'.repeat(32), height: 1, time: start + 2000, account: 'bob', reward: 5_000_000_000n, status: 'pending',
      blockHex: blockHex({ height: 1, bits: 0x1d00ffff, outputs: [{ value: 5_000_000_000n, scriptPubKey: poolScript() }] }) });
    await setWatermark(db, start + 10_000);
    clock = start + 10_001;
    await service.tick();
    const e = (await req('GET', '/api/v1/accounts/alice/earnings', watcher)).json().items;
    const fppsItem = e.find((x: { kind: string }) => x.kind === 'fpps');
    assert.equal(fppsItem.periodStart, new Date(start).toISOString());
    assert.equal(fppsItem.shares, 3);
    assert.ok(BigInt(fppsItem.amount) > 0n);
    const detail = (await req('GET', `/api/v1/accounts/alice/earnings/periods/${encodeURIComponent(fppsItem.periodStart)}`, owner)).json();
    assert.deepEqual(detail.groups.map((g: { height: number; shares: number; difficulty: string }) => [g.height, g.shares, g.difficulty]), [[1, 3, '1.5']]);
    assert.equal(detail.credits[0].credited, fppsItem.amount);
    const blocks = (await req('GET', '/api/v1/accounting/blocks')).json();
    const b = blocks.items.find((x: { hash: string }) => x.hash === 'cd'.repeat(32));
    assert.equal(b.split, 'pooled');
    assert.equal(b.credited, false, 'pending: split, not credited');
    assert.equal((await req('GET', `/api/v1/accounting/blocks/${'cd'.repeat(32)}/credits`, owner)).statusCode, 403);
    assert.equal((await req('GET', `/api/v1/accounting/blocks/${'cd'.repeat(32)}/credits`, operator)).statusCode, 200);
    const bobEarnings = (await req('GET', '/api/v1/accounts/alice/balance', watcher)).json();
    assert.ok(BigInt(bobEarnings.balance) > 0n);
  });

  test('the CLI talks to the running API with the operator token; errors are one line', async () => {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const port = (app.server.address() as { port: number }).port;
    // (Not spawnSync: the API answering the CLI runs in this process.)
    const run = (args: string[], env: Record<string, string>) => new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: ROOT, env: { ...process.env, HASHHUB_DATA_DIR: dataDir, ...env } },
        (err, stdout, stderr) => resolve({ status: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
    });
    const cli = (...args: string[]) => run([...args, '--api', `http://127.0.0.1:${port}`], { HASHHUB_OPERATOR_TOKEN: operator });
    const created = await cli('accounts', 'create', 'carol');
    assert.equal(created.status, 0, created.stderr);
    assert.match(created.stdout, /owner token \(shown once, keep it\): hho_/);
    const shown = await cli('accounts', 'show', 'carol', '--json');
    assert.equal(shown.status, 0, shown.stderr);
    assert.equal(JSON.parse(shown.stdout).balance.balance, '0');
    const status = await cli('accounting', 'verify');
    assert.equal(status.status, 0, status.stderr);
    assert.match(status.stdout, /the ledger is consistent/);
    const bad = await cli('payouts', 'bump', '999', '5');
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^hashhub: NOT_FOUND: no payout batch 999\n$/);
    const denied = await run(['payouts', 'list', '--api', `http://127.0.0.1:${port}`, '--token', owner], {});
    assert.equal(denied.status, 1);
    assert.match(denied.stderr, /FORBIDDEN/);
  });

  test('a payout through the API: run, list, the account sees its txid and confirmations; public totals follow', async () => {
    const poolAddr = 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080';
    await rpc.call('generatetoaddress', [2, poolAddr]);
    await rpc.call('generatetoaddress', [100, REGTEST]);
    assert.equal((await req('POST', '/api/v1/accounting/fund', operator, { amount: '10000000000', reason: 'two test coinbases', key: 'api-test' })).json().status, 'posted');
    assert.equal((await req('POST', '/api/v1/accounting/fund', operator, { amount: '10000000000', reason: 'two test coinbases', key: 'api-test' })).json().status, 'duplicate');
    const alice = await accountId(db, 'alice');
    await ledger.postNow(db, { key: 'api:credit', kind: 'operator_adjustment', effectiveAt: new Date(clock), postings: [debit(pool('pool_revenue'), 70_000n), credit(owned('balance', alice), 70_000n)] });
    clock += 1000;
    const due = (await ledger.balance(db, owned('balance', alice))).toString();
    let r = await req('POST', '/api/v1/payouts/run', operator);
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().created.kind, 'signed');
    r = await req('POST', '/api/v1/payouts/run', operator);
    assert.equal(r.json().progressed[0].kind, 'broadcast');
    await rpc.call('generatetoaddress', [1, REGTEST]);
    r = await req('POST', '/api/v1/payouts/run', operator);
    assert.ok(r.json().progressed.some((p: { kind: string }) => p.kind === 'confirmed'));
    const pays = (await req('GET', '/api/v1/accounts/alice/payouts', watcher)).json().items;
    assert.equal(pays.length, 1);
    assert.equal(pays[0].amount, due);
    assert.equal(pays[0].status, 'confirmed');
    assert.match(pays[0].txid, /^[0-9a-f]{64}$/);
    assert.equal(pays[0].confirmations, 1);
    const batch = (await req('GET', '/api/v1/payouts/1', operator)).json();
    assert.deepEqual(batch.lines, [{ account: 'alice', address: REGTEST, amount: due }]);
    const totals = (await req('GET', '/api/v1/accounting/pool')).json();
    assert.equal(totals.totals.paid, due);
    assert.equal(totals.periodSeconds, 10);
    const rec = (await req('GET', '/api/v1/accounting/reconcile', operator)).json();
    assert.equal(rec.difference, '0');
    const ledgerLines = (await req('GET', '/api/v1/accounts/alice/ledger', owner)).json().items;
    assert.deepEqual(ledgerLines.map((l: { entryKind: string; balanceAfter: string }) => [l.entryKind, l.balanceAfter]), [['payout_reserve', '0'], ['operator_adjustment', due], ['fpps_credit', (BigInt(due) - 70_000n).toString()]]);
    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    assert.match(metrics.body, /hashhub_payout_batches\{status="confirmed"\} 1/);
    const docs = (await app.inject({ method: 'GET', url: '/docs/json' })).json();
    for (const p of ['/api/v1/accounts/{account}/balance', '/api/v1/accounts/{account}/earnings', '/api/v1/payouts/run', '/api/v1/accounting/blocks']) assert.ok(docs.paths[p], p);
  });
});
