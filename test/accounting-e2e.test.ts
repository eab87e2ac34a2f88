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
import { owned, pool } from '../src/accounting/ledger.ts';
import { accountMoney } from '../src/accounting/reports.ts';
import { addressToScript, parseBlock } from '../src/chain/index.ts';
import { loadConfig } from '../src/cli/config.ts';
import { runPool } from '../src/cli/run-pool.ts';
import { runFleet } from '../src/miner/fleet.ts';
import { REGTEST_NETWORK } from '../src/node/regtest/index.ts';
import { SKIP_PG, createTestPg } from './helpers/pg.ts';
import { until } from './helpers/until.ts';

// End to end: a fleet mines through the pool on the embedded chain (shares through the spool into Postgres,
// blocks submitted and recorded), blocks mature, the accounting credits PPLNS and FPPS miners from the stored
// shares, an orphaned block's credits never reach a balance, a SOLO coinbase is recorded without the pool
// holding the finder's coins, and a payout batch goes out through the embedded wallet and confirms on the chain.
//
// The block state machine (src/shares/block-state.ts) runs for real: the pool's block tracker moves blocks to
// pending, confirmed at maturity (101 confirmations) and orphaned when the node's best chain leaves them.

const outside = () => p2wpkh(pubECDSA(randomBytes(32), true), REGTEST_NETWORK).address!;

test('end to end: mining, maturity, PPLNS and FPPS credits, an orphan, a SOLO coinbase, a payout on chain', { skip: SKIP_PG, timeout: 240_000 }, async () => {
  const tpg = await createTestPg();
  const cfg = loadConfig({
    env: {},
    overrides: {
      'database.dataDir': mkdtempSync(path.join(tmpdir(), 'hashhub-acct-e2e-')),
      'database.url': tpg.url,
      'stratum.host': '127.0.0.1',
      'stratum.port': 0,
      // One share in twenty is a block; the difficulty is pinned so the counts stay predictable.
      'stratum.difficulty.initial': 0.00000005,
      'stratum.difficulty.min': 0.00000005,
      'stratum.difficulty.max': 0.00000005,
      'node.embedded.difficulty': 0.000001,
      'node.embedded.mempoolTxs': 5,
      'node.pollMs': 200,
      'database.ingest.flushMs': 20,
      'accounting.periodSeconds': 1,
      'accounting.pplns.n': 4,
      'accounting.pplns.maxWindowSeconds': 600,
      'accounting.payouts.thresholdSats': 100_000,
      'accounting.payouts.addressChangeDelaySeconds': 0,
      'accounting.payouts.confirmations': 1,
      'blocks.checkIntervalMs': 200,
    },
  });
  const log = pino({ level: process.env.TEST_LOG ?? 'silent' });
  const running = await runPool(cfg, log);
  const db = running.store.db;
  // The books the pool process runs itself (accounting.enabled is the default).
  const service = running.accounting!;
  assert.ok(service, 'runPool starts the books');
  const rpc = <T>(m: string, p: unknown[] = []) => running.rpc.call<T>(m, p);
  const OUTSIDE = outside();
  try {
    await service.init();
    const frame = service.frame!;
    // Accounts registered before they mine: alice on PPLNS (the default), bob on FPPS, both paying outside.
    const addresses = { alice: outside(), bob: outside(), sol: outside() };
    for (const [name, address] of Object.entries(addresses)) {
      await db.query('INSERT INTO accounts (name) VALUES ($1) ON CONFLICT DO NOTHING', [name]);
      const id = (await accountIdByName(db, name))!;
      // bob's FPPS credits include the shares of the block that will be orphaned (the pool bears that luck): he
      // waits for a high threshold, so the one payout batch is alice's, which the blocks' coins cover.
      await service.settings.update(db, frame, id, { payoutAddress: address, ...(name === 'bob' ? { scheme: 'fpps', threshold: 100_000_000_000 } : name === 'sol' ? { scheme: 'solo' } : {}) }, 'test', Date.now());
    }
    await until(() => Date.now() > frame.startedAt + 1500, 5000, 'the books to start');

    const url = `stratum+tcp://127.0.0.1:${running.port}`;
    const onChain = () => running.pool.stats.blocks.pending + running.pool.stats.blocks.confirmed;
    const blocksBefore = onChain();
    const fleets = [
      runFleet({ count: 3, totalHashrate: 24_000, url, user: 'alice', connectRatePerSec: 50, reconnect: false }),
      runFleet({ count: 1, totalHashrate: 6_000, url, user: 'bob', connectRatePerSec: 50, reconnect: false }),
    ];
    try {
      await until(() => onChain() - blocksBefore >= 4, 90_000, '4 blocks found by the fleet');
    } finally {
      await Promise.all(fleets.map((f) => f.stop(500)));
    }
    assert.equal(await running.shareLog.waitIdle(20_000), true, 'ingest caught up');

    // The last block the fleet found is reorged out before it matures.
    const found = (await db.query<{ hash: string; height: number }>("SELECT hash, height FROM blocks WHERE status = 'pending' ORDER BY height DESC")).rows;
    const orphan = found[0];
    await rpc('invalidateblock', [orphan.hash]);
    // A SOLO miner's block: the coinbase pays its address, with the pool's fee as a second output.
    const soloFee = 5_000_000n;
    const solo = await running.embedded!.chain.mineBlock({
      address: addresses.sol, extraOutputs: [{ value: soloFee, scriptPubKey: addressToScript('bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080', 'regtest') }],
    });
    assert.equal(solo.result, null);
    // Reward = the coinbase's actual value, read from the block (subsidy + the fees of its transactions).
    const soloCoinbase = parseBlock(Buffer.from(solo.hex, 'hex')).txs[0].outputs;
    const soloReward = soloCoinbase.reduce((s2, o) => s2 + o.value, 0n);
    const toSolo = soloCoinbase.filter((o) => o.scriptPubKey.equals(addressToScript(addresses.sol, 'regtest'))).reduce((s2, o) => s2 + o.value, 0n);
    // A block mined outside the pool in the SOLO layout, recorded the way the tracker would (test/solo.test.ts
    // has SOLO blocks mined through the pool itself).
    await running.store.writer.writeBlocks([
      { kind: 'candidate', time: Date.now(), height: solo.height, hash: solo.hash, prevHash: '00'.repeat(32), account: 'sol', worker: 'cpu', reward: soloReward, blockHex: solo.hex },
      { kind: 'status', time: Date.now(), hash: solo.hash, status: 'pending', result: null, confirmations: 1, settled: false },
    ]);

    // 101 blocks mined elsewhere: every other block of the pool matures (and its coinbase becomes spendable).
    await rpc('generatetoaddress', [101, OUTSIDE]);
    await running.store.writer.writeBlocks([{ kind: 'status', time: Date.now(), hash: solo.hash, status: 'confirmed', result: null, confirmations: 101, settled: true }]);
    await until(async () => ((await db.query("SELECT 1 FROM blocks WHERE status = 'orphaned'")).rows.length > 0), 10_000, 'the orphan marked by the tracker');
    await until(async () => ((await db.query("SELECT 1 FROM blocks WHERE status = 'pending'")).rows.length === 0), 10_000, 'the rest confirmed by the tracker');

    // Accounting: the ingest watermark is past every share; run until everything is credited.
    await until(async () => {
      await service.tick();
      const pending = await db.query("SELECT 1 FROM blocks b WHERE b.status = 'confirmed' AND NOT EXISTS (SELECT 1 FROM journal_entries e WHERE e.idempotency_key = 'block:' || b.hash || ':credit')");
      return pending.rows.length === 0;
    }, 30_000, 'every confirmed block credited');
    const ids = { alice: (await accountIdByName(db, 'alice'))!, bob: (await accountIdByName(db, 'bob'))!, sol: (await accountIdByName(db, 'sol'))! };
    const ledger = service.engine!.ledger;
    const aliceBal = await ledger.balance(db, owned('balance', ids.alice));
    const bobBal = await ledger.balance(db, owned('balance', ids.bob));
    assert.ok(aliceBal > 0n, 'PPLNS credits from confirmed blocks');
    assert.ok(bobBal > 0n, 'FPPS credits from stored shares');
    // The orphan: split, never credited.
    assert.equal((await db.query('SELECT 1 FROM journal_entries WHERE idempotency_key = $1', [`block:${orphan.hash}:credit`])).rows.length, 0);
    const credited = await db.query<{ s: string }>(`SELECT coalesce(sum(l.amount), 0)::text AS s FROM block_split_lines l JOIN blocks b ON b.hash = l.block_hash
      WHERE l.account_id = $1 AND b.status = 'confirmed'`, [ids.alice.toString()]);
    assert.equal(aliceBal, BigInt(credited.rows[0].s), 'alice holds exactly her confirmed blocks\' lines');
    // SOLO: the finder's coins never passed through the pool; the fee output did.
    assert.equal(await ledger.balance(db, owned('solo_earnings', ids.sol)), toSolo);
    assert.equal(toSolo, soloReward - soloFee);
    assert.equal(await ledger.balance(db, owned('balance', ids.sol)), 0n);
    const money = await accountMoney(db, ids.alice);
    assert.equal(money.balance, aliceBal);

    // Pay: sign and store, send, one block, settle. Only what the ledger's wallet covers goes out.
    const r1 = await service.payoutTick();
    assert.equal(r1?.created.kind, 'signed', JSON.stringify(r1?.created, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
    const r2 = await service.payoutTick();
    assert.ok(r2?.progressed.some((p) => p.kind === 'broadcast'));
    await rpc('generatetoaddress', [1, OUTSIDE]);
    const r3 = await service.payoutTick();
    const done = r3?.progressed.find((p) => p.kind === 'confirmed');
    assert.ok(done && done.kind === 'confirmed');
    const tx = await rpc<{ vout: { value: number; scriptPubKey: { hex: string } }[] }>('getrawtransaction', [done.txid, true]);
    const paidTo = (a: string) => tx.vout.filter((o) => o.scriptPubKey.hex === addressToScript(a, 'regtest').toString('hex')).reduce((s, o) => s + BigInt(Math.round(o.value * 1e8)), 0n);
    assert.equal(paidTo(addresses.alice), aliceBal, 'alice paid her balance on chain');
    assert.equal(paidTo(addresses.bob), 0n, 'bob below his threshold');
    assert.equal(await ledger.balance(db, owned('balance', ids.bob)), bobBal);
    assert.ok((await ledger.balance(db, pool('pool_revenue'))) !== 0n, 'the pool\'s FPPS result');
    assert.equal(await ledger.balance(db, owned('balance', ids.alice)), 0n);
    assert.deepEqual(await ledger.verify(db), []);
    const rec = await service.payouts.reconcile();
    assert.ok(rec.difference >= 0n, `the node wallet holds at least what the ledger says (${rec.difference})`);
  } finally {
    await running.stop();
    await tpg.drop();
    rmSync(cfg.database.dataDir, { recursive: true, force: true });
  }
});
