// The embedded chain keeps its chain in its data dir (a restart continues at the same height, side branches
// included), refuses a damaged block file or other settings with one clear line, and authenticates with a
// cookie that changes at every start, as bitcoind does.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { loadConfig } from '../src/cli/config.ts';
import { StartupError, explainStartupError } from '../src/cli/startup-errors.ts';
import { runPool } from '../src/cli/run-pool.ts';
import { BitcoinRpc, RpcError } from '../src/node/rpc.ts';
import { ChainDataError, REGTEST_GENESIS_HASH, startEmbeddedChain } from '../src/node/regtest/index.ts';
import { SKIP_PG, createTestPg } from './helpers/pg.ts';

const tmp = (): string => mkdtempSync(path.join(tmpdir(), 'hashhub-chain-'));

test('a restart on the same data dir continues at the same height, with the same blocks and side branches', async () => {
  const dir = tmp();
  try {
    const a = await startEmbeddedChain({ dataDir: dir, mempoolTxs: 5, mempoolRefreshMs: 0 });
    const mined = [await a.chain.mineBlock(), await a.chain.mineBlock(), await a.chain.mineBlock()];
    const side = await a.chain.mineBlock({ prevHash: mined[0].hash, address: 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080' });
    assert.equal(side.result, 'inconclusive');
    const tip = a.chain.tip.hashHex;
    const txsOfTip = (a.chain.blockBytes(a.chain.tip) as Buffer).toString('hex');
    await a.close();

    const b = await startEmbeddedChain({ dataDir: dir, mempoolTxs: 5, mempoolRefreshMs: 0 });
    const rpc = new BitcoinRpc({ endpoints: [{ url: b.url, cookieFile: b.cookieFile }] });
    try {
      assert.equal(b.chain.height, 3);
      assert.equal(await rpc.getBestBlockHash(), tip);
      for (const [i, m] of mined.entries()) assert.equal(await rpc.getBlockHash(i + 1), m.hash);
      assert.equal(await rpc.getBlock(tip, 0), txsOfTip, 'the same bytes, transactions included');
      const sideHeader = await rpc.getBlockHeader(side.hash);
      assert.ok(sideHeader);
      assert.equal(sideHeader.confirmations, -1, 'the side branch is known and not on the best chain');
      assert.equal(sideHeader.height, 2);
      assert.equal(await rpc.submitBlock(side.hex), 'duplicate');
      // The chain goes on from there, and the next restart sees that too.
      const next = await b.chain.mineBlock();
      assert.equal(next.height, 4);
      assert.equal(next.result, null);
    } finally {
      rpc.close();
      await b.close();
    }
    const c = await startEmbeddedChain({ dataDir: dir, mempoolRefreshMs: 0, mempoolTxs: 5 });
    assert.equal(c.chain.height, 4);
    await c.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a long chain comes back fast: deep blocks by header (as a pruned node has them), the file compacted', async () => {
  const dir = tmp();
  try {
    const a = await startEmbeddedChain({ dataDir: dir, mempoolTxs: 0, mempoolRefreshMs: 0, pruneDepth: 10 });
    const hashes: string[] = [];
    for (let i = 0; i < 1020; i++) hashes.push((await a.chain.mineBlock()).hash);
    const deepSide = await a.chain.mineBlock({ prevHash: REGTEST_GENESIS_HASH, address: 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080' });
    assert.equal(deepSide.result, 'inconclusive');
    const recentSide = await a.chain.mineBlock({ prevHash: hashes[1015], address: 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080' });
    assert.equal(recentSide.result, 'inconclusive');
    const grown = statSync(path.join(dir, 'blocks.dat')).size;
    await a.close();

    const started = Date.now();
    const b = await startEmbeddedChain({ dataDir: dir, mempoolTxs: 0, mempoolRefreshMs: 0, pruneDepth: 10 });
    const rpc = new BitcoinRpc({ endpoints: [{ url: b.url, cookieFile: b.cookieFile }] });
    try {
      assert.ok(Date.now() - started < 10_000);
      assert.equal(b.chain.height, 1020);
      assert.equal(await rpc.getBlockHash(500), hashes[499]);
      const deep = await rpc.getBlockHeader(hashes[0]);
      assert.ok(deep);
      assert.equal(deep.confirmations, 1020);
      assert.equal(deep.nTx, 1);
      await assert.rejects(rpc.getBlock(hashes[0], 0), /Block not available \(pruned data\)/);
      assert.equal(await rpc.getBlock(hashes[1019], 0), (b.chain.blockBytes(b.chain.tip) as Buffer).toString('hex'));
      assert.equal((await rpc.getBlockHeader(deepSide.hash))?.confirmations, -1);
      assert.equal((await rpc.getBlockHeader(recentSide.hash))?.confirmations, -1);
      assert.equal(await rpc.submitBlock(recentSide.hex), 'duplicate');
      // Deep blocks were rewritten as headers: the file shrank to a fraction.
      const compacted = statSync(path.join(dir, 'blocks.dat')).size;
      assert.ok(compacted < grown / 2, `file ${grown} -> ${compacted} bytes`);
      assert.equal((await b.chain.mineBlock()).height, 1021);
    } finally {
      rpc.close();
      await b.close();
    }
    // The compacted file replays to the same chain.
    const c = await startEmbeddedChain({ dataDir: dir, mempoolTxs: 0, mempoolRefreshMs: 0, pruneDepth: 10 });
    assert.equal(c.chain.height, 1021);
    assert.equal(c.chain.index.active[1020].hashHex, hashes[1019]);
    await c.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a damaged block file or other settings: one clear line naming the file and the fix', async () => {
  const dir = tmp();
  try {
    const a = await startEmbeddedChain({ dataDir: dir, mempoolRefreshMs: 0 });
    await a.chain.mineBlock();
    await a.chain.mineBlock();
    await a.chain.mineBlock();
    await a.close();
    const file = path.join(dir, 'blocks.dat');
    const intact = statSync(file).size;

    // A crash in the middle of a write: a partial record at the end is cut off, the blocks before it are kept.
    for (const torn of ['4848423200100000aabbccdd0401', 'fabfb5da00100000aabbcc', '4848']) {
      appendFileSync(file, Buffer.from(torn, 'hex'));
      const b = await startEmbeddedChain({ dataDir: dir, mempoolRefreshMs: 0 });
      assert.equal(b.chain.height, 3);
      await b.close();
      assert.equal(statSync(file).size, intact, `torn tail ${torn} cut off`);
    }

    // A flipped bit in the second block (its merkle root), with an intact record after it: damage, not a torn
    // tail. One line, naming the file, the byte and the fix.
    const bytes = readFileSync(file);
    const second = 12 + bytes.readUInt32LE(4);
    bytes[second + 12 + 1 + 4 + 36] ^= 0x01;
    writeFileSync(file, bytes);
    const err = await startEmbeddedChain({ dataDir: dir, mempoolRefreshMs: 0 }).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof ChainDataError, String(err));
    assert.equal(err.message.split('\n').length, 1);
    assert.match(err.message, new RegExp(`${file.replace(/[/.]/g, '\\$&')} is damaged at byte ${second} .*checksum mismatch; 1 records before it are intact.*truncate it to ${second} bytes`));

    // Another difficulty than the chain was made with.
    const other = tmp();
    const c = await startEmbeddedChain({ dataDir: other, mempoolRefreshMs: 0, difficulty: 0.001 });
    await c.close();
    await assert.rejects(startEmbeddedChain({ dataDir: other, mempoolRefreshMs: 0 }), (e: unknown) => e instanceof ChainDataError
      && /holds a regtest chain with bits 1e03e7fc, but this one is regtest with bits 207fffff: use the same embedded difficulty/.test(e.message));
    rmSync(other, { recursive: true, force: true });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('cookie authentication: a new .cookie (0600) at every start, gone at stop; the client re-reads it', async () => {
  const dir = tmp();
  try {
    const a = await startEmbeddedChain({ dataDir: dir, mempoolRefreshMs: 0 });
    const cookieFile = path.join(dir, '.cookie');
    assert.equal(a.cookieFile, cookieFile);
    const first = readFileSync(cookieFile, 'utf8');
    assert.match(first, /^__cookie__:[0-9a-f]{64}$/);
    assert.equal(statSync(cookieFile).mode & 0o777, 0o600);
    const rpc = new BitcoinRpc({ endpoints: [{ url: a.url, cookieFile }] });
    const stale = new BitcoinRpc({ endpoints: [{ url: a.url, user: '__cookie__', password: first.split(':')[1] }] });
    assert.equal(await rpc.getBestBlockHash(), REGTEST_GENESIS_HASH);
    await a.close();
    assert.equal(existsSync(cookieFile), false, 'removed at shutdown, as bitcoind does');

    const b = await startEmbeddedChain({ dataDir: dir, mempoolRefreshMs: 0, port: a.port });
    try {
      const second = readFileSync(cookieFile, 'utf8');
      assert.notEqual(second, first);
      await assert.rejects(stale.getBestBlockHash(), (e: unknown) => e instanceof RpcError && e.kind === 'auth' && e.httpStatus === 401);
      assert.equal(await rpc.getBestBlockHash(), REGTEST_GENESIS_HASH, 'the cookie client re-read the new cookie');
    } finally {
      rpc.close();
      stale.close();
      await b.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('hashhub pool on the embedded chain: a restart on the same data dir continues the chain', { skip: SKIP_PG }, async () => {
  const dataDir = tmp();
  const db = await createTestPg(); // Postgres: PGlite takes many seconds to open on a busy machine
  const cfg = loadConfig({
    env: {},
    overrides: {
      'database.dataDir': dataDir, 'database.url': db.url, 'api.enabled': false,
      'stratum.host': '127.0.0.1', 'stratum.port': 0, 'node.embedded.difficulty': 1e-6,
    },
  });
  const log = pino({ level: process.env.TEST_LOG ?? 'silent' });
  try {
    const first = await runPool(cfg, log);
    const hashes = [(await first.embedded!.chain.mineBlock()).hash, (await first.embedded!.chain.mineBlock()).hash];
    await first.stop();
    const second = await runPool(cfg, log);
    try {
      assert.equal(second.embedded!.chain.height, 2);
      assert.equal(await second.rpc.getBlockHash(2), hashes[1]);
      assert.equal(second.pool.templates.current?.height, 3, 'the pool works on height 3, not 1 again');
    } finally {
      await second.stop();
    }
    // A damaged chain file stops the start with the one-line message (a StartupError: no stack trace).
    const file = path.join(dataDir, 'embedded-chain', 'blocks.dat');
    const bytes = readFileSync(file);
    bytes[40] ^= 0x01; // in the first block's header
    writeFileSync(file, bytes);
    await assert.rejects(runPool(cfg, log), (e: unknown) => e instanceof StartupError
      && /^embedded chain: .*embedded-chain\/blocks\.dat is damaged at byte 0 of \d+ \(checksum mismatch.*\): truncate it to 0 bytes/.test(explainStartupError(e) ?? ''));
  } finally {
    await db.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
