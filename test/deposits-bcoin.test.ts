import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { Transaction, p2pkh } from '@scure/btc-signer';
import { pubECDSA } from '@scure/btc-signer/utils.js';
import { Deposits } from '../src/accounting/deposits.ts';
import { Ledger, owned } from '../src/accounting/ledger.ts';
import { walletAddressScript } from '../src/accounting/payouts/wallet.ts';
import { BitcoinRpc } from '../src/node/rpc.ts';
import type { Database } from '../src/store/db.ts';
import { BACKENDS, accountId, openMigrated } from './helpers/accounting.ts';
import { BCOIN_REGTEST, type BcoinNodeHandle, loadBcoin, startBcoinNode } from './helpers/bcoin-node.ts';
import { SKIP_PG } from './helpers/pg.ts';
import { until } from './helpers/until.ts';

// The same deposit code against a wallet nobody here wrote: bcoin's (getnewaddress, listsinceblock; its
// gettransaction cannot answer for confirmed transactions, so the node's transaction index is asked instead;
// its listsinceblock needs a block to start from and lists only what is N deep).
// A buyer outside the wallet pays the account's address; credited once at N confirmations.

const pg = BACKENDS.find((b) => b.name === 'postgres')!;
const skip = SKIP_PG || (loadBcoin() instanceof Error ? 'bcoin does not load here' : false);
// Segwit is not active at these heights on bcoin's regtest (no-witness-yet), so the buyer is P2PKH.
const N = 2;

describe('deposits through bcoin\'s wallet', { skip }, () => {
  let db: Database;
  let cleanup: () => Promise<void>;
  let b: BcoinNodeHandle;
  let node: BitcoinRpc;
  let wallet: BitcoinRpc;
  const ledger = new Ledger();

  before(async () => {
    ({ db, cleanup } = await openMigrated(pg));
    b = await startBcoinNode({ wallet: true });
    node = new BitcoinRpc({ endpoints: [{ url: b.url, user: b.user, password: b.password }], timeoutMs: 30_000 });
    wallet = new BitcoinRpc({ endpoints: [{ url: b.walletUrl!, user: b.user, password: b.password }], timeoutMs: 30_000 });
  });
  after(async () => { node?.close(); wallet?.close(); await b?.stop(); await cleanup?.(); });

  /** A buyer key whose coinbase has matured (100 blocks to a sink address on top), to spend in a deposit. */
  async function fundedBuyer() {
    const key = randomBytes(32);
    const buyer = p2pkh(pubECDSA(key, true), BCOIN_REGTEST);
    const sink = p2pkh(pubECDSA(randomBytes(32), true), BCOIN_REGTEST).address!;
    const [cbHash] = await node.call<string[]>('generatetoaddress', [1, buyer.address]);
    await node.call('generatetoaddress', [100, sink]);
    const cb = (await node.call<{ tx: { txid: string; vout: { value: number }[] }[] }>('getblock', [cbHash, true, true])).tx[0];
    return { key, buyer, sink, cb, value: BigInt(Math.round(cb.vout[0].value * 1e8)) };
  }

  test('a deposit to an address of bcoin\'s wallet is credited once at N confirmations', async () => {
    const { key, buyer, sink, cb, value } = await fundedBuyer();

    const id = await accountId(db, 'bcoin-buyer');
    const deposits = new Deposits(db, { node, wallet }, { confirmations: N, reorgWatchBlocks: 144, network: 'regtest' }, pino({ level: 'silent' }));
    const { address } = await deposits.address(id, 'bcoin-buyer');
    // Our own listing of the coin's amount stands in for the previous transaction (no fee attack in a test).
    const tx = new Transaction({ allowLegacyWitnessUtxo: true });
    tx.addInput({ txid: cb.txid, index: 0, witnessUtxo: { script: buyer.script, amount: value } });
    tx.addOutput({ script: walletAddressScript(address, 'regtest'), amount: 3_000_000n });
    tx.addOutput({ script: buyer.script, amount: value - 3_000_000n - 2000n });
    tx.sign(key);
    tx.finalize();
    const txid = await node.call<string>('sendrawtransaction', [tx.hex]);
    // (bcoin's listsinceblock lists only what is already N deep: nothing is "seen" before that.)
    await node.call('generatetoaddress', [N - 1, sink]);
    await new Promise((r) => setTimeout(r, 300)); // bcoin's wallet indexes blocks asynchronously
    assert.deepEqual((await deposits.run(Date.now())).outcomes.map((o) => o.kind), [], 'not credited below N');
    await node.call('generatetoaddress', [1, sink]);
    let kinds: string[] = [];
    await until(async () => {
      kinds = kinds.concat((await deposits.run(Date.now())).outcomes.map((o) => (o.kind === 'failed' ? `failed: ${o.error}` : o.kind)));
      return kinds.includes('credited');
    }, 10_000, () => `the credit (outcomes ${kinds.join(', ')}; bcoin errors ${b.errors.map(String).join('; ')})`);
    assert.deepEqual(kinds.filter((k) => k !== 'credited' && !k.startsWith('failed')), []);
    await deposits.run(Date.now());
    assert.equal(await ledger.balance(db, owned('balance', id)), 3_000_000n);
    const keys = await db.query<{ k: string }>("SELECT idempotency_key AS k FROM journal_entries WHERE idempotency_key LIKE 'deposit:%'");
    assert.deepEqual(keys.rows.map((r) => r.k), [`deposit:${txid}:0`]);
    assert.deepEqual(await ledger.verify(db), []);
  });

  test('one transaction paying two accounts\' deposit addresses credits each its own output (bcoin lists it once)', async () => {
    const { key, buyer, sink, cb, value } = await fundedBuyer();

    const a = await accountId(db, 'bcoin-batch-a');
    const c = await accountId(db, 'bcoin-batch-b');
    const deposits = new Deposits(db, { node, wallet }, { confirmations: N, reorgWatchBlocks: 144, network: 'regtest' }, pino({ level: 'silent' }));
    const addrA = (await deposits.address(a, 'bcoin-batch-a')).address;
    const addrB = (await deposits.address(c, 'bcoin-batch-b')).address;
    // An exchange's batched withdrawal: two customers, one transaction, one output each (and a third output to A).
    const tx = new Transaction({ allowLegacyWitnessUtxo: true });
    tx.addInput({ txid: cb.txid, index: 0, witnessUtxo: { script: buyer.script, amount: value } });
    tx.addOutput({ script: walletAddressScript(addrA, 'regtest'), amount: 1_000_001n });
    tx.addOutput({ script: walletAddressScript(addrB, 'regtest'), amount: 2_000_003n });
    tx.addOutput({ script: buyer.script, amount: value - 3_500_004n - 2000n });
    tx.addOutput({ script: walletAddressScript(addrA, 'regtest'), amount: 500_000n });
    tx.sign(key);
    tx.finalize();
    const txid = await node.call<string>('sendrawtransaction', [tx.hex]);
    await node.call('generatetoaddress', [N, sink]);
    let kinds: string[] = [];
    await until(async () => {
      kinds = kinds.concat((await deposits.run(Date.now())).outcomes.map((o) => (o.kind === 'failed' ? `failed: ${o.error}` : o.kind)));
      return kinds.filter((k) => k === 'credited').length >= 3;
    }, 30_000, () => `three credits (outcomes ${kinds.join(', ')})`);
    await deposits.run(Date.now());
    assert.equal(await ledger.balance(db, owned('balance', a)), 1_500_001n, 'A: its two outputs');
    assert.equal(await ledger.balance(db, owned('balance', c)), 2_000_003n, 'B: its own output, not A\'s');
    const keys = await db.query<{ k: string }>("SELECT idempotency_key AS k FROM journal_entries WHERE idempotency_key LIKE $1 ORDER BY 1", [`deposit:${txid}:%`]);
    assert.deepEqual(keys.rows.map((r) => r.k), [`deposit:${txid}:0`, `deposit:${txid}:1`, `deposit:${txid}:3`]);
    assert.deepEqual(await ledger.verify(db), []);
  });

  test('a credited deposit whose block a reorg replaced is reversed (bcoin\'s getblockheader never answers -1)', async () => {
    const { key, buyer, sink, cb, value } = await fundedBuyer();
    const id = await accountId(db, 'bcoin-reorged');
    const deposits = new Deposits(db, { node, wallet }, { confirmations: N, reorgWatchBlocks: 144, network: 'regtest' }, pino({ level: 'silent' }));
    const { address } = await deposits.address(id, 'bcoin-reorged');
    const tx = new Transaction({ allowLegacyWitnessUtxo: true });
    tx.addInput({ txid: cb.txid, index: 0, witnessUtxo: { script: buyer.script, amount: value } });
    tx.addOutput({ script: walletAddressScript(address, 'regtest'), amount: 4_000_000n });
    tx.addOutput({ script: buyer.script, amount: value - 4_000_000n - 2000n });
    tx.sign(key);
    tx.finalize();
    const txid = await node.call<string>('sendrawtransaction', [tx.hex]);
    await node.call('generatetoaddress', [N, sink]);
    await until(async () => (await deposits.run(Date.now())).outcomes.some((o) => o.kind === 'credited' && o.txid === txid), 10_000, () => 'the credit');
    assert.equal(await ledger.balance(db, owned('balance', id)), 4_000_000n);
    // A real reorg: a second bcoin node mines a longer chain from the genesis block (without the deposit) and
    // its blocks are submitted to ours, which switches to it in one step (no moment with a lower tip).
    const tip = await node.call<number>('getblockcount', []);
    const other = await startBcoinNode();
    try {
      await other.rpc('generatetoaddress', [tip + 2, sink]);
      for (let h = 1; h <= tip + 2; h++) {
        const hex = await other.rpc<string>('getblock', [await other.rpc<string>('getblockhash', [h]), false]);
        await node.call('submitblock', [hex]);
      }
    } finally {
      await other.stop();
    }
    assert.equal(await node.call<number>('getblockcount', []), tip + 2);
    // bcoin's wallet follows the reorg asynchronously: passes until the reversal, every outcome of each kept. The
    // scan's cursor (a block of the old chain) must not stop a pass.
    const kinds: string[] = [];
    await until(async () => {
      kinds.push(...(await deposits.run(Date.now())).outcomes.filter((o) => o.txid === txid).map((o) => (o.kind === 'failed' ? `failed: ${o.error}` : o.kind)));
      return kinds.includes('reversed');
    }, 30_000, () => `the reversal (outcomes ${kinds.join(', ')})`);
    assert.deepEqual(kinds, ['reversed'], 'the deposit is gone from the best chain');
    // The reversed deposit's transaction is known to neither bcoin's wallet nor its node: it waits, in case it is
    // mined again. Failed before: 'failed' (and an error line) at every pass after the reversal.
    const after = await deposits.run(Date.now());
    assert.deepEqual(after.outcomes.filter((o) => o.txid === txid), [], `after the reversal: ${JSON.stringify(after.outcomes)}`);
    assert.ok(after.waiting >= 1, 'the reversed deposit is waiting');
    assert.equal(await ledger.balance(db, owned('balance', id)), 0n);
    assert.deepEqual(await ledger.verify(db), []);
  });
});
