import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RouteError } from '../src/routing/errors.ts';
import { DEFAULT_UPSTREAM_OPTIONS, UpstreamClient } from '../src/routing/upstream.ts';
import { StubUpstream } from './helpers/stub-upstream.ts';
import { until } from './helpers/until.ts';

// A working upstream connection that is reset (the buyer's pool killed: the kernel answers RST) is the upstream
// dropping us — 'disconnected', as a close is. It was reported 'unreachable' (meant for a destination that
// cannot be reached at all), so a route's pause reason depended on whether the reset or the close came first
// (a CI run of the routing e2e saw 'unreachable: read ECONNRESET').

test('a reset of a working upstream connection is "disconnected"; a refused one before the handshake is "unreachable"', async () => {
  const stub = new StubUpstream();
  const port = await stub.listen();
  const client = new UpstreamClient({ ...DEFAULT_UPSTREAM_OPTIONS, url: `stratum+tcp://127.0.0.1:${port}`, user: 'buyer.rig', password: 'x', backoffMinMs: 50, backoffMaxMs: 100 });
  const downs: RouteError[] = [];
  client.on('down', (e) => downs.push(e));
  let ups = 0;
  client.on('up', () => { ups++; });
  try {
    client.start();
    await until(() => ups === 1, 5000, 'subscribed and authorized');
    stub.resetAll();
    await until(() => downs.length >= 1, 5000, 'the reset noticed');
    assert.equal(downs[0].code, 'disconnected', `${downs[0].code}: ${downs[0].message}`);
    // The client reconnects by itself; then the pool goes away for good: refused before any handshake.
    await until(() => ups === 2, 5000, 'reconnected');
    await stub.close();
    await until(() => downs.length >= 3, 5000, 'reconnect attempts refused');
    assert.equal(downs.at(-1)!.code, 'unreachable', `${downs.at(-1)!.code}: ${downs.at(-1)!.message}`);
  } finally {
    client.stop();
    await stub.close().catch(() => undefined);
  }
});
