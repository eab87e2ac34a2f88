import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RollupCapacityMeter, SumCapacityMeter } from '../src/market/capacity.ts';
import { MarketDeliveryMeter, MarketRouteController, RoutedCapacityMeter } from '../src/routing/market-adapters.ts';
import { RouteMeter } from '../src/routing/meter.ts';
import { HANDSHAKE_OK } from '../src/routing/route.ts';
import { RouteStore } from '../src/routing/store.ts';
import { migrate } from '../src/store/migrate.ts';
import type { Database } from '../src/store/db.ts';
import { PgDatabase } from '../src/store/pg.ts';
import { PgliteDatabase } from '../src/store/pglite.ts';
import { SKIP_PG, createTestPg } from './helpers/pg.ts';

// Routing's tables (migration 020) and the market's ports on them: routes per bid, workers per tick with a lease,
// states as the market sees them, minute buckets flushed as increments, delivery per (bid, worker).

const DEST = [{ url: 'stratum+tcp://127.0.0.1:3334', user: 'buyer.rig', password: 'x' }];

// The same SQL on both engines (DESIGN.md: one dialect): Postgres, and PGlite as `hashhub pool` embeds it.
for (const engine of ['postgres', 'pglite'] as const) describe(engine, () => {
let db: Database;
let drop: () => Promise<void>;
const skip = engine === 'postgres' ? SKIP_PG : false;

before(async () => {
  if (skip) return;
  if (engine === 'postgres') {
    const pg = await createTestPg();
    db = new PgDatabase({ url: pg.url, maxConnections: 2 });
    drop = async () => { await db.close(); await pg.drop(); };
  } else {
    db = await PgliteDatabase.open('memory://');
    drop = () => db.close();
  }
  await migrate(db);
});
after(async () => { await drop?.(); });

test('market ports: probe creates the bid\'s route, apply sets workers with a lease (later ticks only), states map, stopWorkers, stop', { skip }, async () => {
  const a = await db.query<{ id: string }>(`INSERT INTO accounts (name) VALUES ('seller') RETURNING id`);
  const ids: number[] = [];
  for (const w of ['w1', 'w2']) ids.push(Number((await db.query<{ id: string }>(`INSERT INTO workers (account_id, name, first_seen, last_seen) VALUES ($1, $2, now(), now()) RETURNING id`, [a.rows[0].id, w])).rows[0].id));
  let applied = 0;
  const rc = new MarketRouteController(db, async () => { applied++; });
  const store = new RouteStore(db);
  await rc.probe(5, DEST);
  await rc.probe(5, DEST); // idempotent
  const row = (await store.forBid(5))!;
  assert.deepEqual(row.workers, []);
  assert.deepEqual((await rc.destinationStates([5])).get(5), { state: 'probing' });
  await store.recordState(row.id, { state: 'probing', code: HANDSHAKE_OK, message: 'ok', since: Date.now(), destinationIndex: 0, workersFit: 65536, extranonce2ForMiners: 6, upstreamDifficulty: 1 });
  assert.equal((await rc.destinationStates([5])).get(5)!.state, 'ready', 'handshake done: the market may allocate');
  const lease = new Date(Date.now() + 30_000);
  await rc.apply(10, [{ bidId: 5, destinations: DEST, workerIds: ids }], lease);
  assert.deepEqual((await store.forBid(5))!.workers, ['seller.w1', 'seller.w2']);
  await rc.apply(9, [{ bidId: 5, destinations: DEST, workerIds: [ids[0]] }], lease); // an older tick changes nothing
  assert.deepEqual((await store.forBid(5))!.workers, ['seller.w1', 'seller.w2']);
  await rc.stopWorkers([ids[1]]);
  assert.deepEqual((await store.forBid(5))!.workers, ['seller.w1']);
  await rc.apply(11, [], lease);
  assert.deepEqual((await store.forBid(5))!.workers, [], 'a bid in no route of the tick: no workers');
  await store.recordState(row.id, { state: 'paused', code: 'disconnected', message: 'gone', since: Date.now(), destinationIndex: 0, workersFit: null, extranonce2ForMiners: null, upstreamDifficulty: null });
  const st = (await rc.destinationStates([5])).get(5)!;
  assert.equal(st.state, 'paused');
  assert.equal((st as { code: string }).code, 'disconnected');
  assert.equal((await store.pauses(row.id)).length, 1);
  await rc.stop(5);
  assert.equal(await store.forBid(5), null);
  assert.equal((await store.pauses(row.id))[0].endedAt !== null, true);
  assert.ok(applied >= 5);
});

test('metering: increments flushed to minute buckets add up; delivery per (bid, worker) counts accepted work only; watermark', { skip }, async () => {
  const store = new RouteStore(db, 'node-t');
  await db.query(`INSERT INTO accounts (name) VALUES ('acme') ON CONFLICT DO NOTHING`);
  const wid = Number((await db.query<{ id: string }>(`INSERT INTO workers (account_id, name, first_seen, last_seen) SELECT id, 'rig', now(), now() FROM accounts WHERE name = 'acme' RETURNING id`)).rows[0].id);
  const route = await store.create({ name: 'm', destinations: DEST, workers: ['acme.rig'], bidId: 77 });
  let now = Date.parse('2026-01-01T00:00:30Z');
  const meter = new RouteMeter(() => now);
  const shares = [{ d: 2, a: 'accepted' }, { d: 2, a: 'accepted' }, { d: 2, a: 'rejected' }, { d: 4, a: 'accepted' }, { d: 4, a: 'stale' }] as const;
  const handles: number[] = [];
  for (const s of shares) {
    meter.verdict(route.id, 'acme.rig', now, 'accepted', s.d, false);
    handles.push(meter.forwarded(route.id, 'acme.rig', now));
  }
  assert.equal(meter.watermark(), now, 'answers pending: the watermark stays at the oldest unanswered share');
  await meter.flush(store);
  shares.forEach((s, i) => meter.answer(handles[i], route.id, 'acme.rig', now, s.d, s.a === 'accepted' ? { kind: 'accepted' } : s.a === 'stale' ? { kind: 'stale', reason: 'x' } : { kind: 'rejected', reason: 'Low difficulty' }, { probe: false, late: i === 4 }));
  now += 60_000;
  await meter.flush(store);
  const d = await store.delivered(new Date('2026-01-01T00:00:00Z'), new Date('2026-01-01T00:02:00Z'));
  assert.equal(d.length, 1);
  assert.deepEqual({ valid: d[0].valid, forwarded: d[0].forwarded, accepted: d[0].accepted, acceptedDifficulty: d[0].acceptedDifficulty, rejected: d[0].rejected, stale: d[0].stale, switchLost: d[0].switchLost },
    { valid: 5, forwarded: 5, accepted: 3, acceptedDifficulty: 8, rejected: 1, stale: 1, switchLost: 1 });
  const market = new MarketDeliveryMeter(db);
  const rec = await market.delivered(new Date('2026-01-01T00:00:00Z'), new Date('2026-01-01T00:01:00Z'));
  assert.deepEqual(rec, [{ bidId: 77, workerId: wid, acceptedHashes: 8n * 2n ** 32n, acceptedShares: 3, rejectedShares: 1, staleBySwitchShares: 1 }]);
  assert.equal((await market.watermark()).getTime(), now, 'every answer in: the watermark is the flush time');
  // A failed flush loses nothing: it is kept and written by the next one.
  meter.verdict(route.id, 'acme.rig', now, 'low-difficulty', 1, false);
  await assert.rejects(meter.flush({ addMinutes: async () => { throw new Error('db down'); } }));
  await meter.flush(store);
  const d2 = await store.delivered(new Date('2026-01-01T00:00:00Z'), new Date('2026-01-01T00:03:00Z'));
  assert.equal(d2[0].invalid, 1);
});

test('metering: a flush is applied once and whole, even when an error hides its commit or cuts it off midway', { skip }, async () => {
  // Failed before: each bucket was its own statement outside a transaction, and a failed flush merged its increments
  // back into the meter. A flush that committed behind an error (a lost reply, a timeout) was added twice by the next
  // one, and so was the part of a flush written before an error in the middle: routed work billed twice.
  const store = new RouteStore(db, 'node-once');
  await db.query(`INSERT INTO accounts (name) VALUES ('once') ON CONFLICT DO NOTHING`);
  const route = await store.create({ name: 'once', destinations: DEST, workers: ['once.rig'], bidId: 78 });
  let now = Date.parse('2026-02-01T00:00:30Z');
  const meter = new RouteMeter(() => now);
  const accept = (worker: string, d: number) => meter.answer(meter.forwarded(route.id, worker, now), route.id, worker, now, d, { kind: 'accepted' }, { probe: false, late: false });
  const total = async () => (await store.delivered(new Date('2026-02-01T00:00:00Z'), new Date('2026-02-01T01:00:00Z'))).reduce((a, r) => a + r.acceptedDifficulty, 0);

  // 1. The flush commits, and then the caller sees an error.
  accept('once.rig', 2);
  accept('once.rig2', 3);
  await assert.rejects(meter.flush({ addMinutes: async (...a) => { await store.addMinutes(...a); throw new Error('connection lost after COMMIT'); } }));
  assert.equal(await total(), 5);
  await meter.flush(store);
  assert.equal(await total(), 5, 'a flush that committed behind an error is not added again');

  // 2. The flush fails at the watermark, after its buckets (a trigger raises there): none of it stays, and the retry
  // adds it once.
  now += 60_000;
  accept('once.rig', 7);
  accept('once.rig2', 11);
  await db.exec(`CREATE TABLE meter_fail (n int); INSERT INTO meter_fail VALUES (1);
    CREATE FUNCTION meter_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
      IF EXISTS (SELECT 1 FROM meter_fail) THEN RAISE EXCEPTION 'simulated failure at the watermark'; END IF; RETURN NEW; END $$;
    CREATE TRIGGER meter_fail BEFORE INSERT OR UPDATE ON route_meter_watermarks FOR EACH ROW EXECUTE FUNCTION meter_fail();`);
  try {
    await assert.rejects(meter.flush(store), /simulated failure/);
    assert.equal(await total(), 5, 'a flush cut off midway leaves nothing');
    await db.exec('DELETE FROM meter_fail');
  } finally {
    await db.exec('DROP TRIGGER meter_fail ON route_meter_watermarks; DROP FUNCTION meter_fail(); DROP TABLE meter_fail;');
  }
  accept('once.rig', 100);
  await meter.flush(store);
  assert.equal(await total(), 5 + 7 + 11 + 100, 'each increment exactly once');

  // 3. Counts sent with no watermark (a stop on a full disk, the journal holding others): the node's watermark is
  // neither created nor moved.
  const quiet = new RouteStore(db, 'node-no-watermark');
  await quiet.addMinutes([{ routeId: route.id, worker: 'once.rig', minute: now, validDifficulty: 0, acceptedDifficulty: 1, acceptedDifficultySq: 1, switchLostDifficulty: 0, probeDifficulty: 0, valid: 0, invalid: 0, forwarded: 0, accepted: 1, rejected: 0, stale: 0, noAnswer: 0, switchLost: 0, probeAccepted: 0 }], null, 'no-watermark-1');
  assert.equal(await total(), 5 + 7 + 11 + 100 + 1);
  assert.equal((await db.query(`SELECT 1 FROM route_meter_watermarks WHERE node = 'node-no-watermark'`)).rows.length, 0);
});

test('metering: counts for a route the database does not have are kept apart, and the rest of the flush and the ones after it are written', { skip }, async () => {
  // Failed before: route_minutes.route_id is a foreign key, so a flush with a route deleted by hand (or a journal read
  // back into another database) failed every time; retried first, it held back every later flush and the watermark.
  const orphanCalls: number[] = [];
  const store = new RouteStore(db, 'node-orphan', (n) => orphanCalls.push(n));
  const route = await store.create({ name: 'kept', destinations: DEST, workers: ['kept.rig'], bidId: 79 });
  const gone = route.id + 1_000_000;
  let now = Date.parse('2026-03-01T00:00:30Z');
  const meter = new RouteMeter(() => now);
  const accept = (id: number, d: number) => meter.answer(meter.forwarded(id, 'kept.rig', now), id, 'kept.rig', now, d, { kind: 'accepted' }, { probe: false, late: false });
  const total = async () => (await store.delivered(new Date('2026-03-01T00:00:00Z'), new Date('2026-03-01T01:00:00Z'), [route.id])).reduce((a, r) => a + r.acceptedDifficulty, 0);
  accept(route.id, 3);
  accept(gone, 5);
  await meter.flush(store);
  assert.equal(await total(), 3, 'the known route\'s counts are written');
  const orphans = (await db.query<{ route_id: string; accepted: string; accepted_difficulty: number }>(
    `SELECT route_id::text, counts->>'accepted' AS accepted, (counts->>'accepted_difficulty')::float8 AS accepted_difficulty FROM route_meter_orphans WHERE node = 'node-orphan'`)).rows;
  assert.deepEqual(orphans.map((o) => [o.route_id, o.accepted, Number(o.accepted_difficulty)]), [[String(gone), '1', 5]]);
  assert.deepEqual(orphanCalls, [1]);
  now += 60_000;
  accept(route.id, 4);
  await meter.flush(store);
  assert.equal(await total(), 7, 'the next flush is written');
  const wm = (await db.query<{ w: Date }>(`SELECT watermark AS w FROM route_meter_watermarks WHERE node = 'node-orphan'`)).rows[0];
  assert.equal(new Date(wm.w).getTime(), now, 'the watermark moves');
  const again = [{ routeId: gone, worker: 'kept.rig', minute: now, validDifficulty: 0, acceptedDifficulty: 9, acceptedDifficultySq: 81, switchLostDifficulty: 0, probeDifficulty: 0, valid: 0, invalid: 0, forwarded: 0, accepted: 1, rejected: 0, stale: 0, noAnswer: 0, switchLost: 0, probeAccepted: 0 }];
  // A retry of a flush already written (one whose reply was lost) adds nothing, known routes nor orphans, and
  // still reports its orphans.
  const mixed = [{ ...again[0], routeId: route.id }, again[0]];
  await store.addMinutes(mixed, null, 'orphan-retry');
  await store.addMinutes(mixed, null, 'orphan-retry');
  assert.equal(await total(), 7 + 9);
  assert.equal((await db.query(`SELECT 1 FROM route_meter_orphans WHERE node = 'node-orphan'`)).rows.length, 2);
  assert.deepEqual(orphanCalls, [1, 1, 1]);
});

test('a route is in force as soon as it is created: its start is compared on the database\'s clock', { skip }, async () => {
  // starts_at is the database's now(), to the microsecond. Compared with this process's clock truncated to the
  // millisecond, a route created in that same millisecond read as not started yet, so a new route (or a bid's
  // probe) waited for the next sync (audit after 0d6499f).
  const store = new RouteStore(db, 'node-now');
  for (let i = 0; i < 20; i++) {
    const r = await store.create({ name: `in force at once ${i}`, destinations: DEST, workers: ['seller.now'] });
    assert.ok((await store.active()).some((x) => x.id === r.id), `route ${i} in force when created`);
    assert.ok(await store.stop(r.id));
  }
  // A start ahead of the database's clock is not in force yet.
  const later = await store.create({ name: 'starts later', destinations: DEST, workers: ['seller.now'], startsAt: new Date(Date.now() + 3_600_000) });
  assert.ok(!(await store.active()).some((x) => x.id === later.id));
  assert.ok(await store.stop(later.id));
});

test('capacity: a routed worker keeps its measured capacity (routed work from route_minutes, added to pool work); 5 s buckets', { skip }, async () => {
  // Failed before: the pool process measured capacity from the pool's rollups only, so a worker routed for a
  // whole capacity window measured 0 and the market took it off the bid it was serving.
  const a = await db.query<{ id: string }>(`INSERT INTO accounts (name) VALUES ('rig_owner') RETURNING id`);
  const w = Number((await db.query<{ id: string }>(`INSERT INTO workers (account_id, name, first_seen, last_seen) VALUES ($1, 'r1', now(), now()) RETURNING id`, [a.rows[0].id])).rows[0].id);
  const store = new RouteStore(db);
  const route = await store.create({ name: 'cap', destinations: DEST, workers: ['rig_owner.r1'], bidId: 7_001 });
  const t0 = Date.UTC(2031, 2, 10, 12, 0, 0);
  let now = t0;
  const meter = new RouteMeter(() => now, 5000);
  // 60 s of routed work: one valid share (difficulty 2) every second; 3 of them invalid (not counted).
  for (let s = 0; s < 60; s++) {
    now = t0 + s * 1000;
    meter.verdict(route.id, 'rig_owner.r1', now, s % 20 === 0 ? 'low-difficulty' : 'accepted', 2, false);
  }
  await meter.flush(store);
  const buckets = await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM route_minutes WHERE route_id = $1`, [route.id]);
  assert.equal(buckets.rows[0].n, '12', '5 s buckets');
  const routed = new RoutedCapacityMeter(db);
  const both = new SumCapacityMeter([new RollupCapacityMeter(db), routed]);
  assert.deepEqual(await new RollupCapacityMeter(db).capacities([w], new Date(t0 + 60_000), 60), [], 'no pool work: the rollups alone measure nothing');
  const expect = [{ workerId: w, hashes: 57n * 2n * 2n ** 32n, shares: 57 }];
  assert.deepEqual(await routed.capacities([w], new Date(t0 + 60_000), 60), expect);
  assert.deepEqual(await both.capacities([w], new Date(t0 + 60_000), 60), expect);
  // The window is [end − seconds, end): the first 30 s only.
  assert.equal((await routed.capacities([w], new Date(t0 + 30_000), 30))[0].shares, 28);
});
});
