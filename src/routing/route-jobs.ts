import { bitsToTarget, targetBytes, targetToDifficulty } from '../chain/index.ts';
import type { Job } from '../shares/job.ts';
import type { JobSource } from '../shares/jobs.ts';
import { type ShareKeySet, WorkKeySets } from '../shares/share-keys.ts';
import { WorkHasher, prevHashFromStratum } from '../shares/work.ts';
import type { UpstreamNotify } from './upstream.ts';

/** What the route knows of one upstream job beyond the Job: the difficulty in force and its clean generation. */
export interface RouteJobMeta {
  upstreamJobId: string;
  /** The upstream's difficulty for shares on this job (set_difficulty before its notify). */
  upstreamDifficulty: number;
  generation: number;
}

/**
 * One route's upstream jobs as a JobSource: the session validates shares on them exactly as on pool jobs
 * (coinbase, merkle path, header, the job's target), with their own staleness (a clean_jobs notify or a new prev
 * hash from the upstream) and duplicate sets. Job ids given to miners are `r<route>.<n>`: never a pool job id.
 */
export class RouteJobs implements JobSource {
  private readonly jobs = new Map<string, Job>();
  private readonly meta = new WeakMap<Job, RouteJobMeta>();
  /** Each live job's accepted shares; jobs the upstream sent again with the same work share one (WorkKeySets). */
  private readonly seen = new Map<string, ShareKeySet>();
  private readonly keySets = new WorkKeySets();
  private counter = 0;
  private generation = 0;
  private latest: Job | null = null;

  constructor(private readonly prefix: string, private readonly maxJobs = 64) {}

  get current(): Job | null { return this.latest; }

  /** A job from the upstream's notify; extranonceSize = the upstream's extranonce1 + extranonce2 bytes. */
  add(n: UpstreamNotify, upstreamDifficulty: number, extranonceSize: number, now: number): Job {
    const prevHash = prevHashFromStratum(n.prevHash);
    if (n.clean || (this.latest && !this.latest.prevHash.equals(prevHash))) this.generation++;
    const bits = parseInt(n.nbits, 16) >>> 0;
    const networkTarget = bitsToTarget(bits);
    const id = `${this.prefix}.${(++this.counter).toString(16)}`;
    const job: Job = {
      id,
      height: 0,
      prevHash,
      prevHashHex: n.prevHash,
      version: parseInt(n.version, 16) >>> 0,
      bits,
      networkTarget,
      networkTargetBytes: targetBytes(networkTarget),
      networkDifficulty: targetToDifficulty(networkTarget),
      ntime: parseInt(n.ntime, 16) >>> 0,
      coinbaseValue: 0n,
      hasher: new WorkHasher(Buffer.from(n.coinb1, 'hex'), Buffer.from(n.coinb2, 'hex'), extranonceSize, n.branch.map((b) => Buffer.from(b, 'hex')), prevHash, bits),
      txs: { count: 0, bytes: Buffer.alloc(0) },
      segwit: false,
      createdAt: now,
      // The upstream's own fields, as it sent them: the miner works exactly the upstream's job.
      notifyHead: '{"id":null,"method":"mining.notify","params":["',
      notifyBody: `","${n.prevHash}","${n.coinb1}","${n.coinb2}",${JSON.stringify(n.branch)},"${n.version}","${n.nbits}","`,
      upstreamJobId: n.jobId,
      // The upstream's coinbase is the upstream's: no variants of it are ever made (SOLO is pool work only).
      coinbase: { height: 0, extranonceSize, tag: new Uint8Array(0), witnessCommitmentScript: undefined, branch: [], notifyTail: '', prevHashStratum: n.prevHash },
      base: null,
    };
    this.jobs.set(id, job);
    this.meta.set(job, { upstreamJobId: n.jobId, upstreamDifficulty, generation: this.generation });
    this.seen.set(id, this.keySets.acquire(job.notifyBody));
    this.latest = job;
    // Key sets: against the newest job's time (WorkKeySets: how long a share recorded in one could be replayed).
    this.keySets.sweep(job.ntime);
    while (this.jobs.size > this.maxJobs) {
      const oldest = this.jobs.keys().next().value as string;
      this.keySets.release(this.jobs.get(oldest)!.notifyBody, job.ntime);
      this.jobs.delete(oldest);
      this.seen.delete(oldest);
    }
    return job;
  }

  info(job: Job): RouteJobMeta | undefined { return this.meta.get(job); }

  get(id: string): Job | undefined { return this.jobs.get(id); }

  /** Distinct works among the kept jobs, each with its key set (for tests). */
  get keySetCount(): number { return this.keySets.size; }

  /** Superseded by a clean_jobs notify or a new prev hash: the upstream would answer stale. */
  isStale(job: Job): boolean {
    const m = this.meta.get(job);
    return !m || m.generation !== this.generation;
  }

  markSeen(jobId: string, hash: Uint8Array, ntime: number): boolean {
    const set = this.seen.get(jobId);
    return set !== undefined && set.add(hash, ntime);
  }

  /** Every job becomes stale (new upstream connection or extranonce: its old jobs are worthless upstream). */
  invalidate(): void {
    this.generation++;
    this.latest = null;
  }
}
