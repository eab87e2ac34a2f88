// The embedded chain answers what Bitcoin Core answers where a pool's block tracker looks: submitblock's
// duplicate / inconclusive verdicts, getblocktemplate proposals' duplicate-inconclusive, getblockheader's
// confirmations (-1 off the best chain, following reorgs), and getblock at verbosity 0 and 2 with Core's fields
// in Core's order. The literal values below were read from Bitcoin Core (v30.99, regtest) for the same
// scripts and blocks.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as bitcoin from 'bitcoinjs-lib';
import { BitcoinRpc, RpcError } from '../src/node/rpc.ts';
import { REGTEST_GENESIS_HASH, startEmbeddedChain } from '../src/node/regtest/index.ts';
import type { BlockHeaderInfo } from '../src/node/types.ts';

const ADDRESS = 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080';

test('submitblock verdicts and getblockheader confirmations across a reorg, as Core gives them', async () => {
  const h = await startEmbeddedChain({ mempoolTxs: 3, mempoolRefreshMs: 0 });
  const rpc = new BitcoinRpc({ endpoints: [{ url: h.url, user: h.user, password: h.password }] });
  const header = async (hash: string): Promise<BlockHeaderInfo> => {
    const x = await rpc.getBlockHeader(hash);
    assert.ok(x, `header of ${hash}`);
    return x;
  };
  try {
    const a1 = await h.chain.mineBlock({ address: ADDRESS });
    const a2 = await h.chain.mineBlock({ address: ADDRESS });
    assert.equal(await rpc.submitBlock(a2.hex), 'duplicate', 'a block already on the best chain');
    // A valid block at an existing height, not on the best chain: stored, "inconclusive".
    const b1 = await h.chain.mineBlock({ prevHash: REGTEST_GENESIS_HASH, address: ADDRESS });
    assert.equal(b1.result, 'inconclusive');
    assert.equal(await rpc.submitBlock(b1.hex), 'duplicate', 'resubmitting a stored side block');
    // BIP23 proposal of a stored block that was never connected (Core: not BLOCK_VALID_SCRIPTS).
    const proposal = await rpc.call('getblocktemplate', [{ mode: 'proposal', data: b1.hex }]);
    assert.equal(proposal, 'duplicate-inconclusive');
    assert.equal(await rpc.call('getblocktemplate', [{ mode: 'proposal', data: a1.hex }]), 'duplicate');

    assert.deepEqual(pick(await header(a1.hash)), { confirmations: 2, height: 1, next: a2.hash });
    assert.deepEqual(pick(await header(a2.hash)), { confirmations: 1, height: 2, next: undefined });
    assert.deepEqual(pick(await header(b1.hash)), { confirmations: -1, height: 1, next: undefined });

    // The side branch grows past the best chain: a reorg; the old branch's headers now say -1.
    const b2 = await h.chain.mineBlock({ prevHash: b1.hash });
    assert.equal(b2.result, 'inconclusive', 'equal work: the first seen stays best');
    const b3 = await h.chain.mineBlock({ prevHash: b2.hash });
    assert.equal(b3.result, null);
    assert.equal((await header(a1.hash)).confirmations, -1);
    assert.equal((await header(a2.hash)).confirmations, -1);
    assert.deepEqual(pick(await header(b1.hash)), { confirmations: 3, height: 1, next: b2.hash });
    assert.equal(await rpc.submitBlock(a2.hex), 'duplicate', 'a block that was reorged out');

    // Unknown block: RPC_INVALID_ADDRESS_OR_KEY "Block not found"; the compact form is the 80-byte header.
    await assert.rejects(rpc.call('getblockheader', ['00'.repeat(32)]), (e: unknown) => e instanceof RpcError && e.code === -5 && e.rpcMessage === 'Block not found');
    assert.equal(await rpc.getBlockHeader('00'.repeat(32)), null, 'the client answers null for an unknown block');
    const hex = await rpc.call<string>('getblockheader', [b3.hash, false]);
    assert.equal(hex, b3.hex.slice(0, 160));
  } finally {
    rpc.close();
    await h.close();
  }
});

function pick(hdr: { confirmations: number; height: number; nextblockhash?: string }): { confirmations: number; height: number; next?: string } {
  return { confirmations: hdr.confirmations, height: hdr.height, next: hdr.nextblockhash };
}

test('getblock 0 and 2 as Core prints them', async () => {
  const h = await startEmbeddedChain({ mempoolTxs: 6, mempoolRefreshMs: 0 });
  const rpc = new BitcoinRpc({ endpoints: [{ url: h.url, user: h.user, password: h.password }] });
  try {
    const m = await h.chain.mineBlock({ address: ADDRESS });
    const raw = await rpc.getBlock(m.hash, 0);
    assert.equal(raw, m.hex);
    assert.equal(bitcoin.Block.fromHex(raw as string).getId(), m.hash);

    const b = await rpc.getBlock(m.hash, 2) as Record<string, any>;
    assert.deepEqual(Object.keys(b), [
      'hash', 'confirmations', 'height', 'version', 'versionHex', 'merkleroot', 'time', 'mediantime', 'nonce', 'bits',
      'target', 'difficulty', 'chainwork', 'nTx', 'previousblockhash', 'strippedsize', 'size', 'weight', 'tx',
    ]);
    assert.equal(b.nTx, 7);
    const cb = b.tx[0];
    assert.deepEqual(Object.keys(cb), ['txid', 'hash', 'version', 'size', 'vsize', 'weight', 'locktime', 'vin', 'vout', 'hex']);
    assert.deepEqual(Object.keys(cb.vin[0]), ['coinbase', 'txinwitness', 'sequence']);
    const pay = cb.vout[0];
    assert.equal(pay.n, 0);
    assert.deepEqual(pay.scriptPubKey, {
      asm: '0 751e76e8199196d454941c45d1b3a323f1433bd6',
      desc: 'addr(bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080)#8pk5s7ya',
      hex: '0014751e76e8199196d454941c45d1b3a323f1433bd6',
      address: ADDRESS,
      type: 'witness_v0_keyhash',
    });
    const commitment = cb.vout.at(-1).scriptPubKey;
    assert.equal(commitment.type, 'nulldata');
    assert.match(commitment.asm, /^OP_RETURN aa21a9ed[0-9a-f]{64}$/);
    assert.match(commitment.desc, /^raw\(6a24aa21a9ed[0-9a-f]{64}\)#[a-z0-9]{8}$/);
    // A block without transactions: the same commitment (and descriptor) Core printed for its empty block.
    const empty = await h.chain.mineBlock({ txs: 'none' });
    const ec = (await rpc.getBlock(empty.hash, 2) as any).tx[0].vout.at(-1).scriptPubKey;
    assert.equal(ec.desc, 'raw(6a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf9)#cav96mf3');
    assert.equal(commitment.address, undefined);
    // A connected block has undo data: transactions carry their fee (coinbase excepted).
    for (const tx of b.tx.slice(1)) {
      assert.deepEqual(Object.keys(tx), ['txid', 'hash', 'version', 'size', 'vsize', 'weight', 'locktime', 'vin', 'vout', 'fee', 'hex']);
      assert.equal(typeof tx.fee, 'number');
      for (const o of tx.vout) assert.ok(['witness_v0_keyhash', 'witness_v1_taproot', 'pubkeyhash'].includes(o.scriptPubKey.type));
      for (const i of tx.vin) assert.deepEqual(Object.keys(i).filter((k) => k !== 'txinwitness'), ['txid', 'vout', 'scriptSig', 'sequence']);
    }
    // P2PKH spends: the signature's sighash byte is decoded, as Core's asm does for scriptSigs.
    const legacyIn = b.tx.slice(1).flatMap((t: any) => t.vin).find((i: any) => i.scriptSig.hex.length > 0);
    if (legacyIn) assert.match(legacyIn.scriptSig.asm, /^[0-9a-f]+\[ALL\] 0[23][0-9a-f]{64}$/);
    // A side block was never connected: no undo data, so no fee.
    const side = await h.chain.mineBlock({ prevHash: REGTEST_GENESIS_HASH, txs: [b.tx[1].txid] });
    assert.equal(side.result, 'inconclusive');
    const s = await rpc.getBlock(side.hash, 2) as Record<string, any>;
    assert.equal(s.confirmations, -1);
    assert.equal('fee' in s.tx[1], false);
    // The genesis output is a P2PK: pk() descriptor, no address.
    const g = await rpc.getBlock(REGTEST_GENESIS_HASH, 2) as Record<string, any>;
    const gk = g.tx[0].vout[0].scriptPubKey;
    // Difficulty as Core prints it (GetDifficulty in doubles, 16 significant digits).
    assert.equal(g.difficulty, 4.656542373906925e-10);
    assert.equal(JSON.stringify(g.difficulty), '4.656542373906925e-10');
    assert.equal(gk.type, 'pubkey');
    assert.equal(gk.address, undefined);
    assert.match(gk.desc, /^pk\(04678afdb0fe[0-9a-f]+\)#vlz6ztea$/); // Core's checksum for it
    assert.match(gk.asm, /^04678afdb0fe[0-9a-f]{118} OP_CHECKSIG$/);
  } finally {
    rpc.close();
    await h.close();
  }
});
