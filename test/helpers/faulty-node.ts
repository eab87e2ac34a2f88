import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { bitsToTarget, difficultyToTarget, hashToBigInt, sha256d } from '../../src/chain/index.ts';
import { BitcoinRpc } from '../../src/node/rpc.ts';
import { type EmbeddedChainHandle, type StartEmbeddedChainOptions, startEmbeddedChain } from '../../src/node/regtest/index.ts';
import type { TemplateSourceOptions } from '../../src/node/template-source.ts';
import { WorkHasher, prevHashFromStratum, u32Hex } from '../../src/shares/work.ts';
import { DEFAULT_VARDIFF } from '../../src/stratum/vardiff.ts';
import { LineClient, type Msg } from './line-client.ts';
import { startTestPool } from './pool.ts';
import { RpcFaultProxy } from './rpc-fault-proxy.ts';

/** Network difficulty of the chain: blocks take ~4,000 hashes to mine here, so a share (1e-8) is rarely one. */
export const CHAIN_DIFFICULTY = 1e-6;
export const SHARE_DIFFICULTY = 1e-8;
export const isNotify = (m: Msg): boolean => m.method === 'mining.notify';
export const isCleanNotify = (m: Msg): boolean => isNotify(m) && m.params?.[8] === true;

/**
 * An embedded chain with a data dir (cookie auth, blocks kept), a fault proxy in front of its RPC, a pool whose
 * BitcoinRpc talks through the proxy with short timeouts, and one subscribed, authorized miner.
 */
export async function startFaultyNode(opts: {
  templates?: Partial<TemplateSourceOptions>;
  chain?: StartEmbeddedChainOptions;
  rpc?: { timeoutMs?: number };
} = {}) {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'hashhub-node-'));
  const chainOpts: StartEmbeddedChainOptions = { dataDir, difficulty: CHAIN_DIFFICULTY, mempoolTxs: 4, mempoolRefreshMs: 0, ...opts.chain };
  let chain: EmbeddedChainHandle = await startEmbeddedChain(chainOpts);
  const proxy = await RpcFaultProxy.start({ host: '127.0.0.1', port: chain.port });
  const rpc = new BitcoinRpc({
    endpoints: [{ url: proxy.url, cookieFile: chain.cookieFile }],
    timeoutMs: opts.rpc?.timeoutMs ?? 300,
    endpointBackoffMs: 50,
    endpointBackoffMaxMs: 200,
  });
  // Difficulty pinned: vardiff would move it under the test's feet.
  const vardiff = { ...DEFAULT_VARDIFF, minDifficulty: SHARE_DIFFICULTY, maxDifficulty: SHARE_DIFFICULTY };
  const { pool, port } = await startTestPool(rpc, { initialDifficulty: SHARE_DIFFICULTY, vardiff }, {
    templates: { pollMs: 100, refreshMs: 60_000, longpoll: true, backoffMinMs: 50, backoffMaxMs: 200, zmq: { discover: false }, ...opts.templates },
  });
  const miner = new LineClient(port);
  await miner.connected();
  const sub = await miner.request(1, 'mining.subscribe', []);
  await miner.request(2, 'mining.authorize', ['acct.w1', 'x']);
  const [, en1, en2Size] = sub.result as [unknown, string, number];
  let nextId = 10;
  return {
    dataDir, proxy, rpc, pool, miner,
    get chain() { return chain; },
    firstNotify: await miner.waitFor(isNotify),
    /** The last mining.notify the miner got. */
    lastNotify(): Msg { return miner.messages.filter(isNotify).at(-1) as Msg; },
    /** A share on `notify` that meets the share target but not the network's (so it is not a block). */
    async submit(notify: Msg, en2 = Math.floor(Math.random() * 2 ** 32)): Promise<Msg> {
      return miner.request(nextId++, 'mining.submit', solveShareOnly(notify, en1, en2Size, en2));
    },
    /** Stops the node (its cookie goes) and starts it again on the same data dir; the proxy follows it. */
    async restartNode(): Promise<EmbeddedChainHandle> {
      await chain.close();
      chain = await startEmbeddedChain(chainOpts);
      proxy.retarget({ host: '127.0.0.1', port: chain.port });
      return chain;
    },
    async stop(): Promise<void> {
      miner.close();
      await pool.stop(100);
      rpc.close();
      await proxy.close();
      await chain.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function solveShareOnly(notify: Msg, en1Hex: string, en2Size: number, en2Seed: number): string[] {
  const [jobId, prevhash, coinb1, coinb2, branch, version, nbits, ntime] = notify.params as [string, string, string, string, string[], string, string, string];
  const en1 = Buffer.from(en1Hex, 'hex');
  const en2 = Buffer.alloc(en2Size);
  en2.writeUInt32LE(en2Seed >>> 0, 0);
  const hasher = new WorkHasher(Buffer.from(coinb1, 'hex'), Buffer.from(coinb2, 'hex'), en1.length + en2Size, branch.map((b) => Buffer.from(b, 'hex')), prevHashFromStratum(prevhash), parseInt(nbits, 16));
  const root = hasher.merkleRootFor(en1, en2);
  const shareTarget = difficultyToTarget(SHARE_DIFFICULTY);
  const networkTarget = bitsToTarget(parseInt(nbits, 16));
  for (let nonce = 0; nonce < 10_000_000; nonce++) {
    const h = hashToBigInt(sha256d(hasher.header80(root, parseInt(version, 16), parseInt(ntime, 16), nonce)));
    if (h <= shareTarget && h > networkTarget) return ['acct.w1', jobId, en2.toString('hex'), ntime, u32Hex(nonce)];
  }
  throw new Error('no share found');
}
