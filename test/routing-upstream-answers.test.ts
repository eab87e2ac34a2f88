import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { StratumMiner } from '../src/miner/client.ts';
import { RouteMeter } from '../src/routing/meter.ts';
import { DEFAULT_ROUTER_OPTIONS, Router } from '../src/routing/router.ts';
import { DEFAULT_UPSTREAM_OPTIONS, UpstreamClient } from '../src/routing/upstream.ts';
import { startTestPool } from './helpers/pool.ts';
import { StubNode } from './helpers/stub-node.ts';
import { StubUpstream } from './helpers/stub-upstream.ts';
import { until } from './helpers/until.ts';

// ckpool (and pools derived from it) answers a refused share with `"result": false, "error": null` and the reason
// in a field of its own, `"reject-reason"` ("Stale", "Invalid JobID", "Above target", "Duplicate", ...), as seen on
// the wire from ckpool built from its last upstream commit. Those answers were all metered as "rejected: result
// false": a stale share (the destination found a block; a late share after our move) counted as a reject — towards
// the route's reject pause, and not as switch_lost — and the reason was lost for the operator and the market.

const stops: (() => unknown)[] = [];
after(async () => { for (const s of stops.reverse()) await s(); });

const CKPOOL_REASONS: Record<string, string> = { '00000001': 'Stale', '00000002': 'Invalid JobID', '00000003': 'Above target', '00000004': 'Duplicate' };
const ckpoolAnswer = (p: unknown[]) => {
  const reason = CKPOOL_REASONS[String(p[4])];
  return reason ? { 'reject-reason': reason, result: false, error: null } : { result: true, error: null };
};

test('ckpool-style answers: the "reject-reason" decides stale or rejected, and is the reason kept', async () => {
  const stub = new StubUpstream({ answerRaw: ckpoolAnswer });
  const port = await stub.listen();
  stops.push(() => stub.close());
  const client = new UpstreamClient({ ...DEFAULT_UPSTREAM_OPTIONS, url: `stratum+tcp://127.0.0.1:${port}`, user: 'buyer.rig', password: 'x' });
  stops.push(() => client.stop());
  let up = false;
  client.on('up', () => { up = true; });
  client.start();
  await until(() => up, 5000, 'subscribed and authorized');
  const submit = (nonce: string) => client.submit(['buyer.rig', '1', '0000000000000000', '00000000', nonce]);
  assert.deepEqual(await submit('00000000'), { kind: 'accepted' });
  assert.deepEqual(await submit('00000001'), { kind: 'stale', reason: 'Stale' });
  assert.deepEqual(await submit('00000002'), { kind: 'stale', reason: 'Invalid JobID' });
  assert.deepEqual(await submit('00000003'), { kind: 'rejected', reason: 'Above target' });
  assert.deepEqual(await submit('00000004'), { kind: 'rejected', reason: 'Duplicate' });
});

test('a destination answering its stale shares the ckpool way: metered stale, and the route does not pause for rejects', async () => {
  const a = await startTestPool(new StubNode(), { initialDifficulty: 0.00002 });
  stops.push(() => a.pool.stop(200));
  // Accepts the first share (the probe), then answers every share "Stale" as ckpool does after its blocks.
  let n = 0;
  const stub = new StubUpstream({ jobEveryMs: 500, answerRaw: () => (n++ === 0 ? { result: true, error: null } : { 'reject-reason': 'Stale', result: false, error: null }) });
  await stub.listen();
  stops.push(() => stub.close());
  const meter = new RouteMeter();
  const router = new Router({ ...DEFAULT_ROUTER_OPTIONS, reconnectHost: '127.0.0.1', reconnectPort: a.port, reconcileMs: 200, rejectMinShares: 5 }, meter);
  router.start();
  a.pool.routing = router;
  stops.push(() => router.stop());
  const m = new StratumMiner({ host: '127.0.0.1', port: a.port, user: 'seller.ck', extranonceSubscribe: true, hashrate: 200_000, reconnectInitialMs: 50, reconnectMaxMs: 200 });
  stops.push(() => m.stop());
  m.start();
  await until(() => m.currentJob !== null, 10_000, 'pool work');
  const r = router.upsert({ id: 3, name: 'ck', destinations: [{ url: `stratum+tcp://127.0.0.1:${stub.port}`, user: 'buyer.x', password: 'x' }], workers: ['seller'] });
  await until(() => (meter.totals.get(3)?.stale ?? 0) + (meter.totals.get(3)?.rejected ?? 0) >= 8, 30_000, () => `answers (${JSON.stringify(meter.totals.get(3))})`);
  const t = meter.totals.get(3)!;
  assert.equal(t.rejected, 0, JSON.stringify(t));
  assert.ok(t.stale >= 8, JSON.stringify(t));
  assert.equal(t.accepted, 0, 'nothing billed');
  assert.notEqual(r.status.code, 'rejects', JSON.stringify(r.status));
});
