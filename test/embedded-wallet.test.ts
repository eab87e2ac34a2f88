import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Transaction } from '@scure/btc-signer';
import { addressToScript } from '../src/chain/index.ts';
import { BitcoinRpc, RpcError } from '../src/node/rpc.ts';
import { type EmbeddedChainHandle, REGTEST_NETWORK, startEmbeddedChain } from '../src/node/regtest/index.ts';

// The embedded chain's wallet and its checks of real spends: coinbase maturity, signatures (verified by the
// chain's own BIP143/legacy code, not the signer's), double spends and BIP125 replacement, reorgs.

const POOL = 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080';

interface Utxo { txid: string; vout: number; amount: number; scriptPubKey: string; confirmations: number; address: string }

describe('embedded chain wallet', () => {
  let h: EmbeddedChainHandle;
  let rpc: BitcoinRpc;
  const call = <T>(m: string, params: unknown[] = []) => rpc.call<T>(m, params);
  before(async () => {
    // No synthetic transactions: every coinbase is exactly the subsidy (50 BTC at these heights).
    h = await startEmbeddedChain({ mempoolTxs: 0, mempoolRefreshMs: 0 });
    rpc = new BitcoinRpc({ endpoints: [{ url: h.url, user: h.user, password: h.password }], timeoutMs: 20_000 });
  });
  after(async () => { rpc.close(); await h.close(); });

  function spend(u: Utxo, to: { address: string; amount: bigint }[], change?: { address: string; amount: bigint }, sequence = 0xfffffffd) {
    const tx = new Transaction({ allowUnknownOutputs: true });
    tx.addInput({ txid: u.txid, index: u.vout, sequence, witnessUtxo: { script: Buffer.from(u.scriptPubKey, 'hex'), amount: BigInt(Math.round(u.amount * 1e8)) } });
    for (const o of [...to, ...(change ? [change] : [])]) tx.addOutputAddress(o.address, o.amount, REGTEST_NETWORK);
    return Buffer.from(tx.toPSBT()).toString('base64');
  }

  async function sign(psbt: string): Promise<string> {
    const r = await call<{ complete: boolean; hex?: string }>('walletprocesspsbt', [psbt]);
    assert.equal(r.complete, true);
    return r.hex!;
  }

  test('coinbase outputs to the wallet become spendable at 101 confirmations, not before', async () => {
    await call('generatetoaddress', [100, POOL]);
    assert.deepEqual(await call<Utxo[]>('listunspent'), []);
    await call('generatetoaddress', [1, POOL]);
    const u = await call<Utxo[]>('listunspent');
    assert.equal(u.length, 1);
    assert.equal(u[0].confirmations, 101);
    assert.equal(u[0].amount, 50);
    const tx = await call<{ generated: boolean; confirmations: number }>('gettransaction', [u[0].txid]);
    assert.equal(tx.generated, true);
    // The chain's rule is one block looser than the wallet's (spendable in a block 100 after the coinbase):
    // the coinbase at depth 100 cannot be spent now.
    await call('generatetoaddress', [1, POOL]);
    const all = (await call<Utxo[]>('listunspent', [0, 9_999_999]));
    assert.equal(all.length, 2);
  });

  test('a signed payout is accepted, mined and tracked; its change comes back to the wallet', async () => {
    const [u] = await call<Utxo[]>('listunspent');
    const payee = await call<string>('getnewaddress');
    const change = await call<string>('getrawchangeaddress');
    const hex = await sign(spend(u, [{ address: 'bcrt1q0ht9tyks4vh7p5p904t340cr9nvahy7uevmqwj', amount: 1_000_000n }, { address: payee, amount: 2_000_000n }],
      { address: change, amount: 5_000_000_000n - 3_000_000n - 2_000n }));
    const txid = await call<string>('sendrawtransaction', [hex]);
    // Again: already in the mempool is not an error.
    assert.equal(await call<string>('sendrawtransaction', [hex]), txid);
    let t = await call<{ confirmations: number; fee: number }>('gettransaction', [txid]);
    assert.equal(t.confirmations, 0);
    assert.equal(t.fee, -0.00002);
    const unconfirmed = await call<Utxo[]>('listunspent', [0, 0]);
    assert.equal(unconfirmed.length, 2, 'the change and the payment to our own address, unconfirmed');
    const [mined] = await call<string[]>('generatetoaddress', [1, POOL]);
    t = await call<{ confirmations: number; fee: number }>('gettransaction', [txid]);
    assert.equal(t.confirmations, 1);
    const stats = await call<{ totalfee: number }>('getblockstats', [mined, ['totalfee']]);
    const block = await call<{ tx: string[] }>('getblock', [mined, 1]);
    assert.ok(block.tx.includes(txid));
    assert.ok(stats.totalfee >= 2000);
    const coins = await call<Utxo[]>('listunspent', [1]);
    assert.ok(coins.some((c) => c.txid === txid && c.amount === 0.02));
  });

  test('refused: a bad signature, a spent or missing coin, an immature coinbase, a non-signalling double spend', async () => {
    const [u] = (await call<Utxo[]>('listunspent')).filter((x) => x.amount === 50);
    const other = await call<string>('getnewaddress');
    const hex = await sign(spend(u, [{ address: other, amount: 4_999_990_000n }], undefined, 0xffffffff));
    // Change one bit of the output value (after version, marker, flag, 1 input of 41 bytes, output count): the
    // signature no longer commits to the transaction.
    const bytes = Buffer.from(hex, 'hex');
    bytes[4 + 2 + 1 + 41 + 1] ^= 1;
    await assert.rejects(call('sendrawtransaction', [bytes.toString('hex')]), (e: RpcError) => e.code === -26 && /mandatory-script-verify-flag-failed/.test(e.rpcMessage ?? ''));
    const txid = await call<string>('sendrawtransaction', [hex]);
    // The same coin again, to another address, no RBF signal on the first: refused.
    const hex2 = await sign(spend(u, [{ address: other, amount: 4_999_900_000n }]));
    await assert.rejects(call('sendrawtransaction', [hex2]), (e: RpcError) => e.code === -26 && /txn-mempool-conflict/.test(e.rpcMessage ?? ''));
    await call('generatetoaddress', [1, POOL]);
    await assert.rejects(call('sendrawtransaction', [hex2]), (e: RpcError) => e.code === -25 && /missingorspent/.test(e.rpcMessage ?? ''));
    // A coinbase of the wallet that is only 50 deep.
    const cbTx = (await call<{ tx: string[] }>('getblock', [await call<string>('getblockhash', [(await call<number>('getblockcount')) - 49]), 1])).tx[0];
    const cb = { txid: cbTx, vout: 0, amount: 50, scriptPubKey: addressToScript(POOL, 'regtest').toString('hex'), confirmations: 50, address: POOL };
    const early = await sign(spend(cb, [{ address: other, amount: 4_999_990_000n }]));
    await assert.rejects(call('sendrawtransaction', [early]), (e: RpcError) => /premature-spend-of-coinbase/.test(e.rpcMessage ?? ''));
    assert.ok(txid);
  });

  test('BIP125: a signalling payout is replaced by one paying more over the same inputs', async () => {
    const [u] = (await call<Utxo[]>('listunspent')).filter((x) => x.amount === 50);
    const to = await call<string>('getnewaddress');
    const a = await sign(spend(u, [{ address: to, amount: 4_999_999_000n }]));
    const first = await call<string>('sendrawtransaction', [a]);
    const tooCheap = await sign(spend(u, [{ address: to, amount: 4_999_998_990n }]));
    await assert.rejects(call('sendrawtransaction', [tooCheap]), (e: RpcError) => /insufficient fee/.test(e.rpcMessage ?? ''));
    const b = await sign(spend(u, [{ address: to, amount: 4_999_990_000n }]));
    const second = await call<string>('sendrawtransaction', [b]);
    const pool = await call<string[]>('getrawmempool');
    assert.ok(pool.includes(second) && !pool.includes(first));
    await call('generatetoaddress', [1, POOL]);
    assert.equal((await call<{ confirmations: number }>('gettransaction', [second])).confirmations, 1);
    assert.ok((await call<{ confirmations: number }>('gettransaction', [first])).confirmations <= 0);
  });

  test('a reorg returns a payout to the mempool; one spending an orphaned coinbase leaves it', async () => {
    // Coinbase at the tip (mature only in 100 blocks): build on it so that it matures, spend it, then orphan it.
    const base = await call<number>('getblockcount');
    const [fork] = await call<string[]>('generatetoaddress', [1, POOL]);
    await call('generatetoaddress', [100, POOL]);
    const forkCb = (await call<{ tx: string[] }>('getblock', [fork, 1])).tx[0];
    const mature = (await call<Utxo[]>('listunspent')).find((x) => x.txid === forkCb)!;
    assert.ok(mature, 'the fork block coinbase is spendable now');
    // A coin that stays mature after the reorg (a coinbase deep enough below the fork).
    const other = (await call<Utxo[]>('listunspent')).filter((x) => x.amount === 50).sort((a, b) => b.confirmations - a.confirmations)[0];
    assert.ok(other.confirmations >= 202);
    const to = await call<string>('getnewaddress');
    const spendsFork = await call<string>('sendrawtransaction', [await sign(spend(mature, [{ address: to, amount: 4_999_990_000n }]))]);
    const spendsOld = await call<string>('sendrawtransaction', [await sign(spend(other, [{ address: to, amount: 4_999_990_000n }]))]);
    const [withBoth] = await call<string[]>('generatetoaddress', [1, POOL]);
    assert.ok((await call<{ tx: string[] }>('getblock', [withBoth, 1])).tx.includes(spendsFork));
    // Invalidate from the fork block: its coinbase is gone, so the spend of it cannot come back.
    await call('invalidateblock', [fork]);
    assert.equal(await call<number>('getblockcount'), base);
    const pool = await call<string[]>('getrawmempool');
    assert.ok(pool.includes(spendsOld), 'a payout of an old coin waits again in the mempool');
    assert.ok(!pool.includes(spendsFork), 'a payout of an orphaned coinbase leaves the mempool');
    await call('reconsiderblock', [fork]);
    assert.equal(await call<number>('getblockcount'), base + 102);
  });

  test('a locked wallet refuses to sign; unlocked it signs', async () => {
    await call('encryptwallet', ['secret']);
    const [u] = await call<Utxo[]>('listunspent');
    const psbt = spend(u, [{ address: POOL, amount: 1_000_000n }]);
    await assert.rejects(call('walletprocesspsbt', [psbt]), (e: RpcError) => e.code === -13);
    await assert.rejects(call('dumpprivkey', [POOL]), (e: RpcError) => e.code === -13);
    await call('walletpassphrase', ['secret', 60]);
    await sign(psbt);
    await call('walletlock');
    await assert.rejects(call('walletprocesspsbt', [psbt]), (e: RpcError) => e.code === -13);
  });

  test('estimatesmartfee answers like Core without data, and with the rate set', async () => {
    assert.deepEqual(await call('estimatesmartfee', [6]), { errors: ['Insufficient data or no feerate found'], blocks: 0 });
    h.chain.feeEstimate = 12;
    assert.deepEqual(await call('estimatesmartfee', [6]), { feerate: 0.00012, blocks: 6 });
  });
});
