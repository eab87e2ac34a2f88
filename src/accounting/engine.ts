import type { Logger } from 'pino';
import type { Database, Queryable } from '../store/db.ts';
import { BlockAccounting, type CreditOutcome, type SplitOutcome } from './blocks.ts';
import { Fpps, type PeriodOutcome } from './fpps.ts';
import { Ledger } from './ledger.ts';
import { type BooksFrame, paramsAt } from './params.ts';
import { aggregateChunk, bucketMs, pruneBuckets, readCursor } from './sums.ts';

// The accounting steps that run from the database alone, each unit of work (a period, a block) in its own
// transaction under one advisory lock, so two processes never do the same work at once and a failure in one unit
// neither rolls back nor blocks the others (except FPPS periods, which are credited strictly in order: each
// period's carry feeds the next).

/** Arbitrary constant: the accounting lock (migrations use …030, partitions …031). */
export const ACCOUNTING_LOCK = 4841526040;

export interface SourceStatus {
  source: string;
  committedTo: string;
  updatedAt: string;
  description: string | null;
}

export interface Watermark {
  /** Every live source has stored every share before this time (ms); null when no source has reported. */
  at: number | null;
  /** The source holding the watermark back (the one with the oldest committed time). */
  laggard: SourceStatus | null;
  sources: SourceStatus[];
}

/** Records missing block values (the chain side, needs the node). */
export interface ValueSource {
  ensure(heights: readonly number[]): Promise<{ recorded: number[]; notYet: number[] }>;
}

export interface StepReport {
  periods: PeriodOutcome[];
  adjustments: PeriodOutcome[];
  splits: SplitOutcome[];
  credits: CreditOutcome[];
  /** Why FPPS crediting stopped short of the watermark, if it did. */
  fppsWaiting: string | null;
  errors: { step: string; unit: string; error: string }[];
}

export async function readWatermark(q: Queryable): Promise<Watermark> {
  const r = await q.query<{ source: string; committed_to: Date | string; updated_at: Date | string; description: string | null }>(
    'SELECT source, committed_to, updated_at, description FROM ingest_watermarks WHERE retired_at IS NULL ORDER BY committed_to, source',
  );
  const sources = r.rows.map((x) => ({
    source: x.source, committedTo: new Date(x.committed_to).toISOString(), updatedAt: new Date(x.updated_at).toISOString(), description: x.description,
  }));
  return { at: sources.length ? new Date(sources[0].committedTo).getTime() : null, laggard: sources[0] ?? null, sources };
}

export class AccountingEngine {
  readonly ledger: Ledger;
  readonly fpps: Fpps;
  readonly blocks: BlockAccounting;

  constructor(
    private readonly db: Database,
    readonly frame: BooksFrame,
    private readonly values: ValueSource | null,
    private readonly log?: Logger,
    /** How many recent credited periods the late-share check looks at. */
    private readonly lateCheckPeriods = 24,
  ) {
    this.ledger = new Ledger();
    this.fpps = new Fpps(this.ledger);
    this.blocks = new BlockAccounting(this.ledger);
  }

  /** fn in a transaction holding the accounting lock. */
  locked<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [ACCOUNTING_LOCK]);
      return fn(tx);
    });
  }

  private get periodMs(): number { return this.frame.periodSeconds * 1000; }

  /** The next period to credit (ms). */
  async nextPeriod(q: Queryable = this.db): Promise<number> {
    const r = await q.query<{ last: Date | string | null }>('SELECT max(period_start) AS last FROM fpps_periods');
    const last = r.rows[0]?.last;
    return last ? Math.max(new Date(last).getTime() + this.periodMs, this.frame.startedAt) : this.frame.startedAt;
  }

  /**
   * Fold stored shares into the share sums up to the watermark, a chunk per transaction (at most `maxChunks`).
   * Returns the cursor: every share before it (stored by then) is in the sums.
   */
  async aggregate(watermark: number | null, budgetMs = 5000): Promise<number | null> {
    let cursor = await readCursor(this.db);
    if (watermark === null) return cursor;
    const params = await paramsAt(this.db, this.frame.startedAt);
    const lookback = (params?.pplnsMaxWindowSeconds ?? 86_400) * 1000;
    // Ten minutes of shares per transaction; within a time budget per call (the first call folds the PPLNS
    // lookback before the books, and a catch-up after downtime may be long: the next call goes on).
    const until = Date.now() + budgetMs;
    while ((cursor === null || cursor < watermark) && Date.now() < until) {
      cursor = await this.locked((tx) => aggregateChunk(tx, this.frame, watermark, lookback));
    }
    if (cursor !== null) {
      // Bucket sums older than any window can reach (the longest configured, and a day) are not needed.
      const latest = await paramsAt(this.db, cursor);
      await pruneBuckets(this.db, cursor - ((latest?.pplnsMaxWindowSeconds ?? 86_400) * 1000 + 86_400_000) - bucketMs(this.frame));
      // Period sums before the books (the PPLNS lookback) are never credited.
      await this.db.query('DELETE FROM share_sums_period WHERE period_start < $1::timestamptz', [new Date(this.frame.startedAt).toISOString()]);
    }
    return cursor;
  }

  /**
   * Credit, in order, every period that ended before the watermark (at most `max`), after folding the shares up
   * to it into the sums. A period whose shares' heights have no block value yet gets them recorded (values
   * source) and is retried once.
   */
  async creditPeriods(watermark: number | null, max = 100): Promise<{ outcomes: PeriodOutcome[]; waiting: string | null }> {
    const outcomes: PeriodOutcome[] = [];
    if (watermark === null) return { outcomes, waiting: 'no ingest source has reported a watermark yet' };
    const cursor = (await this.aggregate(watermark)) ?? this.frame.startedAt;
    for (let i = 0; i < max; i++) {
      const start = await this.nextPeriod();
      if (start + this.periodMs > Math.min(watermark, cursor)) return { outcomes, waiting: null };
      let out = await this.locked((tx) => this.fpps.creditPeriod(tx, this.frame, start));
      if (out.kind === 'missing-values') {
        if (!this.values) return { outcomes, waiting: `block values missing for heights ${out.heights.join(', ')}` };
        const got = await this.values.ensure(out.heights);
        if (got.notYet.length > 0) return { outcomes, waiting: `heights ${got.notYet.join(', ')} cannot be valued yet` };
        out = await this.locked((tx) => this.fpps.creditPeriod(tx, this.frame, start));
      }
      outcomes.push(out);
      if (out.kind === 'missing-values') return { outcomes, waiting: `block values missing for heights ${out.heights.join(', ')}` };
      if (out.kind === 'no-params') return { outcomes, waiting: 'no accounting parameters in force' };
    }
    return { outcomes, waiting: null };
  }

  /** Credit shares stored after their (recent) period was credited. */
  async adjustLate(now: number): Promise<PeriodOutcome[]> {
    const since = Math.max(this.frame.startedAt, now - this.lateCheckPeriods * this.periodMs);
    const late = await this.fpps.latePeriods(this.db, this.frame, since);
    const out: PeriodOutcome[] = [];
    for (const p of late) {
      let r = await this.locked((tx) => this.fpps.creditPeriod(tx, this.frame, p.periodStart, p.revision));
      if (r.kind === 'missing-values' && this.values) {
        await this.values.ensure(r.heights);
        r = await this.locked((tx) => this.fpps.creditPeriod(tx, this.frame, p.periodStart, p.revision));
      }
      if (r.kind === 'credited') this.log?.warn({ period: new Date(p.periodStart).toISOString(), revision: r.revision, credited: r.credited.toString() }, 'FPPS: shares stored after their period was credited were credited now');
      out.push(r);
    }
    return out;
  }

  async splitBlocks(watermark: number | null, errors: StepReport['errors']): Promise<SplitOutcome[]> {
    if (watermark === null) return [];
    // Windows read the share sums: only blocks the sums have passed (every share before them stored and summed).
    const cursor = await this.aggregate(watermark);
    if (cursor === null) return [];
    const out: SplitOutcome[] = [];
    for (const b of await this.blocks.splittable(this.db, this.frame, Math.min(watermark, cursor))) {
      try {
        const o = await this.locked((tx) => this.blocks.split(tx, this.frame, b));
        out.push(o);
        if (o.kind === 'split' && o.late?.resummed) {
          this.log?.warn({ block: b.hash, ranges: o.late.resummed }, 'PPLNS: shares stored after the share sums passed them are in this block\'s window (sums re-summed)');
        }
        if (o.kind === 'split' && o.late?.kept) {
          this.log?.error({ block: b.hash, ranges: o.late.kept }, 'PPLNS: part of this block\'s window has fewer raw shares than its sums (dropped by retention?): the sums were used as they are');
        }
      } catch (e) {
        errors.push({ step: 'split', unit: b.hash, error: (e as Error).message });
        this.log?.error({ block: b.hash, err: (e as Error).message }, 'block split failed; other blocks go on');
      }
    }
    return out;
  }

  async creditBlocks(now: number, errors: StepReport['errors']): Promise<CreditOutcome[]> {
    const out: CreditOutcome[] = [];
    for (const hash of await this.blocks.creditable(this.db)) {
      try {
        out.push(await this.locked((tx) => this.blocks.credit(tx, hash, now)));
      } catch (e) {
        errors.push({ step: 'credit', unit: hash, error: (e as Error).message });
        this.log?.error({ block: hash, err: (e as Error).message }, 'block credit failed; other blocks go on');
      }
    }
    return out;
  }

  /** One pass of every step. Each step's failure is reported, and the next step still runs. */
  async runOnce(now: number): Promise<StepReport> {
    const report: StepReport = { periods: [], adjustments: [], splits: [], credits: [], fppsWaiting: null, errors: [] };
    let wm: Watermark | null = null;
    try {
      wm = await readWatermark(this.db);
    } catch (e) {
      report.errors.push({ step: 'watermark', unit: '', error: (e as Error).message });
    }
    const at = wm?.at ?? null;
    try {
      const r = await this.creditPeriods(at);
      report.periods = r.outcomes;
      report.fppsWaiting = r.waiting;
    } catch (e) {
      report.errors.push({ step: 'fpps', unit: '', error: (e as Error).message });
      report.fppsWaiting = `error: ${(e as Error).message}`;
      this.log?.error({ err: (e as Error).message }, 'FPPS crediting failed; retried next time');
    }
    try {
      report.adjustments = await this.adjustLate(now);
    } catch (e) {
      report.errors.push({ step: 'fpps-late', unit: '', error: (e as Error).message });
    }
    try {
      report.splits = await this.splitBlocks(at, report.errors);
    } catch (e) {
      report.errors.push({ step: 'split', unit: '', error: (e as Error).message });
    }
    try {
      report.credits = await this.creditBlocks(now, report.errors);
    } catch (e) {
      report.errors.push({ step: 'credit', unit: '', error: (e as Error).message });
    }
    return report;
  }
}
