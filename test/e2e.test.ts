import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as bitcoin from 'bitcoinjs-lib';
import pino from 'pino';
import { loadConfig } from '../src/cli/config.ts';
import { runPool } from '../src/cli/run-pool.ts';
import { runFleet } from '../src/miner/fleet.ts';
import type { BlockEvent, ShareEvent } from '../src/shares/events.ts';

// A fresh address (not the default one), made by the independent library: the test checks the pool pays it.
const PAYOUT = bitcoin.payments.p2wpkh({ hash: Buffer.alloc(20, 0x5a), network: bitcoin.networks.regtest }).address!;
const PAYOUT_SCRIPT = bitcoin.address.toOutputScript(PAYOUT, bitcoin.networks.regtest);

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function rpc(url: string, user: string, password: string, method: string, params: unknown[] = []) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64') },
    body: JSON.stringify({ jsonrpc: '1.0', id: 1, method, params }),
  });
  const body = (await res.json()) as { result: unknown; error: unknown };
  if (body.error) throw new Error(JSON.stringify(body.error));
  return body.result;
}

test('end to end: embedded chain + pool + a fleet of miners find blocks the chain accepts', async () => {
  // A harder embedded chain: about one share in 20 is a block, so shares and blocks are both exercised.
  const cfg = loadConfig({
    env: {},
    overrides: {
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
    await until(() => blocks.filter((b) => b.accepted).length >= 3, 90_000, '3 accepted blocks');
    await fleet.stop(1000);
    const accepted = blocks.filter((b) => b.accepted);
    const { user, password, url } = running.embedded!;
    const height = (await rpc(url, user, password, 'getblockcount')) as number;
    assert.ok(height >= 3);
    for (const b of accepted) {
      // The chain has it, and it is what the pool assembled.
      const hex = (await rpc(url, user, password, 'getblock', [b.hash, 0])) as string;
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
      const info = (await rpc(url, user, password, 'getblock', [b.hash, 1])) as { height: number };
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
  } finally {
    await fleet.stop(0);
    await running.stop();
  }
});
