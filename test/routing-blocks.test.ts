import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { difficultyToTarget, hashToBigInt, sha256d } from '../src/chain/index.ts';
import { RouteMeter } from '../src/routing/meter.ts';
import { DEFAULT_ROUTER_OPTIONS, Router } from '../src/routing/router.ts';
import { WorkHasher, prevHashFromStratum, u32Hex } from '../src/shares/work.ts';
import { LineClient, type Msg } from './helpers/line-client.ts';
import { startTestPool } from './helpers/pool.ts';
import { StubNode } from './helpers/stub-node.ts';
import { StubUpstream } from './helpers/stub-upstream.ts';
import { until } from './helpers/until.ts';

// A share that solves a block on the destination's job is the destination's block: it goes to the destination
// whatever our share verdict, as ckpool does with its own miners ("Submitting possible block solve share" for
// any share at or above the network difficulty, stale or below the share target alike). Routing forwarded only
// fresh shares at the destination's difficulty, so such a block was lost:
//  - a block on a job the destination has just replaced with clean_jobs (a race it may still win; our own pool
//    submits those, README "Shares");
//  - with routing.minerDifficultyDivisor > 1, a block below the destination's share difficulty (a testnet or
//    signet destination whose network difficulty is under its share difficulty).

const stops: (() => unknown)[] = [];
after(async () => { for (const s of stops.reverse()) await s(); });

const REGTEST_BITS = '207fffff';

async function setup(divisor = 1, nbits = REGTEST_BITS) {
  const a = await startTestPool(new StubNode(), { initialDifficulty: 0.00002 });
  stops.push(() => a.pool.stop(200));
  const up = new StubUpstream({ nbits, difficulty: 1e-6 });
  await up.listen();
  stops.push(() => up.close());
  const meter = new RouteMeter();
  const router = new Router({ ...DEFAULT_ROUTER_OPTIONS, reconnectHost: '127.0.0.1', reconnectPort: a.port, reconcileMs: 200, minerDifficultyDivisor: divisor }, meter);
  router.start();
  a.pool.routing = router;
  stops.push(() => router.stop());
  const c = new LineClient(a.port);
  await c.connected();
  stops.push(() => { c.socket.destroy(); });
  c.send({ id: 1, method: 'mining.subscribe', params: ['block-test'] });
  c.send({ id: 2, method: 'mining.extranonce.subscribe', params: [] });
  c.send({ id: 3, method: 'mining.authorize', params: ['seller.blk', 'x'] });
  await c.waitFor((m) => m.method === 'mining.notify');
  router.upsert({ id: 5, name: 'b', destinations: [{ url: `stratum+tcp://127.0.0.1:${up.port}`, user: 'buyer.x', password: 'x' }], workers: ['seller'] });
  const xn = await c.waitFor((m) => m.method === 'mining.set_extranonce');
  const job = await c.waitFor((m) => m.method === 'mining.notify' && String(m.params![0]).startsWith('r'));
  const [en1, en2Size] = xn.params as [string, number];
  return { a, up, meter, c, job, en1, en2Size };
}

/** A share on `notify` whose difficulty is in [min, max) (real sha256d). */
function shareBetween(notify: Msg, en1Hex: string, en2Size: number, min: number, max: number): string[] {
  const [jobId, prevhash, coinb1, coinb2, branch, version, nbits, ntime] = notify.params as [string, string, string, string, string[], string, string, string];
  const en1 = Buffer.from(en1Hex, 'hex');
  const en2 = '00'.repeat(en2Size - 1) + '07';
  const hasher = new WorkHasher(Buffer.from(coinb1, 'hex'), Buffer.from(coinb2, 'hex'), en1.length + en2Size, branch.map((b) => Buffer.from(b, 'hex')), prevHashFromStratum(prevhash), parseInt(nbits, 16));
  const root = hasher.merkleRootFor(en1, Buffer.from(en2, 'hex'));
  const lo = max === Infinity ? -1n : difficultyToTarget(max);
  const hi = difficultyToTarget(min);
  for (let nonce = 0; nonce < 50_000_000; nonce++) {
    const h = hashToBigInt(sha256d(hasher.header80(root, parseInt(version, 16), parseInt(ntime, 16), nonce)));
    if (h <= hi && h > lo) return ['seller.blk', jobId, en2, ntime, u32Hex(nonce)];
  }
  throw new Error('no share found');
}

test('a block on a job the destination replaced (clean_jobs, new tip) is forwarded to it, not dropped as stale', { timeout: 60_000 }, async () => {
  const { up, meter, c, job, en1, en2Size } = await setup();
  const from = c.messages.length;
  up.newTip();
  await c.waitFor((m) => m.method === 'mining.notify' && m.params![8] === true && m.params![0] !== job.params![0], 5000, from);
  // At 1e-6 on a regtest destination (network difficulty 4.66e-10) the share is a block on the replaced job.
  const params = shareBetween(job, en1, en2Size, 1e-6, Infinity);
  c.send({ id: 9, method: 'mining.submit', params });
  const ans = await c.waitFor((m) => m.id === 9);
  assert.equal((ans.error as unknown[])?.[0], 21, 'the miner is told it is stale (no credit from us)');
  await until(() => up.submits.some((s) => s[4] === params[4]), 5000, 'the block at the destination');
  const fwd = up.submits.find((s) => s[4] === params[4])!;
  assert.equal(fwd[2], en1.slice(-4) + params[2], 'upstream extranonce2 = our prefix ‖ the miner\'s');
  await until(() => meter.pendingAnswers === 0, 5000, 'its answer');
});

test('with a difficulty divisor, a block below the destination\'s share difficulty is forwarded (and not counted as a reject)', { timeout: 60_000 }, async () => {
  // Destination difficulty 1e-6 on a regtest network (4.66e-10); miners at 1e-6 / 1000 = 1e-9.
  const { up, c, job, en1, en2Size } = await setup(1000);
  const params = shareBetween(job, en1, en2Size, 1e-9, 1e-6);
  c.send({ id: 9, method: 'mining.submit', params });
  const ans = await c.waitFor((m) => m.id === 9);
  assert.equal(ans.result, true);
  await until(() => up.submits.some((s) => s[4] === params[4]), 5000, 'the block at the destination');
});

test('with a difficulty divisor, a share below the destination\'s difficulty that is no block is not forwarded', { timeout: 60_000 }, async () => {
  // A mainnet-like destination (nBits 1d00ffff): no share here is a block.
  const { up, meter, c, job, en1, en2Size } = await setup(1000, '1d00ffff');
  const params = shareBetween(job, en1, en2Size, 1e-9, 1e-6);
  c.send({ id: 9, method: 'mining.submit', params });
  const ans = await c.waitFor((m) => m.id === 9);
  assert.equal(ans.result, true);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(up.submits.length, 0);
  assert.equal(meter.totals.get(5)!.forwarded, 0);
  assert.equal(meter.totals.get(5)!.valid, 1);
});
