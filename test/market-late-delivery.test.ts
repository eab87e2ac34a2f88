import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { checkLateDeliveries } from '../src/market/late-delivery.ts';
import type { FlushPosition } from '../src/market/ports.ts';
import type { MinuteDelta } from '../src/routing/meter.ts';
import { RouteStore } from '../src/routing/store.ts';
import type { Database } from '../src/store/db.ts';
import { migrate } from '../src/store/migrate.ts';
import { PgDatabase } from '../src/store/pg.ts';
import { SKIP_PG, type TestPg, createTestPg } from './helpers/pg.ts';

// Routed work that reaches the database after its tick was settled is not billed. A process that could not write for
// more than an hour drops out of the market's watermark, so the market settles without it, and what its journal
// sends later lands in settled ticks. Failed before: nothing noticed, the loss was silent. Now each such meter flush
// is recorded in market_late_deliveries and logged, once; flushes the settlement read, and work for later ticks or
// for routes outside the market, are not.

const DEST = [{ url: 'stratum+tcp://127.0.0.1:3334', user: 'buyer.rig', password: 'x' }];
const TICK_MS = 60_000;

let tpg: TestPg;
let db: Database;
before(async () => {
  if (SKIP_PG) return;
  tpg = await createTestPg();
  db = new PgDatabase({ url: tpg.url, maxConnections: 2 });
  await migrate(db);
});
after(async () => { await db?.close(); await tpg?.drop(); });

function bucket(routeId: number, minute: number, acceptedDifficulty: number): MinuteDelta {
  return {
    routeId, worker: 'seller.rig', minute, valid: 1, validDifficulty: acceptedDifficulty, invalid: 0, forwarded: 1, accepted: 1, acceptedDifficulty,
    acceptedDifficultySq: acceptedDifficulty ** 2, rejected: 0, stale: 0, noAnswer: 0, switchLost: 0, switchLostDifficulty: 0, probeAccepted: 0, probeDifficulty: 0,
  };
}

/** A cleared tick (the columns settlement does not read are zero). */
async function tick(n: number): Promise<void> {
  await db.query(
    `INSERT INTO market_ticks (tick, starts_at, ends_at, price, demand_hs, supply_hs, matched_hs, allocated_hs, depth_bid_hs, depth_ask_hs, available_hs,
       bids, asks, workers_kept, workers_moved, workers_started, workers_stopped, fee_bps, input_digest)
     VALUES ($1, to_timestamp($2::float8 / 1000), to_timestamp($3::float8 / 1000), 1000, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 100, 'test')`,
    [n, n * TICK_MS, (n + 1) * TICK_MS]);
}
const settle = (n: number) => db.query(`UPDATE market_ticks SET settled_at = now(), delivered_hashes = 0, debit_sat = 0, credit_sat = 0, fee_sat = 0, overrun_sat = 0 WHERE tick = $1`, [n]);

test('work that reaches the database after its tick was settled is recorded and logged once; work the settlement read is not', { skip: SKIP_PG }, async () => {
  const store = new RouteStore(db, 'node-late');
  const market = await store.create({ name: 'bid route', destinations: DEST, workers: ['seller.rig'], bidId: 501 });
  const operator = await store.create({ name: 'operator route', destinations: DEST, workers: ['seller.rig'] });
  const base = Math.floor(Date.now() / TICK_MS) - 120;
  await tick(base);
  await tick(base + 1);
  const t0 = base * TICK_MS;
  const start = new Date(Date.now() - 1000);

  // Read by the settlement: written, then the tick settles.
  await store.addMinutes([bucket(market.id, t0, 1)], null, 'read-by-settlement');
  await settle(base);
  // After the settlement: work for the settled tick (late), for the next tick, not settled (in time), and for an
  // operator route in the settled tick (not the market's).
  await store.addMinutes([bucket(market.id, t0 + TICK_MS, 2), bucket(market.id, t0 + 5_000, 3)], null, 'late-replay');
  await store.addMinutes([bucket(market.id, t0 + TICK_MS, 4)], null, 'in-time');
  await store.addMinutes([bucket(operator.id, t0, 5)], null, 'operator-route');
  // Nothing billable (a share the destination rejected) in the settled tick: not reported as unbilled work.
  await store.addMinutes([{ ...bucket(market.id, t0 + 7_000, 0), accepted: 0, acceptedDifficultySq: 0, rejected: 1 }], null, 'rejected-only');

  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'error' }, { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } });
  const source = (after: FlushPosition, limit: number) => store.marketFlushes(after, limit);
  const first = await checkLateDeliveries(db, source, start, log);
  assert.deepEqual(first.late.map((l) => [l.flushId, l.node, l.firstTick, l.oldestMinute.getTime()]), [['late-replay', 'node-late', base, t0 + 5_000]]);
  assert.equal(lines.length, 1);
  assert.match(String(lines[0].msg), /after its tick was settled: not billed/);
  assert.ok(first.next.getTime() >= start.getTime());

  // Again, from where it stopped (and from the start): recorded once, logged once.
  assert.deepEqual((await checkLateDeliveries(db, source, first.next, log)).late, []);
  assert.deepEqual((await checkLateDeliveries(db, source, start, log)).late, []);
  assert.equal(lines.length, 1);
  const rows = (await db.query<{ flush_id: string; first_tick: string }>('SELECT flush_id, first_tick::text FROM market_late_deliveries')).rows;
  assert.deepEqual(rows.map((r) => [r.flush_id, Number(r.first_tick)]), [['late-replay', base]]);

  // The next tick settles: work written for it before that stays read, not late.
  await settle(base + 1);
  assert.deepEqual((await checkLateDeliveries(db, source, start, log)).late, []);

  // More late flushes than a page, all applied in one instant (one statement here): every one is found, page by
  // page in (applied at, id) order.
  await db.query(`INSERT INTO route_meter_flushes (flush_id, node, oldest_market_minute)
    SELECT 'bulk-' || i, 'node-bulk', to_timestamp($1::float8 / 1000) FROM generate_series(1, 2500) i`, [t0]);
  const bulk = await checkLateDeliveries(db, source, start, log);
  assert.equal(bulk.late.length, 2500);
  assert.equal(new Set(bulk.late.map((l) => l.flushId)).size, 2500);
});

test('a flush applied in the same millisecond as the settlement, microseconds after it, is late all the same', { skip: SKIP_PG }, async () => {
  // The flush's time was compared as a JavaScript Date (milliseconds) with settled_at (microseconds): a flush
  // 300 µs after the settlement, in the same millisecond, read as before it and went unreported (CI, 2026-11-29).
  const store = new RouteStore(db, 'node-same-ms');
  const market = await store.create({ name: 'bid route same ms', destinations: DEST, workers: ['seller.rig'], bidId: 502 });
  const base = Math.floor(Date.now() / TICK_MS) - 60;
  await tick(base);
  const t0 = base * TICK_MS;
  const start = new Date(Date.now() - 1000);
  await settle(base);
  await store.addMinutes([bucket(market.id, t0 + 1_000, 7)], null, 'same-ms-late');
  // A whole millisecond of the database's clock, after everything written so far: the settlement at .xxx400, the
  // flush at .xxx700.
  const ms = (await db.query<{ t: string }>(`SELECT date_trunc('milliseconds', clock_timestamp())::text AS t`)).rows[0].t;
  await db.query(`UPDATE market_ticks SET settled_at = $1::timestamptz + interval '400 microseconds' WHERE tick = $2`, [ms, base]);
  await db.query(`UPDATE route_meter_flushes SET at = $1::timestamptz + interval '700 microseconds' WHERE flush_id = 'same-ms-late'`, [ms]);
  const found = await checkLateDeliveries(db, (after, limit) => store.marketFlushes(after, limit), start);
  assert.deepEqual(found.late.map((l) => l.flushId), ['same-ms-late']);
});
