// The pool against a node that misbehaves the ways real ones do, through a fault proxy in front of the node's
// RPC (test/helpers/rpc-fault-proxy.ts): 30 s latency (with 300 ms client timeouts), connection resets, HTTP 500,
// HTTP 503 "Work queue depth exceeded", truncated JSON, a cut answer, and a node restart with a new cookie.
// Under each: no crash, the miner keeps its last good job (shares on it accepted, no clean_jobs), and the pool
// follows the node again once the fault is gone.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { INTERNAL_ERROR_500, type Fault, WORK_QUEUE_EXCEEDED } from './helpers/rpc-fault-proxy.ts';
import { isCleanNotify, isNotify, startFaultyNode } from './helpers/faulty-node.ts';
import type { Msg } from './helpers/line-client.ts';
import { until } from './helpers/until.ts';
import { prevHashFromStratum } from '../src/shares/work.ts';
import { hashToDisplay } from '../src/chain/bytes.ts';

const FAULTS: Array<[string, Fault]> = [
  ['30 s latency', { kind: 'latency', ms: 30_000 }],
  ['connection reset', { kind: 'reset' }],
  ['HTTP 500', INTERNAL_ERROR_500],
  ['HTTP 503 work queue depth exceeded', WORK_QUEUE_EXCEEDED],
  ['truncated JSON', { kind: 'truncate' }],
  ['answer cut mid-body', { kind: 'truncate', declareFullLength: true }],
];

test('under every node fault the miner keeps its last good job and the pool recovers when the node does', async () => {
  const n = await startFaultyNode();
  try {
    let work: Msg = n.firstNotify;
    for (const [name, fault] of FAULTS) {
      n.proxy.set(fault);
      await until(() => n.pool.templates.status.ok === false, 5_000, `the pool to notice: ${name}`);
      const seen = n.miner.messages.length;
      // The miner mines on: its shares on the last good job are valid and credited.
      assert.equal((await n.submit(work)).result, true, `share on the last good job during: ${name}`);
      await new Promise((r) => setTimeout(r, 300)); // several failed polls and retries
      assert.equal(n.miner.closed, false, name);
      assert.equal(n.miner.messages.slice(seen).filter(isCleanNotify).length, 0, `no clean_jobs during: ${name}`);
      assert.equal((await n.submit(work)).result, true, `still accepted during: ${name}`);

      n.proxy.clear();
      const from = n.miner.messages.length;
      const mined = await n.chain.chain.mineBlock();
      assert.equal(mined.result, null);
      const fresh = await n.miner.waitFor(isCleanNotify, 5_000, from);
      assert.notEqual(fresh.params![1], work.params![1], `work on the new tip after: ${name}`);
      await until(() => n.pool.templates.status.ok, 2_000, `status ok after: ${name}`);
      { const r = await n.submit(fresh); assert.equal(r.result, true, `share on the new tip after: ${name}: ${JSON.stringify(r.error)}`); }
      work = fresh;
    }
    assert.ok(n.proxy.log.filter((l) => l.fault !== 'pass').length >= FAULTS.length * 2, 'every fault was hit');
  } finally {
    await n.stop();
  }
});

test('a node restart with a new cookie: the last job meanwhile, then the same chain (same height) and work on it', async () => {
  const n = await startFaultyNode();
  try {
    await n.chain.chain.mineBlock();
    await n.chain.chain.mineBlock();
    // The miner's last notify on the node's tip (its previous block hash), not only the pool's template at height 3:
    // the notify for it may still be on its way, the miner's last one still the previous block's (stale once sent).
    const onTip = () => hashToDisplay(prevHashFromStratum(n.lastNotify().params![1] as string)) === n.chain.chain.tip.hashHex;
    await until(() => n.pool.templates.current?.height === 3 && n.lastNotify().params![8] === true && onTip(), 5_000, 'work at height 3');
    let work = n.lastNotify();
    const cookieBefore = n.chain.password;
    const tip = n.chain.chain.tip.hashHex;

    await n.chain.close();
    await until(() => n.pool.templates.status.ok === false, 5_000, 'the pool to notice the node is gone');
    { const r = await n.submit(work); assert.equal(r.result, true, `share while the node is down: ${JSON.stringify(r.error)}`); }

    const seen = n.miner.messages.length;
    const node = await n.restartNode();
    assert.notEqual(node.password, cookieBefore, 'a new cookie');
    assert.equal(node.chain.height, 2, 'the restarted node continues at the same height');
    assert.equal(node.chain.tip.hashHex, tip);
    await until(() => n.pool.templates.status.ok, 5_000, 'the pool to read the new cookie and recover');
    // Same tip: the miner's work is still good (no clean_jobs), and its shares are still credited.
    assert.equal(n.miner.messages.slice(seen).filter(isCleanNotify).length, 0);
    assert.equal((await n.submit(work)).result, true);
    const from = n.miner.messages.length;
    await node.chain.mineBlock();
    work = await n.miner.waitFor(isCleanNotify, 5_000, from);
    assert.equal((await n.submit(work)).result, true);
    assert.ok(n.proxy.count('getblocktemplate') > 0);
  } finally {
    await n.stop();
  }
});

for (const via of ['poll', 'zmq'] as const) {
  test(`a new tip seen by ${via} while getblocktemplate fails: old work is stale at once, new work with the next template`, async () => {
    const zmq = via === 'zmq';
    // Long polls off: one sent before the fault would bring the new template by itself.
    const n = await startFaultyNode({
      chain: zmq ? { zmqPubHashBlock: 'tcp://127.0.0.1:0' } : {},
      templates: { longpoll: false, ...(zmq ? { pollMs: 60_000, zmq: { discover: true } } : {}) },
    });
    try {
      if (zmq) await until(() => n.pool.templates.zmqHealthy, 5_000, 'ZMQ connected');
      const old = n.firstNotify;
      assert.equal((await n.submit(old)).result, true);
      const tips: string[] = [];
      n.pool.templates.on('tip', (hash, source) => tips.push(`${source}:${hash}`));

      n.proxy.set(INTERNAL_ERROR_500, ['getblocktemplate']);
      const seen = n.miner.messages.length;
      const mined = await n.chain.chain.mineBlock();
      await until(() => tips.length > 0, 5_000, `the new tip by ${via}`);
      assert.deepEqual(tips, [`${via}:${mined.hash}`]);
      // No template yet: the miner has nothing new, and its shares on the old tip are stale, not credited.
      const stale = await n.submit(old);
      assert.deepEqual((stale.error as unknown[]).slice(0, 1), [21], `stale, got ${JSON.stringify(stale.error)}`);
      assert.equal(n.miner.messages.slice(seen).filter(isNotify).length, 0);

      n.proxy.clear();
      const fresh = await n.miner.waitFor(isCleanNotify, 5_000, seen);
      assert.equal(n.pool.templates.current?.previousblockhash, mined.hash);
      assert.equal((await n.submit(fresh)).result, true);
      assert.ok(n.proxy.count('getblocktemplate', 'status') > 0, 'getblocktemplate failed meanwhile');
    } finally {
      await n.stop();
    }
  });
}
