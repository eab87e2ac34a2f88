import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { runFleet } from '../src/miner/fleet.ts';
import { type PoolProcess, exited, killAll, startPoolProcess } from './helpers/child-pool.ts';
import { freePort } from './helpers/free-port.ts';
import { SKIP_PG, createTestPg } from './helpers/pg.ts';
import { type MinedShare, assertExactlyOnce, until } from './helpers/pg-ingest.ts';

// The pool as its own process (`hashhub pool`), killed with SIGKILL while a fleet mines, then started again on
// the same spool: every share a miner saw accepted ends up in Postgres exactly once.

test('SIGKILL mid-stream, restart on the same spool: every share the miners saw accepted is stored exactly once', { skip: SKIP_PG, timeout: 120_000 }, async (t) => {
  const db = await createTestPg();
  const dir = fs.mkdtempSync(path.join(tmpdir(), 'hashhub-kill-'));
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: db.url,
    HASHHUB_DATA_DIR: dir,
    HASHHUB_SPOOL_DIR: path.join(dir, 'spool'),
    HASHHUB_STRATUM_HOST: '127.0.0.1',
    HASHHUB_STRATUM_PORT: String(port),
    HASHHUB_DIFFICULTY: '0.00001',
    HASHHUB_SHARE_SECONDS: '0.2',
    HASHHUB_EMBEDDED_DIFFICULTY: '0.0002',
    HASHHUB_NODE_POLL_MS: '200',
    // Batches wait for a minute, so at the kill there are accepted shares that exist only in the spool. A block
    // share is written at once and takes the queue with it, so the kill waits for a share after the last block.
    HASHHUB_INGEST_FLUSH_MS: '60000',
    HASHHUB_LOG_LEVEL: 'warn',
    HASHHUB_API_ENABLED: 'false', // never a fixed port in tests (8080 may be taken)
  };
  delete env.HASHHUB_CONFIG;
  const mined: MinedShare[] = [];
  const direct = new pg.Client({ connectionString: db.url });
  let first = await startPoolProcess(env);
  let second: PoolProcess | null = null;
  const fleet = runFleet({
    count: 4, totalHashrate: 0, url: `stratum+tcp://127.0.0.1:${port}`, user: 'acct', versionRolling: true, connectRatePerSec: 50,
    reconnect: true, reconnectInitialMs: 200, reconnectMaxMs: 1000,
    onShare: (m, s) => { if (s.accepted) mined.push({ user: m.user, jobId: s.jobId, difficulty: s.difficulty, hash: s.hash, block: s.block }); },
  });
  try {
    await direct.connect();
    // A kill that finds every accepted share already stored proves nothing. A block share (1 in 20 here) flushes the
    // queue, and its write can take shares accepted just after it along (CI runs failed with 60 of 60 and 61 of 61
    // stored): then the pool is started again on the spool and killed again after more shares, up to 3 times.
    let minedAtKill = 0;
    let storedAtKill = 0;
    for (let attempt = 1; attempt <= 3; attempt++) {
      const target = mined.length + 60;
      await until(() => mined.length >= target && !mined[mined.length - 1].block, 60_000, '60 more accepted shares, the last not a block');
      first.child.kill('SIGKILL');
      const killed = await exited(first.child);
      assert.equal(killed.signal, 'SIGKILL');
      minedAtKill = mined.length;
      storedAtKill = Number((await direct.query<{ n: string }>('SELECT count(*) AS n FROM shares')).rows[0].n);
      if (storedAtKill < minedAtKill) break;
      t.diagnostic(`kill ${attempt}: all ${minedAtKill} accepted shares were stored already; again`);
      if (attempt < 3) first = await startPoolProcess(env);
    }
    assert.ok(storedAtKill < minedAtKill, `some accepted shares were only in the spool at the kill (${storedAtKill} stored of ${minedAtKill})`);

    second = await startPoolProcess(env);
    await until(() => mined.length >= minedAtKill + 30, 60_000, '30 more accepted shares after the restart');
    await fleet.stop(2000);
    second.child.kill('SIGTERM');
    const stopped = await exited(second.child);
    assert.equal(stopped.code, 0, `graceful stop:\n${second.output()}`);

    const { rows } = await assertExactlyOnce(direct, mined);
    assert.ok(rows >= mined.length);
    // Blocks: every block share a miner saw accepted has its block row, even if the kill came before the
    // node's answer was recorded (then it is 'submitted').
    const blockRows = new Map((await direct.query<{ hash: string; status: string }>('SELECT hash, status FROM blocks')).rows.map((r) => [r.hash, r.status]));
    for (const m of mined.filter((x) => x.block)) assert.ok(blockRows.has(m.hash), `block ${m.hash} recorded`);
    const left = fs.readdirSync(path.join(dir, 'spool')).filter((f) => f.endsWith('.spool'));
    assert.deepEqual(left, [], 'the spool is empty after a graceful stop');
    t.diagnostic(`${minedAtKill} shares accepted before the SIGKILL, ${storedAtKill} of them in the database at that moment; ` +
      `${mined.length} accepted in all, ${rows} stored; ${mined.filter((m) => m.block).length} block shares, block rows by status ${JSON.stringify(Object.fromEntries([...blockRows.values()].reduce((m, v) => m.set(v, (m.get(v) ?? 0) + 1), new Map<string, number>())))}`);
  } finally {
    await fleet.stop(0);
    await killAll([first, second]);
    await direct.end().catch(() => undefined);
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
