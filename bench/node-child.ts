// The embedded regtest chain in its own process, as a Core node is in production: a benchmark points
// `hashhub pool` at it (HASHHUB_NODE_URLS) so the node's own work (a 3,000-transaction mempool, templates, the
// wallet) is not counted in the pool's event loop. Prints one line `url user password` once it listens.
// Env: BENCH_NODE_MEMPOOL_TXS (default 3000), BENCH_NODE_DIFFICULTY (default 1).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startEmbeddedChain } from '../src/node/regtest/index.ts';

const dataDir = mkdtempSync(path.join(tmpdir(), 'hashhub-bench-node-'));
const h = await startEmbeddedChain({
  dataDir,
  mempoolTxs: Number(process.env.BENCH_NODE_MEMPOOL_TXS ?? 3000),
  difficulty: Number(process.env.BENCH_NODE_DIFFICULTY ?? 1),
  rpcThreads: 16,
});
process.stdout.write(`${h.url} ${h.user} ${h.password}\n`);
const stop = () => { void h.close().then(() => { rmSync(dataDir, { recursive: true, force: true }); process.exit(0); }); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
