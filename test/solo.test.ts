// SOLO mining through the pool itself: an account that chose SOLO gets work whose coinbase pays its own address
// (the pool's fee as a second output), the node accepts those blocks, the books record them as paid in the
// coinbase (the pool never holds the finder's coins), a pooled miner beside it keeps the pool's coinbase, one
// connection cannot mine for a SOLO account and another, and leaving SOLO gives the miner the pool's coinbase
// again from the period the change takes effect.

import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { p2wpkh } from '@scure/btc-signer';
import { pubECDSA } from '@scure/btc-signer/utils.js';
import { accountIdByName } from '../src/accounting/accounts.ts';
import { addressToScript, fromHex, parseBlock } from '../src/chain/index.ts';
import { loadConfig } from '../src/cli/config.ts';
import { runPool } from '../src/cli/run-pool.ts';
import { runFleet } from '../src/miner/fleet.ts';
import { REGTEST_NETWORK } from '../src/node/regtest/index.ts';
import { LineClient } from './helpers/line-client.ts';
import { SKIP_PG, createTestPg } from './helpers/pg.ts';
import { REGTEST_ADDRESS } from './helpers/pool.ts';
import { until } from './helpers/until.ts';

const outside = () => p2wpkh(pubECDSA(randomBytes(32), true), REGTEST_NETWORK).address!;

interface BlockRow { hash: string; account: string; block_hex: string; status: string; time: Date }

test('SOLO: the coinbase pays the miner\'s address and the pool\'s fee; the node takes it; the books record it paid in the coinbase', { skip: SKIP_PG, timeout: 180_000 }, async (t) => {
  const tpg = await createTestPg();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'hashhub-solo-'));
  t.after(async () => { rmSync(dataDir, { recursive: true, force: true }); await tpg.drop(); });
  const cfg = loadConfig({
    env: {},
    overrides: {
      'database.dataDir': dataDir, 'database.url': tpg.url, network: 'regtest', payoutAddress: REGTEST_ADDRESS,
      'stratum.host': '127.0.0.1', 'stratum.port': 0, 'api.enabled': false,
      // About one share in twenty is a block; pinned so both miners find blocks within seconds.
      'stratum.difficulty.initial': 0.00000005, 'stratum.difficulty.min': 0.00000005, 'stratum.difficulty.max': 0.00000005,
      'node.embedded.difficulty': 0.000001, 'node.embedded.mempoolTxs': 5, 'node.pollMs': 200,
      'database.ingest.flushMs': 20, 'blocks.checkIntervalMs': 200,
      'accounting.periodSeconds': 1, 'accounting.intervalMs': 200, 'accounting.soloRefreshMs': 200,
      'accounting.fees.soloBps': 150, 'accounting.payouts.addressChangeDelaySeconds': 0, 'accounting.payouts.enabled': false,
    },
  });
  const log = pino({ level: process.env.TEST_LOG ?? 'silent' });
  const running = await runPool(cfg, log);
  t.after(() => running.stop());
  const db = running.store.db;
  const service = running.accounting!;
  const frame = service.frame!;
  const solAddress = outside();
  const solScript = addressToScript(solAddress, 'regtest');
  const poolScript = addressToScript(REGTEST_ADDRESS, 'regtest');
  for (const name of ['sol', 'alice']) await db.query('INSERT INTO accounts (name) VALUES ($1) ON CONFLICT DO NOTHING', [name]);
  const solId = (await accountIdByName(db, 'sol'))!;
  await service.settings.update(db, frame, solId, { payoutAddress: solAddress, scheme: 'solo' }, 'test', Date.now());
  // The scheme takes effect at the next period (1 s); the pool's SOLO view follows at that boundary.
  await until(() => running.solo?.payoutFor('sol') !== null && running.solo?.payoutFor('sol') !== undefined, 10_000, 'sol mining SOLO in the pool\'s view');

  // One connection cannot mine for a SOLO account and another (its coinbase would pay only one of them).
  const proxy = new LineClient(running.port);
  await proxy.connected();
  await proxy.request(1, 'mining.subscribe', ['proxy/1']);
  const first = await proxy.request(2, 'mining.authorize', ['alice.p1', 'x']);
  assert.equal(first.result, true);
  const second = await proxy.request(3, 'mining.authorize', ['sol.p2', 'x']);
  assert.notEqual(second.result, true);
  assert.match(JSON.stringify(second.error), /account \\"sol\\" mines SOLO .*one connection per SOLO account/);
  proxy.close();

  const url = `stratum+tcp://127.0.0.1:${running.port}`;
  const blocksOf = async (account: string) => (await db.query<BlockRow>(
    `SELECT b.hash, a.name AS account, b.block_hex, b.status, b.time FROM blocks b JOIN accounts a ON a.id = b.account_id
     WHERE a.name = $1 AND b.status IN ('pending', 'confirmed') AND b.block_hex IS NOT NULL ORDER BY b.time`, [account])).rows;
  const fleets = [
    runFleet({ count: 1, totalHashrate: 12_000, url, user: 'sol', connectRatePerSec: 50, reconnect: false }),
    runFleet({ count: 1, totalHashrate: 12_000, url, user: 'alice', connectRatePerSec: 50, reconnect: false }),
  ];
  try {
    await until(async () => (await blocksOf('sol')).length >= 1 && (await blocksOf('alice')).length >= 1, 90_000, 'a block by each miner on the chain');
  } finally {
    await Promise.all(fleets.map((f) => f.stop(500)));
  }

  const [solBlock] = await blocksOf('sol');
  const solCb = parseBlock(fromHex(solBlock.block_hex)).txs[0];
  const paid = solCb.outputs.filter((o) => o.scriptPubKey[0] !== 0x6a);
  const reward = paid.reduce((s, o) => s + o.value, 0n);
  const fee = (reward * 150n) / 10_000n;
  assert.equal(paid.length, 2, 'the finder\'s output and the pool\'s fee');
  assert.ok(paid[0].scriptPubKey.equals(solScript), 'the first output pays the SOLO miner');
  assert.equal(paid[0].value, reward - fee);
  assert.ok(paid[1].scriptPubKey.equals(poolScript), 'the second pays the pool');
  assert.equal(paid[1].value, fee);
  // The node took it: it is on the embedded chain's best chain.
  const header = await running.rpc.call<{ confirmations: number }>('getblockheader', [solBlock.hash]);
  assert.ok(header.confirmations >= 1, 'on the best chain');

  const [aliceBlock] = await blocksOf('alice');
  const aliceCb = parseBlock(fromHex(aliceBlock.block_hex)).txs[0].outputs.filter((o) => o.scriptPubKey[0] !== 0x6a);
  assert.equal(aliceCb.length, 1, 'a pooled miner\'s block pays the pool alone');
  assert.ok(aliceCb[0].scriptPubKey.equals(poolScript));

  // The books: SOLO, paid in the coinbase, the finder's part as the coinbase says (no balance owed by the pool).
  assert.equal(await running.shareLog.waitIdle(20_000), true, 'ingest caught up');
  await until(async () => (await db.query('SELECT 1 FROM block_splits WHERE block_hash = $1', [solBlock.hash])).rows.length > 0, 30_000, 'the SOLO block split');
  const split = (await db.query<{ kind: string; paid_in_coinbase: boolean; coinbase_to_finder: string; fee: string }>(
    'SELECT kind, paid_in_coinbase, coinbase_to_finder::text, fee::text FROM block_splits WHERE block_hash = $1', [solBlock.hash])).rows[0];
  assert.deepEqual(split, { kind: 'solo', paid_in_coinbase: true, coinbase_to_finder: (reward - fee).toString(), fee: fee.toString() });

  // Leaving SOLO: from the next period the miner is back on the pool's coinbase (its session gets new work).
  await service.settings.update(db, frame, solId, { scheme: 'pplns' }, 'test', Date.now());
  await until(() => running.solo?.payoutFor('sol') === null, 10_000, 'sol back with the pool in the pool\'s view');
  const switchedAt = Date.now();
  const again = runFleet({ count: 1, totalHashrate: 12_000, url, user: 'sol', connectRatePerSec: 50, reconnect: false });
  try {
    await until(async () => (await blocksOf('sol')).some((b) => new Date(b.time).getTime() > switchedAt), 90_000, 'a block by sol after leaving SOLO');
  } finally {
    await again.stop(500);
  }
  const after = (await blocksOf('sol')).filter((b) => new Date(b.time).getTime() > switchedAt);
  for (const b of after) {
    const outs = parseBlock(fromHex(b.block_hex)).txs[0].outputs.filter((o) => o.scriptPubKey[0] !== 0x6a);
    assert.equal(outs.length, 1, 'the pool\'s coinbase again');
    assert.ok(outs[0].scriptPubKey.equals(poolScript));
  }
});
