// The embedded database in a worker thread: the same SQL and errors as before, transactions that hold the one
// connection, a worker that dies replaced at the next request, and a main thread that keeps running while a
// query executes (PGlite on the main thread blocks it for the whole query).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PgliteThreadDatabase } from '../src/store/pglite.ts';
import { isConnectionError } from '../src/store/db.ts';

async function open(t: { after: (fn: () => Promise<void> | void) => void }) {
  const dir = fs.mkdtempSync(path.join(tmpdir(), 'hashhub-pglite-thread-'));
  const db = await PgliteThreadDatabase.open(path.join(dir, 'pglite'));
  t.after(async () => { await db.close(); fs.rmSync(dir, { recursive: true, force: true }); });
  return db;
}

test('queries, COPY, transactions and SQLSTATE errors through the worker', async (t) => {
  const db = await open(t);
  await db.exec('CREATE TABLE kv (k text PRIMARY KEY, v bigint NOT NULL)');
  assert.equal(await db.copyFrom('COPY kv (k, v) FROM STDIN', 'a\t1\nb\t2\n'), 2);
  // COPY data as bytes, a view into a larger buffer (the ingest queue's rows are places in the spool's writes):
  // only the view's bytes are copied.
  await db.exec('CREATE TABLE kv_bytes (k text PRIMARY KEY, v bigint NOT NULL)');
  const bytes = Buffer.from('zz\t9\nö\t7\nyy\t8\n', 'utf8');
  const view = bytes.subarray(Buffer.byteLength('zz\t9\n'), bytes.length - Buffer.byteLength('yy\t8\n'));
  assert.equal(await db.copyFrom('COPY kv_bytes (k, v) FROM STDIN', view), 1);
  assert.deepEqual((await db.query<{ k: string }>('SELECT k FROM kv_bytes')).rows.map((x) => x.k), ['ö']);
  const r = await db.query<{ k: string; v: unknown }>('SELECT k, v FROM kv WHERE v >= $1 ORDER BY k', [1]);
  assert.deepEqual(r.rows.map((x) => x.k), ['a', 'b']);
  await assert.rejects(db.query("INSERT INTO kv VALUES ('a', 3)"), (e: Error & { code?: string }) => e.code === '23505');
  // A failed transaction leaves nothing; a committed one everything; a query issued meanwhile waits its turn.
  await assert.rejects(db.transaction(async (tx) => {
    await tx.query("INSERT INTO kv VALUES ('c', 3)");
    throw new Error('boom');
  }), /boom/);
  const during: string[] = [];
  const txDone = db.transaction(async (tx) => {
    await tx.query("INSERT INTO kv VALUES ('d', 4)");
    await new Promise((res) => setTimeout(res, 50));
    during.push('tx end');
    await tx.query("INSERT INTO kv VALUES ('e', 5)");
  });
  const outside = db.query('SELECT count(*)::int AS n FROM kv').then((x) => { during.push('outside'); return x; });
  await txDone;
  assert.equal(((await outside).rows[0] as { n: number }).n, 4, 'the outside query saw the committed transaction, not half of it');
  assert.deepEqual(during, ['tx end', 'outside']);
  assert.equal(((await db.query('SELECT count(*)::int AS n FROM kv')).rows[0] as { n: number }).n, 4);
});

test('the main thread keeps running while a long query executes', async (t) => {
  const db = await open(t);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  const t0 = performance.now();
  await db.query('SELECT count(*) FROM generate_series(1, 3000000)');
  const ms = performance.now() - t0;
  clearInterval(timer);
  assert.ok(ms > 50, `the query took long enough to tell (${ms.toFixed(0)} ms)`);
  // A blocked main thread runs the interval once, after the query; a loaded machine may run it less often than
  // every 10 ms, so one tick per 200 ms of query (and at least two) says it ran during the query.
  assert.ok(ticks >= Math.max(2, Math.floor(ms / 200)), `timers ran during the query (${ticks} ticks in ${ms.toFixed(0)} ms)`);
});

test('a worker that dies fails its requests as connection errors and is replaced at the next request', async (t) => {
  const db = await open(t);
  await db.exec('CREATE TABLE x (n int)');
  await db.query('INSERT INTO x VALUES (1)');
  const worker = (db as unknown as { worker: { terminate(): Promise<number> } }).worker;
  const inflight = db.query('SELECT count(*) FROM generate_series(1, 2000000)');
  await worker.terminate();
  await assert.rejects(inflight, (e: Error) => isConnectionError(e));
  const r = await db.query<{ n: number }>('SELECT n FROM x');
  assert.deepEqual(r.rows.map((x) => x.n), [1], 'the data survived; a new worker answers');
});
