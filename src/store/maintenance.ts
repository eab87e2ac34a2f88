import type { Logger } from 'pino';
import type { Database } from './db.ts';
import { MAINTAIN } from './queries.ts';

export interface RetentionOptions {
  /** Raw shares (and rejects) are kept this many days, then dropped a day partition at a time. */
  shareDays: number;
  /** Minute rollups older than this many days are folded into hourly rows (>= 2: the 24 h windows read minutes). */
  compactAfterDays: number;
  /** Day partitions created ahead of time. */
  partitionsAhead: number;
}

export interface MaintenanceSummary { created: number; dropped: number; compacted: number }

/**
 * Runs hashhub_maintain() (partitions ahead, retention, compaction: the logic lives in PL/pgSQL, migration 002)
 * at start and then every intervalMs. Failures are logged once per change of state and retried next time.
 */
export class Maintenance {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  private failing = false;

  constructor(
    private readonly db: Database,
    private readonly opts: RetentionOptions & { intervalMs: number; logger?: Logger; before?: () => Promise<void>; after?: (s: MaintenanceSummary) => void },
  ) {}

  async runOnce(now = new Date()): Promise<MaintenanceSummary> {
    await this.opts.before?.();
    const r = await this.db.query<{ summary: string }>(MAINTAIN, [this.opts.shareDays, this.opts.compactAfterDays, this.opts.partitionsAhead, now.toISOString()]);
    const s = JSON.parse(r.rows[0].summary) as MaintenanceSummary;
    this.opts.after?.(s);
    if (s.created || s.dropped || s.compacted) this.opts.logger?.info(s, 'database maintenance');
    return s;
  }

  private tick(): void {
    if (this.running) return;
    this.running = this.runOnce().then(
      () => {
        if (this.failing) this.opts.logger?.info('database maintenance works again');
        this.failing = false;
      },
      (err: Error) => {
        if (!this.failing) this.opts.logger?.warn({ err: err.message }, 'database maintenance failed; retried at the next interval');
        this.failing = true;
      },
    ).finally(() => { this.running = null; });
  }

  start(): void {
    this.tick();
    this.timer = setInterval(() => this.tick(), this.opts.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }
}
