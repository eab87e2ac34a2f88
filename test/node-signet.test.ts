// Signet: getblocktemplate must carry rules ["segwit", "signet"] (Core refuses otherwise), and blocks need a
// signet solution. The embedded chain runs a custom signet with the challenge OP_TRUE (-signetchallenge=51),
// which needs no signature; mining the default signet needs blocks signed by its challenge keys.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as bitcoin from 'bitcoinjs-lib';
import {
  addressToScript, assembleBlock, bitsToTarget, buildCoinbase, coinbaseWithWitness, concat, encodeVarInt, fromHex,
  hashFromDisplay, hashToBigInt, merkleRoot, parseTx, pushData, serializeHeader, sha256d, txid,
} from '../src/chain/index.ts';
import { BitcoinRpc, RpcError } from '../src/node/rpc.ts';
import { SIGNET_GENESIS_HASH, startEmbeddedChain } from '../src/node/regtest/index.ts';
import type { BlockTemplate } from '../src/node/types.ts';
import { LineClient } from './helpers/line-client.ts';
import { solveShare, startTestPool } from './helpers/pool.ts';
import { until } from './helpers/until.ts';

/** BIP173 test vector: a testnet (and signet) P2WPKH address. */
const SIGNET_ADDRESS = 'tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx';
const SIGNET_HEADER = 'ecc7daa2';

/** A block on the template with the commitment output followed by `extra` (e.g. a signet solution push). */
function craft(t: BlockTemplate, opts: { commitment?: boolean; extra?: Buffer } = {}): string {
  const withCommitment = opts.commitment ?? true;
  const { coinb1, coinb2 } = buildCoinbase({
    height: t.height,
    extranonceSize: 4,
    tag: Buffer.from('/signet-test/'),
    outputs: [{ value: BigInt(t.coinbasevalue), scriptPubKey: addressToScript(SIGNET_ADDRESS, 'signet') }],
    witnessCommitmentScript: withCommitment ? concat([fromHex(t.default_witness_commitment!), opts.extra ?? Buffer.alloc(0)]) : undefined,
  });
  const cb = concat([coinb1, Buffer.from('01020304', 'hex'), coinb2]);
  const txs = t.transactions.map((x) => fromHex(x.data));
  const header = serializeHeader({
    version: t.version, prevHash: hashFromDisplay(t.previousblockhash),
    merkleRoot: merkleRoot([sha256d(cb), ...txs.map((b) => txid(parseTx(b)))]), time: t.curtime, bits: parseInt(t.bits, 16), nonce: 0,
  });
  const target = bitsToTarget(parseInt(t.bits, 16));
  for (let n = 0; ; n++) {
    header.writeUInt32LE(n, 76);
    if (hashToBigInt(sha256d(header)) <= target) break;
  }
  return assembleBlock(header, withCommitment ? coinbaseWithWitness(cb) : cb, txs).toString('hex');
}

/** A push of SIGNET_HEADER ‖ solution (scriptSig as varbytes, witness stack as a vector). */
function solutionPush(scriptSig: Buffer, witness: Buffer[], trailing = Buffer.alloc(0)): Buffer {
  const stack = concat([encodeVarInt(witness.length), ...witness.map((w) => concat([encodeVarInt(w.length), w]))]);
  return pushData(concat([fromHex(SIGNET_HEADER), encodeVarInt(scriptSig.length), scriptSig, stack, trailing]));
}

test('getblocktemplate on signet: rules ["segwit","signet"]; without "signet" the node refuses as Core does', async () => {
  const h = await startEmbeddedChain({ network: 'signet', mempoolRefreshMs: 0 });
  const plain = new BitcoinRpc({ endpoints: [{ url: h.url, user: h.user, password: h.password }] });
  const signet = new BitcoinRpc({ endpoints: [{ url: h.url, user: h.user, password: h.password }], network: 'signet' });
  try {
    await assert.rejects(plain.getBlockTemplate(), (e: unknown) => e instanceof RpcError && e.code === -8
      && e.rpcMessage === 'getblocktemplate must be called with the signet rule set (call with {"rules": ["segwit", "signet"]})');
    const t = await signet.getBlockTemplate();
    assert.deepEqual(t.rules, ['csv', '!segwit', '!signet', 'taproot']);
    assert.equal((t as unknown as { signet_challenge: string }).signet_challenge, '51');
    assert.equal(t.previousblockhash, SIGNET_GENESIS_HASH, 'the signet genesis block');
    const info = await signet.getBlockchainInfo();
    assert.equal(info.chain, 'signet');
  } finally {
    plain.close();
    signet.close();
    await h.close();
  }
});

test('signet blocks: a witness commitment is required, a solution must parse; OP_TRUE needs no signature', async () => {
  const h = await startEmbeddedChain({ network: 'signet', mempoolTxs: 3, mempoolRefreshMs: 0 });
  const rpc = new BitcoinRpc({ endpoints: [{ url: h.url, user: h.user, password: h.password }], network: 'signet' });
  try {
    let t = await rpc.getBlockTemplate();
    assert.equal(t.transactions.length, 3);
    // Core's CheckSignetBlockSolution: no witness commitment, no block (even with transactions that need none).
    assert.equal(await rpc.submitBlock(craft({ ...t, transactions: [] }, { commitment: false })), 'bad-signet-blksig');
    assert.equal(await rpc.submitBlock(craft(t, { extra: solutionPush(Buffer.alloc(0), [], Buffer.from([0])) })), 'bad-signet-blksig', 'trailing data');
    assert.equal(await rpc.submitBlock(craft(t, { extra: pushData(fromHex(`${SIGNET_HEADER}05`)) })), 'bad-signet-blksig', 'cut solution');
    assert.equal(await rpc.submitBlock(craft(t, { extra: solutionPush(Buffer.alloc(0), [Buffer.from([1])]) })), 'bad-signet-blksig', 'witness on OP_TRUE');
    assert.equal(h.chain.height, 0);
    // An empty solution, or none at all, satisfies OP_TRUE.
    assert.equal(await rpc.submitBlock(craft(t, { extra: solutionPush(Buffer.alloc(0), []) })), null);
    t = await rpc.getBlockTemplate();
    const hex = craft(t);
    assert.equal(await rpc.submitBlock(hex), null);
    assert.equal(h.chain.height, 2);
    const block = bitcoin.Block.fromHex(hex);
    assert.equal(block.getId(), await rpc.getBestBlockHash());
  } finally {
    rpc.close();
    await h.close();
  }
});

test('the pool mines signet: templates with the signet rule, blocks the signet chain accepts', async () => {
  const h = await startEmbeddedChain({ network: 'signet', mempoolTxs: 5, mempoolRefreshMs: 0 });
  const rpc = new BitcoinRpc({ endpoints: [{ url: h.url, user: h.user, password: h.password }], network: 'signet' });
  const { pool, port } = await startTestPool(rpc, {}, { network: 'signet', payoutAddress: SIGNET_ADDRESS });
  const c = new LineClient(port);
  try {
    await c.connected();
    const sub = await c.request(1, 'mining.subscribe', []);
    await c.request(2, 'mining.authorize', ['acct.w1', 'x']);
    const notify = await c.waitFor((m) => m.method === 'mining.notify');
    const [, en1, en2Size] = sub.result as [unknown, string, number];
    // Regtest-like difficulty: the share is a block.
    assert.equal((await c.request(3, 'mining.submit', solveShare(notify, en1, en2Size, 0.0001))).result, true);
    await until(() => h.chain.height === 1, 5_000, 'the block on the signet chain');
    const block = await rpc.getBlock(h.chain.tip.hashHex, 2) as { tx: Array<{ vout: Array<{ scriptPubKey: { address?: string } }> }> };
    assert.equal(block.tx[0].vout[0].scriptPubKey.address, SIGNET_ADDRESS);
    assert.equal(block.tx.length, 6);
    assert.equal(pool.stats.blocks.candidates, 1);
    await until(() => pool.stats.blocks.unconfirmed + pool.stats.blocks.pending === 1, 5_000, 'the block taken by the node');
  } finally {
    c.close();
    await pool.stop(100);
    rpc.close();
    await h.close();
  }
});
