// A fixed number of fully validated shares (3,000-tx template, 12-level branch), for instruction counts:
//   valgrind --tool=callgrind --callgrind-out-file=/tmp/x node --import tsx bench/validator-count.ts 20000
// Run with two counts and subtract: the difference is the per-share cost, free of startup and of machine load.
// Args: <shares> [same] [solo] (same: 1,000 shares per extranonce2, the session's root cache on; solo: the shares
// are on a SOLO miner's coinbase variant of the job, as a SOLO session's are).
import { difficultyToTarget, targetBytes } from '../src/chain/index.ts';
import { JobManager } from '../src/shares/jobs.ts';
import { type ShareContext, newRootCache, validateShare } from '../src/shares/validator.ts';
import { u32Hex } from '../src/shares/work.ts';
import { bigTemplate } from './validator.ts';

const n = Number(process.argv[2] ?? 20000);
const same = process.argv.includes('same');
const jobs = new JobManager({ extranonceSize: 12, tag: Buffer.from('/hashhub/'), outputs: (v) => [{ value: v, scriptPubKey: Buffer.from('0014751e76e8199196d454941c45d1b3a323f1433bd6', 'hex') }] });
const pooled = jobs.addTemplate(bigTemplate(3000), Date.now()).job;
const job = process.argv.includes('solo')
  ? jobs.variant(pooled, 'solo', (v) => [{ value: v - v / 100n, scriptPubKey: Buffer.from('0014' + '11'.repeat(20), 'hex') }, { value: v / 100n, scriptPubKey: Buffer.from('0014751e76e8199196d454941c45d1b3a323f1433bd6', 'hex') }])
  : pooled;
const en1 = Buffer.from('00abcdef', 'hex');
const ctx: ShareContext = {
  extranonce1: en1, extranonce2Size: 8, versionMask: 0x1fffe000, job,
  target: targetBytes(difficultyToTarget(1e6)), rootCache: same ? newRootCache() : undefined,
  nowSec: Math.floor(Date.now() / 1000), maxNtimeAheadSec: 600,
};
const ntime = u32Hex(job.ntime);
const c0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
for (let i = 0; i < n; i++) {
  const en2 = same ? Math.floor(i / 1000) : i;
  const r = validateShare(jobs, ctx, { worker: 'a.w', jobId: job.id, extranonce2: en2.toString(16).padStart(16, '0'), ntime, nonce: u32Hex((i * 7919) >>> 0), versionBits: '00002000' });
  if (r.outcome !== 'low-difficulty') throw new Error(`unexpected ${r.outcome}`);
}
const s = Number(process.hrtime.bigint() - t0) / 1e9;
// CPU time of this process (user + system): steadier than wall time on a shared machine.
const cu = process.cpuUsage(c0);
const cpuS = (cu.user + cu.system) / 1e6;
console.log(`${n} shares in ${s.toFixed(3)} s: ${(n / s).toFixed(0)} shares/s, ${((s * 1e6) / n).toFixed(2)} µs/share; CPU ${((cpuS * 1e6) / n).toFixed(2)} µs/share`);
