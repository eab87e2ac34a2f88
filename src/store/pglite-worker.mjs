// PGlite in a worker thread (see pglite-thread.ts): PostgreSQL-in-WASM executes synchronously on whatever thread
// runs it, so on the main thread every query would stall stratum. Plain JavaScript on purpose: a worker thread
// does not inherit tsx's loader hooks, and this file must load the same way from src/ and from dist/.
//
// Protocol (one request at a time per id; the main thread serializes them):
//   in:  { id, op: 'query' | 'exec' | 'copy' | 'close', sql?, params?, data? }
//   out: { id, ok: true, rows?, rowCount? } | { id, ok: false, error: { message, code?, detail?, ... } }

import { parentPort, workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';

const ERROR_FIELDS = ['code', 'detail', 'hint', 'constraint', 'table', 'column', 'schema', 'severity', 'where', 'position'];

function plainError(err) {
  const e = { message: err && err.message ? String(err.message) : String(err) };
  for (const k of ERROR_FIELDS) if (err && err[k] !== undefined) e[k] = String(err[k]);
  return e;
}

let db;
try {
  db = await PGlite.create(workerData.dataDir);
  await db.exec("SET TimeZone = 'UTC'");
  parentPort.postMessage({ id: 0, ok: true });
} catch (err) {
  parentPort.postMessage({ id: 0, ok: false, error: plainError(err) });
}

parentPort.on('message', async (m) => {
  try {
    if (m.op === 'query') {
      const r = await db.query(m.sql, m.params ?? []);
      parentPort.postMessage({ id: m.id, ok: true, rows: r.rows, rowCount: r.affectedRows ?? 0 });
    } else if (m.op === 'exec') {
      await db.exec(m.sql);
      parentPort.postMessage({ id: m.id, ok: true });
    } else if (m.op === 'copy') {
      // PGlite's COPY reads its data from the /dev/blob device instead of the client's stream.
      const r = await db.query(m.sql, [], { blob: new Blob([m.data]) });
      parentPort.postMessage({ id: m.id, ok: true, rowCount: r.affectedRows ?? 0 });
    } else if (m.op === 'close') {
      if (!db.closed) await db.close();
      parentPort.postMessage({ id: m.id, ok: true });
    } else {
      parentPort.postMessage({ id: m.id, ok: false, error: { message: `unknown op ${m.op}` } });
    }
  } catch (err) {
    parentPort.postMessage({ id: m.id, ok: false, error: plainError(err) });
  }
});
