import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { p2pkh } from '@scure/btc-signer';
import { pubECDSA } from '@scure/btc-signer/utils.js';
import { BitcoinRpc } from '../src/node/rpc.ts';
import { BlockTracker, DEFAULT_BLOCK_TRACKER_OPTIONS } from '../src/pool/block-tracker.ts';
import type { BlockEvent } from '../src/shares/events.ts';
import { BCOIN_REGTEST, type BcoinNodeHandle, loadBcoin, startBcoinNode } from './helpers/bcoin-node.ts';
import { until } from './helpers/until.ts';

// A pool block that a reorg replaced, judged against bcoin (a node nobody here wrote). bcoin's getblockheader
// answers `confirmations: tip - height + 1` for every block it knows, stale side-chain blocks included (Bitcoin
// Core answers -1 for those). Trusting that number recorded a reorged-out block as pending, then confirmed
// (credited to miners) once the chain had grown `maturity` past its height: a block misrecorded, money paid for
// nothing. Failed before the fix: the tracker said 'confirmed' and getBlockHeader 3 confirmations.

const skip = loadBcoin() instanceof Error ? 'bcoin does not load here' : false;
const log = pino({ level: 'silent' });

/** Blocks 1..n of another bcoin node's chain, as hex, to submit to ours. */
async function chainOf(node: BcoinNodeHandle, n: number): Promise<string[]> {
  const sink = p2pkh(pubECDSA(randomBytes(32), true), BCOIN_REGTEST).address!;
  await node.rpc('generatetoaddress', [n, sink]);
  const out: string[] = [];
  for (let h = 1; h <= n; h++) out.push(await node.rpc<string>('getblock', [await node.rpc<string>('getblockhash', [h]), false]));
  return out;
}

test('bcoin: a pool block a reorg replaced is recorded orphaned, never confirmed (bcoin counts confirmations on side chains)', { skip }, async (t) => {
  const ours = await startBcoinNode();
  t.after(() => ours.stop());
  const rpc = new BitcoinRpc({ endpoints: [{ url: ours.url, user: ours.user, password: ours.password }], timeoutMs: 30_000 });
  t.after(() => rpc.close());

  // The pool's block: height 1, mined elsewhere (a second node) and handed to the tracker as a found block.
  const finder = await startBcoinNode();
  let blockHex: string;
  let blockHash: string;
  try {
    [blockHex] = await chainOf(finder, 1);
    blockHash = await finder.rpc<string>('getblockhash', [1]);
  } finally {
    await finder.stop();
  }
  const genesis = await rpc.getBlockHash(0);

  let tip = 0;
  const events: BlockEvent[] = [];
  const maturity = 3;
  const tracker = new BlockTracker(rpc, null, (e) => events.push(e), {
    ...DEFAULT_BLOCK_TRACKER_OPTIONS, maturity, checkIntervalMs: 3_600_000, retryMinMs: 10, retryMaxMs: 40, recoveryScanDepth: 0,
    isOurCoinbase: () => false, tipHeight: () => tip,
  }, log);
  tracker.start();
  t.after(() => tracker.stop(100));
  tracker.found({ hash: blockHash, height: 1, prevHash: genesis, account: 'a', worker: 'w', reward: 50_0000_0000n, hex: blockHex, time: Date.now() });
  await until(async () => { await tracker.checkAll(); return tracker.get(blockHash)?.status === 'pending'; }, 20_000, 'the block pending on our node');
  assert.equal(await rpc.getBlockHash(1), blockHash);

  // A longer chain from genesis without the pool's block (a third node) reaches our node: it reorgs to it.
  const rival = await startBcoinNode();
  let longer: string[];
  try {
    longer = await chainOf(rival, maturity);
  } finally {
    await rival.stop();
  }
  for (const hex of longer) await rpc.call('submitblock', [hex]);
  tip = maturity;
  assert.equal((await rpc.getBlockchainInfo()).blocks, maturity);
  assert.notEqual(await rpc.getBlockHash(1), blockHash, 'our node left the pool block\'s chain');

  const header = await rpc.getBlockHeader(blockHash);
  assert.ok(header, 'bcoin still knows the stale block');
  assert.equal(header.confirmations, -1, 'a block off the best chain has no confirmations (as Bitcoin Core answers)');

  await tracker.checkAll();
  const s = tracker.get(blockHash);
  assert.equal(s?.status, 'orphaned', `the replaced block's status: ${s?.status} (${s?.confirmations} confirmations)`);
  assert.equal(s?.confirmations, 0);
  const statuses = events.filter((e) => e.kind === 'status' && e.hash === blockHash).map((e) => (e.kind === 'status' ? e.status : ''));
  assert.ok(!statuses.includes('confirmed'), `statuses recorded: ${statuses.join(', ')}`);
});
