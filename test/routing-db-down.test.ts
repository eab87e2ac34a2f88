import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RoutingService } from '../src/routing/service.ts';
import type { Queryable } from '../src/store/db.ts';
import { captureLogger } from './helpers/capture-logger.ts';
import { until } from './helpers/until.ts';

// A pool whose database is down keeps mining; routing reads its routes every syncMs (2 s by default) and each
// failed read logged a warning: 1,800 lines an hour saying the same thing. Failed before: one per read.

test('routing with its database down warns once per minute per failure, with how many it held back, not at every read', async (t) => {
  let now = 1_700_000_000_000;
  let reads = 0; // failed reads of the active routes (the sync), not the meter's flushes
  const down: Queryable = { query: async (sql: string) => { if (/FROM routes WHERE stopped_at IS NULL AND starts_at/.test(sql)) reads++; throw new Error('connect ECONNREFUSED 127.0.0.1:5432'); } } as unknown as Queryable;
  const { logger, lines } = captureLogger();
  const svc = new RoutingService(down, {
    router: { reconnectHost: '127.0.0.1', reconnectPort: 3333 }, syncMs: 100, flushMs: 100, node: 'test', stopAnswerWaitMs: 0,
    now: () => now,
  }, logger);
  t.after(() => svc.stop());
  await svc.start();
  const warned = () => lines.filter((l) => l.level === 40 && l.msg === 'cannot read routes');
  // Counted in failed reads, not in sleeps: a loaded machine's late timers made fewer reads than a sleep allowed for.
  await until(() => reads >= 7, 10_000, () => `7 failed reads (${reads})`);
  assert.equal(warned().length, 1, `warnings after ${reads} failed reads: ${warned().length}`);
  assert.match(svc.lastError ?? '', /ECONNREFUSED/, 'the API still shows the latest error');
  now += 61_000;
  await until(() => warned().length >= 2, 10_000, 'a warning after a minute');
  const w = warned();
  assert.equal(w.length, 2, 'again after a minute');
  assert.ok(((w[1] as { repeated?: number }).repeated ?? 0) >= 5, `the second says how many were held back: ${JSON.stringify(w[1])}`);
});

test('routes read while the database was up carry their lease into the router, which ends it while reads fail', async (t) => {
  // The router ends a market route's lease itself (Route.matches); this is the wiring: the lease read from the
  // routes table reaches the route's spec (without it, a failing database kept workers routed past their lease).
  const leaseUntil = new Date(Date.now() + 60_000);
  let served = false;
  const db: Queryable = {
    query: async (sql: string) => {
      if (!served && /FROM routes/.test(sql)) {
        served = true;
        return { rows: [{ id: '7', name: 'bid 7', destinations: [{ url: 'stratum+tcp://127.0.0.1:1', user: 'buyer.x', password: 'x' }], workers: ['seller'], hashrate: null,
          bid_id: '7', created_at: new Date(), starts_at: new Date(), stopped_at: null, state: 'probing', state_code: null, state_message: null,
          state_since: new Date(), lease_until: leaseUntil, applied_tick: '1' }] };
      }
      throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
    },
  } as unknown as Queryable;
  const { logger } = captureLogger();
  const svc = new RoutingService(db, { router: { reconnectHost: '127.0.0.1', reconnectPort: 3333 }, syncMs: 100, flushMs: 100, node: 'test', stopAnswerWaitMs: 0 }, logger);
  t.after(() => svc.stop());
  await svc.start();
  assert.ok(served, 'the routes were read');
  const route = svc.router.routes.get(7);
  assert.ok(route, 'route 7 is in the router');
  assert.equal(route.spec.leaseEndMs, leaseUntil.getTime());
  assert.deepEqual(route.spec.workers, ['seller']);
  // Reads fail from here on: the route and its lease stay as read.
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(svc.router.routes.get(7)?.spec.leaseEndMs, leaseUntil.getTime());
});
