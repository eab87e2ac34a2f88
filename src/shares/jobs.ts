import type { BlockTemplate } from '../node/types.ts';
import { type Job, type JobSpec, buildJob } from './job.ts';

export interface JobManagerOptions {
  extranonceSize: number;
  tag: Uint8Array;
  outputs: JobSpec['outputs'];
  /** How long a job is kept after it was superseded, so late shares are classified (stale), not "unknown". */
  retentionMs?: number;
  /** Hard cap on jobs kept. */
  maxJobs?: number;
}

/**
 * Jobs from templates. A new tip makes every older job stale; jobs stay known for `retentionMs` so shares for
 * them are classified stale rather than unknown, then are dropped with their duplicate sets.
 */
export class JobManager {
  private readonly jobs = new Map<string, Job>();
  private readonly duplicates = new Map<string, Set<string>>();
  private counter = 0;
  private currentJob: Job | null = null;
  private readonly retentionMs: number;
  private readonly maxJobs: number;

  constructor(private readonly opts: JobManagerOptions) {
    this.retentionMs = opts.retentionMs ?? 10 * 60_000;
    this.maxJobs = opts.maxJobs ?? 256;
  }

  get current(): Job | null { return this.currentJob; }

  /** Tip the current job builds on (internal order); shares for jobs on another tip are stale. */
  get tip(): Buffer | null { return this.currentJob?.prevHash ?? null; }

  /** Build and register a job; returns it with whether miners must drop older work (new tip). */
  addTemplate(t: BlockTemplate, now: number): { job: Job; clean: boolean } {
    const prevTip = this.tip;
    // Job ids: short hex, unique for this process lifetime (cpuminer needs string ids that change per job).
    const id = (++this.counter).toString(16);
    const job = buildJob(t, { id, extranonceSize: this.opts.extranonceSize, tag: this.opts.tag, outputs: this.opts.outputs, now });
    this.addJob(job, now);
    return { job, clean: prevTip === null || !prevTip.equals(job.prevHash) };
  }

  /** Register a job built elsewhere (e.g. from a real block in tests, or an upstream source later) as current. */
  addJob(job: Job, now: number): void {
    if (this.jobs.has(job.id)) throw new Error(`job id ${job.id} already exists`);
    this.jobs.set(job.id, job);
    this.duplicates.set(job.id, new Set());
    this.currentJob = job;
    this.prune(now);
  }

  get(id: string): Job | undefined { return this.jobs.get(id); }

  isStale(job: Job): boolean {
    const tip = this.tip;
    return tip !== null && !tip.equals(job.prevHash);
  }

  /** Record a share key for its job; false if it was seen before (a duplicate). */
  markSeen(jobId: string, key: string): boolean {
    const set = this.duplicates.get(jobId);
    if (!set) return false; // a pruned job: nothing can be credited on it any more
    if (set.has(key)) return false;
    set.add(key);
    return true;
  }

  get size(): number { return this.jobs.size; }

  private prune(now: number): void {
    for (const [id, job] of this.jobs) {
      if (job === this.currentJob) continue;
      if (this.jobs.size > this.maxJobs || now - job.createdAt > this.retentionMs) {
        this.jobs.delete(id);
        this.duplicates.delete(id);
      }
    }
  }
}
