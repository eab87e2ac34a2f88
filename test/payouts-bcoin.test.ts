import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { p2wpkh } from '@scure/btc-signer';
import { pubECDSA } from '@scure/btc-signer/utils.js';
import { Ledger, credit, debit, owned, pool } from '../src/accounting/ledger.ts';
import { DEFAULT_POLICY, Payouts } from '../src/accounting/payouts/payouts.ts';
import { RpcPayoutWallet } from '../src/accounting/payouts/wallet.ts';
import { Settings } from '../src/accounting/settings.ts';
import { addressToScript } from '../src/chain/index.ts';
import { BitcoinRpc } from '../src/node/rpc.ts';
import { REGTEST_NETWORK } from '../src/node/regtest/index.ts';
import type { Database } from '../src/store/db.ts';
import { BACKENDS, accountId, openMigrated, setupBooks } from './helpers/accounting.ts';
import { type BcoinNodeHandle, loadBcoin, startBcoinNode } from './helpers/bcoin-node.ts';
import { SKIP_PG } from './helpers/pg.ts';
import { until } from './helpers/until.ts';

// The same payout code against a wallet nobody here wrote: bcoin's (its node RPC for broadcasting, its wallet RPC
// for coins, change and keys; it has no PSBT support, so the payout signs with the inputs' keys from
// dumpprivkey). bcoin validates the spends itself.

const T0 = Date.UTC(2031, 6, 1);
const pg = BACKENDS.find((b) => b.name === 'postgres')!;
const j = (x: unknown) => JSON.stringify(x, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
const outside = () => p2wpkh(pubECDSA(randomBytes(32), true), REGTEST_NETWORK).address!;
const skip = SKIP_PG || (loadBcoin() instanceof Error ? 'bcoin does not load here' : false);

describe('payouts through bcoin\'s wallet', { skip }, () => {
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

  test('a batch built from bcoin\'s coins, signed with its keys, sent through its node and settled', async () => {
    const frame = await setupBooks(db, T0, 10);
    // bcoin's wallet prints its addresses in mainnet encoding; its node wants them in its regtest one.
    const regtest = (a: string) => b.bcoin.Address.fromString(a, 'main').toString('regtest');
    const mine = regtest(await wallet.call<string>('getnewaddress', ['']));
    // 5 coinbases to bcoin's wallet, matured by 101 blocks to an outside address.
    await node.call('generatetoaddress', [5, mine]);
    const sink = regtest(await wallet.call<string>('getnewaddress', [''])); // these coinbases stay immature
    await node.call('generatetoaddress', [101, sink]);
    // bcoin's wallet indexes blocks asynchronously: wait until it sees the 5 coinbases mature (a fixed pause was not
    // always enough on a loaded machine).
    await until(async () => (await wallet.call<unknown[]>('listunspent', [101])).length >= 5, 30_000, 'bcoin\'s wallet to see its 5 mature coinbases');
    const payouts = new Payouts(db, new RpcPayoutWallet({ node, wallet, network: 'regtest' }),
      { ...DEFAULT_POLICY, network: 'regtest', defaultThreshold: 50_000n, addressChangeDelaySeconds: 0, fallbackSatVb: 2 }, pino({ level: 'silent' }));
    const now = T0 + 60_000;
    await payouts.fund(5n * 5_000_000_000n, 'bcoin test coins', 'test', 'bcoin', now);
    const settings = new Settings({ network: 'regtest', minThreshold: 1000n, defaultThreshold: 50_000n, allowedSchemes: ['pplns'] });
    const payees: { id: bigint; address: string; amount: bigint }[] = [];
    for (const [i, amount] of [123_456n, 78_900n, 2_500_000_000n].entries()) {
      const id = await accountId(db, `bcoin-m${i}`);
      const address = outside();
      await settings.update(db, frame, id, { payoutAddress: address }, 'test', now - 1000);
      await ledger.postNow(db, { key: `bcoin:credit:${i}`, kind: 'operator_adjustment', effectiveAt: new Date(now), postings: [debit(pool('pool_revenue'), amount), credit(owned('balance', id), amount)] });
      payees.push({ id, address, amount });
    }
    const r1 = await payouts.run(now);
    assert.equal(r1.created.kind, 'signed', j(r1.created));
    const r2 = await payouts.run(now);
    assert.equal(r2.progressed[0].kind, 'broadcast', j(r2.progressed));
    const sent = (await payouts.list(db, { limit: 1, offset: 0 })).items[0].txid!;
    assert.ok((await node.call<string[]>('getrawmempool', [])).includes(sent), 'bcoin accepted the transaction into its mempool');
    // bcoin 1.0.2's wallet sometimes fails inside gettransaction on its own send ("Invalid integer value." from
    // _toWalletTX; about 1 run in 5 here) and also reports that as a node error; the payout wallet then asks the
    // node instead (RpcPayoutWallet.status, fetchTx). Any other bcoin error fails the test.
    assert.deepEqual(b.errors.filter((e) => !/_toWalletTX/.test(e.stack ?? '')), [], 'no bcoin error but its gettransaction quirk');
    const [blockHash] = await node.call<string[]>('generatetoaddress', [1, sink]);
    // bcoin indexes the block asynchronously: wait until it reports the confirmation where the payout wallet will
    // ask (RpcPayoutWallet.status: the wallet's gettransaction, or the node when that fails).
    const txid = (await payouts.list(db, { limit: 1, offset: 0 })).items[0].txid!;
    const confirmations = async () => {
      try { return (await wallet.call<{ confirmations?: number }>('gettransaction', [txid])).confirmations ?? 0; }
      catch { return (await node.call<{ confirmations?: number }>('getrawtransaction', [txid, true])).confirmations ?? 0; }
    };
    await until(async () => (await confirmations()) > 0, 30_000, 'bcoin to see the confirmation');
    const r3 = await payouts.run(now + 1);
    const done = r3.progressed.find((x) => x.kind === 'confirmed');
    assert.ok(done && done.kind === 'confirmed', j(r3.progressed));
    // bcoin's block carries the payout, paying each miner exactly its balance.
    const block = await node.call<{ tx: { txid: string; vout: { value: number; scriptPubKey: { hex: string } }[] }[] }>('getblock', [blockHash, true, true]);
    const payout = block.tx.find((t) => t.txid === done.txid)!;
    assert.ok(payout, 'the payout is in bcoin\'s block');
    for (const p of payees) {
      const script = addressToScript(p.address, 'regtest').toString('hex');
      const paid = payout.vout.filter((o) => o.scriptPubKey.hex === script).reduce((s, o) => s + BigInt(Math.round(o.value * 1e8)), 0n);
      assert.equal(paid, p.amount);
      assert.equal(await ledger.balance(db, owned('balance', p.id)), 0n);
    }
    assert.equal(await ledger.balance(db, pool('network_fees')), done.fee);
    assert.deepEqual(await ledger.verify(db), []);
  });
});
