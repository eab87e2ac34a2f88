// A restart of the embedded chain on its data dir keeps everything a pool and its wallet rely on: the tip, every
// coin (also those deeper than the prune depth, whose blocks are kept by header only), the keys the wallet made,
// its balance, unspent outputs, transactions, and the payouts still waiting in the mempool.

import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { hashToDisplay } from '../src/chain/index.ts';
import { BitcoinRpc } from '../src/node/rpc.ts';
import { ChainDataError, type StartEmbeddedChainOptions, startEmbeddedChain } from '../src/node/regtest/index.ts';
import type { Coin } from '../src/node/regtest/utxo.ts';
import { chainView, utxoDigest, walletPay } from './helpers/chain-state.ts';

const ROOT = path.resolve(import.meta.dirname, '..');

/** utxoDigest of a coin map (the chain's coins at an earlier height). */
function digestOf(coins: Map<string, Coin>): string {
  const lines = [...coins].map(([k, c]) => `${k} ${c.value} ${c.height} ${c.coinbase ? 1 : 0} ${c.script.toString('hex')}`).sort();
  return createHash('sha256').update(lines.join('\n')).digest('hex');
}

const POOL = 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080';
const OUTSIDE = 'bcrt1q0ht9tyks4vh7p5p904t340cr9nvahy7uevmqwj';

test('1,150 blocks to the wallet, a restart: the same tip, coins, balance, keys and transactions', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hashhub-persist-'));
  const opts: StartEmbeddedChainOptions = { dataDir: dir, mempoolTxs: 3, mempoolRefreshMs: 0 };
  const a = await startEmbeddedChain(opts);
  try {
    const rpc = new BitcoinRpc({ endpoints: [{ url: a.url, cookieFile: a.cookieFile }] });
    const made = [await rpc.call<string>('getnewaddress'), await rpc.call<string>('getrawchangeaddress')];
    const txids: string[] = [];
    await a.chain.generateToAddress(50, made[0], 1e12);
    await a.chain.generateToAddress(60, POOL, 1e12);
    // A payout at height ~110: its outputs (to a key the wallet made) end up 1,000+ blocks deep.
    txids.push(walletPay(a, OUTSIDE, 1_000_000n, made[1]) as string);
    await a.chain.generateToAddress(1, POOL, 1e12);
    txids.push(walletPay(a, made[0], 2_000_000n, made[1]) as string);
    await a.chain.generateToAddress(1039, POOL, 1e12);
    // Another one waits in the mempool at the restart.
    made.push(a.wallet.newAddress());
    txids.push(walletPay(a, made[2], 3_000_000n, made[1]) as string);
    // Coinbases: one pruned (unknown before and after), one recent.
    txids.push(hashToDisplay(a.chain.index.active[60].txids?.[0] ?? Buffer.alloc(32)), hashToDisplay(a.chain.tip.txids![0]));
    assert.equal(a.chain.height, 1150);
    rpc.close();
    const rpc1 = new BitcoinRpc({ endpoints: [{ url: a.url, cookieFile: a.cookieFile }] });
    const info = await rpc1.call('getblockchaininfo');
    rpc1.close();
    const before = chainView(a, made, txids);
    assert.ok(before.balance > 14_000, `balance ${before.balance}`);
    assert.equal(before.mempool.length, 1);
    await a.close();

    const b = await startEmbeddedChain(opts);
    const rpc2 = new BitcoinRpc({ endpoints: [{ url: b.url, cookieFile: b.cookieFile }] });
    try {
      const after = chainView(b, made, txids);
      assert.deepEqual(after, before);
      const { verificationprogress: _a, ...infoBefore } = info as Record<string, unknown>;
      const { verificationprogress: _b, ...infoAfter } = await rpc2.call<Record<string, unknown>>('getblockchaininfo');
      assert.deepEqual(infoAfter, infoBefore);
      for (const addr of made) assert.equal((await rpc2.call<{ ismine: boolean }>('getaddressinfo', [addr])).ismine, true);
      // The waiting payout is mined after the restart, and the chain goes on.
      await b.chain.generateToAddress(1, POOL, 1e12);
      assert.ok(b.wallet.getTransaction(txids[2]).confirmations === 1);
    } finally {
      rpc2.close();
      await b.close();
    }
  } finally {
    await a.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGKILL while it mines, pays and makes keys, again and again: each restart has every block, coin and key it reported', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hashhub-persist-kill-'));
  const env = { ...process.env, CHAIN_DATA_DIR: dir, CHAIN_PRUNE_DEPTH: '30' };
  const blocks = new Map<number, { hash: string; utxo: string }>();
  const addresses: string[] = [];
  const txs: { id: string; at: number }[] = [];
  let child: ChildProcess | null = null;
  try {
    for (let round = 0; round < 4; round++) {
      child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/chain-child.ts'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
      const c = child;
      let err = '';
      c.stderr!.on('data', (d) => { err += d; });
      let top = 0;
      const target = (blocks.size > 0 ? Math.max(...blocks.keys()) : 0) + 30 + Math.floor(Math.random() * 80);
      await new Promise<void>((resolve, reject) => {
        let buf = '';
        c.stdout!.on('data', (d) => {
          buf += d;
          const lines = buf.split('\n');
          buf = lines.pop() as string;
          for (const line of lines) {
            const [kind, a, b, u] = line.split(' ');
            if (kind === 'block') { blocks.set(Number(a), { hash: b, utxo: u }); top = Number(a); }
            if (kind === 'addr') addresses.push(a);
            if (kind === 'tx') txs.push({ id: a, at: top });
            // Killed at a random moment once far enough: in a block write, a chain state write, a key's fsync…
            if (top >= target && c.exitCode === null && !c.killed) setTimeout(() => c.kill('SIGKILL'), Math.random() * 30);
          }
        });
        // 'close', not 'exit': the last "block" lines written before the kill may not be read yet at 'exit'.
        c.once('close', (code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(`child exited ${code}: ${err}`))));
      });
      child = null;

      const h = await startEmbeddedChain({ dataDir: dir, mempoolTxs: 3, mempoolRefreshMs: 0, pruneDepth: 30 });
      try {
        const height = h.chain.height;
        const last = Math.max(...blocks.keys());
        // The block being stored when the kill came may be there too (it was written, not yet reported).
        assert.ok(height === last || height === last + 1, `round ${round}: height ${height}, last reported ${last}`);
        const at = height === last ? height : height - 1;
        assert.equal(h.chain.index.active[at].hashHex, blocks.get(at)!.hash, `round ${round}: block ${at}`);
        const coins = height === last ? utxoDigest(h.chain) : digestOf(h.chain.coinsAt(at).coins);
        assert.equal(coins, blocks.get(at)!.utxo, `round ${round}: the coins at ${at}`);
        for (const a of addresses) assert.ok(h.wallet.dumpPrivKey(a), `round ${round}: key of ${a}`);
        // A payment is known while its block is not pruned (the chain forgets older ones, restart or not).
        for (const { id, at: when } of txs.filter((t) => t.at > height - 30)) {
          const found = h.chain.locateTx(id);
          assert.ok(found && (found.block !== null || found.inMempool), `round ${round}: tx ${id} (reported at ${when})`);
        }
      } finally {
        await h.close();
      }
      // Forget what deeper blocks said: the restarted chain is the reference from here on.
      for (const k of [...blocks.keys()]) if (k > h.chain.height) blocks.delete(k);
    }
  } finally {
    child?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a data dir from before checksums and real-transaction flags (v1 records, no chain state) restarts with its wallet payments', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hashhub-persist-v1-'));
  const opts: StartEmbeddedChainOptions = { dataDir: dir, mempoolTxs: 3, mempoolRefreshMs: 0 };
  const a = await startEmbeddedChain(opts);
  try {
    const made = [a.wallet.newAddress()];
    await a.chain.generateToAddress(101, POOL, 1e12);
    const txids = [walletPay(a, made[0], 5_000_000n, made[0]) as string, walletPay(a, OUTSIDE, 7_000_000n, made[0]) as string];
    await a.chain.generateToAddress(3, POOL, 1e12);
    const before = chainView(a, [], txids);
    await a.close();
    // Rewrite blocks.dat as the previous version wrote it: Core's frame, no checksum, blocks without the flags.
    const file = path.join(dir, 'blocks.dat');
    const v2 = readFileSync(file);
    const out: Buffer[] = [];
    for (let o = 0; o < v2.length;) {
      const len = v2.readUInt32LE(o + 4);
      let p = v2.subarray(o + 12, o + 12 + len);
      if (p[0] === 0x04) {
        const count = p.readUInt32LE(5 + p.readUInt32LE(1));
        p = Buffer.concat([Buffer.from([0x01]), p.subarray(1, len - count)]);
      }
      const f = Buffer.alloc(8);
      f.write('fabfb5da', 'hex');
      f.writeUInt32LE(p.length, 4);
      out.push(f, p);
      o += 12 + len;
    }
    writeFileSync(file, Buffer.concat(out));
    const b = await startEmbeddedChain(opts);
    try {
      assert.deepEqual(chainView(b, [], txids), before);
    } finally {
      await b.close();
    }
  } finally {
    await a.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('wallet.dat: a torn last record is cut off, the keys before it kept; damage before an intact record is one clear line', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hashhub-persist-wallet-'));
  const opts: StartEmbeddedChainOptions = { dataDir: dir, mempoolTxs: 0, mempoolRefreshMs: 0 };
  try {
    const a = await startEmbeddedChain(opts);
    const made = [a.wallet.newAddress(), a.wallet.newAddress()];
    await a.close();
    const file = path.join(dir, 'wallet.dat');
    const intact = readFileSync(file);
    writeFileSync(file, Buffer.concat([intact, Buffer.from('4848423221000000deadbeef10aa', 'hex')]));
    const b = await startEmbeddedChain(opts);
    try {
      for (const m of made) assert.ok(b.wallet.dumpPrivKey(m));
      assert.deepEqual(readFileSync(file), intact);
    } finally {
      await b.close();
    }
    const bad = Buffer.from(intact);
    bad[20] ^= 0x01; // in the first key, with the second intact after it
    writeFileSync(file, bad);
    await assert.rejects(startEmbeddedChain(opts), (e: unknown) => e instanceof ChainDataError && e.message.split('\n').length === 1
      && /wallet\.dat is damaged at byte 0 .*checksum mismatch.*truncate it to 0 bytes/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a crash after a prune, before its chain state was written: the previous state and the whole blocks above it give the same chain', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hashhub-persist-state-'));
  const opts: StartEmbeddedChainOptions = { dataDir: dir, mempoolTxs: 2, mempoolRefreshMs: 0, pruneDepth: 10 };
  const a = await startEmbeddedChain(opts);
  try {
    const made = [a.wallet.newAddress()];
    await a.chain.generateToAddress(115, made[0], 1e12);
    const txids = [walletPay(a, OUTSIDE, 3_000_000n, made[0]) as string];
    const state = path.join(dir, 'chainstate.dat');
    const older = readFileSync(state);
    await a.chain.generateToAddress(110, POOL, 1e12);
    assert.notDeepEqual(readFileSync(state), older, 'a newer chain state was written');
    const before = chainView(a, made, txids);
    await a.close();
    writeFileSync(state, older);
    const b = await startEmbeddedChain(opts);
    try {
      assert.deepEqual(chainView(b, made, txids), before);
    } finally {
      await b.close();
    }
    // A damaged chain state: one clear line.
    writeFileSync(state, Buffer.concat([older.subarray(0, 9), Buffer.alloc(32, 7), older.subarray(41)]));
    await assert.rejects(startEmbeddedChain(opts), (e: unknown) => e instanceof ChainDataError && /chainstate\.dat is damaged \(checksum mismatch\)/.test(e.message));
  } finally {
    await a.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
