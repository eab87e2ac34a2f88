// A process that runs the embedded chain on a data dir and keeps changing it, for tests that SIGKILL it at any
// point: it mines blocks (to the pool's address and to addresses its wallet makes) and pays from the wallet,
// printing each result only once the chain has it (a line per step; printLine: a line printed is a line the test
// reads, also after the kill):
//   ready <height>
//   addr <address>                  (returned by the wallet: must be its own after any restart)
//   block <height> <hash> <utxo>    (the tip after a block, and the digest of every coin at that tip)
//   tx <txid>                       (a payment the chain accepted)
// Env: CHAIN_DATA_DIR, CHAIN_PRUNE_DEPTH (default 1000).

import { startEmbeddedChain } from '../../src/node/regtest/index.ts';
import { utxoDigest, walletPay } from './chain-state.ts';
import { printLine } from './print-line.ts';

const POOL = 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080';
const say = (line: string): void => { printLine(`${line}\n`); };

const h = await startEmbeddedChain({
  dataDir: process.env.CHAIN_DATA_DIR, mempoolTxs: 3, mempoolRefreshMs: 0, pruneDepth: Number(process.env.CHAIN_PRUNE_DEPTH ?? 1000),
});
say(`ready ${h.chain.height}`);
const made: string[] = [];
for (let i = 0; ; i++) {
  if (i % 7 === 0) {
    const a = h.wallet.newAddress();
    made.push(a);
    say(`addr ${a}`);
  }
  if (i % 5 === 0) {
    const id = walletPay(h, made[i % made.length], 100_000n + BigInt(i), made[(i + 1) % made.length]);
    if (id) say(`tx ${id}`);
  }
  const to = i % 3 === 0 ? made[i % made.length] : POOL;
  await h.chain.generateToAddress(1, to, 1e12);
  say(`block ${h.chain.height} ${h.chain.tip.hashHex} ${utxoDigest(h.chain)}`);
}
