import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { AccountingEngine } from '../src/accounting/engine.ts';
import { InsufficientBalanceError } from '../src/accounting/errors.ts';
import { Ledger, credit, debit, owned, pool } from '../src/accounting/ledger.ts';
import type { BooksFrame } from '../src/accounting/params.ts';
import { buildPayout } from '../src/accounting/payouts/build.ts';
import { DEFAULT_POLICY, type FaultPoint, Payouts } from '../src/accounting/payouts/payouts.ts';
import { addressToScript } from '../src/chain/index.ts';
import type { Database } from '../src/store/db.ts';
import { BACKENDS, accountId, insertBlock, openMigrated, setWatermark, setupBooks, share, writeShares } from './helpers/accounting.ts';
import { blockHash, blockHex, poolScript } from './helpers/accounting-blocks.ts';
import { FakeWallet } from './helpers/fake-wallet.ts';
import { SKIP_PG } from './helpers/pg.ts';

// Incidents of other pools, each a test of ours.

const T0 = Date.UTC(2032, 5, 1);
const pg = BACKENDS.find((b) => b.name === 'postgres')!;
const ADDR = ['bcrt1q0ht9tyks4vh7p5p904t340cr9nvahy7uevmqwj', 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080'];

describe('known incidents', { skip: SKIP_PG }, () => {
  let db: Database;
  let cleanup: () => Promise<void>;
  let frame: BooksFrame;
  const ledger = new Ledger();
  let seq = 0;
  before(async () => {
    ({ db, cleanup } = await openMigrated(pg));
    frame = await setupBooks(db, T0, 10, { pplnsN: 1, pplnsMaxWindowSeconds: 600 });
    await ledger.postNow(db, { key: 'inc:fund', kind: 'operator_adjustment', effectiveAt: new Date(T0), postings: [debit(pool('wallet'), 10n ** 12n), credit(pool('operator_adjustments'), 10n ** 12n)] });
  });
  after(async () => { await cleanup?.(); });

  async function owed(sats: bigint, address = ADDR[seq % 2]): Promise<bigint> {
    const id = await accountId(db, `inc${++seq}`);
    await db.query('INSERT INTO account_settings (account_id, payout_address, payout_address_changed_at) VALUES ($1, $2, $3::timestamptz)', [id.toString(), address, new Date(T0).toISOString()]);
    await ledger.postNow(db, { key: `inc:owed:${seq}`, kind: 'operator_adjustment', effectiveAt: new Date(T0), postings: [debit(pool('pool_revenue'), sats), credit(owned('balance', id), sats)] });
    return id;
  }
  const payouts = (wallet: FakeWallet, fault?: (p: FaultPoint, b: bigint) => void) =>
    new Payouts(db, wallet, { ...DEFAULT_POLICY, network: 'regtest', defaultThreshold: 10_000n, addressChangeDelaySeconds: 0, confirmations: 1 }, pino({ level: 'silent' }), fault);

  test('UNOMP #122: a crash between sending a payout and recording it does not pay twice', async () => {
    const wallet = new FakeWallet([{ value: 10n ** 10n }]);
    const id = await owed(1_500_000n, ADDR[0]);
    const crashing = payouts(wallet, (p) => { if (p === 'after-send') throw new Error('killed after sendrawtransaction'); });
    await crashing.run(T0);
    const r = await crashing.run(T0);
    assert.deepEqual(r.progressed.map((x) => x.kind), ['broadcast-failed']);
    assert.equal(wallet.sends, 1, 'the transaction reached the network');
    const stored = await crashing.list(db, { limit: 1, offset: 0 });
    assert.equal(stored.items[0].status, 'signed', 'but the batch was never marked sent');
    // The restarted process finds the stored transaction and sends the same bytes again: the node already has it.
    const restarted = payouts(wallet);
    await restarted.run(T0 + 1);
    assert.equal(wallet.sends, 1, 'no second transaction');
    wallet.mine();
    await restarted.run(T0 + 2);
    assert.equal(wallet.received.get(addressToScript(ADDR[0], 'regtest').toString('hex')), 1_500_000n);
    assert.equal(await ledger.balance(db, owned('balance', id)), 0n);
  });

  test('a failing batch (refused broadcast, a failing database step) does not stop the other payouts', async () => {
    const wallet = new FakeWallet([{ value: 10n ** 9n }, { value: 10n ** 9n }]);
    await owed(2_000_000n);
    const p = payouts(wallet);
    const first = await p.run(T0 + 10);
    assert.equal(first.created.kind, 'signed');
    const stuck = first.created.kind === 'signed' ? first.created.batchId : 0n;
    // Its coin is spent elsewhere before it goes out: every broadcast of it is refused from now on.
    const spentInputs = (await db.query<{ inputs: { txid: string; vout: number }[] }>('SELECT inputs FROM payout_txs WHERE batch_id = $1', [stuck.toString()])).rows[0].inputs;
    for (const i of spentInputs) wallet.coins_.delete(`${i.txid}:${i.vout}`);
    const later = await owed(3_000_000n, ADDR[1]);
    // And the settle of any other batch fails once (a database step that errors): retried, not blocking.
    let failedOnce = false;
    const q = payouts(wallet, (pt, b) => { if (pt === 'before-settle' && b !== stuck && !failedOnce) { failedOnce = true; throw new Error('database step failed'); } });
    for (let i = 0; i < 4; i++) {
      await q.run(T0 + 20 + i).catch(() => undefined);
      wallet.mine();
    }
    await q.run(T0 + 30);
    const list = await q.list(db, { limit: 10, offset: 0 });
    assert.equal(list.items.find((b) => b.id === stuck)?.status, 'signed');
    assert.equal(list.items.find((b) => b.id === stuck)?.reasonCode, 'broadcast-rejected');
    assert.ok(list.items.some((b) => b.id !== stuck && b.status === 'confirmed'), 'the other batch confirmed');
    assert.equal(await ledger.balance(db, owned('balance', later)), 0n);
    assert.ok(failedOnce);
  });

  test('Miningcore #191: one block row per hash, credited once however often it is seen', async () => {
    const engine = new AccountingEngine(db, frame, null);
    const T = T0 + 100_000;
    await writeShares(db, [share({ time: T - 5, account: 'finder', poolDifficulty: 1, nbits: 0x1d00ffff })]);
    const hash = blockHash();
    const b = { hash, height: 400, time: T - 5, account: 'finder', reward: 5_000_000_000n, status: 'confirmed', blockHex: blockHex({ height: 400, bits: 0x1d00ffff, outputs: [{ value: 5_000_000_000n, scriptPubKey: poolScript() }] }) };
    await insertBlock(db, b);
    await assert.rejects(insertBlock(db, b), /duplicate key/);
    await setWatermark(db, T + 1);
    await engine.runOnce(T + 1);
    await engine.runOnce(T + 2);
    const credits = await db.query("SELECT 1 FROM journal_entries WHERE idempotency_key LIKE 'block:%' AND refs->>'block' = $1", [hash]);
    assert.equal(credits.rows.length, 1);
  });

  test('wizstats #56: no balance goes negative, whatever the order of payouts and debits', async () => {
    const id = await owed(50_000n);
    await assert.rejects(ledger.postNow(db, { key: 'inc:overdraw', kind: 'operator_adjustment', effectiveAt: new Date(T0), postings: [debit(owned('balance', id), 50_001n), credit(pool('pool_revenue'), 50_001n)] }), InsufficientBalanceError);
    // A payout signed for the balance, which shrank meanwhile (e.g. a market escrow): the reserve is refused by
    // the database, nothing is stored, and the next run pays what is there.
    const wallet = new FakeWallet([{ value: 10n ** 11n }]);
    const p = payouts(wallet);
    const prep = await p.prepare(T0 + 50);
    assert.ok(prep);
    const built = buildPayout(await wallet.coins(), prep.lines.map((l) => ({ script: addressToScript(l.address, 'regtest'), value: l.amount })), await wallet.changeScript(), 2);
    assert.equal(built.kind, 'built');
    if (built.kind !== 'built') return;
    const signed = await wallet.sign(built.tx);
    await ledger.postNow(db, { key: 'inc:escrow', kind: 'operator_adjustment', effectiveAt: new Date(T0), postings: [debit(owned('balance', id), 10_000n), credit(owned('buyer_escrow', id), 10_000n)] });
    await assert.rejects(p.commit(prep.batchId, prep.fp, prep.lines, built.tx, signed, T0 + 51), InsufficientBalanceError);
    assert.equal((await db.query('SELECT 1 FROM payout_txs WHERE txid = $1', [signed.txid])).rows.length, 0, 'nothing stored');
    assert.equal(await ledger.balance(db, owned('balance', id)), 40_000n);
    const r = await p.create(T0 + 52);
    assert.equal(r.kind, 'signed');
    const mine = (await p.lines(db, r.kind === 'signed' ? r.batchId : 0n)).find((l) => l.accountId === id);
    assert.equal(mine?.amount, 40_000n, 'the next batch pays what the balance holds');
    assert.equal(await ledger.balance(db, owned('balance', id)), 0n);
    assert.deepEqual(await ledger.verify(db), []);
  });

  test('PPLNS windows that grew without bound: the window stops at maxWindowSeconds', async () => {
    // A tiny pool at a huge difficulty: N × difficulty would reach back forever.
    const engine = new AccountingEngine(db, frame, null);
    const T = T0 + 10_000_000;
    const list = [];
    for (let k = 0; k < 30; k++) list.push(share({ time: T - k * 60_000, account: k % 2 ? 'tiny1' : 'tiny2', poolDifficulty: 0.001, nbits: 0x17034219 }));
    await writeShares(db, list);
    const hash = blockHash();
    await insertBlock(db, { hash, height: 401, time: T, account: 'tiny1', reward: 312_500_000n, status: 'pending', blockHex: blockHex({ height: 401, bits: 0x17034219, outputs: [{ value: 312_500_000n, scriptPubKey: poolScript() }] }) });
    await setWatermark(db, T + 1);
    await engine.runOnce(T + 1);
    const s = await db.query<{ capped_by_time: boolean; window_shares: string; window_start: Date }>('SELECT capped_by_time, window_shares::text, window_start FROM block_splits WHERE block_hash = $1', [hash]);
    assert.equal(s.rows[0].capped_by_time, true);
    assert.equal(s.rows[0].window_shares, '10', 'the shares of the last 600 s only (one a minute, the one at −600 s excluded)');
    assert.ok(new Date(s.rows[0].window_start).getTime() > T - 600_000);
  });
});
