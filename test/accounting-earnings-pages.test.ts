import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { earnings } from '../src/accounting/reports.ts';
import type { Database } from '../src/store/db.ts';
import { migrate } from '../src/store/migrate.ts';
import { PgDatabase } from '../src/store/pg.ts';
import { PgliteDatabase } from '../src/store/pglite.ts';
import { SKIP_PG, type TestPg, createTestPg } from './helpers/pg.ts';

// An account's earnings are paged newest first by time (`before` = the last item's time). Items can share a time:
// an FPPS period's late-share revisions all carry its start. A page that ended inside such a tie made the next
// page (strictly before that time) skip the rest of it: revisions missing from the dashboard's list.

// The same SQL on both engines: Postgres, and PGlite as `hashhub pool` embeds it.
for (const engine of ['postgres', 'pglite'] as const) describe(engine, () => {
let tpg: TestPg | undefined;
let db: Database;
const skip = engine === 'postgres' ? SKIP_PG : false;
before(async () => {
  if (skip) return;
  if (engine === 'postgres') {
    tpg = await createTestPg();
    db = new PgDatabase({ url: tpg.url, maxConnections: 2 });
  } else {
    db = await PgliteDatabase.open('memory://');
  }
  await migrate(db);
});
after(async () => { await db?.close(); await tpg?.drop(); });

test('paging through earnings returns every item once, also when a page ends inside items of one time', { skip }, async () => {
  const account = (await db.query<{ id: string }>(`INSERT INTO accounts (name) VALUES ('pager') RETURNING id`)).rows[0].id;
  const hour = 3_600_000;
  const t0 = Date.UTC(2026, 10, 1);
  const credit = async (start: number, revision: number, sat: number) => {
    await db.query(`INSERT INTO fpps_periods (period_start, period_end, fee_bps, shares, fpps_shares, credited)
      VALUES (to_timestamp($1::float8 / 1000), to_timestamp($2::float8 / 1000), 200, 10, 10, 0) ON CONFLICT DO NOTHING`, [start, start + hour]);
    await db.query(`INSERT INTO fpps_credits (period_start, account_id, revision, shares, difficulty, exact, carry_in, credited, carry_out)
      VALUES (to_timestamp($1::float8 / 1000), $2::bigint, $3, 10, 10, $4::numeric * 655350000, 0, $4, 0)`, [start, account, revision, sat]);
  };
  // Oldest period: its crediting and two late-share revisions (three items at one time); then two periods.
  for (const r of [0, 1, 2]) await credit(t0, r, 100 + r);
  await credit(t0 + hour, 0, 200);
  await credit(t0 + 2 * hour, 0, 300);

  for (const limit of [1, 2, 3, 4]) {
    const seen: string[] = [];
    let before: string | undefined;
    for (let page = 0; page < 10; page++) {
      const items = await earnings(db, BigInt(account), { limit, before });
      if (items.length === 0) break;
      for (const e of items) seen.push(e.kind === 'fpps' ? `${e.periodStart}#${e.revision}` : e.time);
      before = items[items.length - 1].time;
    }
    assert.equal(seen.length, 5, `limit ${limit}: ${seen.join(', ')}`);
    assert.equal(new Set(seen).size, 5, `limit ${limit}: each item once`);
    assert.equal(seen[0], `${new Date(t0 + 2 * hour).toISOString()}#0`, 'newest first');
    assert.equal(seen.at(-1), `${new Date(t0).toISOString()}#0`, 'a period\'s later revisions before its first crediting');
  }
  assert.deepEqual(await earnings(db, BigInt(account), { limit: 5, before: new Date(t0).toISOString() }), [], 'nothing before the oldest');
});
});
