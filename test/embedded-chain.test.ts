// The embedded regtest chain over real HTTP JSON-RPC with real block bytes. Blocks are built here from the
// template (buildCoinbase + the BIP141 commitment), ground with node:crypto sha256d, and cross-checked with
// bitcoinjs-lib, which shares no code with src/.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as bitcoin from 'bitcoinjs-lib';
import {
  addressToScript, assembleBlock, bitsToTarget, buildCoinbase, coinbaseWithWitness, concat, difficultyToTarget,
  fromHex, hashFromDisplay, merkleRoot, parseTx, serializeHeader, targetToBits, txid,
} from '../src/chain/index.ts';
import {
  EmbeddedChain, type EmbeddedChainHandle, REGTEST_GENESIS_HASH, blockSubsidy, regtestGenesis, startEmbeddedChain,
} from '../src/node/regtest/index.ts';
import type { BlockTemplate } from '../src/node/types.ts';
import { until } from './helpers/until.ts';

const ADDRESS = 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080';
const GENESIS_TIME = 1296688602;

// ---------- independent helpers ----------

const sha256d = (b: Uint8Array): Buffer => createHash('sha256').update(createHash('sha256').update(b).digest()).digest();
/** A hash in internal byte order read as the little-endian uint256 the PoW rule compares. */
const hashValue = (h: Buffer): bigint => BigInt(`0x${Buffer.from(h).reverse().toString('hex')}`);

/** Sets a nonce so that the header hash meets (`valid`) or misses (`weak`) the target. */
function grind(header: Buffer, target: bigint, want: 'valid' | 'weak'): Buffer {
  for (let nonce = 0; nonce < 50_000_000; nonce++) {
    header.writeUInt32LE(nonce, 76);
    const ok = hashValue(sha256d(header)) <= target;
    if (ok === (want === 'valid')) return header;
  }
  throw new Error('grind: nothing found');
}

/** BIP141 commitment script for a block with these transactions, computed by bitcoinjs-lib. */
function commitmentFor(txHexes: string[]): Buffer {
  const cb = new bitcoin.Transaction();
  cb.addInput(new Uint8Array(32), 0xffffffff);
  cb.setWitness(0, [new Uint8Array(32)]);
  const txs = [cb, ...txHexes.map((h) => bitcoin.Transaction.fromHex(h))];
  const root = bitcoin.Block.calculateMerkleRoot(txs, true);
  return Buffer.concat([Buffer.from('6a24aa21a9ed', 'hex'), Buffer.from(root)]);
}

interface Rpc { status: number; body: any; text: string; type: string | null }

async function rawRpc(h: EmbeddedChainHandle, body: unknown, auth: string | null = `${h.user}:${h.password}`, method = 'POST'): Promise<Rpc> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (auth !== null) headers.authorization = `Basic ${Buffer.from(auth).toString('base64')}`;
  const res = await fetch(h.url, { method, headers, body: method === 'POST' ? (typeof body === 'string' ? body : JSON.stringify(body)) : undefined });
  const text = await res.text();
  let parsed: unknown = null;
  try { parsed = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, body: parsed, text, type: res.headers.get('content-type') };
}

async function call<T = any>(h: EmbeddedChainHandle, method: string, params: unknown[] = []): Promise<T> {
  const r = await rawRpc(h, { jsonrpc: '1.0', id: 'test', method, params });
  if (r.body?.error) throw Object.assign(new Error(`${method}: ${r.body.error.message}`), { code: r.body.error.code, status: r.status });
  assert.equal(r.status, 200);
  return r.body.result as T;
}

const gbt = (h: EmbeddedChainHandle, extra: Record<string, unknown> = {}): Promise<BlockTemplate> =>
  call<BlockTemplate>(h, 'getblocktemplate', [{ rules: ['segwit'], ...extra }]);

interface Craft {
  coinbaseValue?: number;
  /** BIP34 height written in the coinbase. */
  height?: number;
  /** Commitment output script; null: none. Default: the template's default_witness_commitment. */
  commitment?: Buffer | null;
  /** Coinbase witness reserved value; null: no coinbase witness. Default 32 zero bytes. */
  reserved?: Buffer | null;
  /** Raw transactions after the coinbase. Default: the template's. */
  txs?: string[];
  prevHash?: string;
  time?: number;
  bits?: number;
  version?: number;
  merkleRoot?: Buffer;
  /** Extra coinbase output script (to make the block big). */
  bigOutput?: Buffer;
  /** Put a second coinbase after the first. */
  secondCoinbase?: boolean;
  hash?: 'valid' | 'weak';
  tag?: string;
}

/** A block from a template, as a pool builds it: coinbase = coinb1 ‖ extranonce ‖ coinb2, then header and PoW. */
function craftBlock(t: BlockTemplate, c: Craft = {}): { hex: string; hash: string; coinbaseTxid: string } {
  const commitment = c.commitment === undefined ? fromHex(t.default_witness_commitment!) : c.commitment;
  const outputs = [{ value: BigInt(c.coinbaseValue ?? t.coinbasevalue), scriptPubKey: addressToScript(ADDRESS, 'regtest') }];
  if (c.bigOutput) outputs.push({ value: 0n, scriptPubKey: c.bigOutput });
  const { coinb1, coinb2 } = buildCoinbase({
    height: c.height ?? t.height,
    extranonceSize: 8,
    tag: Buffer.from(c.tag ?? '/test/'),
    outputs,
    witnessCommitmentScript: commitment ?? undefined,
  });
  const cbNoWitness = concat([coinb1, Buffer.from('0011223344556677', 'hex'), coinb2]);
  const reserved = c.reserved === undefined ? Buffer.alloc(32) : c.reserved;
  const coinbase = reserved ? coinbaseWithWitness(cbNoWitness, reserved) : cbNoWitness;
  const txHexes = c.txs ?? t.transactions.map((x) => x.data);
  const txBytes = txHexes.map((x) => fromHex(x));
  if (c.secondCoinbase) {
    const second = buildCoinbase({ height: t.height, extranonceSize: 1, tag: Buffer.from('/second/'), outputs: [{ value: 0n, scriptPubKey: Buffer.from([0x51]) }] });
    txBytes.unshift(concat([second.coinb1, Buffer.from([0]), second.coinb2]));
  }
  const ids = [sha256d(cbNoWitness), ...txBytes.map((b) => txid(parseTx(b)))];
  const header = serializeHeader({
    version: c.version ?? t.version,
    prevHash: hashFromDisplay(c.prevHash ?? t.previousblockhash),
    merkleRoot: c.merkleRoot ?? merkleRoot(ids),
    time: c.time ?? t.curtime,
    bits: c.bits ?? parseInt(t.bits, 16),
    nonce: 0,
  });
  grind(header, bitsToTarget(c.bits ?? parseInt(t.bits, 16)), c.hash ?? 'valid');
  const hex = assembleBlock(header, coinbase, txBytes).toString('hex');
  return { hex, hash: Buffer.from(sha256d(header)).reverse().toString('hex'), coinbaseTxid: Buffer.from(ids[0]).reverse().toString('hex') };
}

const submit = (h: EmbeddedChainHandle, hex: string): Promise<string | null> => call(h, 'submitblock', [hex]);

// ---------- tests ----------

describe('embedded chain: JSON-RPC over HTTP', () => {
  let h: EmbeddedChainHandle;
  before(async () => { h = await startEmbeddedChain({ mempoolRefreshMs: 0 }); });
  after(async () => { await h.close(); });

  test('Basic auth is required; only POST; Core status codes and error shapes', async () => {
    const req = { jsonrpc: '1.0', id: 1, method: 'getblockcount', params: [] };
    const none = await rawRpc(h, req, null);
    assert.equal(none.status, 401);
    assert.equal(none.text, '');
    const wrong = await rawRpc(h, req, `${h.user}:nope`);
    assert.equal(wrong.status, 401);
    assert.equal((await rawRpc(h, req, null, 'GET')).status, 405);
    assert.deepEqual((await rawRpc(h, req)).body, { result: 0, error: null, id: 1 });

    const parse = await rawRpc(h, '{"method": ');
    assert.equal(parse.status, 500);
    assert.deepEqual(parse.body, { result: null, error: { code: -32700, message: 'Parse error' }, id: null });
    const unknown = await rawRpc(h, { id: 7, method: 'nosuchmethod', params: [] });
    assert.equal(unknown.status, 404);
    assert.deepEqual(unknown.body, { result: null, error: { code: -32601, message: 'Method not found' }, id: 7 });
    const range = await rawRpc(h, { id: 8, method: 'getblockhash', params: [5] });
    assert.equal(range.status, 500);
    assert.deepEqual(range.body.error, { code: -8, message: 'Block height out of range' });
    const type = await rawRpc(h, { id: 9, method: 'getblockhash', params: ['x'] });
    assert.equal(type.body.error.code, -3);
    const tooMany = await rawRpc(h, { id: 10, method: 'getblockcount', params: [1] });
    assert.equal(tooMany.body.error.code, -1);
    const badHash = await rawRpc(h, { id: 11, method: 'getblock', params: ['zz'] });
    assert.equal(badHash.body.error.code, -8);
    const missing = await rawRpc(h, { id: 12, method: 'getblock', params: ['00'.repeat(32)] });
    assert.deepEqual(missing.body.error, { code: -5, message: 'Block not found' });
    const notObject = await rawRpc(h, '42');
    assert.equal(notObject.body.error.code, -32700);
    const noMethod = await rawRpc(h, { id: 13, params: [] });
    assert.equal(noMethod.status, 400);
    assert.equal(noMethod.body.error.code, -32600);

    // JSON-RPC 2.0 (Core >= 28): HTTP 200, result xor error; notifications get 204.
    const v2 = await rawRpc(h, { jsonrpc: '2.0', id: 'a', method: 'getbestblockhash' });
    assert.deepEqual(v2.body, { jsonrpc: '2.0', result: REGTEST_GENESIS_HASH, id: 'a' });
    const v2err = await rawRpc(h, { jsonrpc: '2.0', id: 'b', method: 'nosuchmethod' });
    assert.equal(v2err.status, 200);
    assert.deepEqual(v2err.body, { jsonrpc: '2.0', error: { code: -32601, message: 'Method not found' }, id: 'b' });
    assert.equal((await rawRpc(h, { jsonrpc: '2.0', method: 'getblockcount' })).status, 204);
    // Named parameters.
    assert.equal((await rawRpc(h, { id: 1, method: 'getblockhash', params: { height: 0 } })).body.result, REGTEST_GENESIS_HASH);

    const batch = await rawRpc(h, [{ id: 1, method: 'getblockcount' }, { id: 2, method: 'nosuchmethod' }]);
    assert.equal(batch.status, 200);
    assert.equal(batch.body.length, 2);
    assert.equal(batch.body[0].result, 0);
    assert.equal(batch.body[1].error.code, -32601);
  });

  test('genesis is the real regtest genesis; chain info like Core', async () => {
    const g = regtestGenesis();
    assert.equal(Buffer.from(sha256d(serializeHeader(g.header))).reverse().toString('hex'), REGTEST_GENESIS_HASH);
    const info = await call(h, 'getblockchaininfo');
    assert.equal(info.chain, 'regtest');
    assert.equal(info.blocks, 0);
    assert.equal(info.bestblockhash, REGTEST_GENESIS_HASH);
    assert.equal(info.bits, '207fffff');
    assert.equal(info.initialblockdownload, false);
    assert.equal(await call(h, 'getblockhash', [0]), REGTEST_GENESIS_HASH);
    const hex = await call<string>(h, 'getblock', [REGTEST_GENESIS_HASH, 0]);
    const ref = bitcoin.Block.fromHex(hex);
    assert.equal(ref.getId(), REGTEST_GENESIS_HASH);
    assert.equal(ref.timestamp, GENESIS_TIME);
    assert.ok(ref.checkProofOfWork());
    assert.ok(ref.checkTxRoots());
    const mining = await call(h, 'getmininginfo');
    assert.equal(mining.chain, 'regtest');
    assert.equal(mining.pooledtx, 40);
    assert.equal((await call(h, 'getnetworkinfo')).connections, 0);
    assert.equal(await call(h, 'getdifficulty'), info.difficulty);
  });

  test('getblocktemplate requires the segwit rule', async () => {
    for (const params of [[], [{}], [{ rules: [] }], [{ rules: ['taproot'] }]]) {
      const r = await rawRpc(h, { id: 1, method: 'getblocktemplate', params });
      assert.equal(r.status, 500);
      assert.deepEqual(r.body.error, {
        code: -8, message: 'getblocktemplate must be called with the segwit rule set (call with {"rules": ["segwit"]})',
      });
    }
    const bad = await rawRpc(h, { id: 1, method: 'getblocktemplate', params: ['segwit'] });
    assert.equal(bad.body.error.code, -3);
  });

  test('template shape, fees, coinbase value and default_witness_commitment recomputed independently', async () => {
    const t = await gbt(h);
    assert.equal(t.version, 0x20000000);
    assert.deepEqual(t.rules, ['csv', '!segwit', 'taproot']);
    assert.equal(t.previousblockhash, REGTEST_GENESIS_HASH);
    assert.equal(t.height, 1);
    assert.equal(t.bits, '207fffff');
    assert.equal(t.target, `7fffff${'0'.repeat(58)}`);
    assert.equal(t.mintime, GENESIS_TIME + 1);
    assert.ok(t.curtime >= t.mintime && Math.abs(t.curtime - Date.now() / 1000) < 5);
    assert.deepEqual(t.mutable, ['time', 'transactions', 'prevblock']);
    assert.equal(t.noncerange, '00000000ffffffff');
    assert.equal(t.weightlimit, 4_000_000);
    assert.equal(t.sizelimit, 4_000_000);
    assert.equal(t.sigoplimit, 80_000);
    assert.deepEqual(t.coinbaseaux, {});
    assert.equal(typeof t.longpollid, 'string');
    assert.ok(t.longpollid!.startsWith(REGTEST_GENESIS_HASH));

    assert.equal(t.transactions.length, 40);
    let fees = 0;
    let segwit = 0;
    for (const x of t.transactions) {
      const tx = bitcoin.Transaction.fromHex(x.data);
      assert.equal(tx.getId(), x.txid);
      assert.equal(Buffer.from(tx.getHash(true)).reverse().toString('hex'), x.hash);
      assert.equal(tx.weight(), x.weight);
      assert.deepEqual(x.depends, []);
      assert.ok(Number.isSafeInteger(x.fee) && x.fee > 0);
      assert.ok(Number.isInteger(x.sigops) && x.sigops! >= 0);
      if (tx.hasWitnesses()) { segwit++; assert.notEqual(x.hash, x.txid); } else assert.equal(x.hash, x.txid);
      fees += x.fee;
    }
    assert.ok(segwit >= 10, `${segwit} segwit transactions of 40`);
    assert.equal(t.coinbasevalue, 50 * 1e8 + fees);
    assert.equal(t.default_witness_commitment, commitmentFor(t.transactions.map((x) => x.data)).toString('hex'));
  });

  test('a block mined from the template is accepted; tip, getblock and bitcoinjs-lib agree', async () => {
    const t = await gbt(h);
    const b = craftBlock(t);
    // BIP23 proposals are checked without proof of work and without storing anything.
    assert.equal(await gbt(h, { mode: 'proposal', data: b.hex }), null);
    assert.equal(await gbt(h, { mode: 'proposal', data: craftBlock(t, { coinbaseValue: t.coinbasevalue + 1 }).hex }), 'bad-cb-amount');
    assert.equal(await gbt(h, { mode: 'proposal', data: craftBlock(t, { prevHash: '22'.repeat(32) }).hex }), 'inconclusive-not-best-prevblk');
    assert.equal(await call(h, 'getblockcount'), 0);
    assert.equal(await submit(h, b.hex), null);
    assert.equal(await call(h, 'getbestblockhash'), b.hash);
    assert.equal(await call(h, 'getblockcount'), 1);
    assert.equal(await call(h, 'getblockhash', [1]), b.hash);

    const ref = bitcoin.Block.fromHex(b.hex);
    assert.equal(ref.getId(), b.hash);
    assert.ok(ref.checkProofOfWork());
    assert.ok(ref.hasWitnessCommit());
    assert.ok(ref.checkTxRoots(), 'merkle root and witness commitment');

    const info = await call(h, 'getblock', [b.hash]);
    assert.equal(info.hash, b.hash);
    assert.equal(info.height, 1);
    assert.equal(info.confirmations, 1);
    assert.equal(info.previousblockhash, REGTEST_GENESIS_HASH);
    assert.equal(info.nextblockhash, undefined);
    assert.equal(info.bits, '207fffff');
    assert.equal(info.time, t.curtime);
    assert.equal(info.nTx, 41);
    assert.deepEqual(info.tx, [b.coinbaseTxid, ...t.transactions.map((x) => x.txid)]);
    assert.equal(info.weight, ref.weight());
    assert.equal(await call(h, 'getblock', [b.hash, 0]), b.hex);
    assert.equal((await call(h, 'getblock', [REGTEST_GENESIS_HASH])).nextblockhash, b.hash);
    const v2 = await call(h, 'getblock', [b.hash, 2]);
    assert.equal(v2.tx[1].fee, t.transactions[0].fee / 1e8);

    // The next template builds on it, without the mined transactions, and a mempool topped up again.
    const next = await gbt(h);
    assert.equal(next.previousblockhash, b.hash);
    assert.equal(next.height, 2);
    assert.ok(next.mintime > t.curtime - 1);
    const mined = new Set(t.transactions.map((x) => x.txid));
    assert.ok(next.transactions.every((x) => !mined.has(x.txid)));
    assert.equal(next.transactions.length, 40);

    assert.equal(await submit(h, b.hex), 'duplicate');
  });

  test('every reject reason, each from a crafted bad block', async () => {
    const t = await gbt(h);
    const tip = t.previousblockhash;
    const expect = async (c: Craft, reason: string) => assert.equal(await submit(h, craftBlock(t, c).hex), reason, reason);

    await expect({ prevHash: '11'.repeat(32) }, 'prev-blk-not-found');
    await expect({ hash: 'weak' }, 'high-hash');
    await expect({ merkleRoot: Buffer.alloc(32, 7) }, 'bad-txnmrklroot');
    await expect({ height: t.height + 1 }, 'bad-cb-height');
    await expect({ secondCoinbase: true }, 'bad-cb-multiple');
    await expect({ reserved: Buffer.alloc(31) }, 'bad-witness-nonce-size');
    await expect({ txs: t.transactions.slice(1).map((x) => x.data) }, 'bad-witness-merkle-match');
    await expect({ commitment: null, reserved: null }, 'unexpected-witness');
    await expect({ time: t.mintime - 1 }, 'time-too-old');
    await expect({ time: Math.floor(Date.now() / 1000) + 2 * 3600 + 60 }, 'time-too-new');
    await expect({ bits: 0x207ffffe }, 'bad-diffbits');
    await expect({ version: 3 }, 'bad-version(0x00000003)');
    await expect({ bigOutput: Buffer.alloc(1_000_001, 0x6a) }, 'bad-blk-length');

    // Weight: a 950 kB coinbase (3.8 M weight) plus a transaction whose witness grew by 300 kB.
    const sw = bitcoin.Transaction.fromHex(t.transactions.find((x) => x.hash !== x.txid)!.data);
    sw.setWitness(0, [new Uint8Array(300_000)]);
    await expect({ bigOutput: Buffer.alloc(950_000, 0x6a), txs: [sw.toHex()], commitment: commitmentFor([sw.toHex()]) }, 'bad-blk-weight');

    // A transaction the chain never offered.
    const stranger = new bitcoin.Transaction();
    stranger.addInput(new Uint8Array(32).fill(9), 0);
    stranger.addOutput(Buffer.from('0014' + '42'.repeat(20), 'hex'), 1000n);
    stranger.setWitness(0, [new Uint8Array(72), new Uint8Array(33)]);
    const strangerTxs = [t.transactions[0].data, stranger.toHex()];
    await expect({ txs: strangerTxs, commitment: commitmentFor(strangerTxs), coinbaseValue: 5e9 }, 'bad-txns-inputs-missingorspent');

    // A transaction already mined on this branch (block 1 carried the first template's transactions).
    const block1 = await call(h, 'getblock', [tip, 2]);
    const spent = [block1.tx[1].hex as string];
    await expect({ txs: spent, commitment: commitmentFor(spent), coinbaseValue: 5e9 }, 'bad-txns-inputs-missingorspent');

    // Too much paid to the coinbase; Core caches it as invalid: a resubmission is duplicate-invalid.
    const greedy = craftBlock(t, { coinbaseValue: t.coinbasevalue + 1 });
    assert.equal(await submit(h, greedy.hex), 'bad-cb-amount');
    assert.equal(await submit(h, greedy.hex), 'duplicate-invalid');

    // Undecodable bytes are an RPC error, not a reason.
    for (const hex of ['zz', '00', craftBlock(t).hex.slice(0, -10), `${craftBlock(t).hex}00`]) {
      const r = await rawRpc(h, { id: 1, method: 'submitblock', params: [hex] });
      assert.equal(r.status, 500);
      assert.deepEqual(r.body.error, { code: -22, message: 'Block decode failed' });
    }
    const noCoinbase = craftBlock(t).hex;
    // Swap the coinbase's null prevout index for 0: the first tx is no coinbase.
    const idx = noCoinbase.indexOf('0000000000000000000000000000000000000000000000000000000000000000ffffffff', 160);
    const broken = `${noCoinbase.slice(0, idx + 64)}00000000${noCoinbase.slice(idx + 72)}`;
    const r = await rawRpc(h, { id: 1, method: 'submitblock', params: [broken] });
    assert.deepEqual(r.body.error, { code: -22, message: 'Block does not start with a coinbase' });

    // Nothing above moved the tip.
    assert.equal(await call(h, 'getbestblockhash'), tip);

    // Core's submitblock adds the default witness reserved value when the coinbase has none.
    const bare = craftBlock(t, { reserved: null });
    assert.equal(await submit(h, bare.hex), null);
    assert.equal(await call(h, 'getbestblockhash'), bare.hash);
    const stored = bitcoin.Block.fromHex(await call(h, 'getblock', [bare.hash, 0]));
    assert.deepEqual(stored.transactions![0].ins[0].witness, [new Uint8Array(32)]);

    // A valid block on a known, not-best parent is stored but not the tip.
    const side = craftBlock(t, { prevHash: tip, time: t.curtime + 1, tag: '/side/' });
    assert.equal(await submit(h, side.hex), 'inconclusive');
    assert.equal(await call(h, 'getbestblockhash'), bare.hash);
    assert.equal((await call(h, 'getblock', [side.hash])).confirmations, -1);
  });

  test('generatetoaddress mines real blocks', async () => {
    const height = await call<number>(h, 'getblockcount');
    const hashes = await call<string[]>(h, 'generatetoaddress', [3, ADDRESS]);
    assert.equal(hashes.length, 3);
    assert.equal(await call(h, 'getblockcount'), height + 3);
    for (const hash of hashes) {
      const ref = bitcoin.Block.fromHex(await call(h, 'getblock', [hash, 0]));
      assert.ok(ref.checkProofOfWork() && ref.checkTxRoots());
      const out = ref.transactions![0].outs[0];
      assert.equal(Buffer.from(out.script).toString('hex'), addressToScript(ADDRESS, 'regtest').toString('hex'));
    }
    const bad = await rawRpc(h, { id: 1, method: 'generatetoaddress', params: [1, 'notanaddress'] });
    assert.deepEqual(bad.body.error, { code: -5, message: 'Error: Invalid address' });
  });
});

describe('embedded chain: difficulty', () => {
  test('a higher difficulty gives matching bits; a weak hash is high-hash, wrong bits bad-diffbits', async () => {
    const h = await startEmbeddedChain({ difficulty: 1e-6, mempoolTxs: 5, mempoolRefreshMs: 0 });
    try {
      const bits = targetToBits(difficultyToTarget(1e-6));
      const t = await gbt(h);
      assert.equal(t.bits, bits.toString(16).padStart(8, '0'));
      assert.equal(BigInt(`0x${t.target}`), bitsToTarget(bits));
      assert.ok(Math.abs((await call<number>(h, 'getdifficulty')) - 1e-6) / 1e-6 < 1e-4);
      assert.equal(await submit(h, craftBlock(t, { hash: 'weak' }).hex), 'high-hash');
      // Meets the easy regtest bits it claims, but those are not the chain's bits.
      const easy = craftBlock({ ...t, bits: '207fffff' });
      assert.equal(await submit(h, easy.hex), 'bad-diffbits');
      const good = craftBlock(t);
      assert.equal(await submit(h, good.hex), null);
      assert.equal((await call(h, 'getblock', [good.hash])).bits, t.bits);
    } finally {
      await h.close();
    }
  });

  test('subsidy halves every 150 blocks; the template pays it at the halving height', async () => {
    assert.equal(blockSubsidy(0), 5_000_000_000n);
    assert.equal(blockSubsidy(149), 5_000_000_000n);
    assert.equal(blockSubsidy(150), 2_500_000_000n);
    assert.equal(blockSubsidy(299), 2_500_000_000n);
    assert.equal(blockSubsidy(300), 1_250_000_000n);
    assert.equal(blockSubsidy(150 * 33), 0n);
    assert.equal(blockSubsidy(150 * 64), 0n);
    const h = await startEmbeddedChain({ mempoolTxs: 0, mempoolRefreshMs: 0 });
    try {
      assert.equal((await call<string[]>(h, 'generatetoaddress', [149, ADDRESS])).length, 149);
      const t = await gbt(h);
      assert.equal(t.height, 150);
      assert.equal(t.transactions.length, 0);
      assert.equal(t.coinbasevalue, 2_500_000_000);
      assert.equal(await submit(h, craftBlock(t, { coinbaseValue: 2_500_000_001 }).hex), 'bad-cb-amount');
      assert.equal(await submit(h, craftBlock(t).hex), null);
    } finally {
      await h.close();
    }
  });
});

describe('embedded chain: in process', () => {
  test('the injected clock drives curtime and time-too-new (not cached: the same block passes later)', () => {
    let nowMs = 2_000_000_000_000;
    const chain = new EmbeddedChain({ now: () => nowMs, mempoolTxs: 3, mempoolRefreshMs: 0 });
    try {
      const t = chain.getBlockTemplate();
      assert.equal(t.curtime, 2_000_000_000);
      const ahead = craftBlock(t, { time: 2_000_000_000 + 2 * 3600 + 1 });
      assert.equal(chain.submitBlock(fromHex(ahead.hex)), 'time-too-new');
      nowMs += 2_000;
      assert.equal(chain.submitBlock(fromHex(ahead.hex)), null);
      assert.equal(chain.tip.hashHex, ahead.hash);
      assert.equal(chain.getBlockTemplate().mintime, 2_000_000_000 + 2 * 3600 + 2);
    } finally {
      chain.close();
    }
  });
});

describe('embedded chain: bounded memory', () => {
  test('blocks deeper than pruneDepth lose their data, like a pruned node', async () => {
    const h = await startEmbeddedChain({ mempoolTxs: 2, mempoolRefreshMs: 0, pruneDepth: 10 });
    try {
      const first = await call<string[]>(h, 'generatetoaddress', [20, ADDRESS]);
      const old = bitcoin.Block.fromHex(await call(h, 'getblock', [first[9], 0])).transactions![1].toHex();
      const hashes = [...first, ...await call<string[]>(h, 'generatetoaddress', [95, ADDRESS])];
      for (const i of [0, 9]) {
        const r = await rawRpc(h, { id: 1, method: 'getblock', params: [hashes[i]] });
        assert.deepEqual(r.body.error, { code: -1, message: 'Block not available (pruned data)' });
      }
      assert.equal((await call(h, 'getblockheader', [hashes[0]])).height, 1);
      assert.equal((await call(h, 'getblock', [hashes[114]])).nTx, 3);
      // A transaction buried below the pruning depth is forgotten: including it again is still refused.
      const t = await gbt(h);
      assert.equal(h.chain.getOffered(bitcoin.Transaction.fromHex(old).getId()), undefined);
      assert.equal(await submit(h, craftBlock(t, { txs: [old], commitment: commitmentFor([old]), coinbaseValue: 5e9 }).hex), 'bad-txns-inputs-missingorspent');
    } finally {
      await h.close();
    }
  });
});

describe('embedded chain: long polling', () => {
  test('a long poll returns when a block arrives, at once when stale, on mempool refresh and on timeout', async () => {
    // A long timeout while a block is awaited (a loaded machine may take more than a short one to craft and submit
    // it); the timeout itself on a second chain with a short one.
    const h = await startEmbeddedChain({ mempoolRefreshMs: 0, longpollTimeoutMs: 30_000 });
    try {
      const t = await gbt(h);
      assert.equal((await gbt(h, { longpollid: 'ab'.repeat(32) + '0' })).longpollid, t.longpollid, 'stale id: answered at once');

      let settled = false;
      const waiting = gbt(h, { longpollid: t.longpollid }).then((x) => { settled = true; return x; });
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(settled, false, 'held while nothing changes');
      const b = craftBlock(t);
      const submitted = Date.now();
      assert.equal(await submit(h, b.hex), null);
      const next = await waiting;
      // Well before the 30 s timeout, which would also answer with the new tip: the block woke the long poll.
      assert.ok(Date.now() - submitted < 10_000, `answered ${Date.now() - submitted} ms after the block`);
      assert.equal(next.previousblockhash, b.hash);
      assert.notEqual(next.longpollid, t.longpollid);
    } finally {
      await h.close();
    }
    const short = await startEmbeddedChain({ mempoolRefreshMs: 0, longpollTimeoutMs: 400 });
    try {
      const t = await gbt(short);
      const started = Date.now();
      const same = await gbt(short, { longpollid: t.longpollid });
      assert.ok(Date.now() - started >= 350, 'timeout answers with the current template');
      assert.equal(same.previousblockhash, t.previousblockhash);
    } finally {
      await short.close();
    }

    // Core looks at the mempool only after a minute, then every 10 s (here 300 ms, then 100 ms); no timeout.
    const r = await startEmbeddedChain({ mempoolTxs: 10, mempoolRefreshMs: 50, longpollMempoolFirstMs: 300, longpollMempoolEveryMs: 100 });
    try {
      const t = await gbt(r);
      const started = Date.now();
      const next = await gbt(r, { longpollid: t.longpollid });
      const took = Date.now() - started;
      // Not before the first look (300 ms); the upper bound only tells a mempool answer from a hang.
      assert.ok(took >= 290 && took < 20_000, `answered after ${took} ms`);
      assert.equal(next.previousblockhash, t.previousblockhash);
      assert.notEqual(next.longpollid, t.longpollid);
      assert.notDeepEqual(next.transactions.map((x) => x.txid), t.transactions.map((x) => x.txid), 'new transactions arrived');
      assert.equal(next.transactions.length, 10);
    } finally {
      await r.close();
    }
  });

  test('like Core: no server-side timeout, a client that leaves still pins a worker, a full work queue answers 503', async () => {
    const h = await startEmbeddedChain({ mempoolRefreshMs: 0, rpcThreads: 2, rpcWorkQueue: 1 });
    try {
      const t = await gbt(h);
      // Two long polls whose clients give up: Core does not notice, each keeps one of the two workers.
      const gone = [new AbortController(), new AbortController()];
      const polls = gone.map((c) => fetch(h.url, {
        method: 'POST', signal: c.signal,
        headers: { authorization: `Basic ${Buffer.from(`${h.user}:${h.password}`).toString('base64')}` },
        body: JSON.stringify({ id: 1, method: 'getblocktemplate', params: [{ rules: ['segwit'], longpollid: t.longpollid }] }),
      }).catch(() => 'aborted'));
      await until(() => h.chain.longpollsWaiting === 2, 2_000, 'two long polls waiting');
      for (const c of gone) c.abort();
      assert.deepEqual(await Promise.all(polls), ['aborted', 'aborted']);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(h.chain.longpollsWaiting, 2, 'still pinned after their clients left');
      // The next request waits in the queue (depth 1); one more is refused at once.
      const queued = call(h, 'getblockcount');
      await until(() => h.work.queued === 1, 2_000, 'one request queued');
      const refused = await rawRpc(h, { id: 1, method: 'getblockcount', params: [] });
      assert.equal(refused.status, 503);
      assert.equal(refused.text, 'Work queue depth exceeded');
      assert.equal(refused.type, 'text/html; charset=ISO-8859-1', 'as Core sends it');
      // A new tip ends the long polls; the queued request runs.
      await h.chain.mineBlock();
      assert.equal(await queued, 1);
      assert.equal(h.chain.longpollsWaiting, 0);
      assert.deepEqual(h.work, { running: 0, queued: 0, rejected: 1 });
    } finally {
      await h.close();
    }
  });

  test('close() ends pending long polls and keep-alive sockets promptly', async () => {
    const h = await startEmbeddedChain({ mempoolRefreshMs: 0 });
    const t = await gbt(h);
    const pending = gbt(h, { longpollid: t.longpollid }).then(() => 'answered', () => 'closed');
    await new Promise((r) => setTimeout(r, 50));
    const started = Date.now();
    await h.close();
    assert.ok(['answered', 'closed'].includes(await pending));
    // The long poll would hold until something changes (no timeout by default): seconds mean close() did not wait for it.
    assert.ok(Date.now() - started < 10_000);
  });
});

describe('embedded chain: reorgs', () => {
  test('invalidateblock / reconsiderblock move the tip; a longer competing branch takes over', async () => {
    const h = await startEmbeddedChain({ mempoolTxs: 8, mempoolRefreshMs: 0 });
    try {
      const chain = h.chain;
      const [a1, a2] = await call<string[]>(h, 'generatetoaddress', [2, ADDRESS]);
      const a2txs = (await call(h, 'getblock', [a2])).tx.slice(1) as string[];
      assert.equal(a2txs.length, 8);

      // A long poll sees the tip go back.
      const t = await gbt(h);
      const waiting = gbt(h, { longpollid: t.longpollid });
      assert.equal(await call(h, 'invalidateblock', [a2]), null);
      assert.equal((await waiting).previousblockhash, a1);
      assert.equal(await call(h, 'getbestblockhash'), a1);
      const pool = new Set(await call<string[]>(h, 'getrawmempool'));
      assert.ok(a2txs.every((id) => pool.has(id)), "the invalidated block's transactions are back in the mempool");
      assert.ok(a2txs.every((id) => (chain.getBlockTemplate().transactions.some((x) => x.txid === id))));
      assert.equal((await call(h, 'getblock', [a2])).confirmations, -1);
      const again = await rawRpc(h, { id: 1, method: 'submitblock', params: [await call(h, 'getblock', [a2, 0])] });
      assert.equal(again.body.result, 'duplicate-invalid');

      assert.equal(await call(h, 'reconsiderblock', [a2]), null);
      assert.equal(await call(h, 'getbestblockhash'), a2);
      const pool2 = new Set(await call<string[]>(h, 'getrawmempool'));
      assert.ok(a2txs.every((id) => !pool2.has(id)));

      // A competing branch from genesis: equal work stays behind (first seen wins), more work takes over.
      const b1 = await chain.mineBlock({ prevHash: REGTEST_GENESIS_HASH, address: ADDRESS });
      assert.equal(b1.result, 'inconclusive');
      const b2 = await chain.mineBlock({ prevHash: b1.hash });
      assert.equal(b2.result, 'inconclusive');
      assert.equal(await call(h, 'getbestblockhash'), a2);
      const waiting2 = gbt(h, { longpollid: (await gbt(h)).longpollid });
      const b3 = await chain.mineBlock({ prevHash: b2.hash });
      assert.equal(b3.result, null);
      assert.equal((await waiting2).previousblockhash, b3.hash);
      assert.equal(await call(h, 'getbestblockhash'), b3.hash);
      assert.equal(await call(h, 'getblockcount'), 3);
      assert.equal(await call(h, 'getblockhash', [1]), b1.hash);
      assert.equal((await call(h, 'getblock', [a1])).confirmations, -1);
      assert.equal((await call(h, 'getblock', [b1.hash])).nextblockhash, b2.hash);
      const pool3 = new Set(await call<string[]>(h, 'getrawmempool'));
      assert.ok(a2txs.every((id) => pool3.has(id)), 'transactions of the losing branch return');

      // A transaction mined on the losing branch is still unspent on this one, but only once.
      const b4 = await chain.mineBlock({ txs: [a2txs[0]] });
      assert.equal(b4.result, null);
      const b5 = await chain.mineBlock({ txs: [a2txs[0]] });
      assert.equal(b5.result, 'bad-txns-inputs-missingorspent');

      // A longer branch with a bad block in it: Core stores it (inconclusive), fails it on reorg, keeps the tip.
      const c4 = await chain.mineBlock({ prevHash: b3.hash, coinbaseValue: 60n * 100_000_000n });
      assert.equal(c4.result, 'inconclusive');
      const c5 = await chain.mineBlock({ prevHash: c4.hash });
      assert.equal(c5.result, 'inconclusive');
      assert.equal(await call(h, 'getbestblockhash'), b4.hash);
      assert.equal(await submit(h, c4.hex), 'duplicate-invalid');
    } finally {
      await h.close();
    }
  });
});
