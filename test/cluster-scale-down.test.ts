import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { BlockJournal } from '../src/ingest/block-journal.ts';
import { runFleet } from '../src/miner/fleet.ts';
import { exited, killAll, startPoolProcess, type PoolProcess } from './helpers/child-pool.ts';
import { freePort } from './helpers/free-port.ts';
import { SKIP_PG, createTestPg } from './helpers/pg.ts';
import { until } from './helpers/until.ts';

// Fewer Stratum processes than before (stratum.processes 2 → 1) on the same data dir: the spool of the process that
// is no longer started (`spool-1`) still holds the shares it accepted and the database never got (it was down at
// the stop, or the process was killed). They are replayed by the lead, not left on disk for ever; so are the
// unsettled blocks of its block journal (`blocks-1`), taken into the lead's journal and recorded.

test('processes 2 → 1: the shares left in the spool of the process no longer started reach the database', { skip: SKIP_PG, timeout: 300_000 }, async (t) => {
  const tp = await createTestPg();
  t.after(() => tp.drop());
  const dbUrl = tp.url;
  // The same database through a port nobody listens on: the database is down for the first run.
  const down = tp.urlVia('127.0.0.1', await freePort());
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hashhub-scale-down-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const base: NodeJS.ProcessEnv = {
    ...process.env, HASHHUB_DATA_DIR: dir, HASHHUB_NODE_ID: '7', HASHHUB_STRATUM_HOST: '127.0.0.1', HASHHUB_STRATUM_PORT: String(port),
    HASHHUB_API_ENABLED: 'false', HASHHUB_DIFFICULTY: '0.00001', HASHHUB_SHARE_SECONDS: '0.5', HASHHUB_LOG_LEVEL: 'warn', HASHHUB_MARKET_ENABLED: 'false',
    HASHHUB_ACCOUNTING_ENABLED: 'false',
  };
  delete base.HASHHUB_CONFIG;
  let pool: PoolProcess | null = null;
  t.after(() => killAll([pool]));

  // Two processes, the database down: every accepted share stays in its process's spool.
  pool = await startPoolProcess({ ...base, DATABASE_URL: down, HASHHUB_STRATUM_PROCESSES: '2' });
  await until(() => pool!.output().includes('2 Stratum processes share port'), 60_000, 'both processes listening');
  const fleet = runFleet({ count: 8, totalHashrate: 0, url: `stratum+tcp://127.0.0.1:${port}`, user: 'acct', connectRatePerSec: 100 });
  try {
    await until(() => fleet.stats().accepted >= 60, 60_000, () => `shares accepted (${fleet.stats().accepted})`);
  } finally {
    await fleet.stop(2000);
  }
  const accepted = fleet.stats().accepted;
  pool.child.kill('SIGTERM');
  assert.equal((await exited(pool.child)).code, 0);
  assert.ok(existsSync(path.join(dir, 'spool-1')) && readdirSync(path.join(dir, 'spool-1')).some((f) => f.endsWith('.spool')), 'process 1 left its spool');
  // A block process 1 found and had not settled, in its journal only (its share-log copy lost).
  const block = (JSON.parse(readFileSync(new URL('./fixtures/blocks.json', import.meta.url), 'utf8')) as { blocks: { hash: string; hex: string }[] }).blocks[0];
  const left = new BlockJournal(path.join(dir, 'blocks-1'), { reserveBytes: 0 });
  left.appendCandidate({ hash: block.hash, height: 101, prevHash: '00'.repeat(32), account: 'acct', worker: 'w1', reward: '5000000000', hex: block.hex, time: Date.now() - 60_000 });
  left.appendStatus({ hash: block.hash, time: Date.now() - 59_000, status: 'unconfirmed', result: null, confirmations: 0, settled: false, attempts: 1 });
  left.close();

  // One process from now on, the database up.
  pool = await startPoolProcess({ ...base, DATABASE_URL: dbUrl, HASHHUB_STRATUM_PROCESSES: '1' });
  const running = pool;
  const c = new pg.Client({ connectionString: dbUrl });
  await c.connect();
  try {
    const stored = async () => Number((await c.query<{ n: string }>('SELECT count(*)::text AS n FROM shares')).rows[0].n);
    let last = 0;
    try {
      await until(async () => (last = await stored()) >= accepted, 30_000, () => `every accepted share stored (${last} of ${accepted})`);
    } finally {
      running.child.kill('SIGTERM');
      await exited(running.child);
    }
    assert.equal(await stored(), accepted, 'each once');
    const r = await c.query<{ w: string }>('SELECT coalesce(sum(accepted), 0)::text AS w FROM pool_rollups_minute');
    assert.equal(Number(r.rows[0].w), accepted, 'rollups count each share once');
    const b = await c.query<{ account: string }>('SELECT a.name AS account FROM blocks b JOIN accounts a ON a.id = b.account_id WHERE b.hash = $1', [block.hash]);
    assert.deepEqual(b.rows, [{ account: 'acct' }], 'the block of the journal no process opens any more is recorded');
    assert.ok(!existsSync(path.join(dir, 'blocks-1')) && readdirSync(dir).some((f) => f.startsWith('blocks-1.retired-')), 'its journal retired');
  } finally {
    await c.end();
  }
});
