// New tips by ZMQ (hashblock), and long polls that are never abandoned, at most one at a time, and not sent
// while ZMQ is healthy. Real sockets: the embedded chain publishes hashblock as Core does; the pool's listener
// is a real zeromq SUB socket.

import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import pino from 'pino';
import { Subscriber } from 'zeromq';
import { BitcoinRpc, reachableZmqAddress } from '../src/node/rpc.ts';
import { startEmbeddedChain } from '../src/node/regtest/index.ts';
import { HashBlockPublisher } from '../src/node/regtest/zmq-publisher.ts';
import { TemplateSource, type TemplateMeta } from '../src/node/template-source.ts';
import type { BlockTemplate } from '../src/node/types.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../src/cli/config.ts';
import { runPool } from '../src/cli/run-pool.ts';
import { SKIP_PG, createTestPg } from './helpers/pg.ts';
import { until } from './helpers/until.ts';

const log = pino({ level: process.env.TEST_LOG ?? 'silent' });

test('the embedded chain publishes hashblock like Core and lists it in getzmqnotifications', async () => {
  const h = await startEmbeddedChain({ mempoolRefreshMs: 0, zmqPubHashBlock: 'tcp://127.0.0.1:0' });
  const sub = new Subscriber();
  try {
    assert.match(h.zmqAddress ?? '', /^tcp:\/\/127\.0\.0\.1:\d+$/);
    const rpc = new BitcoinRpc({ endpoints: [{ url: h.url, user: h.user, password: h.password }] });
    assert.deepEqual(await rpc.getZmqNotifications(), [{ type: 'pubhashblock', address: h.zmqAddress, hwm: 1000 }]);
    rpc.close();

    const connected = new Promise<void>((resolve) => sub.events.on('handshake', () => resolve()));
    sub.subscribe('hashblock');
    sub.connect(h.zmqAddress!);
    await connected;
    const got: Array<[string, string, number]> = [];
    // Reads until the subscriber is closed (finally, below).
    void (async () => {
      for await (const [topic, body, seq] of sub) {
        got.push([topic.toString(), body.toString('hex'), seq.readUInt32LE(0)]);
      }
    })().catch(() => undefined);
    // The subscription reaches the publisher some time after the handshake (ZMQ's slow joiner), and what is published
    // before that is not sent: mine until a block's message arrives (a fixed pause was a guess that a loaded machine
    // could miss, and the test then waited for a message that never came).
    const probes: string[] = [];
    while (got.length === 0) {
      assert.ok(probes.length < 50, 'a hashblock message within 50 blocks');
      probes.push((await h.chain.mineBlock()).hash);
      await until(() => got.length > 0, 200, 'a message').catch(() => undefined);
    }
    const a = await h.chain.mineBlock();
    const b = await h.chain.mineBlock();
    // Blocks only disconnected: Core sends nothing (UpdatedBlockTip with pindexNew == pindexFork).
    h.chain.invalidateBlock(b.hash);
    assert.equal(h.chain.tip.hashHex, a.hash);
    h.chain.reconsiderBlock(b.hash);
    // Topic, the hash in display order (as getbestblockhash prints it), a little-endian sequence from 0 that counts
    // every message published (also those sent before the subscription arrived): from the first one received, every
    // block after it, in order.
    const first = got[0][2];
    const hashes = [...probes.slice(first), a.hash, b.hash, b.hash];
    await until(() => got.length >= hashes.length, 10_000, () => `${hashes.length} messages, got ${got.length}`);
    await new Promise((r) => setTimeout(r, 50)); // nothing more comes
    assert.deepEqual(got, hashes.map((hash, i) => ['hashblock', hash, first + i]));
  } finally {
    sub.close();
    await h.close();
  }
});

test('a wildcard publisher address is reached at the RPC host', () => {
  assert.equal(reachableZmqAddress('tcp://0.0.0.0:28332', '10.0.0.2'), 'tcp://10.0.0.2:28332');
  assert.equal(reachableZmqAddress('tcp://*:28332', 'node.lan'), 'tcp://node.lan:28332');
  assert.equal(reachableZmqAddress('tcp://[::]:28332', '::1'), 'tcp://[::1]:28332');
  assert.equal(reachableZmqAddress('tcp://127.0.0.1:28332', '10.0.0.2'), 'tcp://127.0.0.1:28332');
});

/** Resolves with the next template event matching `pred`. */
function nextTemplate(src: TemplateSource, pred: (t: BlockTemplate, m: TemplateMeta) => boolean, ms = 5000): Promise<[BlockTemplate, TemplateMeta]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { src.off('template', on); reject(new Error('no matching template in time')); }, ms);
    const on = (t: BlockTemplate, m: TemplateMeta): void => {
      if (!pred(t, m)) return;
      clearTimeout(timer);
      src.off('template', on);
      resolve([t, m]);
    };
    src.on('template', on);
  });
}

test('new tips by ZMQ (discovered); no long poll while ZMQ is healthy; exactly one, never abandoned, while it is not', async () => {
  const h = await startEmbeddedChain({ mempoolRefreshMs: 0, zmqPubHashBlock: 'tcp://127.0.0.1:0' });
  const rpc = new BitcoinRpc({ endpoints: [{ url: h.url, user: h.user, password: h.password }], timeoutMs: 1000 });
  // Polling slowed down: what arrives quickly arrives by ZMQ or by long poll.
  const src = new TemplateSource(rpc, { pollMs: 60_000, refreshMs: 60_000, logger: log, zmq: { heartbeatMs: 200 } });
  try {
    await src.start();
    await until(() => src.zmqHealthy, 5_000, 'ZMQ discovered and connected');
    assert.deepEqual(src.status.zmq, { address: h.zmqAddress, healthy: true });
    // The first long poll waited for ZMQ to connect: none went out at all.
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(h.chain.longpollsWaiting, 0);
    assert.equal(rpc.longpollsOutstanding, 0);

    for (let i = 0; i < 3; i++) {
      const next = nextTemplate(src, (_, m) => m.newTip);
      const b = await h.chain.mineBlock();
      const [t, m] = await next;
      assert.equal(t.previousblockhash, b.hash);
      assert.equal(m.reason, 'zmq');
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(h.chain.longpollsWaiting, 0, 'no long poll while ZMQ is healthy');
      assert.equal(rpc.longpollsOutstanding, 0);
    }
  } finally {
    await src.stop();
    rpc.close();
    await h.close();
  }
});

test('a node without ZMQ: discovery finds none and the long poll goes out at once', async () => {
  const h = await startEmbeddedChain({ mempoolRefreshMs: 0 });
  const rpc = new BitcoinRpc({ endpoints: [{ url: h.url, user: h.user, password: h.password }], timeoutMs: 1000 });
  const src = new TemplateSource(rpc, { pollMs: 60_000, refreshMs: 60_000, logger: log, zmq: { graceMs: 60_000 } });
  try {
    await src.start();
    await until(() => h.chain.longpollsWaiting === 1, 2_000, 'a long poll');
    assert.equal(src.status.zmq, undefined);
    const next = nextTemplate(src, (_, m) => m.newTip);
    await h.chain.mineBlock();
    assert.equal((await next)[1].reason, 'longpoll');
  } finally {
    await src.stop();
    rpc.close();
    await h.close();
  }
});

test('ZMQ goes away: one long poll takes over; ZMQ back: the long poll is left to finish, no new one', async () => {
  const h = await startEmbeddedChain({ mempoolRefreshMs: 0 });
  let pub = await HashBlockPublisher.bind('tcp://127.0.0.1:0');
  const address = pub.address;
  h.chain.on('tip', (tip) => pub.publish(tip.hashHex));
  const rpc = new BitcoinRpc({ endpoints: [{ url: h.url, user: h.user, password: h.password }], timeoutMs: 1000 });
  const src = new TemplateSource(rpc, { pollMs: 60_000, refreshMs: 60_000, logger: log, zmq: { address, heartbeatMs: 200 } });
  try {
    await src.start();
    await until(() => src.zmqHealthy, 5_000, 'ZMQ connected');
    await nextAndMine();
    assert.equal(h.chain.longpollsWaiting, 0);

    await pub.close();
    await until(() => !src.zmqHealthy, 5_000, 'ZMQ seen down');
    await until(() => h.chain.longpollsWaiting === 1, 5_000, 'a long poll');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(h.chain.longpollsWaiting, 1, 'exactly one');
    assert.equal(rpc.longpollsOutstanding, 1);
    const [, m] = await nextAndMine();
    assert.equal(m.reason, 'longpoll', 'the long poll brought the tip');
    await until(() => h.chain.longpollsWaiting === 1, 5_000, 'the next long poll');

    pub = await HashBlockPublisher.bind(address);
    await until(() => src.zmqHealthy, 5_000, 'ZMQ back');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(h.chain.longpollsWaiting, 1, 'the outstanding long poll is not abandoned');
    assert.equal(rpc.longpollsOutstanding, 1);
    await nextAndMine();
    // The tip may come by ZMQ while the long poll's answer is still on its way: waited for, then checked again.
    await until(() => h.chain.longpollsWaiting === 0 && rpc.longpollsOutstanding === 0, 5_000, 'the long poll answered');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(h.chain.longpollsWaiting, 0, 'no new long poll while ZMQ is healthy');
    assert.equal(rpc.longpollsOutstanding, 0);
    const [, again] = await nextAndMine();
    assert.equal(again.reason, 'zmq');
  } finally {
    await src.stop();
    rpc.close();
    await pub.close();
    await h.close();
  }

  async function nextAndMine(): Promise<[BlockTemplate, TemplateMeta]> {
    const next = nextTemplate(src, (_, m) => m.newTip);
    const b = await h.chain.mineBlock();
    const got = await next;
    assert.equal(got[0].previousblockhash, b.hash);
    return got;
  }
});

test('a long poll has no client deadline: it outlives any timeout, with TCP keepalive on its socket', async (t) => {
  const h = await startEmbeddedChain({ mempoolRefreshMs: 0 });
  const rpc = new BitcoinRpc({ endpoints: [{ url: h.url, user: h.user, password: h.password }], timeoutMs: 200, longpollKeepAliveMs: 7_000 });
  const keepalive: Array<[boolean | undefined, number | undefined]> = [];
  const original = net.Socket.prototype.setKeepAlive;
  t.after(() => { net.Socket.prototype.setKeepAlive = original; });
  net.Socket.prototype.setKeepAlive = function (enable?: boolean, delay?: number) {
    keepalive.push([enable, delay]);
    return original.call(this, enable, delay);
  };
  try {
    const first = await rpc.getBlockTemplate();
    mock.timers.enable({ apis: ['setTimeout'] });
    let settled: string | null = null;
    const poll = rpc.getBlockTemplate(first.longpollid).then((x) => { settled = 'answered'; return x; }, (e: Error) => { settled = e.message; throw e; });
    for (let i = 0; i < 100 && h.chain.longpollsWaiting === 0; i++) await new Promise((r) => setImmediate(r));
    assert.equal(h.chain.longpollsWaiting, 1);
    mock.timers.tick(30 * 60_000); // half an hour of timers: no client deadline fires
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    mock.timers.reset();
    assert.equal(settled, null, 'still waiting');
    assert.equal(rpc.longpollsOutstanding, 1);
    assert.ok(keepalive.some(([on, d]) => on === true && d === 7_000), `keepalive ${JSON.stringify(keepalive)}`);
    const b = await h.chain.mineBlock();
    assert.equal((await poll).previousblockhash, b.hash);
    assert.equal(rpc.longpollsOutstanding, 0);
  } finally {
    mock.timers.reset();
    rpc.close();
    await h.close();
  }
});

test('config: node.zmq / HASHHUB_NODE_ZMQ and the embedded publisher; hashhub pool finds ZMQ by itself', { skip: SKIP_PG }, async () => {
  assert.equal(loadConfig({ env: { HASHHUB_NODE_ZMQ: 'tcp://10.0.0.2:28332', HASHHUB_NODE_URLS: 'http://10.0.0.2:8332', HASHHUB_PAYOUT_ADDRESS: 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080' } }).node.zmq, 'tcp://10.0.0.2:28332');
  assert.equal(loadConfig({ env: { HASHHUB_NODE_ZMQ: 'off' } }).node.zmq, 'off');
  assert.throws(() => loadConfig({ env: { HASHHUB_NODE_ZMQ: '10.0.0.2:28332' } }), (e: unknown) => e instanceof ConfigError && /node\.zmq: must be tcp:\/\/host:port or "off"/.test(e.message));

  const dataDir = mkdtempSync(path.join(tmpdir(), 'hashhub-zmq-'));
  const db = await createTestPg();
  const cfg = loadConfig({
    env: { HASHHUB_EMBEDDED_ZMQ: 'tcp://127.0.0.1:0' },
    overrides: {
      'database.dataDir': dataDir, 'database.url': db.url, 'api.enabled': false, 'stratum.host': '127.0.0.1', 'stratum.port': 0,
      'node.embedded.difficulty': 1e-6, // a block in a few thousand hashes
      // ZMQ alone can tell the new tip first: a long poll (or a poll) won that race under load (3 test files at once).
      'node.longpoll': false, 'node.pollMs': 60_000,
    },
  });
  const running = await runPool(cfg, log);
  try {
    await until(() => running.pool.templates.zmqHealthy, 5_000, 'the pool to find and connect to the embedded chain\'s ZMQ');
    assert.equal(running.pool.templates.status.zmq?.address, running.embedded!.zmqAddress);
    const next = nextTemplate(running.pool.templates, (_, m) => m.newTip);
    await running.embedded!.chain.mineBlock();
    assert.equal((await next)[1].reason, 'zmq');
  } finally {
    await running.stop();
    await db.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
