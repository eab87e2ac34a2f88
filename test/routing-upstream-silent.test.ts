import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { StratumMiner } from '../src/miner/client.ts';
import { RouteMeter } from '../src/routing/meter.ts';
import { DEFAULT_ROUTER_OPTIONS, Router } from '../src/routing/router.ts';
import { startTestPool } from './helpers/pool.ts';
import { StubNode } from './helpers/stub-node.ts';
import { StubUpstream } from './helpers/stub-upstream.ts';
import { until } from './helpers/until.ts';

// A destination that dies without closing its connections (its process stopped, SIGSTOP; a network black hole):
// nothing more arrives, no job, no answer. The no-job timer ran only until the first job after authorize, so such
// a route stayed ready for good: its miners kept hashing the last job, every share "no answer" (never billed, never
// paid by the pool either) — seen with ckpool stopped by SIGSTOP: the miner stayed on the route 25 s with a 5 s
// no-job timeout, and with the defaults for ever. Now silence for twice routing.noJobSeconds after the first job fails
// the connection: the route pauses, its miners are back on pool work, and it resumes when the destination answers.

const stops: (() => unknown)[] = [];
after(async () => { for (const s of stops.reverse()) await s(); });

test('a destination that goes silent (no job, no answer) pauses the route: its miners are back on pool work; it resumes', { timeout: 60_000 }, async () => {
  const a = await startTestPool(new StubNode(), { initialDifficulty: 0.00002 });
  stops.push(() => a.pool.stop(200));
  const up = new StubUpstream({ jobEveryMs: 500 });
  await up.listen();
  stops.push(() => up.close());
  const meter = new RouteMeter();
  const router = new Router({ ...DEFAULT_ROUTER_OPTIONS, reconnectHost: '127.0.0.1', reconnectPort: a.port, reconcileMs: 200,
    upstream: { backoffMinMs: 100, backoffMaxMs: 300, noJobTimeoutMs: 1000, requestTimeoutMs: 1000 } }, meter);
  router.start();
  a.pool.routing = router;
  stops.push(() => router.stop());
  const m = new StratumMiner({ host: '127.0.0.1', port: a.port, user: 'seller.sil', extranonceSubscribe: true, hashrate: 200_000, reconnectInitialMs: 50, reconnectMaxMs: 200 });
  stops.push(() => m.stop());
  m.start();
  const onRoute = () => m.currentJob?.jobId.startsWith('r') === true;
  await until(() => m.currentJob !== null, 10_000, 'pool work');
  const r = router.upsert({ id: 4, name: 'sil', destinations: [{ url: `stratum+tcp://127.0.0.1:${up.port}`, user: 'buyer.x', password: 'x' }], workers: ['seller'] });
  await until(() => r.state === 'ready' && onRoute(), 20_000, () => `routed (${JSON.stringify(r.status)})`);
  up.frozen = true;
  const t0 = Date.now();
  await until(() => !onRoute(), 8000, () => `back on pool work after the destination went silent (${JSON.stringify(r.status)})`);
  const backMs = Date.now() - t0;
  assert.equal(r.state, 'paused');
  assert.equal(r.status.code, 'no-answer', JSON.stringify(r.status));
  up.frozen = false;
  await until(() => r.state === 'ready' && onRoute(), 20_000, () => `resumed (${JSON.stringify(r.status)})`);
  process.stderr.write(`# silent destination: miner back on pool work ${backMs} ms after it went silent (silence limit 2 × 1000 ms)\n`);
});
