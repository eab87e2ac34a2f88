import pino from 'pino';
import { difficultyToTarget, hashToBigInt, sha256d } from '../../src/chain/index.ts';
import type { NodeClient } from '../../src/node/types.ts';
import { Pool, type PoolOptions } from '../../src/pool/pool.ts';
import { InProcessShareLog } from '../../src/shares/events.ts';
import { WorkHasher, prevHashFromStratum, u32Hex } from '../../src/shares/work.ts';
import { DEFAULT_STRATUM_OPTIONS, type StratumOptions } from '../../src/stratum/options.ts';
import type { Msg } from './line-client.ts';

export const REGTEST_ADDRESS = 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080';

export async function startTestPool(node: NodeClient, stratum: Partial<StratumOptions> = {}, pool: Partial<Omit<PoolOptions, 'blocks'>> & { blocks?: Partial<PoolOptions['blocks']> } = {}) {
  const shareLog = new InProcessShareLog((e) => { throw e; });
  const p = new Pool(node, {
    network: 'regtest',
    payoutAddress: REGTEST_ADDRESS,
    poolTag: '/hashhub-test/',
    requireAddressAccounts: false,
    stratum: { ...DEFAULT_STRATUM_OPTIONS, host: '127.0.0.1', port: 0, initialDifficulty: 0.0001, tickMs: 100, ...stratum, vardiff: { ...DEFAULT_STRATUM_OPTIONS.vardiff, minDifficulty: 1e-8, ...(stratum.vardiff ?? {}) } },
    templates: { pollMs: 100, refreshMs: 60_000, longpoll: false },
    ...pool,
    blocks: { checkIntervalMs: 100, retryMinMs: 20, retryMaxMs: 200, ...(pool.blocks ?? {}), journalDir: pool.blocks?.journalDir ?? null },
  }, shareLog, pino({ level: process.env.TEST_LOG ?? 'silent' }));
  const { port, tlsPort } = await p.start();
  return { pool: p, port, tlsPort, shareLog };
}

/** Solve a share for a mining.notify the way a miner would (real sha256d), at the given difficulty. */
export function solveShare(notify: Msg, extranonce1Hex: string, en2Size: number, difficulty: number, opts: { en2?: string; versionBits?: number; above?: boolean } = {}) {
  const [jobId, prevhash, coinb1, coinb2, branch, version, nbits, ntime] = notify.params as [string, string, string, string, string[], string, string, string, boolean];
  const en1 = Buffer.from(extranonce1Hex, 'hex');
  const en2Hex = opts.en2 ?? '00'.repeat(en2Size - 1) + '01';
  const hasher = new WorkHasher(Buffer.from(coinb1, 'hex'), Buffer.from(coinb2, 'hex'), en1.length + en2Size, branch.map((b) => Buffer.from(b, 'hex')), prevHashFromStratum(prevhash), parseInt(nbits, 16));
  const root = hasher.merkleRootFor(en1, Buffer.from(en2Hex, 'hex'));
  const target = difficultyToTarget(difficulty);
  const v = opts.versionBits !== undefined ? ((parseInt(version, 16) & ~0x1fffe000) | opts.versionBits) >>> 0 : parseInt(version, 16);
  for (let nonce = 0; nonce < 100_000_000; nonce++) {
    const h = hashToBigInt(sha256d(hasher.header80(root, v, parseInt(ntime, 16), nonce)));
    if (opts.above ? h > target : h <= target) {
      const params = ['acct.w1', jobId, en2Hex, ntime, u32Hex(nonce)];
      if (opts.versionBits !== undefined) params.push(u32Hex(opts.versionBits));
      return params;
    }
  }
  throw new Error('no share found');
}
