import { randomBytes } from 'node:crypto';
import { hashFromDisplay } from '../chain/index.ts';
import type { BlockTemplate } from '../node/types.ts';
import type { CoinbaseOutput } from '../chain/index.ts';
import { type Job, type JobSpec, buildJob, jobVariant } from './job.ts';
import { type ShareKeySet, WorkKeySets } from './share-keys.ts';

export interface JobManagerOptions {
  extranonceSize: number;
  tag: Uint8Array;
  outputs: JobSpec['outputs'];
  /** How long a job is kept after it was superseded, so late shares are classified (stale), not "unknown". */
  retentionMs?: number;
  /** Hard cap on jobs kept. */
  maxJobs?: number;
}

/** Random bytes in each template job's coinbase (a 9-byte push): two jobs share them with odds of 2^-64. */
export const JOB_NONCE_BYTES = 8;

/**
 * What a share is validated against: the jobs of one source of work (the pool's templates, or one route's
 * upstream pool), their staleness and their duplicate sets. A session validates each share against the source
 * of the job it names (DESIGN.md: JobSource per session).
 */
export interface JobSource {
  get(id: string): Job | undefined;
  isStale(job: Job): boolean;
  /**
   * Record an accepted share of a job by its header hash (32 bytes, internal order: the same share always has the
   * same one) and its ntime; false if it was seen before (a duplicate) or the job is gone.
   */
  markSeen(jobId: string, hash: Uint8Array, ntime: number): boolean;
}

/**
 * Jobs from templates. A new tip makes every older job stale; jobs stay known for `retentionMs` so shares for
 * them are classified stale rather than unknown, then are dropped (a key set goes with the last job of its work).
 */
export class JobManager implements JobSource {
  private readonly jobs = new Map<string, Job>();
  /** Each live job's (and variant's) accepted shares; jobs with the same work share one (WorkKeySets: only jobs
   *  given to addJob can be, template jobs each have a coinbase nonce). */
  private readonly duplicates = new Map<string, ShareKeySet>();
  private readonly keySets = new WorkKeySets();
  /** Coinbase variants (SOLO miners' coinbases) per pool job id, by variant key; dropped with their pool job. */
  private readonly variants = new Map<string, Map<string, Job>>();
  /** Every variant by its own id (the id miners were sent). */
  private readonly variantsById = new Map<string, Job>();
  private counter = 0;
  private currentJob: Job | null = null;
  /** The node's best block when it moved before a template on it came (markTip); cleared by the next job. */
  private nodeTip: Buffer | null = null;
  private readonly retentionMs: number;
  private readonly maxJobs: number;

  constructor(private readonly opts: JobManagerOptions) {
    this.retentionMs = opts.retentionMs ?? 10 * 60_000;
    this.maxJobs = opts.maxJobs ?? 256;
  }

  get current(): Job | null { return this.currentJob; }

  /**
   * The tip work must build on (internal order): the node's new best block after markTip(), else the one the
   * current job builds on. Shares for jobs on another tip are stale.
   */
  get tip(): Buffer | null { return this.nodeTip ?? this.currentJob?.prevHash ?? null; }

  /**
   * The node's best block is now `hashHex` (display hex), seen (ZMQ, polling) before a template on it: every job
   * on another tip is stale from now on, even if no template comes for a while. The next job clears it.
   */
  markTip(hashHex: string): void {
    const hash = hashFromDisplay(hashHex);
    this.nodeTip = this.currentJob?.prevHash.equals(hash) ? null : hash;
  }

  /** Build and register a job; returns it with whether miners must drop older work (new tip). */
  addTemplate(t: BlockTemplate, now: number): { job: Job; clean: boolean } {
    // Against the tip miners were last given work on (not markTip's): they must drop that work.
    const prevTip = this.currentJob?.prevHash ?? null;
    // Job ids: short hex, unique for this process lifetime (cpuminer needs string ids that change per job).
    const id = (++this.counter).toString(16);
    // A coinbase of its own (JOB_NONCE_BYTES random bytes): a share of this job is a share of no other job, before
    // or after a restart, whatever the node's clock does (the key sets alone could not promise that: WorkKeySets).
    const nonce = randomBytes(JOB_NONCE_BYTES);
    const job = buildJob(t, { id, extranonceSize: this.opts.extranonceSize, tag: this.opts.tag, nonce, outputs: this.opts.outputs, now });
    this.addJob(job, now);
    return { job, clean: prevTip === null || !prevTip.equals(job.prevHash) };
  }

  /** Register a job built elsewhere (e.g. from a real block in tests, or an upstream source later) as current. */
  addJob(job: Job, now: number): void {
    // A variant's id too: the two would share one entry of `duplicates`, and a share on one would be checked
    // against the other's key set.
    if (this.jobs.has(job.id) || this.variantsById.has(job.id)) throw new Error(`job id ${job.id} already exists`);
    this.jobs.set(job.id, job);
    this.duplicates.set(job.id, this.keySets.acquire(job.notifyBody));
    this.currentJob = job;
    // A template is the node's latest word on its tip (a reorg back is announced again by markTip).
    this.nodeTip = null;
    this.prune(now);
  }

  get(id: string): Job | undefined { return this.jobs.get(id) ?? this.variantsById.get(id); }

  /**
   * The variant of a pool job whose coinbase has these outputs (made once per key and job: e.g. one per SOLO
   * payout script). Its id is the pool job's id with a suffix; it has its coinbase's key set, is stale exactly
   * when its pool job is, and is forgotten with it. A variant of a variant is the variant of its pool job.
   */
  variant(job: Job, key: string, outputs: (coinbaseValue: bigint) => CoinbaseOutput[]): Job {
    const base = job.base ?? job;
    let byKey = this.variants.get(base.id);
    if (!byKey) {
      if (!this.jobs.has(base.id)) return base; // pruned: it is unknown to validation anyway
      byKey = new Map();
      this.variants.set(base.id, byKey);
    }
    let v = byKey.get(key);
    if (!v) {
      // `<pool job id>s<n>`: template job ids are plain hex, but a job given to addJob may have taken one.
      let n = byKey.size + 1;
      let id = `${base.id}s${n.toString(16)}`;
      while (this.jobs.has(id) || this.variantsById.has(id)) id = `${base.id}s${(++n).toString(16)}`;
      v = jobVariant(base, id, outputs(base.coinbaseValue));
      byKey.set(key, v);
      this.variantsById.set(v.id, v);
      this.duplicates.set(v.id, this.keySets.acquire(v.notifyBody));
    }
    return v;
  }

  isStale(job: Job): boolean {
    const tip = this.tip;
    return tip !== null && !tip.equals(job.prevHash);
  }

  markSeen(jobId: string, hash: Uint8Array, ntime: number): boolean {
    const set = this.duplicates.get(jobId);
    if (!set) return false; // a pruned job: nothing can be credited on it any more
    return set.add(hash, ntime);
  }

  get size(): number { return this.jobs.size; }

  /** Distinct works among the live jobs and variants, each with its key set (for tests). */
  get keySetCount(): number { return this.keySets.size; }

  /** Key sets kept after their works' last job (WorkKeySets; for tests). */
  get keySetsAside(): number { return this.keySets.asideCount; }

  private prune(now: number): void {
    // Key sets: against the current job's time (WorkKeySets: how long a share recorded in one could be replayed).
    const ntimeNow = this.currentJob?.ntime ?? 0;
    this.keySets.sweep(ntimeNow);
    for (const [id, job] of this.jobs) {
      if (job === this.currentJob) continue;
      if (this.jobs.size > this.maxJobs || now - job.createdAt > this.retentionMs) {
        this.jobs.delete(id);
        this.duplicates.delete(id);
        this.keySets.release(job.notifyBody, ntimeNow);
        for (const v of this.variants.get(id)?.values() ?? []) {
          this.variantsById.delete(v.id);
          this.duplicates.delete(v.id);
          this.keySets.release(v.notifyBody, ntimeNow);
        }
        this.variants.delete(id);
      }
    }
  }
}
