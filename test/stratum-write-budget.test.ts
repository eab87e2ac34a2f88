// Issue 10 item 16: memory buffered for miners that do not read is capped across all connections, not only per
// connection (1 MiB × 18,000 connections would be 18 GiB): past the cap the slowest readers are closed first,
// and miners that read keep their connections. Real sockets: the slow clients stop reading (pause), so the
// kernel's buffers fill and the pool's own buffering grows.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Pool } from '../src/pool/pool.ts';
import { InProcessShareLog } from '../src/shares/events.ts';
import { DEFAULT_STRATUM_OPTIONS } from '../src/stratum/options.ts';
import type { StratumSession } from '../src/stratum/session.ts';
import { LineClient } from './helpers/line-client.ts';
import { REGTEST_ADDRESS } from './helpers/pool.ts';
import { StubNode } from './helpers/stub-node.ts';
import { until } from './helpers/until.ts';

const MiB = 1024 * 1024;

test('past the pool-wide write buffer cap the slowest readers are closed; readers that keep up stay', { timeout: 60_000 }, async (t) => {
  const cap = 2 * MiB;
  const pool = new Pool(new StubNode(), {
    network: 'regtest', payoutAddress: REGTEST_ADDRESS, poolTag: '/t/', requireAddressAccounts: false,
    // Per connection far above the total: only the pool-wide cap can act here.
    stratum: { ...DEFAULT_STRATUM_OPTIONS, host: '127.0.0.1', port: 0, maxWriteBufferBytes: 256 * MiB, maxTotalWriteBufferBytes: cap, messageBurst: 1e6, messagesPerSecond: 1e6 },
    templates: { pollMs: 1000, refreshMs: 60_000, longpoll: false }, blocks: { journalDir: null },
  }, new InProcessShareLog(), pino({ level: 'silent' }));
  const { port } = await pool.start();
  t.after(() => pool.stop(100));

  const clients: LineClient[] = [];
  for (let i = 0; i < 4; i++) {
    const c = new LineClient(port, `127.0.0.${20 + i}`);
    await c.connected();
    await c.request(1, 'mining.subscribe', [`client-${i}`]);
    clients.push(c);
  }
  t.after(() => { for (const c of clients) c.close(); });
  await until(() => pool.server.sessions.size === 4, 5000, 'four sessions');
  const byAgent = new Map<string, StratumSession>([...pool.server.sessions].map((s) => [s.userAgent, s]));
  const [slowest, slow, slower, reader] = ['client-0', 'client-1', 'client-2', 'client-3'].map((ua) => byAgent.get(ua)!);
  // Three miners stop reading; the fourth keeps reading everything.
  for (const c of clients.slice(0, 3)) c.socket.pause();

  // 64 KiB lines (big notifies, in effect): the slowest gets three times as many as the other two.
  const line = 'x'.repeat(64 * 1024);
  let id = 100;
  for (let round = 0; round < 60; round++) {
    for (let k = 0; k < 3; k++) slowest.sendResult(id++, line);
    slow.sendResult(id++, line);
    slower.sendResult(id++, line);
    reader.sendResult(id++, line);
    await new Promise((r) => setImmediate(r));
  }
  await until(() => pool.server.stats.writeBuffers.slowReadersClosed >= 1, 5000, () => `a slow reader to be closed (buffered ${pool.server.stats.writeBuffers.bufferedBytes})`);
  assert.equal(slowest.closed, true, 'the slowest reader is closed first');
  assert.match(slowest.closeReason, /pool-wide write buffer cap/);
  assert.equal(reader.closed, false, 'a miner that reads is never closed for others');
  await until(() => pool.server.stats.writeBuffers.bufferedBytes <= cap, 5000, () => `the total back under the cap (${pool.server.stats.writeBuffers.bufferedBytes})`);
  // The miner that reads still gets answers.
  const pong = await clients[3].request(9999, 'mining.ping');
  assert.equal(pong.result, 'pong');
  assert.equal(pool.server.stats.connections >= 2, true);
});
