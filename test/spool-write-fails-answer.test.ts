import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { DurableShareLog } from '../src/ingest/durable-log.ts';
import { Pool } from '../src/pool/pool.ts';
import { SqlShareWriter, migrate } from '../src/store/index.ts';
import { PgDatabase } from '../src/store/pg.ts';
import { DEFAULT_STRATUM_OPTIONS } from '../src/stratum/options.ts';
import { freePort } from './helpers/free-port.ts';
import { LineClient, type Msg } from './helpers/line-client.ts';
import { SKIP_PG, createTestPg } from './helpers/pg.ts';
import { REGTEST_ADDRESS, solveShare } from './helpers/pool.ts';
import { StubNode } from './helpers/stub-node.ts';

// The spool write of a turn's share lines fails (ENOSPC, EIO) while the database is down too (on a full disk it often
// is: the same disk). Those shares are held only in memory. Their miners must not be answered `true`: a stop (or a
// crash) before the database answers again loses them, and a miner that saw "accepted" is owed them.

test('a share whose spool write failed is never answered true (it is only in memory)', { skip: SKIP_PG, timeout: 60_000 }, async (t) => {
  const tp = await createTestPg();
  t.after(() => tp.drop());
  const db = new PgDatabase({ url: tp.url, maxConnections: 2 });
  t.after(() => db.close());
  await migrate(db);
  // The same database through a port nobody listens on: down.
  const downDb = new PgDatabase({ url: tp.urlVia('127.0.0.1', await freePort()), maxConnections: 2, connectTimeoutMs: 200 });
  t.after(() => downDb.close());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hashhub-spool-fails-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));

  let full = false;
  const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  const shareLog = new DurableShareLog({
    dir, writer: new SqlShareWriter(downDb), logger: pino({ level: 'silent' }), batchAppends: true, flushMs: 10, retryMinMs: 20, retryMaxMs: 50,
    closeTimeoutMs: 300, budget: { minFreeBytes: 0, reserveFileBytes: 0 },
    io: { write: (fd, buf, off, len) => { if (full) throw enospc(); return fs.writeSync(fd, buf, off, len); } },
  });
  const pool = new Pool(new StubNode(), {
    network: 'regtest', payoutAddress: REGTEST_ADDRESS, poolTag: '/t/', requireAddressAccounts: false,
    stratum: { ...DEFAULT_STRATUM_OPTIONS, host: '127.0.0.1', port: 0, initialDifficulty: 1e-6, tickMs: 100, vardiff: { ...DEFAULT_STRATUM_OPTIONS.vardiff, minDifficulty: 1e-8 } },
    templates: { pollMs: 100, refreshMs: 60_000, longpoll: false }, blocks: { journalDir: null },
  }, shareLog, pino({ level: 'silent' }));
  const { port } = await pool.start();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await pool.stop(100);
    await shareLog.close();
  };
  t.after(stop);
  const c = new LineClient(port);
  t.after(() => c.socket.destroy());
  await c.connected();
  const sub = await c.request(1, 'mining.subscribe', ['test/1']);
  assert.equal((await c.request(2, 'mining.authorize', ['acct.w1', 'x'])).result, true);
  const notify = await c.waitFor((m: Msg) => m.method === 'mining.notify');
  const [, en1, en2Size] = sub.result as [unknown, string, number];
  const answered: Msg[] = [];
  const first = await c.request(3, 'mining.submit', solveShare(notify, en1, en2Size, 1e-6, { en2: '00'.repeat(en2Size - 1) + '01' }));
  answered.push(first);
  assert.equal(first.result, true, 'a share written to the spool is accepted');
  // The disk fills: the next share's line is not written.
  full = true;
  const from = c.messages.length;
  c.send({ id: 4, method: 'mining.submit', params: solveShare(notify, en1, en2Size, 1e-6, { en2: '00'.repeat(en2Size - 1) + '02' }) });
  const second = await Promise.race([
    c.waitFor((m) => m.id === 4, 3000, from).catch(() => null),
    new Promise<null>((r) => { const i = setInterval(() => { if (c.closed) { clearInterval(i); r(null); } }, 20); }),
  ]);
  if (second) answered.push(second);
  // The pool stops before the database is back (an operator's restart): what was held in memory is gone.
  await stop();

  // Started again on the same spool, the database up: what the spool had is written.
  full = false;
  const again = new DurableShareLog({ dir, writer: new SqlShareWriter(db), logger: pino({ level: 'silent' }), flushMs: 10, budget: { minFreeBytes: 0, reserveFileBytes: 0 } });
  assert.ok(await again.waitIdle(10_000));
  await again.close();
  const stored = Number((await db.query<{ n: string }>('SELECT count(*)::text AS n FROM shares')).rows[0].n);
  const told = answered.filter((m) => m.result === true).length;
  assert.equal(stored, told, `${told} shares answered true, ${stored} stored (second answer: ${JSON.stringify(second)})`);
});
