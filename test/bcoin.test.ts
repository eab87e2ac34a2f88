import { mkdtempSync, rmSync } from 'node:fs';
import { until } from './helpers/until.ts';
import { tmpdir } from 'node:os';
import path from 'node:path';
// The blocks our pool builds, judged by a full node nobody here wrote: bcoin@1.0.2 on regtest, in this process.
// Pool (config → runPool, pointed at bcoin's JSON-RPC) + a fleet of real Stratum miners grinding real sha256d;
// every block the pool submits must be stored by bcoin byte for byte, the main chain must be made of them, and an
// independent library (bitcoinjs-lib) re-checks merkle root, witness commitment and proof of work.
// Phase 1 runs before segwit (bcoin activates it at height 432); phase 2 moves the chain past activation with
// bcoin's own generatetoaddress, puts segwit transactions (signed by bcoin) in its mempool, and mines again.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as bitcoin from 'bitcoinjs-lib';
import pino from 'pino';
import { addressToScript } from '../src/chain/address.ts';
import { loadConfig } from '../src/cli/config.ts';
import { type RunningPool, runPool } from '../src/cli/run-pool.ts';
import { runFleet } from '../src/miner/fleet.ts';
import { BitcoinRpc } from '../src/node/rpc.ts';
import { templateTxCount } from '../src/node/types.ts';
import type { BlockEvent } from '../src/shares/events.ts';
import { type CandidateEvent, foldBlocks } from './helpers/blocks.ts';
import { type BcoinKeyRing, type BcoinNodeHandle, type BcoinTX, bcoinRegtestSubsidy, startBcoinNode } from './helpers/bcoin-node.ts';

const log = pino({ level: process.env.TEST_LOG ?? 'silent' });
const SEGWIT_HEIGHT = 432; // first block with segwit active on bcoin's regtest (BIP9, 144-block windows)
const FEE = 12_345; // satoshis per segwit test transaction
/** bcoin regtest's network difficulty (bits 207fffff), as its getblockchaininfo reports it. */
const REGTEST_DIFFICULTY = 4.656542373906925e-10;
/** Fleet hashes per second: about half of them are blocks. */
const HASHRATE = 9;


interface BcoinBlockJson {
  hash: string;
  height: number;
  confirmations: number;
  tx: Array<{ txid: string; vout: Array<{ value: number; scriptPubKey: { hex: string; addresses: string[] } }> }>;
}

interface Mined {
  /** Blocks bcoin took (answered null). */
  accepted: CandidateEvent[];
  /** Blocks bcoin did not take (or that were never sent: another of ours on the same parent was taken first). */
  rejected: CandidateEvent[];
  /** The pool's blocks that are bcoin's main chain at base+1..tip, in height order. */
  mainChain: CandidateEvent[];
  tip: number;
  ms: number;
}

/** Start the pool on bcoin, run a fleet until ≥ `blocks` pool blocks sit on bcoin's main chain, stop both. */
async function mineThroughPool(t: TestContext, node: BcoinNodeHandle, payout: string, blocks: number, opts: {
  beforeFleet?: (running: RunningPool) => Promise<void>;
} = {}): Promise<Mined> {
  const base = await node.rpc<number>('getblockcount');
  const cfg = loadConfig({
    env: {},
    overrides: {
      'database.dataDir': mkdtempSync(path.join(tmpdir(), 'hashhub-test-')), // never the repo's ./data
      network: 'regtest',
      payoutAddress: payout,
      'node.urls': [node.url],
      'node.user': node.user,
      'node.password': node.password,
      'node.pollMs': 200,
      'stratum.host': '127.0.0.1',
      'stratum.port': 0,
      // bcoin regtest's network difficulty (target 7fffff…): the pool never sets a share difficulty above the
      // network's, so every share is a block and about every other hash is a share.
      'stratum.difficulty.initial': REGTEST_DIFFICULTY,
    },
  });
  const started = Date.now();
  const running = await runPool(cfg, log);
  let poolStopped = false;
  const stopPool = async () => {
    if (poolStopped) return;
    poolStopped = true;
    await running.stop();
    rmSync(cfg.database.dataDir, { recursive: true, force: true });
  };
  const events: BlockEvent[] = [];
  running.shareLog.onBlock((e) => events.push(e));
  let fleet: ReturnType<typeof runFleet> | undefined;
  try {
    await opts.beforeFleet?.(running);
    fleet = runFleet({
      // Throttled: unthrottled CPU miners find hundreds of blocks a second here and get banned for flooding.
      count: 3, totalHashrate: HASHRATE, url: `stratum+tcp://127.0.0.1:${running.port}`, user: 'acct', versionRolling: true,
      connectRatePerSec: 50, reconnect: false,
    });
    let height = base;
    const taken = () => [...foldBlocks(events).values()].filter((b) => b.answers.includes(null));
    await until(async () => {
      if (taken().length < blocks) return false;
      height = await node.rpc<number>('getblockcount');
      return height >= base + blocks;
    }, 25_000, () => `${blocks} pool blocks on bcoin (height ${height}, base ${base}, blocks ${JSON.stringify([...foldBlocks(events).values()].map((b) => [b.status, b.answers]))})`);
    await fleet.stop(1000);
    // Submissions in flight finish before the pool stops; then the chain no longer moves.
    await stopPool();
    const ms = Date.now() - started;
    const tip = await node.rpc<number>('getblockcount');
    const folded = [...foldBlocks(events).values()];
    const accepted = folded.filter((b) => b.answers.includes(null)).map((b) => b.candidate);
    const rejected = folded.filter((b) => !b.answers.includes(null));
    const byHash = new Map(accepted.map((e) => [e.hash, e]));
    const mainChain: CandidateEvent[] = [];
    for (let h = base + 1; h <= tip; h++) {
      const hash = await node.rpc<string>('getblockhash', [h]);
      const ev = byHash.get(hash);
      assert.ok(ev, `bcoin's main-chain block ${h} (${hash}) is one the pool submitted and was told was accepted`);
      assert.equal(ev.height, h);
      mainChain.push(ev);
    }
    assert.deepEqual(Object.keys(running.pool.stats.blockResults).filter((k) => k.startsWith('error')), [], 'no submitblock call failed');
    t.diagnostic(`base ${base} → tip ${tip}: ${accepted.length} accepted (${mainChain.length} main chain, ` +
      `${accepted.length - mainChain.length} side chain), ${rejected.length} not taken ` +
      `${JSON.stringify(rejected.map((b) => [b.status, b.result]))}, ${ms} ms; header versions ` +
      `${[...new Set(mainChain.map((e) => e.blockHex.slice(0, 8)))].map((v) => Buffer.from(v, 'hex').readUInt32LE(0).toString(16)).join(',')}; fleet ${JSON.stringify({ accepted: fleet.stats().accepted, rejected: fleet.stats().rejected })}`);
    return { accepted, rejected: rejected.map((b) => b.candidate), mainChain, tip, ms };
  } finally {
    await fleet?.stop(0);
    await stopPool();
  }
}

/** Everything bcoin stored must be exactly what the pool built, and valid to bitcoinjs-lib. */
async function checkBlock(node: BcoinNodeHandle, b: CandidateEvent, payoutScript: Buffer, bcoinAddress: string, segwit: boolean) {
  const raw = await node.rpc<string>('getblock', [b.hash, 0]);
  assert.equal(raw, b.blockHex, `bcoin stored block ${b.height} exactly as the pool assembled it`);
  const blk = bitcoin.Block.fromHex(b.blockHex);
  assert.equal(blk.getId(), b.hash);
  assert.equal(blk.checkProofOfWork(), true, 'PoW meets bits');
  assert.equal(blk.checkTxRoots(), true, 'merkle root (and witness commitment when present)');
  const cb = blk.transactions![0];
  assert.equal(cb.isCoinbase(), true);
  const total = cb.outs.reduce((s, o) => s + BigInt(o.value), 0n);
  const paid = cb.outs.filter((o) => Buffer.from(o.script).equals(payoutScript)).reduce((s, o) => s + BigInt(o.value), 0n);
  assert.equal(paid, b.reward, 'the payout address gets the whole coinbase value');
  assert.equal(total, b.reward, 'no other output carries value');
  assert.ok(b.reward >= bcoinRegtestSubsidy(b.height), 'coinbase value covers the subsidy (fees: checked by the caller)');
  if (segwit) {
    assert.ok(blk.getWitnessCommit(), `block ${b.height}: witness commitment present after activation`);
    assert.equal(cb.ins[0].witness.length, 1, 'coinbase witness: one item');
    assert.equal(cb.ins[0].witness[0].length, 32, 'coinbase witness reserved value (32 bytes)');
  } else {
    assert.equal(blk.getWitnessCommit(), null, `block ${b.height}: no witness commitment before activation`);
    assert.equal(cb.ins[0].witness.length, 0, 'no coinbase witness before activation');
  }
  // BIP34 height push (bcoin's regtest does not enforce BIP34; the pool writes it anyway).
  const first = bitcoin.script.decompile(cb.ins[0].script)![0];
  const pushed = typeof first === 'number' ? first - 0x50 : bitcoin.script.number.decode(Buffer.from(first));
  assert.equal(pushed, b.height, 'BIP34 height push');
  // bcoin's own reading of the coinbase: it pays our key, in bcoin's address encoding.
  const json = await node.rpc<BcoinBlockJson>('getblock', [b.hash, true, true]);
  assert.equal(json.height, b.height);
  const out0 = json.tx[0].vout.find((o) => o.scriptPubKey.hex === payoutScript.toString('hex'));
  assert.ok(out0, 'bcoin sees the payout output');
  assert.deepEqual(out0.scriptPubKey.addresses, [bcoinAddress]);
  return blk;
}

test('bcoin (independent full node): pool-built blocks are accepted before and after segwit activation', async (t) => {
  const t0 = Date.now();
  let node: BcoinNodeHandle;
  try {
    node = await startBcoinNode();
  } catch (e) {
    t.skip(`bcoin cannot start on this machine: ${(e as Error).message}`);
    return;
  }
  try {
    t.diagnostic(`bcoin started in ${Date.now() - t0} ms at ${node.url}`);
    const { bcoin } = node;

    // One key for everything, made by bcoin. bcoin encodes its P2WPKH address with HRP `rb`; our decoder knows
    // regtest as `bcrt` (Bitcoin Core's). The output script is what counts, so the pool gets the `bcrt1` spelling
    // (made by bitcoinjs-lib) of the same witness program, and bcoin's RPC gets the `rb1` spelling.
    const ring: BcoinKeyRing = bcoin.KeyRing.generate(true);
    ring.witness = true;
    const bcoinAddress = ring.getAddress('string', 'regtest');
    const poolAddress = bitcoin.payments.p2wpkh({ hash: ring.getKeyHash(), network: bitcoin.networks.regtest }).address!;
    const payoutScript = addressToScript(poolAddress, 'regtest');
    assert.equal(payoutScript.toString('hex'), Buffer.from(bitcoin.address.toOutputScript(poolAddress, bitcoin.networks.regtest)).toString('hex'));
    assert.ok(bcoinAddress.startsWith('rb1q'));
    for (const a of [bcoinAddress, bcoin.Address.fromPubkeyhash(ring.getKeyHash()).toString('regtest')]) {
      try {
        addressToScript(a, 'regtest');
        t.diagnostic(`our decoder accepts bcoin's regtest address ${a}`);
      } catch (e) {
        t.diagnostic(`our decoder refuses bcoin's regtest address: ${(e as Error).message}`);
      }
    }

    // ---- Phase 1: before segwit (template rules lack segwit although default_witness_commitment is sent) ------
    const gbt = await node.rpc<{ rules: string[]; default_witness_commitment?: string }>('getblocktemplate', [{ rules: ['segwit'] }]);
    assert.ok(!gbt.rules.some((r) => r.replace('!', '') === 'segwit'), 'bcoin regtest starts with segwit inactive');
    const p1 = await mineThroughPool(t, node, poolAddress, 3);
    assert.ok(p1.mainChain.length >= 3, 'bcoin height grew by at least 3 pool blocks');
    for (const b of p1.accepted) {
      await checkBlock(node, b, payoutScript, bcoinAddress, false);
      assert.equal(b.reward, bcoinRegtestSubsidy(b.height), 'empty mempool: coinbase value = subsidy');
    }
    t.diagnostic(`phase 1 (pre-segwit) done at ${Date.now() - t0} ms`);

    // ---- Phase 2: past activation, with segwit transactions in bcoin's mempool --------------------------------
    const tg = Date.now();
    // bcoin's mempool takes witness transactions only once the tip itself is segwit-active (it checks the tip's
    // deployment state, not the next block's), so bcoin mines up to height 432 and the pool continues from 433.
    // In two calls: bcoin caches the template it last built (rebuilt on a new block; for new mempool transactions
    // only when the cache is over 10 s old). The first pool's last long poll is still parked in bcoin (bcoin does
    // not notice the client left); it wakes at the first generated block and builds a template as soon as
    // generatetoaddress releases the RPC lock. The one-block call afterwards connects a block, which drops that
    // cached template, so the next pool's first getblocktemplate is built with the transactions sent below.
    const need = SEGWIT_HEIGHT - p1.tip;
    if (need > 1) await node.rpc<string[]>('generatetoaddress', [need - 1, bcoinAddress]);
    if (need > 0) await node.rpc<string[]>('generatetoaddress', [1, bcoinAddress]);
    const tip = await node.rpc<number>('getblockcount');
    assert.ok(tip >= SEGWIT_HEIGHT);
    t.diagnostic(`generatetoaddress ${need} blocks: ${Date.now() - tg} ms`);
    // Not getblocktemplate here: that would build (and cache) a template before the transactions arrive.
    const info = await node.rpc<{ bip9_softforks: Record<string, { status: string }> }>('getblockchaininfo');
    assert.equal(info.bip9_softforks.segwit?.status, 'active');

    // Five P2WPKH spends of mature coinbases bcoin mined to our key, signed by bcoin (witness transactions).
    const sent: BcoinTX[] = [];
    for (let h = p1.tip + 1; h <= p1.tip + 5; h++) {
      const rawBlock = await node.rpc<string>('getblock', [await node.rpc<string>('getblockhash', [h]), 0]);
      const cbTx = bcoin.Block.fromRaw(rawBlock, 'hex').txs[0];
      const mtx = new bcoin.MTX();
      mtx.addCoin(bcoin.Coin.fromTX(cbTx, 0, h));
      mtx.addOutput(ring.getAddress(), cbTx.outputs[0].value - FEE);
      assert.equal(mtx.sign(ring), 1);
      const tx = mtx.toTX();
      assert.equal(tx.hasWitness(), true);
      const txid = await node.rpc<string>('sendrawtransaction', [tx.toRaw().toString('hex')]);
      assert.equal(txid, tx.txid());
      sent.push(tx);
    }
    // bcoin answers sendrawtransaction before its mempool has checked the transaction: wait for all of them.
    let mempool: string[] = [];
    await until(async () => {
      mempool = await node.rpc<string[]>('getrawmempool');
      return mempool.length >= sent.length || node.errors.length > 0;
    }, 5000, () => `bcoin's mempool to take ${sent.length} transactions (has ${mempool.length})`);
    assert.deepEqual(node.errors.map((e) => e.message), [], 'bcoin refused nothing');
    assert.deepEqual([...mempool].sort(), sent.map((x) => x.txid()).sort());

    const p2 = await mineThroughPool(t, node, poolAddress, 3, {
      async beforeFleet(running) {
        // The pool's first template must already carry the transactions (bcoin builds it on the first GBT).
        const cur = running.pool.templates.current!;
        assert.ok(cur.rules.includes('!segwit'));
        assert.equal(templateTxCount(cur), sent.length, 'the template carries the mempool');
      },
    });
    assert.ok(p2.mainChain.length >= 3);
    let withTxs = 0;
    for (const b of p2.accepted) {
      const blk = await checkBlock(node, b, payoutScript, bcoinAddress, true);
      const txs = blk.transactions!.slice(1);
      if (txs.length > 0) {
        withTxs++;
        assert.deepEqual(txs.map((x) => x.getId()).sort(), sent.map((x) => x.txid()).sort());
        assert.ok(txs.every((x) => x.hasWitnesses()), 'the segwit transactions keep their witnesses');
        assert.deepEqual(txs.map((x) => Buffer.from(x.getHash(true)).reverse().toString('hex')).sort(), sent.map((x) => x.wtxid()).sort());
        assert.equal(b.reward, bcoinRegtestSubsidy(b.height) + BigInt(FEE * sent.length), 'coinbase claims subsidy + fees');
      } else {
        assert.equal(b.reward, bcoinRegtestSubsidy(b.height));
      }
    }
    // The first main-chain block after activation is the pool's and carries the segwit transactions.
    const first = p2.mainChain[0];
    assert.ok(first.height >= SEGWIT_HEIGHT);
    assert.ok(bitcoin.Block.fromHex(first.blockHex).transactions!.length === sent.length + 1, 'first post-activation block mined the mempool');
    assert.deepEqual(await node.rpc<string[]>('getrawmempool'), [], 'bcoin confirmed every transaction');
    assert.ok(withTxs >= 1);

    // Found here: bcoin's getblockchaininfo has no `initialblockdownload` field; the RPC client must still read it.
    await t.test('BitcoinRpc.getBlockchainInfo() reads bcoin\'s answer', async () => {
      const client = new BitcoinRpc({ endpoints: [{ url: node.url, user: node.user, password: node.password }] });
      try {
        const info = await client.getBlockchainInfo();
        assert.equal(info.blocks, await node.rpc<number>('getblockcount'));
        assert.equal(info.initialblockdownload, false);
      } finally {
        client.close();
      }
    });
    t.diagnostic(`total ${Date.now() - t0} ms`);
  } finally {
    await node.stop();
  }
});
