import net from 'node:net';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PgDatabase } from '../src/store/pg.ts';
import { SKIP_PG, createTestPg } from './helpers/pg.ts';

// The ingest writer's COPY (PgDatabase transaction → copyFrom) on real Postgres, ending badly while its data is
// still on the way.

/** A proxy to Postgres that forwards what the client sends slowly (a read, then 5 ms paused) and answers at once. */
async function slowUplink(target: number): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => { sockets.delete(s); client.destroy(); upstream.destroy(); });
    }
    upstream.on('data', (d) => client.write(d));
    client.on('data', (d) => {
      upstream.write(d);
      client.pause();
      setTimeout(() => client.resume(), 5);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as net.AddressInfo).port,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

test('a COPY that fails while its data is still queued (pg query_timeout) rejects once, and nothing after it ends the process', { skip: SKIP_PG, timeout: 60_000 }, async (t) => {
  const pg = await createTestPg();
  t.after(() => pg.drop());
  const proxy = await slowUplink(Number(new URL(pg.url).port || 5432));
  t.after(() => proxy.close());
  const url = new URL(pg.urlVia('127.0.0.1', proxy.port));
  url.searchParams.set('query_timeout', '100');
  const db = new PgDatabase({ url: url.toString() });
  t.after(() => db.close());
  const uncaught: string[] = [];
  const onUncaught = (err: Error): void => { uncaught.push(err.message); };
  process.on('uncaughtException', onUncaught);
  t.after(() => { process.off('uncaughtException', onUncaught); });

  // 8 MB through the slow proxy take most of a second: pg's 100 ms read timeout fails the COPY with its data queued.
  const data = '1\n'.repeat(4 * 1024 * 1024);
  const t0 = Date.now();
  await assert.rejects(
    db.transaction(async (tx) => {
      await tx.exec('CREATE TEMP TABLE copy_cut (a integer)');
      await tx.copyFrom('COPY copy_cut FROM STDIN', data);
    }),
    /Query read timeout/,
  );
  assert.ok(Date.now() - t0 < 500, `rejected at the timeout, before the data was through (${Date.now() - t0} ms)`);
  // The queued data drains meanwhile; the stream pg let go must not come back with an error nobody listens to.
  await new Promise((r) => setTimeout(r, 1500));
  assert.deepEqual(uncaught, [], 'no error after the rejection');
});
