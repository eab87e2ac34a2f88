import { mkdtempSync, rmSync } from 'node:fs';
import { until } from './helpers/until.ts';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as bitcoin from 'bitcoinjs-lib';
import pino from 'pino';
import { loadConfig } from '../src/cli/config.ts';
import { runPool } from '../src/cli/run-pool.ts';
import { startApi } from '../src/cli/run-api.ts';
import { runFleet } from '../src/miner/fleet.ts';
import { onChain } from './helpers/blocks.ts';
import type { BlockEvent, ShareEvent } from '../src/shares/events.ts';

// A fresh address (not the default one), made by the independent library: the test checks the pool pays it.
const PAYOUT = bitcoin.payments.p2wpkh({ hash: Buffer.alloc(20, 0x5a), network: bitcoin.networks.regtest }).address!;
const PAYOUT_SCRIPT = bitcoin.address.toOutputScript(PAYOUT, bitcoin.networks.regtest);

test('end to end: embedded chain + pool + a fleet of miners find blocks the chain accepts', async () => {
  // A harder embedded chain: about one share in 20 is a block, so shares and blocks are both exercised.
  const cfg = loadConfig({
    env: {},
    overrides: {
      'database.dataDir': mkdtempSync(path.join(tmpdir(), 'hashhub-test-')), // never the repo's ./data
      payoutAddress: PAYOUT,
      'stratum.host': '127.0.0.1',
      'stratum.port': 0,
      'stratum.difficulty.initial': 0.000005,
      'node.embedded.difficulty': 0.0001,
      'node.pollMs': 200,
    },
  });
  const running = await runPool(cfg, pino({ level: process.env.TEST_LOG ?? 'silent' }));
  const shares: ShareEvent[] = [];
  const blocks: BlockEvent[] = [];
  running.shareLog.onShare((e) => shares.push(e));
  running.shareLog.onBlock((e) => blocks.push(e));
  const fleet = runFleet({
    count: 4, totalHashrate: 0, url: `stratum+tcp://127.0.0.1:${running.port}`, user: 'acct', versionRolling: true,
    connectRatePerSec: 50, reconnect: false,
  });
  try {
    await until(() => onChain(blocks).length >= 3, 90_000, '3 blocks on the chain');
    await fleet.stop(1000);
    const accepted = onChain(blocks).map((b) => b.candidate);
    const rpc = <T>(method: string, params: unknown[] = []) => running.rpc.call<T>(method, params);
    const height = (await rpc('getblockcount')) as number;
    assert.ok(height >= 3);
    for (const b of accepted) {
      // The chain has it, and it is what the pool assembled.
      const hex = (await rpc('getblock', [b.hash, 0])) as string;
      assert.equal(hex, b.blockHex);
      const blk = bitcoin.Block.fromHex(hex);
      assert.equal(blk.getId(), b.hash);
      assert.equal(blk.checkProofOfWork(), true, 'PoW meets bits');
      assert.equal(blk.checkTxRoots(), true, 'merkle root and witness commitment');
      const cb = blk.transactions![0];
      assert.equal(cb.isCoinbase(), true);
      assert.ok(blk.transactions!.length > 1, 'the template carried transactions');
      assert.ok(blk.transactions!.some((t) => t.hasWitnesses()) , 'segwit transactions included');
      assert.ok(blk.getWitnessCommit(), 'witness commitment present');
      assert.equal(cb.ins[0].witness[0].length, 32, 'coinbase witness reserved value');
      const paid = cb.outs.filter((o) => Buffer.from(o.script).equals(PAYOUT_SCRIPT)).reduce((s, o) => s + BigInt(o.value), 0n);
      assert.equal(paid, b.reward, 'the configured address gets the whole coinbase value');
      // BIP34 height push.
      const info = (await rpc('getblock', [b.hash, 1])) as { height: number };
      const first = bitcoin.script.decompile(cb.ins[0].script)![0];
      const pushed = typeof first === 'number' ? first - 0x50 : bitcoin.script.number.decode(Buffer.from(first)); // OP_1..OP_16 for small heights
      assert.equal(pushed, info.height);
    }
    // Every accepted share in the events was answered true to a miner, and the counts add up.
    const st = fleet.stats();
    const acceptedEvents = shares.filter((s) => s.outcome === 'accepted').length;
    assert.ok(st.accepted > 0);
    assert.ok(acceptedEvents >= st.accepted, `${acceptedEvents} accepted events vs ${st.accepted} miner-seen accepts`);
    assert.equal(acceptedEvents, running.pool.stats.shares.accepted);
    assert.ok(shares.filter((s) => s.block).length >= 3);
    assert.ok(acceptedEvents > accepted.length, 'most shares are not blocks at this difficulty');

    // The REST API over the same pool reports what the miners submitted, once ingest has caught up.
    assert.equal(await running.shareLog.waitIdle(20_000), true, 'ingest caught up');
    const api = await startApi({ pool: running.pool, node: running.rpc, stats: running.stats, dbPing: () => running.store.writer.ping(), ingest: () => running.ingest() },
      { host: '127.0.0.1', port: 0, cors: false, templateMaxAgeMs: 60_000 }, pino({ level: 'silent' }));
    try {
      const get = async (p: string) => { const r = await fetch(`http://127.0.0.1:${api.port}${p}`); return { status: r.status, body: (await r.json()) as any }; };
      const acct = await get('/api/v1/accounts/acct');
      assert.equal(acct.status, 200);
      const rejectedEvents = shares.filter((s) => s.outcome !== 'accepted').length;
      assert.equal(acct.body.shares24h.accepted, acceptedEvents, 'accepted shares in the API = shares the pool accepted');
      const apiRejected = Object.values(acct.body.shares24h.rejected as Record<string, number>).reduce((a, b) => a + b, 0);
      assert.equal(apiRejected, rejectedEvents);
      // Hashrate over 5 minutes: each worker's Σ accepted pool difficulty × 2^32 / the seconds it covers (younger
      // than the window: only the time since its first share, well under the 240–300 s of the window); the
      // account's is the sum of its workers'.
      type Rate = { hashrate: number; seconds: number; shares: number };
      const w5 = acct.body.hashrate['5m'] as Rate;
      const firstShare = Math.min(...shares.map((s) => s.time));
      assert.ok(w5.seconds >= 1 && w5.seconds <= (Date.now() - firstShare) / 1000 + 1, `5m window spans ${w5.seconds} s`);
      assert.equal(w5.shares, acceptedEvents);
      const workers = await get('/api/v1/accounts/acct/workers');
      assert.equal(workers.body.total, 4, 'one worker per fleet miner');
      const rows = workers.body.items as { worker: string; hashrate: Record<'5m', Rate> }[];
      for (const row of rows) {
        const d = shares.filter((s) => s.outcome === 'accepted' && s.worker === row.worker).reduce((a, s) => a + s.poolDifficulty, 0);
        const r = row.hashrate['5m'];
        assert.ok(d > 0 && Math.abs(r.hashrate - (d * 2 ** 32) / r.seconds) <= 1e-9 * r.hashrate, `${row.worker}: ${r.hashrate} = Σd·2^32/${r.seconds}`);
      }
      // The account as the sum of its rows is checked at one instant in test/stats-add-up.test.ts: two requests here
      // are two instants, and a worker seconds old changes its rate by several per cent between them.
      assert.equal(rows.reduce((a, x) => a + x.hashrate['5m'].shares, 0), acceptedEvents);
      const blocksApi = await get('/api/v1/blocks?limit=500');
      const apiAccepted = (blocksApi.body.items as { hash: string; status: string }[]).filter((b) => b.status === 'pending' || b.status === 'confirmed').map((b) => b.hash).sort();
      assert.deepEqual(apiAccepted, onChain(blocks).map((b) => b.candidate.hash).sort(), 'blocks in the API = blocks on the chain');
      // Each readiness check has its own timeout (800 ms): one slow answer on a loaded machine is a 503, so asked again.
      let ready = await get('/health/ready');
      await until(async () => (ready = await get('/health/ready')).status === 200, 10_000, () => `ready: ${JSON.stringify(ready.body)}`);
      const metrics = await (await fetch(`http://127.0.0.1:${api.port}/metrics`)).text();
      assert.match(metrics, new RegExp(`hashhub_shares_total\\{outcome="accepted"\\} ${acceptedEvents}\\b`));
      assert.equal((await get('/api/v1/accounts/nobody')).status, 404);
    } finally {
      await api.app.close();
    }
  } finally {
    await fleet.stop(0);
    await running.stop();
    rmSync(cfg.database.dataDir, { recursive: true, force: true });
  }
});
