import { randomBytes } from 'node:crypto';
import { difficultyToTarget, targetBytes, hashFromDisplay, serializeTx, toHex, txidHex, witnessCommitment, witnessCommitmentScript, witnessMerkleRoot } from '../src/chain/index.ts';
import type { BlockTemplate } from '../src/node/types.ts';
import { JobManager } from '../src/shares/jobs.ts';
import { type ShareContext, type SubmitParams, newRootCache, validateShare } from '../src/shares/validator.ts';
import { u32Hex } from '../src/shares/work.ts';

/** A template with `n` transactions (n = 3000 gives the 12-level merkle branch of a full mainnet block). */
export function bigTemplate(n: number): BlockTemplate {
  const txs = Array.from({ length: n }, () => {
    const tx = { version: 2, locktime: 0, inputs: [{ prevTxid: randomBytes(32), vout: 0, scriptSig: randomBytes(100), sequence: 0xffffffff, witness: [] }], outputs: [{ value: 1000n, scriptPubKey: randomBytes(22) }] };
    const id = txidHex(tx);
    return { data: toHex(serializeTx(tx)), txid: id, hash: id, fee: 500 };
  });
  const now = Math.floor(Date.now() / 1000);
  return {
    version: 0x20000000, rules: ['segwit'], previousblockhash: toHex(randomBytes(32)), transactions: txs, coinbasevalue: 312_500_000,
    target: '00000000ffff0000000000000000000000000000000000000000000000000000', mintime: now - 600, curtime: now, bits: '1d00ffff', height: 900_000,
    default_witness_commitment: toHex(witnessCommitmentScript(witnessCommitment(witnessMerkleRoot(txs.map((t) => hashFromDisplay(t.hash)))))),
  };
}

export interface ValidatorResult { shares: number; seconds: number; perSecond: number; usPerShare: number; branchLevels: number }

/**
 * Full validation (coinbase hash, 12-level merkle path, header hash, dedupe insert) of distinct shares, one core.
 * sameExtranonce2: 1,000 shares per extranonce2, as an ASIC rolling nonce and version bits sends them (the
 * session's merkle root cache then skips the coinbase and merkle path).
 */
/** solo: the shares are on a SOLO miner's coinbase variant of the job (src/pool/solo.ts), as a SOLO session's are. */
export function benchValidator(opts: { txs: number; seconds: number; accepted: boolean; sameExtranonce2?: boolean; solo?: boolean }): ValidatorResult {
  const jobs = new JobManager({ extranonceSize: 12, tag: Buffer.from('/hashhub/'), outputs: (v) => [{ value: v, scriptPubKey: Buffer.from('0014751e76e8199196d454941c45d1b3a323f1433bd6', 'hex') }] });
  const pooled = jobs.addTemplate(bigTemplate(opts.txs), Date.now()).job;
  const soloScript = Buffer.from('0014' + '11'.repeat(20), 'hex');
  const job = opts.solo
    ? jobs.variant(pooled, 'solo', (v) => [{ value: v - v / 100n, scriptPubKey: soloScript }, { value: v / 100n, scriptPubKey: Buffer.from('0014751e76e8199196d454941c45d1b3a323f1433bd6', 'hex') }])
    : pooled;
  const en1 = Buffer.from('00abcdef', 'hex');
  const ctx: ShareContext = {
    extranonce1: en1, extranonce2Size: 8, versionMask: 0x1fffe000, job,
    // accepted: every hash passes (so the accepted path, with its header copy, is what is measured)
    target: targetBytes(opts.accepted ? difficultyToTarget(1e-30) : difficultyToTarget(1e6)),
    rootCache: opts.sameExtranonce2 ? newRootCache() : undefined, nowSec: Math.floor(Date.now() / 1000), maxNtimeAheadSec: 600,
  };
  const ntime = u32Hex(job.ntime);
  let n = 0;
  let en2 = 0;
  const deadline = process.hrtime.bigint() + BigInt(Math.round(opts.seconds * 1e9));
  const start = process.hrtime.bigint();
  let now = start;
  while (now < deadline) {
    for (let i = 0; i < 1000; i++) {
      const p: SubmitParams = { worker: 'a.w', jobId: job.id, extranonce2: (opts.sameExtranonce2 ? en2 : en2++).toString(16).padStart(16, '0'), ntime, nonce: u32Hex(i * 7919), versionBits: '00002000' };
      const r = validateShare(jobs, ctx, p);
      if (r.outcome !== (opts.accepted ? 'accepted' : 'low-difficulty')) throw new Error(`unexpected ${r.outcome}`);
      n++;
    }
    if (opts.sameExtranonce2) en2++;
    now = process.hrtime.bigint();
  }
  const seconds = Number(now - start) / 1e9;
  return { shares: n, seconds, perSecond: n / seconds, usPerShare: (seconds * 1e6) / n, branchLevels: Math.ceil(Math.log2(opts.txs + 1)) };
}
