import type { Job } from '../shares/job.ts';
import type { JobSource } from '../shares/jobs.ts';
import type { WorkAssignment } from './session.ts';

/** One job as a session sent it (what a share naming its id is validated and credited against). */
export interface SentJob {
  /** The id the miner was sent (a re-issue's differs from job.id). */
  id: string;
  job: Job;
  difficulty: number;
  /** 32 little-endian bytes (shared between sessions: read only). */
  target: Buffer;
  /** The work it was sent under: its source (route null: a pool job) and extranonce. */
  work: WorkAssignment;
}

/**
 * The jobs one session has sent, oldest first: the last `max` sends (sends, not distinct ids: an id sent twice
 * takes two slots and the newer counts), less those their source has dropped.
 *
 * Kept as parallel arrays, a slot per send in each, not an object per send. A long-running pool sends every miner
 * a job per template refresh and its JobManager keeps 10 minutes of them (21 at one per 30 s): an object per send,
 * its difficulty boxed, was about 84 bytes of heap each, 1.76 KB per idle connection after 25 refreshes (measured,
 * 2,000 sessions). Here a send is a job, a target and an unboxed double (24 bytes); the id and the work are kept
 * only by a session that needs them (a job re-issued under a new id, routed work), and dropped again once every
 * entry left is the default (its job's id, the pool's work).
 *
 * The arrays are replaced, never pushed to, on each send: a push gives an array room for 17 entries at its first
 * element and 1.5 times plus 16 whenever it grows, where a session mostly holds a few; a copy has exactly its
 * entries.
 */
export class SentJobs {
  private jobs: Job[] = [];
  private difficulties: number[] = [];
  private targets: Buffer[] = [];
  /** null while every entry's id is its job's. */
  private ids: string[] | null = null;
  /** null while every entry is the pool's work. */
  private works: WorkAssignment[] | null = null;

  constructor(private readonly poolWork: WorkAssignment, private readonly max: number) {}

  get length(): number { return this.jobs.length; }

  /** The newest entry sent under this id, or -1 (miners mostly answer the latest job: searched newest first). */
  find(id: string): number {
    const ids = this.ids;
    const jobs = this.jobs;
    for (let i = jobs.length - 1; i >= 0; i--) if ((ids === null ? jobs[i].id : ids[i]) === id) return i;
    return -1;
  }

  jobAt(i: number): Job { return this.jobs[i]; }
  difficultyAt(i: number): number { return this.difficulties[i]; }
  targetAt(i: number): Buffer { return this.targets[i]; }
  workAt(i: number): WorkAssignment { return this.works === null ? this.poolWork : this.works[i]; }
  idAt(i: number): string { return this.ids === null ? this.jobs[i].id : this.ids[i]; }

  /** Entry i as one object (made on demand: a routed share's route takes it). */
  entry(i: number): SentJob {
    return { id: this.idAt(i), job: this.jobs[i], difficulty: this.difficulties[i], target: this.targets[i], work: this.workAt(i) };
  }

  /**
   * Records a send. Jobs their source has dropped (JobManager's retention, a route's cap) can only be answered
   * "unknown job", found here or not: they are forgotten, oldest first. Kept, they held every connection at `max`
   * entries and kept whole pruned jobs, templates and all, alive long after the manager let them go (64 jobs at
   * one per 30 s is 32 minutes, against 10 of retention). The head can stay known while entries behind it are not
   * (a route the session left, whose jobs nobody prunes any more): past half the list (a job every 30 s makes
   * about 21 known ones), one pass drops them all.
   */
  add(id: string, job: Job, difficulty: number, target: Buffer, work: WorkAssignment, poolJobs: JobSource): void {
    const n = this.jobs.length;
    let from = 0;
    while (from < n && !this.known(from, poolJobs)) from++;
    // The old entries that stay, oldest first: [from, n), or the known ones of it (kept) past half the list.
    let kept: number[] | null = null;
    let count = n - from;
    if (count >= this.max / 2) {
      kept = [];
      for (let i = from; i < n; i++) if (this.known(i, poolJobs)) kept.push(i);
      count = kept.length;
    }
    // At the cap, the oldest make room for the new one.
    const skip = count >= this.max ? count - this.max + 1 : 0;
    const size = count - skip + 1;
    const last = size - 1;
    const base = kept === null ? from + skip : skip;
    const oldIds = this.ids;
    let ids: string[] | null = null;
    let needIds = id !== job.id;
    for (let k = 0; k < last && !needIds && oldIds !== null; k++) { const i = oldIndex(kept, base, k); needIds = oldIds[i] !== this.jobs[i].id; }
    if (needIds) {
      ids = new Array<string>(size);
      for (let k = 0; k < last; k++) { const i = oldIndex(kept, base, k); ids[k] = oldIds === null ? this.jobs[i].id : oldIds[i]; }
      ids[last] = id;
    }
    const oldWorks = this.works;
    let works: WorkAssignment[] | null = null;
    let needWorks = work !== this.poolWork;
    for (let k = 0; k < last && !needWorks && oldWorks !== null; k++) needWorks = oldWorks[oldIndex(kept, base, k)] !== this.poolWork;
    if (needWorks) {
      works = new Array<WorkAssignment>(size);
      for (let k = 0; k < last; k++) works[k] = oldWorks === null ? this.poolWork : oldWorks[oldIndex(kept, base, k)];
      works[last] = work;
    }
    const jobs = new Array<Job>(size);
    const difficulties = new Array<number>(size);
    const targets = new Array<Buffer>(size);
    for (let k = 0; k < last; k++) {
      const i = oldIndex(kept, base, k);
      jobs[k] = this.jobs[i];
      difficulties[k] = this.difficulties[i];
      targets[k] = this.targets[i];
    }
    jobs[last] = job;
    difficulties[last] = difficulty;
    targets[last] = target;
    this.jobs = jobs;
    this.difficulties = difficulties;
    this.targets = targets;
    this.ids = ids;
    this.works = works;
  }

  /** Entry i's job is still its source's (validateShare's own test): a share for it can be credited or called stale. */
  private known(i: number, poolJobs: JobSource): boolean {
    const w = this.works === null ? this.poolWork : this.works[i];
    return (w.route ? w.route.jobs : poolJobs).get(this.jobs[i].id) === this.jobs[i];
  }
}

/**
 * The old index of the k-th entry of the new arrays: base + k in a run of old entries (kept null, base = the first
 * kept), else kept[base + k] (base = how many kept ones the cap drops). A function, not a closure made per send.
 */
function oldIndex(kept: readonly number[] | null, base: number, k: number): number {
  return kept === null ? base + k : kept[base + k];
}
