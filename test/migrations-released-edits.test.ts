import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { RouteStore } from '../src/routing/store.ts';
import type { Database } from '../src/store/db.ts';
import { type Migration, loadMigrations, migrate } from '../src/store/migrate.ts';
import { BACKENDS, SKIP_PG } from './helpers/pg.ts';

// Migrations 022, 023 and 024 were edited after commits on main had applied them (022 at dfded21 and 775e2df, 023 at
// f2f720c, 024 at 8036ad7). A pool that ran one of those and upgrades keeps the schema it applied (migrate() only
// warns about the changed file): 022 as first released keys route_meter_flushes by (node, flush_id), so a meter
// journal replayed under another node name (stratum.nodeId changed before a restart) billed its flushes twice.
// The released files are kept in test/fixtures/released-migrations/ exactly as they were (their checksums below).

const FIXTURES = fileURLToPath(new URL('./fixtures/released-migrations/', import.meta.url));

function released(file: string, version: number, name: string, checksum: string): Migration {
  const sql = readFileSync(`${FIXTURES}/${file}`, 'utf8');
  const m = { version, name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
  assert.equal(m.checksum, checksum, `${file} is the released text`);
  return m;
}

/** HEAD's migrations up to 024, with 022-024 as they were first released. */
function firstReleased(): Migration[] {
  const swap = new Map<number, Migration>([
    [22, released('022_route_meter_flushes.dfded21.sql', 22, 'route_meter_flushes', 'e0ea491d29ef63c0a36979cea5f1be6f6015a907c70b3c1ec93e51bb38ba916c')],
    [23, released('023_route_meter_orphans.f2f720c.sql', 23, 'route_meter_orphans', '72fe5fee1b86c2a35adca213f42880aed91292a3c251306dcca165c7d52f2309')],
    [24, released('024_route_meter_flush_minutes.8036ad7.sql', 24, 'route_meter_flush_minutes', '3b5ec25f99556ec858fe31dbe5bf87edef6f386430b31cf183f52538eb9e1046')],
  ]);
  return loadMigrations().filter((m) => m.version <= 24).map((m) => swap.get(m.version) ?? m);
}

async function shape(db: Database): Promise<{ pk: string; indexes: string[] }> {
  const pk = await db.query<{ def: string }>(`SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = 'route_meter_flushes'::regclass AND contype = 'p'`);
  const ix = await db.query<{ def: string }>(`SELECT indexdef AS def FROM pg_indexes WHERE tablename IN ('route_meter_flushes', 'route_meter_orphans') ORDER BY indexname`);
  return { pk: pk.rows[0].def, indexes: ix.rows.map((r) => r.def) };
}

function capture(): { log: pino.Logger; lines: { level: number; msg: string; migration?: string }[] } {
  const lines: { level: number; msg: string; migration?: string }[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => { lines.push(JSON.parse(s)); } });
  return { log, lines };
}

const DELTA = { validDifficulty: 0, acceptedDifficulty: 1, acceptedDifficultySq: 1, switchLostDifficulty: 0, probeDifficulty: 0, valid: 1, invalid: 0, forwarded: 1, accepted: 1, rejected: 0, stale: 0, noAnswer: 0, switchLost: 0, probeAccepted: 0 };

for (const backend of BACKENDS) {
  test(`${backend.name}: a database that applied 022-024 as first released ends with HEAD's schema; a flush replayed under another node name is billed once`, { skip: backend.name === 'postgres' ? SKIP_PG : false, timeout: 120_000 }, async () => {
    const { db, cleanup } = await backend.open();
    const fresh = await backend.open();
    try {
      await migrate(db, undefined, firstReleased());
      const before = await shape(db);
      assert.equal(before.pk, 'PRIMARY KEY (node, flush_id)', 'the released 022');
      // The flushes of the old release: one id under two node names stays (it was two rows there); HEAD keeps one.
      await db.query(`INSERT INTO route_meter_flushes (flush_id, node, at) VALUES ('dup', 'node-1', now() - interval '1 hour'), ('dup', 'node-0', now()), ('solo', 'node-0', now())`);

      const { log, lines } = capture();
      await migrate(db, log);
      await migrate(fresh.db);
      const minute = new Date('2026-01-01T00:00:00Z').getTime();
      const a = new RouteStore(db, 'node-0');
      const route = await a.create({ name: 'r', destinations: [{ url: 'stratum+tcp://127.0.0.1:1', user: 'u', password: 'x' }], workers: ['acme.rig'] });
      await a.addMinutes([{ routeId: route.id, worker: 'acme.rig', minute, ...DELTA }], null, 'flush-1');
      // The same journal read back after stratum.nodeId changed: the same flush id under another node name.
      await new RouteStore(db, 'node-1').addMinutes([{ routeId: route.id, worker: 'acme.rig', minute, ...DELTA }], null, 'flush-1');
      const d = await a.delivered(new Date(minute), new Date(minute + 60_000));
      assert.equal(d[0].accepted, 1, 'billed once');
      assert.deepEqual(await shape(db), await shape(fresh.db), 'the same keys and indexes as a database made by HEAD');
      const kept = await db.query<{ flush_id: string; node: string }>("SELECT flush_id, node FROM route_meter_flushes WHERE flush_id IN ('dup', 'solo') ORDER BY flush_id");
      assert.deepEqual(kept.rows, [{ flush_id: 'dup', node: 'node-1' }, { flush_id: 'solo', node: 'node-0' }], 'the first applied of each id is kept');
      // The operator is told once what happened, not asked at every start to 'add a new migration'.
      assert.deepEqual(lines.filter((l) => l.level >= 40).map((l) => l.migration), [], 'no warning for the released forms');
      const again = capture();
      await migrate(db, again.log);
      assert.deepEqual(again.lines.filter((l) => l.level >= 40), [], 'a later start is quiet too');
    } finally {
      await fresh.cleanup();
      await cleanup();
    }
  });
}

test('an unknown change to an applied migration is still a warning', { timeout: 60_000 }, async () => {
  const { db, cleanup } = await BACKENDS[1].open();
  try {
    const all = loadMigrations().filter((m) => m.version <= 3);
    await migrate(db, undefined, all);
    const { log, lines } = capture();
    await migrate(db, log, all.map((m) => (m.version === 3 ? { ...m, checksum: 'f'.repeat(64) } : m)));
    assert.deepEqual(lines.filter((l) => l.level === 40).map((l) => l.migration), ['003_ingest']);
  } finally {
    await cleanup();
  }
});

test('postgres: 022 as of 775e2df (index on at) is brought to the index on (node, at), quietly', { skip: SKIP_PG, timeout: 60_000 }, async () => {
  const { db, cleanup } = await BACKENDS[0].open();
  const fresh = await BACKENDS[0].open();
  try {
    const v2 = released('022_route_meter_flushes.775e2df.sql', 22, 'route_meter_flushes', 'e598d5e089061a3313486a66182561ce7e7ca4700a08be0224b1098e7703c20e');
    await migrate(db, undefined, loadMigrations().filter((m) => m.version <= 22).map((m) => (m.version === 22 ? v2 : m)));
    const { log, lines } = capture();
    await migrate(db, log);
    await migrate(fresh.db);
    assert.deepEqual(await shape(db), await shape(fresh.db));
    assert.deepEqual(lines.filter((l) => l.level >= 40), []);
  } finally {
    await fresh.cleanup();
    await cleanup();
  }
});
