// The node side of the tip-latency benchmark, in its own process (its own event loop, like bitcoind): the
// embedded chain with a ZMQ hashblock publisher. stdout: one JSON line with its RPC and ZMQ addresses, then one
// line per block it mines ({"hash", "at"}: wall-clock ms, high resolution, at the moment the new tip is
// announced, i.e. when the hashblock message is queued). stdin: "mine\n" mines a block on the tip.
import { createInterface } from 'node:readline';
import { startEmbeddedChain } from '../src/node/regtest/index.ts';

const now = (): number => performance.timeOrigin + performance.now();
const h = await startEmbeddedChain({ mempoolTxs: 200, mempoolRefreshMs: 0, zmqPubHashBlock: 'tcp://127.0.0.1:0' });
h.chain.on('tip', (tip) => process.stdout.write(`${JSON.stringify({ hash: tip.hashHex, at: now() })}\n`));
process.stdout.write(`${JSON.stringify({ url: h.url, user: h.user, password: h.password, zmq: h.zmqAddress })}\n`);
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => { if (line.trim() === 'mine') void h.chain.mineBlock(); });
rl.on('close', () => { void h.close().then(() => process.exit(0)); });
