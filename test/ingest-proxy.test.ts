import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { loadConfig } from '../src/cli/config.ts';
import { runPool } from '../src/cli/run-pool.ts';
import { runFleet } from '../src/miner/fleet.ts';
import { DEFAULT_USER_AGENT } from '../src/miner/client.ts';
import { foldBlocks } from './helpers/blocks.ts';
import type { BlockEvent } from '../src/shares/events.ts';
import { DatabaseTimeoutError } from '../src/store/db.ts';
import { PgDatabase } from '../src/store/pg.ts';
import { SKIP_PG, createTestPg } from './helpers/pg.ts';
import { TcpProxy } from './helpers/proxy.ts';
import { type MinedShare, assertExactlyOnce, until } from './helpers/pg-ingest.ts';

// A real pool, a real fleet, a real Postgres, and a network between the pool and Postgres that the test cuts.

const log = pino({ level: process.env.TEST_LOG ?? 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('Postgres cut off for 12 s while a fleet mines: every share the miners saw accepted is stored exactly once', { skip: SKIP_PG, timeout: 120_000 }, async (t) => {
  const db = await createTestPg();
  const proxy = await TcpProxy.start({ host: '127.0.0.1', port: 5432 });
  const dir = fs.mkdtempSync(path.join(tmpdir(), 'hashhub-proxy-'));
  const cfg = loadConfig({
    env: {},
    overrides: {
      'stratum.host': '127.0.0.1',
      'stratum.port': 0,
      'stratum.difficulty.initial': 0.00001,
      'stratum.difficulty.targetShareSeconds': 0.2,
      // About one share in twenty is a block: blocks take the same path.
      'node.embedded.difficulty': 0.0002,
      'node.pollMs': 200,
      'database.url': db.urlVia('127.0.0.1', proxy.port),
      'database.dataDir': dir,
      'database.connectTimeoutMs': 1000,
      'database.writeTimeoutMs': 3000,
      'database.ingest.retryMaxMs': 500,
      'database.ingest.flushMs': 50,
    },
  });
  const running = await runPool(cfg, log);
  const mined: MinedShare[] = [];
  const blocks: BlockEvent[] = [];
  running.shareLog.onBlock((b) => blocks.push(b));
  const fleet = runFleet({
    count: 4, totalHashrate: 0, url: `stratum+tcp://127.0.0.1:${running.port}`, user: 'acct', versionRolling: true,
    connectRatePerSec: 50, reconnect: false,
    onShare: (m, s) => { if (s.accepted) mined.push({ user: m.user, jobId: s.jobId, difficulty: s.difficulty, hash: s.hash, block: s.block }); },
  });
  const direct = new pg.Client({ connectionString: db.url });
  try {
    await until(() => mined.length >= 20 && running.ingest().written.shares > 0, 30_000, '20 accepted shares written');
    await proxy.cut();
    const atCut = mined.length;
    await sleep(12_000);
    const during = running.ingest();
    assert.equal(during.dbUp, false, 'the ingest knows the database is gone');
    assert.ok(during.spoolBytes > 0, 'shares wait in the spool');
    assert.ok(mined.length >= atCut + 20, `the pool kept accepting shares while the database was away (${mined.length - atCut})`);
    assert.equal(fleet.stats().failed, 0);

    await proxy.restore();
    await sleep(3000);
    await fleet.stop(2000);
    assert.ok(await running.shareLog.waitIdle(30_000), 'the ingest caught up after the outage');
    const after = running.ingest();
    assert.equal(after.dbUp, true);
    assert.equal(after.spoolBytes, 0);

    await direct.connect();
    const { rows: stored } = await assertExactlyOnce(direct, mined, running.pool.stats.shares.accepted);
    t.diagnostic(`${mined.length} shares seen accepted by miners (${mined.length - atCut} during the outage), ${stored} stored; ` +
      `${during.spoolBytes} bytes spooled at the worst; ${blocks.length} blocks; ${after.writeErrors} failed write attempts`);
    // Blocks took the same road: each one the pool recorded is there once, with its reward.
    const rows = (await direct.query<{ hash: string; reward: string; status: string }>('SELECT hash, reward::text AS reward, status FROM blocks')).rows;
    const folded = foldBlocks(blocks);
    assert.equal(rows.length, folded.size);
    for (const b of folded.values()) {
      const r = rows.find((x) => x.hash === b.candidate.hash);
      assert.ok(r, `block ${b.candidate.hash} stored`);
      assert.equal(r.reward, b.candidate.reward.toString());
      assert.equal(r.status, b.status, 'the latest status reached the database');
    }
    const answers = (await direct.query<{ n: string }>('SELECT count(*) AS n FROM block_answers')).rows[0];
    assert.equal(Number(answers.n), [...folded.values()].reduce((n, b) => n + b.answers.length, 0), 'every node answer is recorded');
    // The pool gives the writer each session's user agent (looked up by session id): every miner's worker has its own.
    const agents = (await direct.query<{ name: string; user_agent: string | null }>('SELECT name, user_agent FROM workers WHERE id <> 0 ORDER BY name')).rows;
    assert.equal(agents.length, 4, 'the four miners\' workers');
    assert.deepEqual(agents.map((r) => r.user_agent), Array(4).fill(DEFAULT_USER_AGENT));
  } finally {
    await fleet.stop(0);
    await running.stop();
    await direct.end().catch(() => undefined);
    await proxy.close();
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a stalled network (bytes black-holed) times a batch out instead of hanging; retried, it commits once', { skip: SKIP_PG, timeout: 60_000 }, async () => {
  const db = await createTestPg();
  const proxy = await TcpProxy.start({ host: '127.0.0.1', port: 5432 });
  const pgdb = new PgDatabase({ url: db.urlVia('127.0.0.1', proxy.port), connectTimeoutMs: 1000 });
  try {
    await pgdb.query('CREATE TABLE t (id int PRIMARY KEY)');
    proxy.stall();
    const t0 = Date.now();
    await assert.rejects(pgdb.transaction((tx) => tx.query('INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING'), { timeoutMs: 500 }), DatabaseTimeoutError);
    assert.ok(Date.now() - t0 < 3000, 'gave up on time');
    await proxy.restore();
    await pgdb.transaction((tx) => tx.query('INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING'), { timeoutMs: 5000 });
    assert.equal((await pgdb.query<{ n: string }>('SELECT count(*) AS n FROM t')).rows[0].n, '1');
  } finally {
    await pgdb.close();
    await proxy.close();
    await db.drop();
  }
});
