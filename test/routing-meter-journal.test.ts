import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { MeterJournal } from '../src/routing/meter-journal.ts';
import { type MeterSink, RouteMeter } from '../src/routing/meter.ts';
import { RouteStore } from '../src/routing/store.ts';
import type { Database } from '../src/store/db.ts';
import { migrate } from '../src/store/migrate.ts';
import { PgDatabase } from '../src/store/pg.ts';
import { SKIP_PG, type TestPg, createTestPg } from './helpers/pg.ts';
import { until } from './helpers/until.ts';

// The route meter writes what it metered to route_minutes once a second, and the market bills from there. What it
// metered since its last write used to live only in memory: a process killed outright lost it, billed to nobody.
// With its journal, a process started again on the same directory writes it, and writes nothing twice.

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DEST = [{ url: 'stratum+tcp://127.0.0.1:3334', user: 'buyer.rig', password: 'x' }];

describe('route meter journal', { skip: SKIP_PG }, () => {
  let tpg: TestPg;
  let db: Database;
  let store: RouteStore;
  let routeId: number;
  before(async () => {
    tpg = await createTestPg();
    db = new PgDatabase({ url: tpg.url, maxConnections: 2 });
    await migrate(db);
    store = new RouteStore(db, 'node-kill');
    routeId = (await store.create({ name: 'journal', destinations: DEST, workers: ['acme.rig'], bidId: 91 })).id;
  });
  after(async () => { await db?.close(); await tpg?.drop(); });

  const billed = async () => (await store.delivered(new Date(0), new Date(Date.now() + 3_600_000), [routeId])).reduce((n, r) => n + r.accepted, 0);
  const reset = () => db.exec('DELETE FROM route_minutes; DELETE FROM route_meter_flushes');

  /** The child (test/fixtures/meter-child.ts) on dir; its "metered n committed m" lines as they come. */
  function child(dir: string, env: Record<string, string> = {}): { c: ChildProcess; last: () => { metered: number; committed: number }; exited: Promise<NodeJS.Signals | null> } {
    const c = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/meter-child.ts'], {
      cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, METER_PG_URL: tpg.url, METER_DIR: dir, METER_ROUTE_ID: String(routeId), ...env },
    });
    let out = '';
    let err = '';
    c.stdout!.on('data', (d: Buffer) => { out += d; });
    c.stderr!.on('data', (d: Buffer) => { err += d; });
    const exited = new Promise<NodeJS.Signals | null>((resolve, reject) => c.on('exit', (code, signal) => (signal ? resolve(signal) : reject(new Error(`meter child exited ${code}: ${err}`)))));
    const last = () => {
      const lines = out.trimEnd().split('\n');
      const m = /^metered (\d+) committed (\d+)$/.exec(lines[lines.length - 1] ?? '');
      return m ? { metered: Number(m[1]), committed: Number(m[2]) } : { metered: 0, committed: 0 };
    };
    return { c, last, exited };
  }

  /** Start again on dir, as the pool does: read the journal back, then flush. */
  async function restart(dir: string): Promise<void> {
    const journal = new MeterJournal(dir, { logger: pino({ level: 'silent' }) });
    const meter = new RouteMeter();
    await meter.recover(journal);
    await meter.flush(store);
    await journal.close();
  }

  test('killed with work metered and not yet written: after a restart on its journal, every share is billed once', { timeout: 60_000 }, async () => {
    await reset();
    const dir = fs.mkdtempSync(path.join(tmpdir(), 'hashhub-meter-'));
    try {
      const k = child(dir);
      // Killed while at least 10 shares are metered and in no committed flush (it flushes every 25).
      await until(() => { const l = k.last(); return l.committed >= 50 && l.metered - l.committed >= 10; }, 30_000, 'shares metered past a committed flush');
      k.c.kill('SIGKILL');
      assert.equal(await k.exited, 'SIGKILL');
      const { metered } = k.last();
      const before = await billed();
      assert.ok(before < metered, `only what was flushed is in the database at the kill (${before} of ${metered})`);
      await restart(dir);
      const after = await billed();
      // The kill may land after a share's journal write and before the line saying so: one more at most.
      assert.ok(after === metered || after === metered + 1, `every metered share billed once: ${after} billed, ${metered} metered`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('killed after a flush committed and before its journal checkpoint moved: the restart writes it again under its id, adding nothing', { timeout: 60_000 }, async () => {
    await reset();
    const dir = fs.mkdtempSync(path.join(tmpdir(), 'hashhub-meter-'));
    try {
      const k = child(dir, { METER_DIE_AFTER_COMMIT: '100', METER_FLUSH_EVERY: '50' });
      assert.equal(await k.exited, 'SIGKILL');
      const { metered } = k.last();
      const committed = await billed();
      assert.ok(committed >= 100, `the flush that killed it committed (${committed} billed)`);
      assert.ok(fs.readdirSync(dir).some((f) => f.endsWith('.spool')), 'its journal is still there');
      await restart(dir);
      // Written twice, the committed flush would make it `committed` more.
      const after = await billed();
      assert.ok(after === metered || after === metered + 1, `read back from the journal, the committed flush adds nothing again: ${after} billed, ${metered} metered`);
      // And the journal is then done with: a second restart reads nothing back.
      await restart(dir);
      assert.equal(await billed(), after);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

const accepted = (meter: RouteMeter, d: number, at = 60_000) =>
  meter.answer(meter.forwarded(1, 'a.rig', at), 1, 'a.rig', at, d, { kind: 'accepted' }, { probe: false, late: false });
const sum = (written: { deltas: readonly { acceptedDifficulty: number }[] }[]) => written.reduce((a, w) => a + w.deltas.reduce((b, x) => b + x.acceptedDifficulty, 0), 0);

test('drain (at stop): the flush in flight and what was metered meanwhile are both written', async () => {
  // Failed before (found by a review): stop() flushed once, got the timer's flush still in flight, and the increments
  // metered after that flush had taken its own were never written.
  const meter = new RouteMeter(() => 60_000);
  accepted(meter, 1);
  let release!: () => void;
  const written: { deltas: readonly { acceptedDifficulty: number }[] }[] = [];
  const sink: MeterSink = { addMinutes: async (deltas) => { await new Promise<void>((r) => { release = r; }); written.push({ deltas }); } };
  const timerFlush = meter.flush(sink);
  accepted(meter, 2);
  const stop = meter.drain(sink);
  while (written.length < 2) { release(); await new Promise((r) => setImmediate(r)); }
  await timerFlush;
  await stop;
  assert.equal(sum(written), 3);
});

test('a sink that throws at once does not wedge the meter: the kept flush is written by the next', async () => {
  const meter = new RouteMeter(() => 60_000);
  accepted(meter, 4);
  await assert.rejects(meter.flush({ addMinutes: () => { throw new Error('pool closed'); } }));
  const written: { deltas: readonly { acceptedDifficulty: number }[] }[] = [];
  await meter.flush({ addMinutes: async (deltas) => { written.push({ deltas }); } });
  assert.equal(sum(written), 4);
});

test('a journal that cannot be written holds the flush (nothing reaches the database without its marker); then one flush writes it all', async () => {
  const dir = fs.mkdtempSync(path.join(tmpdir(), 'hashhub-meter-'));
  let failing = false;
  const journal = new MeterJournal(dir, {
    logger: pino({ level: 'silent' }),
    io: { write: (fd, buf, off, len) => { if (failing) throw Object.assign(new Error('ENOSPC: simulated'), { code: 'ENOSPC' }); return fs.writeSync(fd, buf, off, len); } },
  });
  try {
    const meter = new RouteMeter(() => 60_000);
    await meter.recover(journal);
    const written: { deltas: readonly { acceptedDifficulty: number }[]; id: string }[] = [];
    const sink: MeterSink = { addMinutes: async (deltas, _w, id) => { written.push({ deltas, id }); } };
    accepted(meter, 1);
    await meter.flush(sink);
    failing = true;
    accepted(meter, 2);
    await new Promise((r) => setImmediate(r)); // its journal write fails
    await assert.rejects(meter.flush(sink), /journal .* cannot be written/);
    assert.equal(written.length, 1, 'nothing sent without its marker');
    accepted(meter, 4);
    failing = false;
    await meter.flush(sink);
    assert.equal(written.length, 2);
    assert.equal(sum(written), 7, 'the held increments go with the next flush, once');
    await journal.close();
    // Both flushes are in the database: the journal's checkpoint is past them, and nothing is read back.
    const again = new MeterJournal(dir, { logger: pino({ level: 'silent' }) });
    const back = await again.recover();
    await again.close();
    assert.deepEqual({ flushes: back.flushes.length, rest: back.rest.length }, { flushes: 0, rest: 0 });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
