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
    const known = (i: number): boolean => {
      const w = this.workAt(i);
      return (w.route ? w.route.jobs : poolJobs).get(this.jobs[i].id) === this.jobs[i];
    };
    let from = 0;
    while (from < n && !known(from)) from++;
    let kept: number[];
    if (n - from >= this.max / 2) {
      kept = [];
      for (let i = from; i < n; i++) if (known(i)) kept.push(i);
    } else {
      kept = new Array<number>(n - from);
      for (let i = from; i < n; i++) kept[i - from] = i;
    }
    // At the cap, the oldest kept entry makes room for the new one.
    if (kept.length >= this.max) kept = kept.slice(kept.length - this.max + 1);
    const ownId = id === job.id;
    const poolWork = work === this.poolWork;
    this.ids = this.ids === null && ownId ? null : defaultOrCopy(kept, this.ids, id, (i) => this.jobs[i].id, (i, v) => v === this.jobs[i].id, ownId);
    this.works = this.works === null && poolWork ? null : defaultOrCopy(kept, this.works, work, () => this.poolWork, (_, v) => v === this.poolWork, poolWork);
    this.jobs = copy(kept, this.jobs, job);
    this.difficulties = copy(kept, this.difficulties, difficulty);
    this.targets = copy(kept, this.targets, target);
  }
}

/** The entries at `kept`, then `last`, in a new array of exactly that length. */
function copy<T>(kept: readonly number[], from: readonly T[], last: T): T[] {
  const out = new Array<T>(kept.length + 1);
  for (let k = 0; k < kept.length; k++) out[k] = from[kept[k]];
  out[kept.length] = last;
  return out;
}

/**
 * As copy, for a column kept only while some entry differs from its default: null when every entry kept and the
 * new one are the default. `from` null means every old entry was (`fallback` gives it, by old index).
 */
function defaultOrCopy<T>(kept: readonly number[], from: readonly T[] | null, last: T, fallback: (i: number) => T, isDefault: (i: number, v: T) => boolean, lastIsDefault: boolean): T[] | null {
  let allDefault = lastIsDefault;
  if (from !== null) for (let k = 0; k < kept.length && allDefault; k++) allDefault = isDefault(kept[k], from[kept[k]]);
  if (allDefault) return null;
  const out = new Array<T>(kept.length + 1);
  for (let k = 0; k < kept.length; k++) out[k] = from === null ? fallback(kept[k]) : from[kept[k]];
  out[kept.length] = last;
  return out;
}
