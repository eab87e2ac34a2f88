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
 * A slot per send in an array of jobs, not an object per send. A long-running pool sends every miner a job per
 * template refresh and its JobManager keeps 10 minutes of them (21 at one per 30 s): an object per send, its
 * difficulty boxed, was about 84 bytes of heap each, 1.7 KB per idle connection (measured, 2,000 sessions). What
 * else a send was made with (its id, difficulty and target, its work) is one value for the whole list while every
 * entry has the same, as a miner at a steady difficulty on one source has: a column of its own exists only while
 * the entries differ (a difficulty change, a job re-issued under a new id, a move to or from a route), and is
 * dropped once they no longer do. So a send mostly costs one slot, 8 bytes.
 *
 * The jobs array is replaced, never pushed to, on each send: a push gives an array room for 17 entries at its first
 * element and 1.5 times plus 16 whenever it grows, where a session mostly holds a few; a copy has exactly its
 * entries. (An array for every value was tried first: less heap still, but three arrays replaced per send, whose
 * garbage, promoted before the next send, left the pool's RSS higher than before with a template every 3 s.)
 */
export class SentJobs {
  private jobs: Job[] = [];
  /** Each entry's id; null while every entry's id is its job's. */
  private ids: string[] | null = null;
  /** Each entry's difficulty and target; null while every entry's are `difficulty` and `target`. */
  private difficulties: number[] | null = null;
  private targets: Buffer[] | null = null;
  private difficulty = 0;
  private target: Buffer | null = null;
  /** Each entry's work; null while every entry's is `work`. */
  private works: WorkAssignment[] | null = null;
  private work: WorkAssignment | null = null;

  constructor(private readonly max: number) {}

  get length(): number { return this.jobs.length; }

  /** The newest entry sent under this id, or -1 (miners mostly answer the latest job: searched newest first). */
  find(id: string): number {
    const ids = this.ids;
    const jobs = this.jobs;
    for (let i = jobs.length - 1; i >= 0; i--) if ((ids === null ? jobs[i].id : ids[i]) === id) return i;
    return -1;
  }

  jobAt(i: number): Job { return this.jobs[i]; }
  difficultyAt(i: number): number { return this.difficulties === null ? this.difficulty : this.difficulties[i]; }
  targetAt(i: number): Buffer { return this.targets === null ? this.target! : this.targets[i]; }
  workAt(i: number): WorkAssignment { return this.works === null ? this.work! : this.works[i]; }
  idAt(i: number): string { return this.ids === null ? this.jobs[i].id : this.ids[i]; }

  /** Entry i as one object (made on demand: a routed share's route takes it). */
  entry(i: number): SentJob {
    return { id: this.idAt(i), job: this.jobs[i], difficulty: this.difficultyAt(i), target: this.targetAt(i), work: this.workAt(i) };
  }

  /**
   * Records a send. Jobs their source has dropped (JobManager's retention, a route's cap) can only be answered
   * "unknown job", found here or not: they are forgotten, oldest first. Kept, they held every connection at `max`
   * entries and kept whole pruned jobs, templates and all, alive long after the manager let them go (64 jobs at
   * one per 30 s is 32 minutes, against 10 of retention). The head can stay known while entries behind it are not
   * (a route the session left, whose jobs nobody prunes any more): past half the list (a job every 30 s makes
   * about 21 known ones), one pass drops them all. `target` must be the difficulty's (targetFor): entries of one
   * difficulty share one target value.
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
    const last = count - skip;
    const base = kept === null ? from + skip : skip;
    // Ids: the default differs per entry (its job's own id).
    const oldIds = this.ids;
    let needIds = id !== job.id;
    for (let k = 0; k < last && !needIds && oldIds !== null; k++) { const i = oldIndex(kept, base, k); needIds = oldIds[i] !== this.jobs[i].id; }
    let ids: string[] | null = null;
    if (needIds) {
      ids = new Array<string>(last + 1);
      for (let k = 0; k < last; k++) { const i = oldIndex(kept, base, k); ids[k] = oldIds === null ? this.jobs[i].id : oldIds[i]; }
      ids[last] = id;
    }
    const difficulties = column(this.difficulties, this.difficulty, kept, base, last, difficulty);
    const targets = difficulties === null ? null : column(this.targets, this.target!, kept, base, last, target, true);
    const works = column(this.works, this.work!, kept, base, last, work);
    const jobs = new Array<Job>(last + 1);
    for (let k = 0; k < last; k++) jobs[k] = this.jobs[oldIndex(kept, base, k)];
    jobs[last] = job;
    this.jobs = jobs;
    this.ids = ids;
    this.difficulties = difficulties;
    this.targets = targets;
    this.works = works;
    // While a column is null every entry's value is the newest one's.
    this.difficulty = difficulty;
    this.target = target;
    this.work = work;
  }

  /** Entry i's job is still its source's (validateShare's own test): a share for it can be credited or called stale. */
  private known(i: number, poolJobs: JobSource): boolean {
    const w = this.workAt(i);
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

/**
 * A column of the `last` old entries that stay and the new `value`: null when they all have that value (`col` null:
 * every old entry's is `uniform`), else an array of exactly their values. `always` makes the array whatever the
 * values (the targets, kept beside a difficulty column).
 */
function column<T>(col: readonly T[] | null, uniform: T, kept: readonly number[] | null, base: number, last: number, value: T, always = false): T[] | null {
  let same = !always;
  if (same && col === null) same = last === 0 || uniform === value;
  else for (let k = 0; k < last && same; k++) same = col![oldIndex(kept, base, k)] === value;
  if (same) return null;
  const out = new Array<T>(last + 1);
  for (let k = 0; k < last; k++) out[k] = col === null ? uniform : col[oldIndex(kept, base, k)];
  out[last] = value;
  return out;
}
