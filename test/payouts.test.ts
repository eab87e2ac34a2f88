import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { Transaction, p2wpkh } from '@scure/btc-signer';
import { pubECDSA } from '@scure/btc-signer/utils.js';
import { Ledger, credit, debit, owned, pool } from '../src/accounting/ledger.ts';
import type { BooksFrame } from '../src/accounting/params.ts';
import { DEFAULT_POLICY, type FaultPoint, type PayoutPolicy, Payouts } from '../src/accounting/payouts/payouts.ts';
import { RpcPayoutWallet } from '../src/accounting/payouts/wallet.ts';
import { Settings } from '../src/accounting/settings.ts';
import { BitcoinRpc } from '../src/node/rpc.ts';
import { type EmbeddedChainHandle, REGTEST_NETWORK, startEmbeddedChain } from '../src/node/regtest/index.ts';
import { addressToScript } from '../src/chain/index.ts';
import type { Database } from '../src/store/db.ts';
import { BACKENDS, accountId, openMigrated, setupBooks } from './helpers/accounting.ts';
import { SKIP_PG } from './helpers/pg.ts';

// Payouts through a real wallet (the embedded chain's: real keys, signatures the chain checks, real coins):
// stored before broadcast, broadcast once, re-sent unchanged after a crash, bumped by RBF, settled in the
// ledger with the network fee; a locked, unreachable or empty wallet leaves the batch pending with the reason.

const POOL_ADDR = 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080';
const T0 = Date.UTC(2031, 5, 1);
const ledger = new Ledger();
const pg = BACKENDS.find((b) => b.name === 'postgres')!;

/** An address outside the node wallet (a miner's own): what it receives is seen only on chain. */
function outsideAddress(): string {
  return p2wpkh(pubECDSA(randomBytes(32), true), REGTEST_NETWORK).address!;
}
const OTHER = outsideAddress();

describe('payouts through the embedded wallet', { skip: SKIP_PG }, () => {
  let db: Database;
  let cleanup: () => Promise<void>;
  let h: EmbeddedChainHandle;
  let rpc: BitcoinRpc;
  let frame: BooksFrame;
  let now = T0 + 100_000;
  const call = <T>(m: string, p: unknown[] = []) => rpc.call<T>(m, p);
  const settings = new Settings({ network: 'regtest', minThreshold: 1000n, defaultThreshold: 100_000n, allowedSchemes: ['fpps', 'pplns', 'solo'] });
  const policy: PayoutPolicy = { ...DEFAULT_POLICY, network: 'regtest', defaultThreshold: 100_000n, addressChangeDelaySeconds: 3600, fallbackSatVb: 3 };
  let seq = 0;

  function payouts(over: Partial<PayoutPolicy> = {}, fault?: (p: FaultPoint) => void, via = rpc) {
    const wallet = new RpcPayoutWallet({ node: via, wallet: via, network: 'regtest' });
    return new Payouts(db, wallet, { ...policy, ...over }, pino({ level: 'silent' }), fault);
  }

  /** An account owed `sats` (credited from pool revenue, as FPPS would) paying to a fresh wallet address. */
  async function miner(sats: bigint, address?: string): Promise<{ id: bigint; address: string }> {
    const name = `m${++seq}`;
    const id = await accountId(db, name);
    const addr = address ?? outsideAddress();
    await settings.update(db, frame, id, { payoutAddress: addr }, 'test', now - 7200_000);
    await ledger.postNow(db, { key: `test:credit:${name}`, kind: 'operator_adjustment', effectiveAt: new Date(now), postings: [debit(pool('pool_revenue'), sats), credit(owned('balance', id), sats)] });
    return { id, address: addr };
  }

  /** Satoshis paid to `address` by confirmed transactions (read from the blocks themselves). */
  async function received(address: string): Promise<bigint> {
    const script = addressToScript(address, 'regtest').toString('hex');
    let sum = 0n;
    for (let hgt = 121; hgt <= h.chain.height; hgt++) {
      const b = await call<{ tx: { vin: { coinbase?: string }[]; vout: { value: number; scriptPubKey: { hex: string } }[] }[] }>('getblock', [await call<string>('getblockhash', [hgt]), 2]);
      for (const tx of b.tx) for (const o of tx.vout) if (o.scriptPubKey.hex === script) sum += BigInt(Math.round(o.value * 1e8));
    }
    return sum;
  }

  async function mine(n = 1) {
    await call('generatetoaddress', [n, OTHER]);
  }

  before(async () => {
    ({ db, cleanup } = await openMigrated(pg));
    frame = await setupBooks(db, T0, 10);
    h = await startEmbeddedChain({ mempoolTxs: 0, mempoolRefreshMs: 0 });
    rpc = new BitcoinRpc({ endpoints: [{ url: h.url, user: h.user, password: h.password }], timeoutMs: 20_000 });
    // 20 coinbases to the pool's address, matured by 100 blocks mined elsewhere: 1,000 BTC the ledger records as
    // the wallet's (and no other coin reaches the wallet, so reconciliation must come out exact).
    await call('generatetoaddress', [20, POOL_ADDR]);
    await call('generatetoaddress', [100, OTHER]);
    const p = payouts();
    assert.equal(await p.fund(20n * 5_000_000_000n, 'coinbases mined before the books (test setup)', 'test', 'setup', now), 'posted');
  });
  after(async () => { rpc?.close(); await h?.close(); await cleanup?.(); });
  beforeEach(() => { now += 60_000; });

  /** Create (sign + store), send, mine, settle. */
  async function settleAll(p: Payouts) {
    await p.run(now);
    await p.run(now);
    await mine();
    now += 1000;
    return p.run(now);
  }

  test('a batch is signed and stored, then sent, then settled with its network fee; every satoshi accounted', async () => {
    const a = await miner(1_234_567n);
    const b = await miner(100_000n);
    const c = await miner(99_999n); // below the threshold: waits
    const p = payouts();
    const walletBefore = await ledger.balance(db, pool('wallet'));
    const r1 = await p.run(now);
    assert.equal(r1.created.kind, 'signed');
    // Signed and reserved: balances moved to in-flight, nothing sent yet.
    assert.equal(await ledger.balance(db, owned('balance', a.id)), 0n);
    assert.equal(await ledger.balance(db, pool('payouts_in_flight')), 1_334_567n);
    assert.deepEqual(await call<string[]>('getrawmempool'), []);
    const r2 = await p.run(now);
    assert.deepEqual(r2.progressed.map((x) => x.kind), ['broadcast', 'waiting']);
    assert.equal((await call<string[]>('getrawmempool')).length, 1);
    await mine();
    const r3 = await p.run(now + 1);
    const conf = r3.progressed.find((x) => x.kind === 'confirmed');
    assert.ok(conf && conf.kind === 'confirmed');
    assert.equal(await received(a.address), 1_234_567n);
    assert.equal(await received(b.address), 100_000n);
    assert.equal(await received(c.address), 0n);
    assert.equal(await ledger.balance(db, owned('balance', c.id)), 99_999n);
    assert.equal(await ledger.balance(db, pool('payouts_in_flight')), 0n);
    assert.equal(await ledger.balance(db, pool('network_fees')), conf.fee);
    assert.equal(await ledger.balance(db, pool('wallet')), walletBefore - 1_334_567n - conf.fee);
    const rec = await p.reconcile();
    assert.equal(rec.difference, 0n, `reconciliation: ${JSON.stringify(rec, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}`);
    assert.deepEqual(await ledger.verify(db), []);
  });

  test('a batch of many accounts (ids past 9, 99: ordered as numbers, not text) is paid in one transaction', async () => {
    const many = [];
    for (let i = 0; i < 14; i++) many.push(await miner(BigInt(100_000 + i)));
    assert.ok(many.some((m) => m.id >= 10n));
    const p = payouts();
    const r = await p.run(now);
    assert.equal(r.created.kind, 'signed', JSON.stringify(r.created, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
    await p.run(now);
    await mine();
    await p.run(now + 1);
    for (const [i, m] of many.entries()) assert.equal(await received(m.address), BigInt(100_000 + i));
  });

  test('fee rate: the node\'s estimate within the cap; the fallback without an estimate', async () => {
    const p = payouts({ maxSatVb: 50, fallbackSatVb: 3 });
    h.chain.feeEstimate = null;
    assert.deepEqual(await p.feeRate(), { satVb: 3, source: 'fallback', capped: false });
    h.chain.feeEstimate = 12;
    assert.deepEqual(await p.feeRate(), { satVb: 12, source: 'estimate', capped: false });
    h.chain.feeEstimate = 900;
    assert.deepEqual(await p.feeRate(), { satVb: 50, source: 'estimate', capped: true });
    h.chain.feeEstimate = null;
  });

  test('a locked wallet leaves the batch pending with the reason, balances untouched; unlocked, it goes out', async () => {
    const m = await miner(500_000n);
    await call('encryptwallet', ['pw']);
    const p = payouts();
    const r = await p.run(now);
    assert.equal(r.created.kind, 'pending');
    assert.equal(r.created.kind === 'pending' && r.created.code, 'wallet-locked');
    assert.equal(await ledger.balance(db, owned('balance', m.id)), 500_000n);
    const list = await p.list(db, { limit: 1, offset: 0 });
    assert.equal(list.items[0].status, 'pending');
    assert.match(list.items[0].reason ?? '', /locked/);
    await call('walletpassphrase', ['pw', 3600]);
    const r2 = await p.run(now);
    assert.equal(r2.created.kind, 'signed');
    await settleAll(p);
    assert.equal(await received(m.address), 500_000n);
  });

  test('an unreachable wallet, or one without enough coins, leaves the batch pending; nothing moves', async () => {
    const m = await miner(300_000n);
    const dead = new BitcoinRpc({ endpoints: [{ url: 'http://127.0.0.1:1', user: 'x', password: 'y' }], timeoutMs: 2000, endpointBackoffMs: 1 });
    const r = await payouts({}, undefined, dead).run(now);
    dead.close();
    assert.equal(r.created.kind === 'pending' && r.created.code, 'wallet-unreachable');
    const whale = await miner(10_000n * 100_000_000n);
    const r2 = await payouts().run(now);
    assert.equal(r2.created.kind === 'pending' && r2.created.code, 'insufficient-funds');
    assert.equal(await ledger.balance(db, owned('balance', m.id)), 300_000n);
    assert.equal(await ledger.balance(db, owned('balance', whale.id)), 1_000_000_000_000n);
    // Take the whale's balance back so the next tests pay normally.
    await ledger.postNow(db, { key: 'test:unwhale', kind: 'operator_adjustment', effectiveAt: new Date(now), postings: [debit(owned('balance', whale.id), 1_000_000_000_000n), credit(pool('pool_revenue'), 1_000_000_000_000n)] });
    await settleAll(payouts());
    assert.equal(await received(m.address), 300_000n);
  });

  for (const point of ['prepared', 'signed', 'reserved', 'before-send', 'after-send', 'before-settle', 'settled'] as FaultPoint[]) {
    test(`a crash at "${point}" pays exactly once after a restart`, async () => {
      const m = await miner(777_000n);
      const crash = payouts({}, (p) => { if (p === point) throw new Error(`crash at ${p}`); });
      for (let i = 0; i < 3; i++) {
        try { await crash.run(now); } catch (e) { assert.match((e as Error).message, /crash at/); }
        if (i === 1) await mine();
      }
      // Restart: a new process (new Payouts, nothing in memory) finishes the job.
      const restarted = payouts();
      for (let i = 0; i < 3; i++) { await restarted.run(now + i); await mine(); }
      await restarted.run(now + 10);
      assert.equal(await received(m.address), 777_000n, 'paid once');
      assert.equal(await ledger.balance(db, owned('balance', m.id)), 0n);
      assert.equal(await ledger.balance(db, pool('payouts_in_flight')), 0n);
      assert.equal((await p2(restarted)).difference, 0n);
      assert.deepEqual(await ledger.verify(db), []);
    });
  }
  const p2 = (p: Payouts) => p.reconcile();

  test('a fee bump replaces the payout over the same inputs; the replacement confirms and its fee is posted', async () => {
    const m = await miner(2_000_000n);
    const p = payouts();
    await p.run(now);
    const r = await p.run(now);
    const batchId = r.progressed[0].batchId;
    const before = (await p.list(db, { limit: 1, offset: 0 })).items[0];
    const bumped = await p.bump(batchId, 25, now);
    const pool2 = await call<string[]>('getrawmempool');
    assert.deepEqual(pool2, [bumped.txid]);
    assert.notEqual(bumped.txid, before.txid);
    await mine();
    const done = await p.run(now + 1);
    const c = done.progressed.find((x) => x.kind === 'confirmed');
    assert.ok(c && c.kind === 'confirmed' && c.txid === bumped.txid && c.fee === bumped.fee);
    assert.equal(await received(m.address), 2_000_000n);
    assert.equal((await p.reconcile()).difference, 0n);
  });

  test('external signer: the PSBT waits (reserved), the operator signs and sends it, `confirm <txid>` follows it', async () => {
    const m = await miner(654_321n);
    const ext = payouts({ mode: 'external' });
    const r = await ext.run(now);
    assert.equal(r.created.kind, 'awaiting-signature');
    if (r.created.kind !== 'awaiting-signature') return;
    assert.equal(await ledger.balance(db, owned('balance', m.id)), 0n);
    // The operator's signer (here: the node wallet, as an offline signer would).
    const signed = await call<{ hex: string; complete: boolean }>('walletprocesspsbt', [r.created.psbt]);
    const txid = await call<string>('sendrawtransaction', [signed.hex]);
    await assert.rejects(ext.confirmExternal('00'.repeat(32), now), /does not know/);
    assert.equal((await ext.confirmExternal(txid, now)).batchId, r.created.batchId);
    await mine();
    const done = await ext.run(now + 1);
    assert.ok(done.progressed.some((x) => x.kind === 'confirmed'));
    assert.equal(await received(m.address), 654_321n);
  });

  test('a bump once the payout confirmed is refused; a replacement the node refused still settles on the transaction that confirmed', async () => {
    // Failed before: the bump was stored as the batch's transaction and reported done; the node refused it (its
    // inputs spent by the confirmed original), each run re-sent it, never looked at the original, and the batch
    // stayed signed for ever (its amount in payouts_in_flight, cancel refused, reconcile off).
    const m = await miner(2_000_000n);
    const p = payouts({ confirmations: 2 });
    await p.run(now);
    const r = await p.run(now);
    const batchId = r.progressed[0].batchId;
    const original = (await p.list(db, { id: batchId, limit: 1, offset: 0 })).items[0].txid;
    await mine();
    await assert.rejects(p.bump(batchId, 25, now), /is confirmed \(1 of 2\); nothing to bump/);
    // The same race with the node's answer coming between the check and the send (the original mined meanwhile).
    const wallet = new RpcPayoutWallet({ node: rpc, wallet: rpc, network: 'regtest' });
    const realStatus = wallet.status.bind(wallet);
    wallet.status = async () => ({ kind: 'pending' });
    const racing = new Payouts(db, wallet, { ...policy, confirmations: 2 }, pino({ level: 'silent' }));
    const bumped = await racing.bump(batchId, 25, now);
    assert.equal(bumped.sent, false, 'the node refuses a replacement of a mined transaction');
    assert.ok(!bumped.sent && bumped.reason.length > 0);
    wallet.status = realStatus;
    await mine();
    const done = await p.run(now + 1);
    const c = done.progressed.find((x) => x.kind === 'confirmed');
    assert.ok(c && c.kind === 'confirmed' && c.txid === original, `settled on the original: ${JSON.stringify(done.progressed, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}`);
    assert.equal((await p.list(db, { id: batchId, limit: 1, offset: 0 })).items[0].status, 'confirmed');
    assert.equal(await received(m.address), 2_000_000n);
    assert.equal((await p.reconcile()).difference, 0n);
    assert.deepEqual(await ledger.verify(db), []);
  });

  test('external signer: a batch whose PSBT is out is cancelled only once void (or destroyed, said so); one signed and sent is confirmed instead; paid once', async () => {
    // Failed before: the batch was cancelled while its inputs were unspent; the signer, still holding the PSBT,
    // signed and sent it, and the balances it had paid, returned by the cancel, were paid again by the next batch.
    const m = await miner(777_000n);
    const ext = payouts({ mode: 'external' });
    const r1 = await ext.run(now);
    assert.equal(r1.created.kind, 'awaiting-signature');
    if (r1.created.kind !== 'awaiting-signature') return;
    await assert.rejects(ext.cancel(r1.created.batchId, now, 'op'), /can still be signed and sent.*--psbt-destroyed/);
    assert.equal(await ledger.balance(db, owned('balance', m.id)), 0n, 'still reserved');
    // The signer voids it: one of its inputs spent back to the wallet.
    const ins = (await db.query<{ inputs: { txid: string; vout: number; value: string; script: string }[] | string }>(
      'SELECT inputs FROM payout_txs WHERE batch_id = $1::bigint', [r1.created.batchId.toString()])).rows[0].inputs;
    const first = (typeof ins === 'string' ? JSON.parse(ins) : ins)[0] as { txid: string; vout: number; value: string; script: string };
    const voiding = new Transaction({ version: 2 });
    voiding.addInput({ txid: first.txid, index: first.vout, witnessUtxo: { script: Buffer.from(first.script, 'hex'), amount: BigInt(first.value) } });
    voiding.addOutputAddress(await call<string>('getnewaddress'), BigInt(first.value) - 10_000n, REGTEST_NETWORK);
    const voided = await call<{ hex: string; complete: boolean }>('walletprocesspsbt', [Buffer.from(voiding.toPSBT()).toString('base64')]);
    await call('sendrawtransaction', [voided.hex]);
    await mine();
    await ext.cancel(r1.created.batchId, now, 'op');
    assert.equal(await ledger.balance(db, owned('balance', m.id)), 777_000n, 'back in the balance');
    const stale = await call<{ hex: string; complete: boolean }>('walletprocesspsbt', [r1.created.psbt]);
    await assert.rejects(call('sendrawtransaction', [stale.hex]), 'the void PSBT can no longer pay');

    // Never handed out: the operator says so.
    now += 1000;
    const r2 = await ext.run(now);
    if (r2.created.kind !== 'awaiting-signature') return assert.fail(`r2 ${r2.created.kind}`);
    await ext.cancel(r2.created.batchId, now, 'op', { psbtDestroyed: true });
    assert.equal(await ledger.balance(db, owned('balance', m.id)), 777_000n);

    // Signed and sent: not cancelled, confirmed.
    now += 1000;
    const r3 = await ext.run(now);
    if (r3.created.kind !== 'awaiting-signature') return assert.fail(`r3 ${r3.created.kind}`);
    const signed = await call<{ hex: string; complete: boolean }>('walletprocesspsbt', [r3.created.psbt]);
    const txid = await call<string>('sendrawtransaction', [signed.hex]);
    for (const o of [{}, { psbtDestroyed: true }]) {
      await assert.rejects(ext.cancel(r3.created.batchId, now, 'op', o), new RegExp(`signed and sent as ${txid} \\(pending\\); confirm it instead`));
    }
    await ext.confirmExternal(txid, now);
    await mine();
    const done = await ext.run(now + 1);
    assert.ok(done.progressed.some((x) => x.kind === 'confirmed'));
    assert.equal(await received(m.address), 777_000n, 'paid once');
    assert.equal(await ledger.balance(db, owned('balance', m.id)), 0n);
    assert.deepEqual(await ledger.verify(db), []);
  });

  test('a cancelled, never-sent batch paid again from the same coins gets its own transaction (regression: duplicate txid)', async () => {
    // The same outputs from the same coins at the same rate sign into the same txid (segwit: signatures are not in
    // it) when the wallet hands out the same change address again, as bcoin does until that address is used:
    // the next batch must still get a transaction of its own, and the cancelled one keeps its record.
    const m = await miner(321_000n);
    const fixedChange = addressToScript(await call<string>('getrawchangeaddress'), 'regtest');
    const wallet = new RpcPayoutWallet({ node: rpc, wallet: rpc, network: 'regtest' });
    wallet.changeScript = async () => fixedChange;
    const p = new Payouts(db, wallet, policy, pino({ level: 'silent' }));
    const r1 = await p.run(now);
    assert.equal(r1.created.kind, 'signed');
    if (r1.created.kind !== 'signed') return;
    await p.cancel(r1.created.batchId, now, 'test');
    const r2 = await p.run(now);
    assert.equal(r2.created.kind, 'signed', JSON.stringify(r2.created, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
    if (r2.created.kind !== 'signed') return;
    assert.notEqual(r2.created.txid, r1.created.txid);
    const old = await p.list(db, { limit: 1, offset: 0, id: r1.created.batchId });
    assert.deepEqual(old.items[0].txids, [r1.created.txid]);
    assert.equal(old.items[0].status, 'cancelled');
    await p.run(now);
    await mine();
    now += 1000;
    const done = await p.run(now);
    assert.ok(done.progressed.some((x) => x.kind === 'confirmed' && x.txid === (r2.created as { txid: string }).txid), JSON.stringify(done.progressed, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
    assert.equal(await received(m.address), 321_000n);
    assert.deepEqual(await ledger.verify(db), []);
  });

  test('a cancelled batch is never sent, and a bump racing a cancel sends nothing (regression: both once went out)', async () => {
    const m = await miner(222_000n);
    const p = payouts();
    const r1 = await p.run(now);
    assert.equal(r1.created.kind, 'signed');
    if (r1.created.kind !== 'signed') return;
    await p.cancel(r1.created.batchId, now, 'test');
    await assert.rejects(p.broadcast(r1.created.batchId, now), /is cancelled: not sent/);
    assert.deepEqual(await call<string[]>('getrawmempool'), []);
    assert.equal(await ledger.balance(db, owned('balance', m.id)), 222_000n);

    // The operator bumps a signed batch; while the wallet signs the replacement, the batch is cancelled.
    const inner = new RpcPayoutWallet({ node: rpc, wallet: rpc, network: 'regtest' });
    let racing: Payouts | null = null;
    const wallet = Object.assign(Object.create(inner) as RpcPayoutWallet, {
      sign: async (b: Parameters<RpcPayoutWallet['sign']>[0]) => {
        if (racing) { const q = racing; racing = null; await q.cancel(r2id, now, 'operator'); }
        return inner.sign(b);
      },
    });
    const p2 = new Payouts(db, wallet, policy, pino({ level: 'silent' }));
    const r2 = await p2.run(now);
    assert.equal(r2.created.kind, 'signed');
    if (r2.created.kind !== 'signed') return;
    const r2id = r2.created.batchId;
    racing = p;
    await assert.rejects(p2.bump(r2id, 5, now), /changed while the replacement was signed/);
    assert.equal((await p.list(db, { limit: 1, offset: 0, id: r2id })).items[0].status, 'cancelled');
    assert.deepEqual(await call<string[]>('getrawmempool'), []);
    assert.equal(await ledger.balance(db, owned('balance', m.id)), 222_000n);
    assert.deepEqual(await ledger.verify(db), []);
    // Paid once, later, by a batch of its own.
    await settleAll(p);
    assert.equal(await received(m.address), 222_000n);
  });

  test('a changed payout address holds that account\'s payout for the delay; a never-sent batch can be cancelled', async () => {
    const m = await miner(400_000n);
    const fresh = outsideAddress();
    await settings.update(db, frame, m.id, { payoutAddress: fresh }, 'owner token 1 from 127.0.0.1', now);
    const p = payouts();
    assert.equal((await p.run(now)).created.kind, 'nothing');
    now += 3600_000 + 1;
    const r = await p.run(now);
    assert.equal(r.created.kind, 'signed');
    if (r.created.kind !== 'signed') return;
    await p.cancel(r.created.batchId, now, 'test');
    assert.equal(await ledger.balance(db, owned('balance', m.id)), 400_000n);
    await settleAll(p);
    assert.equal(await received(fresh), 400_000n);
    const log = await settings.addressLog(db, m.id);
    assert.equal(log[0].newAddress, fresh);
    assert.equal(log[0].source, 'owner token 1 from 127.0.0.1');
  });
});
