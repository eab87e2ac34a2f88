// End to end, a found block is never lost: the node unreachable when the block is found (submitted when it comes
// back), the pool process SIGKILLed between finding a block and the node's answer (resubmitted at the restart),
// and a block of ours on the chain with no record at all (found by the start-up chain scan).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { loadConfig } from '../src/cli/config.ts';
import { runPool } from '../src/cli/run-pool.ts';
import { runFleet } from '../src/miner/fleet.ts';
import { type EmbeddedChainHandle, startEmbeddedChain } from '../src/node/regtest/index.ts';
import { BitcoinRpc } from '../src/node/rpc.ts';
import { Pool } from '../src/pool/pool.ts';
import type { BlockEvent } from '../src/shares/events.ts';
import { InProcessShareLog } from '../src/shares/events.ts';
import { DEFAULT_STRATUM_OPTIONS } from '../src/stratum/options.ts';
import { foldBlocks } from './helpers/blocks.ts';
import { type PoolProcess, exited, killAll, startPoolProcess } from './helpers/child-pool.ts';
import { freePort } from './helpers/free-port.ts';
import { REGTEST_ADDRESS } from './helpers/pool.ts';
import { TcpProxy } from './helpers/proxy.ts';
import { until } from './helpers/until.ts';
import { tmpDir } from './helpers/tmp-dir.ts';
import { hashToDisplay } from '../src/chain/bytes.ts';

const log = pino({ level: process.env.TEST_LOG ?? 'silent' });

const tmp = (t: { after: (fn: () => void) => void }, prefix = 'hashhub-blocks-e2e-'): string => tmpDir(t, prefix);

/** The embedded chain behind a TCP proxy the test can cut or stall (the node "goes away" while it lives on). */
async function chainBehindProxy(t: { after: (fn: () => Promise<void> | void) => void }, difficulty = 0.00005) {
  const chain = await startEmbeddedChain({ difficulty, mempoolTxs: 5 });
  const proxy = await TcpProxy.start({ host: '127.0.0.1', port: chain.port });
  t.after(async () => { await proxy.close(); await chain.close(); });
  const url = `http://${chain.user}:${chain.password}@127.0.0.1:${proxy.port}`;
  return { chain, proxy, url };
}

function onBestChain(chain: EmbeddedChainHandle, hash: string): boolean {
  const e = chain.chain.index.getByHash(Buffer.from(hash, 'hex').reverse());
  return !!e && chain.chain.index.isActive(e);
}

test('a block found while the node is unreachable is submitted when it comes back, and is on the best chain', { timeout: 90_000 }, async (t) => {
  const { chain, proxy, url } = await chainBehindProxy(t);
  const cfg = loadConfig({
    env: {},
    overrides: {
      'database.dataDir': tmp(t), network: 'regtest', payoutAddress: REGTEST_ADDRESS, 'node.urls': [url], 'node.pollMs': 100,
      'node.timeoutMs': 2000, 'stratum.host': '127.0.0.1', 'stratum.port': 0, 'stratum.difficulty.initial': 0.00001,
      'blocks.checkIntervalMs': 200,
    },
  });
  const running = await runPool(cfg, log);
  const events: BlockEvent[] = [];
  running.shareLog.onBlock((e) => events.push(e));
  const fleet = runFleet({ count: 2, totalHashrate: 0, url: `stratum+tcp://127.0.0.1:${running.port}`, user: 'acct', connectRatePerSec: 50, reconnect: false });
  try {
    await until(() => fleet.stats().accepted >= 3, 20_000, 'miners at work');
    // Cut only when no submission is in flight (the pool runs in this process, so nothing happens between this
    // check and the cut). A CI run failed on that race: a block sent just before the cut stayed unanswered, and
    // the block found during the outage, on the same parent, waited behind it (one submitblock per parent at a
    // time) — never sent, so never "failing in transport". This test is about a block the node never saw.
    await until(() => [...foldBlocks(events).values()].every((b) => b.status !== 'submitted'), 10_000, 'no block submission in flight');
    await proxy.cut();
    const heightAtCut = chain.chain.height;
    // Miners keep mining the last job; the next block they find cannot reach the node.
    const cutAt = events.length;
    await until(() => events.slice(cutAt).some((e) => e.kind === 'candidate'), 30_000, 'a block found during the outage');
    const found = events.slice(cutAt).find((e) => e.kind === 'candidate')!;
    await until(() => (foldBlocks(events).get(found.hash)?.answers.length ?? 0) >= 2, 10_000, 'submissions failing in transport');
    const during = foldBlocks(events).get(found.hash)!;
    assert.equal(during.status, 'submitted', 'no verdict: still submitted, not rejected');
    assert.ok(during.answers.every((a) => a?.startsWith('error:')), JSON.stringify(during.answers));
    assert.equal(chain.chain.height, heightAtCut, 'the node saw nothing');
    await proxy.restore();
    await until(() => foldBlocks(events).get(found.hash)?.status === 'pending', 20_000, () => `pending (now ${foldBlocks(events).get(found.hash)?.status})`);
    assert.ok(onBestChain(chain, found.hash), 'the block is on the best chain');
    assert.equal(chain.chain.index.getByHash(Buffer.from(found.hash, 'hex').reverse())?.height, found.kind === 'candidate' ? found.height : -1);
  } finally {
    await fleet.stop(0);
    await running.stop();
  }
});

test('SIGKILL between finding a block and the node\'s answer: the restarted pool resubmits it from its journal', { timeout: 240_000 }, async (t) => {
  // Blocks ten times rarer than the other tests' (a few a second from two natively hashing miners, not tens): a stall
  // finds the pool on the node's tip only when no block of its own is on its way and the template after the last
  // one has arrived, and with a block every few tens of ms that was rarely so under load (failed in CI: four stalls
  // in a row, each after a submission had moved the node's tip past the pool's work).
  const { chain, proxy, url } = await chainBehindProxy(t, 0.0005);
  const dir = tmp(t, 'hashhub-blocks-kill-');
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env, HASHHUB_DATA_DIR: dir, HASHHUB_NODE_URLS: url, HASHHUB_PAYOUT_ADDRESS: REGTEST_ADDRESS,
    HASHHUB_STRATUM_HOST: '127.0.0.1', HASHHUB_STRATUM_PORT: String(port), HASHHUB_DIFFICULTY: '0.00001',
    HASHHUB_NODE_POLL_MS: '200', HASHHUB_API_ENABLED: 'false', HASHHUB_LOG_LEVEL: 'warn', HASHHUB_BLOCK_CHECK_MS: '200',
  };
  delete env.HASHHUB_CONFIG;
  delete env.DATABASE_URL;
  let first: PoolProcess | null = await startPoolProcess(env);
  let second: PoolProcess | null = null;
  const fleet = runFleet({ count: 2, totalHashrate: 0, url: `stratum+tcp://127.0.0.1:${port}`, user: 'acct', connectRatePerSec: 50, reconnect: true, reconnectInitialMs: 200, reconnectMaxMs: 1000 });
  const journal = path.join(dir, 'blocks', 'blocks.journal');
  try {
    await until(() => fleet.stats().accepted >= 3, 20_000, 'miners at work');
    // The node stops answering (nothing is forwarded either way): the pool is between a block's submission and
    // its verdict when it dies. A submission already on the wire when the stall begins may still reach the node
    // and move its tip past the pool's work (the template that would follow never arrives); then no block can be
    // found on the node's tip, so that attempt is undone and the stall tried again.
    // Complete lines only: the pool may be writing the last one as the test reads (seen under load: 'Unterminated
    // string in JSON').
    const candidatesOn = (prevHash: string) => (fs.existsSync(journal) ? fs.readFileSync(journal, 'utf8').split('\n').slice(0, -1) : [])
      .filter((l) => l.includes('"t":"candidate"')).map((l) => JSON.parse(l) as { hash: string; height: number; prevHash: string })
      .filter((c) => c.prevHash === prevHash);
    let heightAtStall = -1;
    let rec: { hash: string; height: number; prevHash: string } | undefined;
    // Every miner's work on the node's tip: stalled then, the pool's next block is on that tip unless a block of its
    // own was already on its way. (After a retry the tip had just moved by the pool's own block, whose template the
    // pool and its miners had not all got yet: stalled at once, every attempt failed the same way, as seen in CI.)
    const onNodeTip = () => fleet.miners.length === 2 && fleet.miners.every((m) => {
      const job = m.currentJob;
      return job !== null && hashToDisplay(job.prevHash) === chain.chain.tip.hashHex;
    });
    for (let attempt = 1; attempt <= 4 && !rec; attempt++) {
      await until(onNodeTip, 30_000, 'the miners\' work on the node\'s tip');
      proxy.stall();
      await new Promise((r) => setTimeout(r, 300)); // answers already on their way arrive or are dropped
      heightAtStall = chain.chain.height;
      const tipAtStall = chain.chain.tip.hashHex;
      // A block on the node's tip, found after the node went silent (one on an older parent could lose a race).
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline && !(rec = candidatesOn(tipAtStall)[0])) await new Promise((r) => setTimeout(r, 100));
      if (rec) break;
      t.diagnostic(`attempt ${attempt}: no block on the node's tip ${tipAtStall.slice(0, 16)} within 20 s; the tip had moved past the pool's work`);
      await proxy.restore();
      // Before the next stall the pool must be back on the node's tip: a block of its accepted above the height
      // of this stall (its submission retried through, a template on the new tip, a block on it). Waiting for a
      // few accepted shares was not enough once the test's miners hashed natively: shares on the old work came
      // in within milliseconds, the next stall began at once, and the pool never saw the node's tip.
      await until(() => chain.chain.height > heightAtStall, 30_000, 'the pool mining on the node\'s tip again');
      const accepted = fleet.stats().accepted;
      await until(() => fleet.stats().accepted >= accepted + 3, 20_000, 'miners at work again');
    }
    assert.ok(rec, 'a block on the tip journaled during the stall');
    first.child.kill('SIGKILL');
    await exited(first.child);
    first = null;
    assert.equal(chain.chain.height, heightAtStall, 'the node never got it');
    assert.equal(onBestChain(chain, rec.hash), false);
    await fleet.stop(0);
    await proxy.restore();
    second = await startPoolProcess(env);
    await until(() => onBestChain(chain, rec.hash), 20_000, 'the journaled block resubmitted and on the best chain');
    assert.equal(chain.chain.index.getByHash(Buffer.from(rec.hash, 'hex').reverse())?.height, rec.height);
    assert.match(second.output(), /resubmitting a block that had no verdict before the restart/);
  } finally {
    await fleet.stop(0);
    await killAll([first, second]);
  }
});

test('a block of ours on the chain with no record anywhere (crash before the journal write) is found by the start-up scan', { timeout: 120_000 }, async (t) => {
  const chain = await startEmbeddedChain({ difficulty: 0.00002, mempoolTxs: 5 });
  t.after(() => chain.close());
  const rpc = new BitcoinRpc({ endpoints: [{ url: chain.url, user: chain.user, password: chain.password }] });
  t.after(() => rpc.close());
  const opts = {
    network: 'regtest' as const, payoutAddress: REGTEST_ADDRESS, poolTag: '/scan-test/', requireAddressAccounts: false,
    stratum: { ...DEFAULT_STRATUM_OPTIONS, host: '127.0.0.1', port: 0, initialDifficulty: 0.00001, vardiff: { ...DEFAULT_STRATUM_OPTIONS.vardiff, minDifficulty: 1e-8 } },
    templates: { pollMs: 100, longpoll: false },
  };
  // First pool: no journal (as if the process died before writing it) and nothing reaches a database.
  const a = new Pool(rpc, { ...opts, blocks: { journalDir: null, checkIntervalMs: 100 } }, new InProcessShareLog(), log);
  const { port } = await a.start();
  const fleet = runFleet({ count: 1, totalHashrate: 0, url: `stratum+tcp://127.0.0.1:${port}`, user: 'acct', connectRatePerSec: 50, reconnect: false });
  try {
    await until(() => a.stats.blocks.pending >= 1, 60_000, 'a pool block on the chain');
  } finally {
    await fleet.stop(0);
    await a.stop(100);
  }
  // Someone else's block on top, so ours is not simply the tip.
  await chain.chain.mineBlock({});
  const ours = new Set<string>();
  for (let h = 1; h <= chain.chain.height; h++) {
    const e = chain.chain.index.active[h];
    if (e && a.blocks.get(e.hashHex)) ours.add(e.hashHex);
  }
  assert.ok(ours.size >= 1);

  // Second pool, fresh journal, same address and tag: the scan finds our blocks and records them.
  const dir = tmp(t);
  const events: BlockEvent[] = [];
  const shareLog = new InProcessShareLog();
  shareLog.onBlock((e) => events.push(e));
  const b = new Pool(rpc, { ...opts, blocks: { journalDir: dir, checkIntervalMs: 100, recoveryScanDepth: 50, reserveBytes: 0 } }, shareLog, log);
  await b.start();
  try {
    await until(() => [...ours].every((h) => foldBlocks(events).get(h)?.status === 'pending'), 10_000, 'our blocks recovered as pending');
    assert.equal(b.stats.blocks.recovered, ours.size, 'exactly our blocks, not the other miner\'s');
    const rec = foldBlocks(events).get([...ours][0])!;
    assert.equal(rec.candidate.account, '', 'the finder is unknown');
    assert.ok(rec.candidate.reward > 0n, 'reward read from the coinbase');
    assert.ok(fs.readFileSync(path.join(dir, 'blocks.journal'), 'utf8').includes([...ours][0]), 'journaled now');
  } finally {
    await b.stop(100);
  }
});
