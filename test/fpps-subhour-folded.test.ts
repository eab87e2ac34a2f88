import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { AccountingEngine } from '../src/accounting/engine.ts';
import { migrate } from '../src/store/migrate.ts';
import { PgDatabase } from '../src/store/pg.ts';
import { Maintenance } from '../src/store/maintenance.ts';
import type { Database } from '../src/store/db.ts';
import type { ShareEvent } from '../src/shares/events.ts';
import { setBlockValue, setWatermark, setupBooks, share, writeShares } from './helpers/accounting.ts';
import { PG_ADMIN_URL, SKIP_PG } from './helpers/pg.ts';

// The late-share check over credited periods shorter than an hour (600 s), reaching back past compaction (a
// week of ten-minute periods: lateCheckPeriods 1008): once a day's minute rollups are folded into hours, its
// periods have no minute rows left to compare with.

const D = 86_400_000;
const LOW_BITS = 0x1b0404cb;

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try { await c.query(sql); } finally { await c.end(); }
}

describe('FPPS late check with ten-minute periods over compacted days', { skip: SKIP_PG }, () => {
  let db: Database;
  let name: string;
  before(async () => {
    name = `hashhub_audit_time_${randomBytes(5).toString('hex')}`;
    await admin(`CREATE DATABASE ${name}`);
    const url = new URL(PG_ADMIN_URL);
    url.pathname = `/${name}`;
    db = new PgDatabase({ url: url.toString(), maxConnections: 4 });
    await migrate(db);
  });
  after(async () => { await db?.close(); await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`); });

  test('folded periods are not revised on every pass; a real late share into one is still credited', async () => {
    const start = Date.UTC(2032, 1, 1);
    const frame = await setupBooks(db, start, 600, { fppsFeeBps: 100, defaultScheme: 'fpps', pplnsMaxWindowSeconds: 600 });
    await setBlockValue(db, 200, 5_000_000_000n, LOW_BITS);
    const engine = new AccountingEngine(db, frame, null, undefined, 1008);
    const batch: ShareEvent[] = [];
    for (let t = start + 30_000; t < start + 3 * D; t += 2 * 3_600_000) batch.push(share({ time: t, account: 'gus', poolDifficulty: 3 }));
    await writeShares(db, batch);
    const now = start + 3 * D + 1000;
    await setWatermark(db, now);
    const want = (3 * D) / 600_000;
    for (let i = 0; i < 50; i++) {
      await engine.creditPeriods(now, 1000);
      const n = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM fpps_periods')).rows[0].n;
      if (n >= want) break;
    }
    assert.equal((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM fpps_periods')).rows[0].n, want);
    assert.deepEqual(await engine.adjustLate(now), [], 'nothing late before compaction');
    const folded = await new Maintenance(db, { shareDays: 30, compactAfterDays: 2, partitionsAhead: 1, intervalMs: 60_000 }).runOnce(new Date(now));
    assert.ok(folded.compacted > 0, JSON.stringify(folded));
    const adj = await engine.adjustLate(now + 1000);
    assert.equal(adj.length, 0, `no period changed, got ${adj.length} revisions (kinds ${[...new Set(adj.map((a) => a.kind))]})`);
    // A share really stored late, into a folded day's period, is still found and credited.
    await writeShares(db, [share({ time: start + 5 * 600_000 + 7_000, account: 'gus', poolDifficulty: 3 })]);
    const late = await engine.adjustLate(now + 2000);
    assert.deepEqual(late.map((a) => a.kind === 'credited' && a.periodStart), [start + 5 * 600_000]);
    assert.deepEqual(await engine.adjustLate(now + 3000), []);
    assert.deepEqual(await engine.ledger.verify(db), []);
  });
});
