import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { loadConfig } from '../src/cli/config.ts';
import { runPool } from '../src/cli/run-pool.ts';
import { startEmbeddedChain } from '../src/node/regtest/index.ts';
import { LineClient, type Msg } from './helpers/line-client.ts';
import { solveShare } from './helpers/pool.ts';
import { freePort } from './helpers/free-port.ts';

const isNotify = (m: Msg) => m.method === 'mining.notify';

test('the node goes away: the pool keeps serving the last job, then follows the node when it is back', async () => {
  // On a port from freePort: the chain comes back on it, and a released listen(0) port could go to the other test file.
  const chain = await startEmbeddedChain({ port: await freePort(), difficulty: 1, rpcPassword: 'pw', mempoolRefreshMs: 0 });
  const port = chain.port;
  const cfg = loadConfig({
    env: {},
    overrides: {
      'database.dataDir': mkdtempSync(path.join(tmpdir(), 'hashhub-test-')), // never the repo's ./data
      payoutAddress: 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080',
      'node.urls': [chain.url], 'node.user': chain.user, 'node.password': 'pw', 'node.pollMs': 100, 'node.timeoutMs': 500,
      'stratum.host': '127.0.0.1', 'stratum.port': 0, 'stratum.difficulty.initial': 0.0001,
    },
  });
  const running = await runPool(cfg, pino({ level: process.env.TEST_LOG ?? 'silent' }));
  let chain2: Awaited<ReturnType<typeof startEmbeddedChain>> | null = null;
  const c = new LineClient(running.port);
  try {
    await c.connected();
    const sub = await c.request(1, 'mining.subscribe', []);
    await c.request(2, 'mining.authorize', ['acct.w1', 'x']);
    const notify = await c.waitFor(isNotify);
    const [, en1, en2Size] = sub.result as [unknown, string, number];

    await chain.close();
    await new Promise((r) => setTimeout(r, 1500)); // several failed polls
    assert.equal(running.pool.templates.status.ok, false, 'the template source reports the node down');
    // Miners keep working on the last good job: shares are still validated and accepted.
    const share = solveShare(notify, en1, en2Size, 0.0001);
    assert.equal((await c.request(3, 'mining.submit', share)).result, true);
    assert.equal(c.closed, false);

    // The node comes back (a new chain on the same port): a new tip, clean_jobs=true.
    const from = c.messages.length;
    chain2 = await startEmbeddedChain({ port, rpcPassword: 'pw', mempoolRefreshMs: 0 }); // real regtest difficulty: quick to mine
    await chain2.chain.generateToAddress(2, 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080');
    const fresh = await c.waitFor((m) => isNotify(m) && m.params![8] === true, 15_000, from);
    assert.notEqual(fresh.params![1], notify.params![1], 'work on the new tip');
    assert.equal(running.pool.templates.status.ok, true);
    assert.equal((await c.request(4, 'mining.submit', solveShare(fresh, en1, en2Size, 0.0001))).result, true);
  } finally {
    c.close();
    await running.stop();
    await chain2?.close();
    rmSync(cfg.database.dataDir, { recursive: true, force: true });
  }
});
