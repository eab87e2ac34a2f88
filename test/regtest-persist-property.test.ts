// Property: any sequence of mining, wallet payments, new keys and restarts leaves the restarted embedded chain
// with the coins of a reference chain that never restarted (fed the same blocks and transactions), and its
// wallet as it was just before each restart. Pruning at depth 10 makes restarts cross chain-state writes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { EmbeddedChain, type EmbeddedChainHandle, startEmbeddedChain } from '../src/node/regtest/index.ts';
import { chainView, utxoDump, walletPay } from './helpers/chain-state.ts';

const POOL = 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080';
const OUTSIDE = 'bcrt1q0ht9tyks4vh7p5p904t340cr9nvahy7uevmqwj';

type Op =
  | { kind: 'mine'; n: number; toMade: boolean }
  | { kind: 'pay'; sats: number; toMade: boolean }
  | { kind: 'newaddr' }
  | { kind: 'restart' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('mine' as const), n: fc.integer({ min: 1, max: 70 }), toMade: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('pay' as const), sats: fc.integer({ min: 10_000, max: 50_000_000 }), toMade: fc.boolean() }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'newaddr' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'restart' as const }) },
);

test('random mine / pay / new key / restart sequences keep the coins equal to a chain that never restarted', async () => {
  const seed = Number(process.env.FC_SEED ?? Date.now() % 1_000_000);
  await fc.assert(fc.asyncProperty(fc.array(opArb, { minLength: 3, maxLength: 14 }), async (ops) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hashhub-persist-prop-'));
    const opts = { dataDir: dir, mempoolTxs: 0, mempoolRefreshMs: 0, pruneDepth: 10 };
    const ref = new EmbeddedChain({ mempoolTxs: 0, mempoolRefreshMs: 0 });
    let h: EmbeddedChainHandle = await startEmbeddedChain(opts);
    const made: string[] = [h.wallet.newAddress()];
    const txids: string[] = [];
    try {
      for (const op of ops) {
        if (op.kind === 'mine') {
          for (let i = 0; i < op.n; i++) {
            const m = await h.chain.mineBlock({ address: op.toMade ? made[i % made.length] : POOL });
            assert.equal(m.result, null);
            assert.equal(ref.submitBlock(Buffer.from(m.hex, 'hex')), null);
          }
        } else if (op.kind === 'pay') {
          const id = walletPay(h, op.toMade ? made[made.length - 1] : OUTSIDE, BigInt(op.sats), made[0]);
          if (id) {
            txids.push(id);
            ref.acceptTransaction(h.chain.getOffered(id)!.bytes);
          }
        } else if (op.kind === 'newaddr') {
          made.push(h.wallet.newAddress());
        } else {
          const before = chainView(h, made, txids);
          await h.close();
          h = await startEmbeddedChain(opts);
          assert.deepEqual(chainView(h, made, txids), before);
        }
        assert.equal(h.chain.tip.hashHex, ref.tip.hashHex);
        assert.deepEqual(utxoDump(h.chain), utxoDump(ref));
      }
    } finally {
      await h.close();
      ref.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }), { numRuns: 25, seed, endOnFailure: true });
});
