import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { AccountingEngine } from '../src/accounting/engine.ts';
import { owned } from '../src/accounting/ledger.ts';
import { migrate } from '../src/store/migrate.ts';
import { PgDatabase } from '../src/store/pg.ts';
import { Maintenance } from '../src/store/maintenance.ts';
import type { Database } from '../src/store/db.ts';
import { accountId, setBlockValue, setWatermark, setupBooks, share, writeShares } from './helpers/accounting.ts';
import { PG_ADMIN_URL, SKIP_PG } from './helpers/pg.ts';
import { blockHash, blockHex, poolScript } from './helpers/accounting-blocks.ts';
import { insertBlock } from './helpers/accounting.ts';

// Retention against the books: raw shares are what accounting sums (FPPS periods, PPLNS buckets) and what a PPLNS
// window's newest and oldest buckets are read from. A day partition must not be dropped while the books still
// need it: the ingest watermark held back (a lagging source, a database outage), or the pool's clock stepping
// days ahead.

const D = 86_400_000;
const H = 3_600_000;
const LOW_BITS = 0x1b0404cb;

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try { await c.query(sql); } finally { await c.end(); }
}

async function openDb(): Promise<{ db: Database; cleanup(): Promise<void> }> {
  const name = `hashhub_audit_time_${randomBytes(5).toString('hex')}`;
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  const db = new PgDatabase({ url: url.toString(), maxConnections: 4 });
  await migrate(db);
  return { db, async cleanup() { await db.close(); await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`); } };
}

describe('retention keeps the shares the books have not summed yet', { skip: SKIP_PG }, () => {
  let db: Database;
  let cleanup: () => Promise<void>;
  before(async () => { ({ db, cleanup } = await openDb()); });
  after(async () => { await cleanup?.(); });

  test('a watermark held back past share retention: the shares are still credited (FPPS) when it moves', async () => {
    const start = Date.UTC(2032, 0, 5);
    const frame = await setupBooks(db, start, 3600, { fppsFeeBps: 0, defaultScheme: 'fpps', pplnsMaxWindowSeconds: 3600 });
    await setBlockValue(db, 200, 5_000_000_000n, LOW_BITS);
    const engine = new AccountingEngine(db, frame, null);
    await writeShares(db, Array.from({ length: 20 }, (_, i) => share({ time: start + H + i * 1000, account: 'erin', poolDifficulty: 1000 })));
    // One source stopped reporting at the books' start (a cluster process down, the database unreachable for it).
    await setWatermark(db, start);
    await engine.runOnce(start + 2 * H);
    // Two days later maintenance runs with one day of retention.
    const m = new Maintenance(db, { shareDays: 1, compactAfterDays: 2, partitionsAhead: 1, intervalMs: 60_000 });
    await m.runOnce(new Date(start + 2 * D + 60_000));
    // The source is back (or retired): crediting moves on.
    await setWatermark(db, start + 2 * D + 120_000);
    for (let i = 0; i < 10; i++) await engine.runOnce(start + 2 * D + 120_000);
    const erin = await accountId(db, 'erin');
    const bal = await engine.ledger.balance(db, owned('balance', erin));
    assert.ok(bal > 0n, `erin's 20 FPPS shares were credited (balance ${bal})`);
  });
  test('the pool clock stepping 40 days ahead at a maintenance run: today\'s unsummed shares are not dropped', async () => {
    const frame = (await db.query<{ s: Date }>('SELECT started_at AS s FROM accounting_state')).rows[0];
    const start = new Date(frame.s).getTime();
    const day = start + 3 * D;
    const engine = new AccountingEngine(db, { periodSeconds: 3600, startedAt: start, network: 'regtest' }, null);
    await writeShares(db, Array.from({ length: 10 }, (_, i) => share({ time: day + H + i * 1000, account: 'fred', poolDifficulty: 1000 })));
    await setWatermark(db, day + H - 60_000);
    await engine.runOnce(day + H);
    const m = new Maintenance(db, { shareDays: 30, compactAfterDays: 7, partitionsAhead: 1, intervalMs: 60_000 });
    await m.runOnce(new Date(day + 40 * D));
    const left = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM shares WHERE time >= $1::timestamptz', [new Date(day).toISOString()]);
    assert.equal(left.rows[0].n, 10, 'the shares the books have not summed are still stored');
    await setWatermark(db, day + 2 * H + 1000);
    for (let i = 0; i < 10; i++) await engine.runOnce(day + 2 * H + 1000);
    const fred = await accountId(db, 'fred');
    assert.ok(await engine.ledger.balance(db, owned('balance', fred)) > 0n, 'fred credited');
  });
});

describe('retention keeps the raw shares of a PPLNS window still to be computed', { skip: SKIP_PG }, () => {
  test('a block at 23:59:50 with a day-long window and one day of retention: the window\'s first minute is counted', async () => {
    const { db, cleanup } = await openDb();
    try {
      const start = Date.UTC(2032, 0, 5);
      const frame = await setupBooks(db, start, 3600, { pplnsFeeBps: 0, defaultScheme: 'pplns', pplnsMaxWindowSeconds: 86_400 });
      const engine = new AccountingEngine(db, frame, null);
      const T = start + D + D - 10_000; // day 1, 23:59:50
      // 'old' mined the window's first minute (day 0, 23:59:55), 'new' its last seconds: both the same work.
      await writeShares(db, [
        share({ time: T - D + 5_000, account: 'old', poolDifficulty: 1000 }),
        share({ time: T - 5_000, account: 'new', poolDifficulty: 1000 }),
      ]);
      const hash = blockHash();
      const reward = 5_000_000_000n;
      await insertBlock(db, { hash, height: 300, time: T, account: 'new', reward, status: 'submitted',
        blockHex: blockHex({ height: 300, bits: 0x1b0404cb, outputs: [{ value: reward, scriptPubKey: poolScript() }] }) });
      // The books were summing up to a few seconds before the block; then midnight, and maintenance runs first.
      await setWatermark(db, T - 2_000);
      await engine.runOnce(T - 1_000);
      const m = new Maintenance(db, { shareDays: 1, compactAfterDays: 2, partitionsAhead: 1, intervalMs: 60_000 });
      await m.runOnce(new Date(T + 15_000));
      await setWatermark(db, T + 14_000);
      for (let i = 0; i < 5; i++) await engine.runOnce(T + 15_000);
      const lines = await db.query<{ name: string; amount: string }>(
        'SELECT a.name, l.amount::text AS amount FROM block_split_lines l JOIN accounts a ON a.id = l.account_id WHERE l.block_hash = $1 ORDER BY a.name', [hash]);
      assert.deepEqual(lines.rows.map((r) => [r.name, r.amount]), [['new', '2500000000'], ['old', '2500000000']]);
    } finally {
      await cleanup();
    }
  });
});
