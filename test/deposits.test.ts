import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { Transaction, p2wpkh } from '@scure/btc-signer';
import { pubECDSA } from '@scure/btc-signer/utils.js';
import { type DepositFault, type DepositOutcome, Deposits } from '../src/accounting/deposits.ts';
import { IdempotencyConflictError, ValidationError } from '../src/accounting/errors.ts';
import { Ledger, credit, debit, owned, pool } from '../src/accounting/ledger.ts';
import { BitcoinRpc } from '../src/node/rpc.ts';
import { type EmbeddedChainHandle, REGTEST_NETWORK, startEmbeddedChain } from '../src/node/regtest/index.ts';
import { migrate } from '../src/store/migrate.ts';
import { PgDatabase } from '../src/store/pg.ts';
import { accountId } from './helpers/accounting.ts';
import { SKIP_PG, type TestPg, createTestPg } from './helpers/pg.ts';

// Deposits through the embedded chain's real wallet: a buyer (a key outside the node wallet, signing its own
// transactions) pays the account's deposit address; the deposit is credited once at N confirmations, never
// before, never twice (a restart, a lost cursor, a crash or a SIGKILL between recording and crediting), and
// reversed when invalidateblock takes its block out of the best chain (what the account already spent becomes
// a deposit_shortfall). Operator credits: idempotent by key, refused without a reason or with a bad amount.

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OTHER = 'bcrt1q0ht9tyks4vh7p5p904t340cr9nvahy7uevmqwj';
const N = 3;
const ledger = new Ledger();
const silent = pino({ level: 'silent' });

describe('deposits through the embedded wallet', { skip: SKIP_PG }, () => {
  let tpg: TestPg;
  let db: PgDatabase;
  let h: EmbeddedChainHandle;
  let rpc: BitcoinRpc;
  let now = Date.UTC(2031, 9, 1);
  const call = <T>(m: string, p: unknown[] = []) => rpc.call<T>(m, p);
  // The buyer's own key and its coins (matured coinbases), one coin per deposit.
  const buyerKey = randomBytes(32);
  const buyer = p2wpkh(pubECDSA(buyerKey, true), REGTEST_NETWORK);
  const coins: { txid: string; value: bigint }[] = [];
  let seq = 0;

  const deposits = (fault?: (p: DepositFault, txid: string) => void) =>
    new Deposits(db, { node: rpc, wallet: rpc }, { confirmations: N, reorgWatchBlocks: 144, network: 'regtest' }, silent, fault);

  before(async () => {
    tpg = await createTestPg();
    db = new PgDatabase({ url: tpg.url, maxConnections: 4 });
    await migrate(db);
    h = await startEmbeddedChain({ mempoolTxs: 0, mempoolRefreshMs: 0 });
    rpc = new BitcoinRpc({ endpoints: [{ url: h.url, user: h.user, password: h.password }], timeoutMs: 20_000 });
    const hashes = await call<string[]>('generatetoaddress', [12, buyer.address]);
    await call('generatetoaddress', [100, OTHER]);
    for (const bh of hashes) {
      const b = await call<{ tx: { txid: string; vout: { value: number }[] }[] }>('getblock', [bh, 2]);
      coins.push({ txid: b.tx[0].txid, value: BigInt(Math.round(b.tx[0].vout[0].value * 1e8)) });
    }
  });
  after(async () => { rpc?.close(); await h?.close(); await db?.close(); await tpg?.drop(); });

  async function account(): Promise<{ id: bigint; name: string; address: string }> {
    const name = `buyer${++seq}`;
    const id = await accountId(db, name);
    const a = await deposits().address(id, name);
    return { id, name, address: a.address };
  }

  /** The buyer pays `sats` to `address` from one of its coins; the txid. */
  async function pay(address: string, sats: bigint): Promise<string> {
    const c = coins.shift()!;
    const tx = new Transaction();
    tx.addInput({ txid: c.txid, index: 0, witnessUtxo: { script: buyer.script, amount: c.value } });
    tx.addOutputAddress(address, sats, REGTEST_NETWORK);
    tx.addOutputAddress(buyer.address!, c.value - sats - 1000n, REGTEST_NETWORK);
    tx.sign(buyerKey);
    tx.finalize();
    return call<string>('sendrawtransaction', [tx.hex]);
  }

  // A fresh address each time: after invalidateblock the same template to the same address would be the very
  // block that was invalidated (the embedded miner is deterministic), which the chain refuses as duplicate-invalid.
  const mine = (n = 1) => call<string[]>('generatetoaddress', [n, p2wpkh(pubECDSA(randomBytes(32), true), REGTEST_NETWORK).address!]);
  const creditEntries = async (txid: string) =>
    (await db.query<{ key: string }>("SELECT idempotency_key AS key FROM journal_entries WHERE idempotency_key LIKE $1 ORDER BY id", [`deposit:${txid}:%`])).rows.map((r) => r.key);
  const state = async (txid: string) => (await db.query<{ state: string; credits: number; shortfall: string }>('SELECT state, credits, shortfall::text FROM deposits WHERE txid = $1', [txid])).rows[0];
  const kinds = (o: DepositOutcome[]) => o.map((x) => x.kind);

  test('one current address per account, made by the wallet with the account\'s label', async () => {
    const a = await account();
    const again = await deposits().address(a.id, a.name);
    assert.equal(again.address, a.address);
    assert.equal(again.created, false);
    assert.equal(again.label, `hashhub:${a.name}`);
    const info = await call<{ ismine: boolean }>('getaddressinfo', [a.address]);
    assert.equal(info.ismine, true);
    // Concurrent first requests: one address wins, both callers see it.
    const b = { id: await accountId(db, 'racer'), name: 'racer' };
    const [x, y] = await Promise.all([deposits().address(b.id, b.name), deposits().address(b.id, b.name)]);
    assert.equal(x.address, y.address);
  });

  test('credited exactly once at N confirmations (not before); a restart or a lost cursor changes nothing', async () => {
    const a = await account();
    const txid = await pay(a.address, 1_234_567n);
    now += 1000;
    let r = await deposits().run(now);
    assert.equal(r.recorded, 1);
    assert.deepEqual(kinds(r.outcomes), []);
    assert.equal((await state(txid)).state, 'seen');
    for (let conf = 1; conf < N; conf++) {
      await mine();
      r = await deposits().run(now);
      assert.deepEqual(kinds(r.outcomes), [], `not credited at ${conf} confirmation(s)`);
      assert.equal(await ledger.balance(db, owned('balance', a.id)), 0n);
    }
    await mine();
    r = await deposits().run(now);
    assert.deepEqual(kinds(r.outcomes), ['credited']);
    assert.equal(await ledger.balance(db, owned('balance', a.id)), 1_234_567n);
    assert.deepEqual(await creditEntries(txid), [`deposit:${txid}:0`]);
    // A "restarted" process (new instance), more blocks, and the cursor lost (a full rescan): still one credit.
    await mine(2);
    assert.deepEqual(kinds((await deposits().run(now)).outcomes), []);
    await db.query('DELETE FROM deposit_scan');
    assert.deepEqual(kinds((await deposits().run(now)).outcomes), []);
    assert.equal(await ledger.balance(db, owned('balance', a.id)), 1_234_567n);
    assert.deepEqual(await creditEntries(txid), [`deposit:${txid}:0`]);
    const list = await deposits().list(db, a.id, { limit: 10, offset: 0 });
    assert.equal(list.total, 1);
    assert.equal(list.items[0].state, 'credited');
    assert.equal(list.items[0].amount, 1_234_567n);
    assert.deepEqual(await ledger.verify(db), []);
  });

  test('a reorg that removes the deposit\'s block reverses it; mined again, it is credited again under a new key', async () => {
    const a = await account();
    const txid = await pay(a.address, 500_000n);
    const [blk] = await mine();
    await mine(N - 1);
    assert.deepEqual(kinds((await deposits().run(now)).outcomes), ['credited']);
    const walletBefore = await ledger.balance(db, pool('wallet'));
    await call('invalidateblock', [blk]);
    const r = await deposits().run(now);
    assert.deepEqual(kinds(r.outcomes), ['reversed']);
    assert.equal(await ledger.balance(db, owned('balance', a.id)), 0n);
    assert.equal(await ledger.balance(db, pool('wallet')), walletBefore - 500_000n);
    assert.equal((await state(txid)).state, 'reversed');
    assert.deepEqual(kinds((await deposits().run(now)).outcomes), [], 'reversed once');
    assert.deepEqual(await ledger.verify(db), []);
    // The transaction went back to the mempool; mined on the new branch it is credited again after N blocks.
    await mine(N - 1);
    assert.deepEqual(kinds((await deposits().run(now)).outcomes), []);
    await mine();
    assert.deepEqual(kinds((await deposits().run(now)).outcomes), ['credited']);
    assert.equal(await ledger.balance(db, owned('balance', a.id)), 500_000n);
    assert.deepEqual(await creditEntries(txid), [`deposit:${txid}:0`, `deposit:${txid}:0:reversal`, `deposit:${txid}:0:credit2`]);
    assert.deepEqual(await ledger.verify(db), []);
  });

  test('a wallet that loses a credited transaction does not reverse it: the node says whether its block is in the best chain', async () => {
    const a = await account();
    const txid = await pay(a.address, 40_000n);
    await mine(N);
    assert.deepEqual(kinds((await deposits().run(now)).outcomes), ['credited']);
    // A wallet that calls the transaction unconfirmed (a restored wallet before its rescan): the chain still has it.
    const forgetful = { call: <T>(m: string, p: unknown[] = []): Promise<T> => (m === 'gettransaction' ? Promise.resolve({ confirmations: 0 } as T) : rpc.call<T>(m, p)) };
    const d = new Deposits(db, { node: rpc, wallet: forgetful }, { confirmations: N, reorgWatchBlocks: 144, network: 'regtest' }, silent);
    assert.deepEqual(kinds((await d.run(now)).outcomes), []);
    assert.equal((await state(txid)).state, 'credited');
    assert.equal(await ledger.balance(db, owned('balance', a.id)), 40_000n);
  });

  test('a reversed deposit the account already spent: the balance gives what it has, the rest is a typed shortfall', async () => {
    const a = await account();
    const txid = await pay(a.address, 800_000n);
    const [blk] = await mine();
    await mine(N - 1);
    assert.deepEqual(kinds((await deposits().run(now)).outcomes), ['credited']);
    // The buyer escrows 600,000 of it for a bid (what the market does).
    await ledger.postNow(db, { key: `test:escrow:${a.name}`, kind: 'market_escrow', effectiveAt: new Date(now),
      postings: [debit(owned('balance', a.id), 600_000n), credit(owned('buyer_escrow', a.id), 600_000n)] });
    await call('invalidateblock', [blk]);
    const r = await deposits().run(now);
    assert.equal(r.outcomes.length, 1);
    const o = r.outcomes[0];
    assert.ok(o.kind === 'reversed-short', JSON.stringify(kinds(r.outcomes)));
    assert.equal(o.shortfall, 600_000n);
    assert.equal(await ledger.balance(db, owned('balance', a.id)), 0n);
    assert.equal(await ledger.balance(db, owned('deposit_shortfall', a.id)), 600_000n);
    assert.equal((await state(txid)).shortfall, '600000');
    assert.deepEqual((await deposits().shortfalls(db)).map((s) => s.txid), [txid]);
    assert.deepEqual(await ledger.verify(db), []);
    await mine(N); // the tx is mined again: credited again (the shortfall stays for the operator to settle)
    assert.deepEqual(kinds((await deposits().run(now)).outcomes), ['credited']);
    assert.deepEqual(await ledger.verify(db), []);
  });

  for (const point of ['recorded', 'credit-posted', 'credited'] as const) {
    test(`a crash at "${point}" (fault injected) never credits twice`, async () => {
      const a = await account();
      const txid = await pay(a.address, 70_000n);
      await mine(N);
      // A crash while recording stops the pass; one inside a deposit's credit is that deposit's failure (the others go on).
      const crashed = await deposits((p) => { if (p === point) throw new Error(`crash at ${p}`); }).run(now).then(
        (r) => r.outcomes.map((o) => (o.kind === 'failed' ? o.error : o.kind)), (e: Error) => [e.message]);
      assert.deepEqual(crashed, [`crash at ${point}`]);
      if (point !== 'credited') assert.equal((await state(txid)).state, 'seen', 'the crash left it uncredited');
      await deposits().run(now);
      await deposits().run(now);
      assert.equal(await ledger.balance(db, owned('balance', a.id)), 70_000n);
      assert.deepEqual(await creditEntries(txid), [`deposit:${txid}:0`]);
      assert.equal((await state(txid)).credits, 1);
      assert.deepEqual(await ledger.verify(db), []);
    });
  }

  function child(killAt: string | null): Promise<{ signal: NodeJS.Signals | null; out: string }> {
    return new Promise((resolve, reject) => {
      const c = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/deposit-child.ts'], {
        cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, HASHHUB_TEST_DB: tpg.url, HASHHUB_TEST_NODE: h.url, HASHHUB_TEST_NODE_USER: h.user, HASHHUB_TEST_NODE_PASSWORD: h.password,
          HASHHUB_TEST_NOW: String(now), HASHHUB_TEST_CONF: String(N), ...(killAt ? { HASHHUB_KILL_AT: killAt } : {}) },
      });
      let out = '';
      let err = '';
      c.stdout.on('data', (d: Buffer) => { out += d; });
      c.stderr.on('data', (d: Buffer) => { err += d; });
      c.on('error', reject);
      c.on('exit', (code, signal) => (code && code !== 0 ? reject(new Error(`deposit child failed (${code}): ${err}`)) : resolve({ signal, out })));
    });
  }

  test('a process SIGKILLed between recording and crediting, and one killed inside the credit: one credit after restart', async () => {
    for (const point of ['recorded', 'credit-posted']) {
      const a = await account();
      const txid = await pay(a.address, 90_000n);
      await mine(N);
      const k = await child(point);
      assert.equal(k.signal, 'SIGKILL', `killed at ${point}`);
      assert.equal((await state(txid)).state, 'seen', 'recorded, not credited');
      const r = await child(null);
      assert.equal(r.signal, null);
      await child(null);
      assert.equal(await ledger.balance(db, owned('balance', a.id)), 90_000n);
      assert.deepEqual(await creditEntries(txid), [`deposit:${txid}:0`]);
      assert.deepEqual(await ledger.verify(db), []);
    }
  });

  test('operator credit: idempotent by key, logged with who and why, refused without a reason or with a bad amount', async () => {
    const a = await account();
    const d = deposits();
    const r1 = await d.operatorCredit(a.id, 250_000n, 'goodwill for ticket 42', 'operator from 127.0.0.1', 'ticket-42', now);
    const r2 = await d.operatorCredit(a.id, 250_000n, 'goodwill for ticket 42', 'operator from 127.0.0.1', 'ticket-42', now);
    assert.equal(r1.status, 'posted');
    assert.equal(r2.status, 'duplicate');
    assert.equal(await ledger.balance(db, owned('balance', a.id)), 250_000n);
    const log = await db.query<{ who: string; reason: string; amount: string }>('SELECT who, reason, amount::text FROM operator_credits WHERE account_id = $1::bigint', [a.id.toString()]);
    assert.deepEqual(log.rows, [{ who: 'operator from 127.0.0.1', reason: 'goodwill for ticket 42', amount: '250000' }]);
    await assert.rejects(d.operatorCredit(a.id, 1n, 'x', 'op', 'ticket-42', now), IdempotencyConflictError);
    await assert.rejects(d.operatorCredit(a.id, 1000n, '   ', 'op', 'k2', now), (e: unknown) => e instanceof ValidationError && e.field === 'reason');
    await assert.rejects(d.operatorCredit(a.id, 0n, 'why', 'op', 'k3', now), (e: unknown) => e instanceof ValidationError && e.field === 'amount');
    await assert.rejects(d.operatorCredit(a.id, -5n, 'why', 'op', 'k4', now), (e: unknown) => e instanceof ValidationError && e.field === 'amount');
    await assert.rejects(d.operatorCredit(a.id, 5n, 'why', 'op', 'bad key!', now), (e: unknown) => e instanceof ValidationError && e.field === 'key');
    assert.equal(await ledger.balance(db, owned('balance', a.id)), 250_000n);
    assert.deepEqual(await ledger.verify(db), []);
  });
});

describe('the embedded wallet\'s listsinceblock (Core\'s shape)', () => {
  let h: EmbeddedChainHandle;
  let rpc: BitcoinRpc;
  const call = <T>(m: string, p: unknown[] = []) => rpc.call<T>(m, p);
  before(async () => {
    h = await startEmbeddedChain({ mempoolTxs: 0, mempoolRefreshMs: 0 });
    rpc = new BitcoinRpc({ endpoints: [{ url: h.url, user: h.user, password: h.password }], timeoutMs: 20_000 });
  });
  after(async () => { rpc?.close(); await h?.close(); });

  interface Since { transactions: { address: string; category: string; label?: string; vout: number; confirmations: number; blockhash?: string; txid: string }[]; lastblock: string }

  test('receipts with labels and depth; lastblock N deep; from a block that left the chain it starts at the fork point', async () => {
    const labelled = await call<string>('getnewaddress', ['hashhub:x']);
    const hashes = await call<string[]>('generatetoaddress', [3, labelled]);
    let r = await call<Since>('listsinceblock', [null, 2]);
    assert.deepEqual(r.transactions.map((t) => [t.category, t.label, t.confirmations, t.vout]), [['immature', 'hashhub:x', 3, 0], ['immature', 'hashhub:x', 2, 0], ['immature', 'hashhub:x', 1, 0]]);
    assert.equal(r.lastblock, hashes[1], 'the block 2 deep');
    r = await call<Since>('listsinceblock', [hashes[1], 1]);
    assert.deepEqual(r.transactions.map((t) => t.blockhash), [hashes[2]]);
    assert.equal(r.lastblock, hashes[2]);
    // hashes[1] and [2] leave the chain: from hashes[2] the listing starts after the fork point (hashes[0]).
    await call('invalidateblock', [hashes[1]]);
    const other = p2wpkh(pubECDSA(randomBytes(32), true), REGTEST_NETWORK).address!;
    await call('generatetoaddress', [1, other]);
    const relabelled = await call<string>('getnewaddress', ['hashhub:y']);
    const [mine] = await call<string[]>('generatetoaddress', [1, relabelled]);
    r = await call<Since>('listsinceblock', [hashes[2]]);
    assert.deepEqual(r.transactions.map((t) => [t.label, t.blockhash]), [['hashhub:y', mine]]);
    await assert.rejects(call('listsinceblock', ['00'.repeat(32)]), /Block not found/);
  });
});
