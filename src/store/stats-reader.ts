import { SHARE_OUTCOMES, type RejectOutcome } from '../shares/outcome.ts';
import type { Database } from './db.ts';
import * as Q from './queries.ts';
import type { BlockReader, BlockRow, HashrateWindows, RejectCounts, SeriesPoint, StatsReader, Window, WorkBucket, WorkerSummary } from './types.ts';
import type { UnsettledBlock } from '../shares/block-state.ts';

const MINUTE = 60_000;
const TWO_32 = 2 ** 32;
export const WINDOW_MS: Record<Window, number> = { '5m': 5 * MINUTE, '1h': 60 * MINUTE, '24h': 1440 * MINUTE };
/** Series buckets are whole minutes (the rollup resolution); more points than this is refused. */
export const MAX_SERIES_POINTS = 1440;

/**
 * Window arithmetic, shared by the reader and its tests. A window of W covers the minute buckets from
 * floor_minute(now) − (W − 1 min) up to now, and its hashrate divides by the seconds actually covered,
 * (now − that start): the current minute counts for the part of it that has passed, so the figure neither
 * lags (dropping the current minute) nor dips (dividing a partial minute by a full one).
 */
export function windowStart(nowMs: number, w: Window): number {
  return Math.floor(nowMs / MINUTE) * MINUTE - (WINDOW_MS[w] - MINUTE);
}

/**
 * Seconds a window covers at nowMs: from its start, or from the scope's first share when that is later (a young
 * worker), to now; at least 1 s. firstSeenMs null = nothing known, the whole window.
 */
export function windowSeconds(nowMs: number, w: Window, firstSeenMs: number | null): number {
  const from = Math.max(windowStart(nowMs, w), firstSeenMs ?? -Infinity);
  return Math.max(1, (nowMs - from) / 1000);
}

export function hashrate(difficultySum: number, seconds: number): number {
  return seconds > 0 ? (difficultySum * TWO_32) / seconds : 0;
}

const REJECT_COLUMNS: [RejectOutcome, string][] = SHARE_OUTCOMES.filter((o): o is RejectOutcome => o !== 'accepted')
  .map((o) => [o, o.replace(/-/g, '_')]);

type WindowRow = Record<string, unknown>;

function rejectCounts(row: WindowRow | undefined): RejectCounts {
  const rejected: RejectCounts['rejected'] = {};
  let total = 0;
  for (const [outcome, col] of REJECT_COLUMNS) {
    const n = Number(row?.[col] ?? 0);
    rejected[outcome] = n;
    total += n;
  }
  const accepted = Number(row?.accepted ?? 0);
  return { accepted, rejected, rejectRate: accepted + total > 0 ? total / (accepted + total) : 0 };
}

function iso(v: unknown): string {
  return (v instanceof Date ? v : new Date(v as string)).toISOString();
}

export interface StatsReaderOptions {
  /** A worker is online when its last share is at most this old. */
  onlineMinutes?: number;
}

/** StatsReader over the rollup tables: every window is a handful of indexed rows, never raw shares. */
export class SqlStatsReader implements StatsReader, BlockReader {
  private readonly onlineMs: number;

  constructor(private readonly db: Database, opts: StatsReaderOptions = {}) {
    this.onlineMs = (opts.onlineMinutes ?? 10) * MINUTE;
  }

  private windowParams(now: Date): [string, string, string, string] {
    const t = now.getTime();
    return [now.toISOString(), ...(['5m', '1h', '24h'] as const).map((w) => new Date(windowStart(t, w)).toISOString())] as [string, string, string, string];
  }

  /** The three windows from a row of WINDOW_SUMS, each over the seconds it actually covers (see WindowRate). */
  private windows(row: WindowRow | undefined, now: Date, firstSeen: unknown): HashrateWindows {
    const t = now.getTime();
    const first = firstSeen == null ? null : (firstSeen instanceof Date ? firstSeen : new Date(firstSeen as string)).getTime();
    const rate = (w: Window, diff: unknown, shares: unknown) => {
      const seconds = windowSeconds(t, w, first);
      return { hashrate: hashrate(Number(diff ?? 0), seconds), seconds, shares: Number(shares ?? 0) };
    };
    return {
      '5m': rate('5m', row?.d5m, row?.n5m),
      '1h': rate('1h', row?.d1h, row?.n1h),
      '24h': rate('24h', row?.d24h, row?.accepted),
    };
  }

  private onlineSince(now: Date): string {
    return new Date(now.getTime() - this.onlineMs).toISOString();
  }

  async poolHashrate(now = new Date()): Promise<HashrateWindows & { miners: number; workers: number; shares24h: RejectCounts }> {
    const [w, online] = await Promise.all([
      this.db.query<WindowRow>(Q.POOL_WINDOWS, this.windowParams(now)),
      this.db.query<{ workers: number; miners: number }>(Q.POOL_ONLINE, [this.onlineSince(now)]),
    ]);
    return {
      ...this.windows(w.rows[0], now, w.rows[0]?.first_seen),
      miners: Number(online.rows[0]?.miners ?? 0),
      workers: Number(online.rows[0]?.workers ?? 0),
      shares24h: rejectCounts(w.rows[0]),
    };
  }

  private async accountId(account: string): Promise<string | null> {
    if (!account) return null;
    const r = await this.db.query<{ id: string }>(Q.ACCOUNT_BY_NAME, [account]);
    return r.rows[0]?.id ?? null;
  }

  async account(account: string, now = new Date()) {
    const id = await this.accountId(account);
    if (id === null) return null;
    const [w, counts] = await Promise.all([
      this.db.query<WindowRow>(Q.ACCOUNT_WINDOWS, [...this.windowParams(now), id]),
      this.db.query<{ workers: number; online: number }>(Q.ACCOUNT_WORKER_COUNTS, [id, this.onlineSince(now)]),
    ]);
    // The sum of its workers' rates, each over the seconds it covers (a worker that started 10 minutes ago is not
    // diluted over the hour); the account covers what its longest-seen worker does. Before, the account's work was
    // divided by the time since its oldest worker's first share, and did not match its worker rows.
    const hashrate = this.windows(undefined, now, null);
    const sums: Record<string, number> = {};
    w.rows.forEach((row, i) => {
      const one = this.windows(row, now, row.first_seen);
      for (const win of ['5m', '1h', '24h'] as const) {
        const into = hashrate[win];
        if (i === 0) Object.assign(into, one[win]);
        else { into.hashrate += one[win].hashrate; into.shares += one[win].shares; into.seconds = Math.max(into.seconds, one[win].seconds); }
      }
      for (const [k, v] of Object.entries(row)) if (k !== 'first_seen') sums[k] = (sums[k] ?? 0) + Number(v ?? 0);
    });
    return {
      account,
      hashrate,
      workers: Number(counts.rows[0]?.workers ?? 0),
      workersOnline: Number(counts.rows[0]?.online ?? 0),
      shares24h: rejectCounts(w.rows.length > 0 ? sums : undefined),
    };
  }

  async workers(account: string, page: { limit: number; offset: number }, now = new Date()): Promise<{ total: number; items: WorkerSummary[] }> {
    const id = await this.accountId(account);
    if (id === null) return { total: 0, items: [] };
    const [counts, rows] = await Promise.all([
      this.db.query<{ workers: number }>(Q.ACCOUNT_WORKER_COUNTS, [id, this.onlineSince(now)]),
      this.db.query<WindowRow & { name: string; first_seen: Date; last_seen: Date; difficulty: number | null; user_agent: string | null; online: boolean }>(
        Q.ACCOUNT_WORKERS_PAGE, [...this.windowParams(now), id, page.limit, page.offset, this.onlineSince(now)]),
    ]);
    return {
      total: Number(counts.rows[0]?.workers ?? 0),
      items: rows.rows.map((r) => ({
        account,
        worker: r.name,
        firstSeen: iso(r.first_seen),
        lastSeen: iso(r.last_seen),
        online: r.online === true,
        hashrate: this.windows(r, now, r.first_seen),
        shares24h: rejectCounts(r),
        difficulty: r.difficulty === null ? null : Number(r.difficulty),
        userAgent: r.user_agent,
      })),
    };
  }

  async hashrateSeries(scope: { account?: string; worker?: string }, window: Window, bucketSeconds: number, now = new Date()): Promise<SeriesPoint[]> {
    if (!Number.isInteger(bucketSeconds) || bucketSeconds < 60 || bucketSeconds % 60 !== 0) {
      throw new RangeError(`bucket must be a whole number of minutes in seconds (60, 300, 3600, …), got ${bucketSeconds}`);
    }
    if (!(window in WINDOW_MS)) throw new RangeError(`window must be one of 5m, 1h, 24h, got ${String(window)}`);
    const b = bucketSeconds * 1000;
    const n = Math.ceil(WINDOW_MS[window] / b);
    if (n > MAX_SERIES_POINTS) throw new RangeError(`${window} in ${bucketSeconds} s buckets is ${n} points; at most ${MAX_SERIES_POINTS}`);
    if (scope.worker !== undefined && scope.account === undefined) throw new RangeError('a worker series needs its account');
    const t = now.getTime();
    const last = Math.floor(t / b) * b;
    const first = last - (n - 1) * b;
    const base = [now.toISOString(), new Date(first).toISOString(), bucketSeconds];
    let rows: { t: number; difficulty: number; accepted: number; rejected: number }[];
    if (scope.account === undefined) {
      rows = (await this.db.query<typeof rows[number]>(Q.SERIES_POOL, base)).rows;
    } else if (scope.worker === undefined) {
      const id = await this.accountId(scope.account);
      rows = id === null ? [] : (await this.db.query<typeof rows[number]>(Q.SERIES_ACCOUNT, [...base, id])).rows;
    } else {
      const r = await this.db.query<{ id: string }>(Q.WORKER_ID, [scope.account, scope.worker]);
      const id = r.rows[0]?.id;
      rows = id === undefined ? [] : (await this.db.query<typeof rows[number]>(Q.SERIES_WORKER, [...base, id])).rows;
    }
    const byStart = new Map(rows.map((r) => [Number(r.t) * 1000, r]));
    const out: SeriesPoint[] = [];
    for (let start = first; start <= last; start += b) {
      const r = byStart.get(start);
      // The last bucket is still filling: divide by the part of it that has passed.
      const seconds = start === last ? Math.max(1, (t - start) / 1000) : bucketSeconds;
      out.push({
        time: new Date(start).toISOString(),
        hashrate: hashrate(Number(r?.difficulty ?? 0), seconds),
        accepted: Number(r?.accepted ?? 0),
        rejected: Number(r?.rejected ?? 0),
      });
    }
    return out;
  }

  async poolWork(from: Date, to: Date): Promise<WorkBucket[]> {
    const r = await this.db.query<{ t: number; seconds: number; difficulty: number; accepted: number }>(Q.POOL_WORK, [from.toISOString(), to.toISOString()]);
    return r.rows.map((x) => ({
      time: new Date(Number(x.t) * 1000).toISOString(), seconds: Number(x.seconds) === 3600 ? 3600 : 60, difficulty: Number(x.difficulty), accepted: Number(x.accepted),
    }));
  }

  async blocks(page: { limit: number; offset: number }): Promise<{ total: number; items: BlockRow[] }> {
    const [count, rows] = await Promise.all([
      this.db.query<{ n: number }>(Q.BLOCKS_COUNT),
      this.db.query<Record<string, unknown>>(Q.BLOCKS_PAGE, [page.limit, page.offset]),
    ]);
    return { total: Number(count.rows[0]?.n ?? 0), items: rows.rows.map(blockRow) };
  }

  async lastBlock(): Promise<BlockRow | null> {
    const r = await this.db.query<Record<string, unknown>>(Q.BLOCKS_PAGE, [1, 0]);
    return r.rows[0] ? blockRow(r.rows[0]) : null;
  }

  async unsettledBlocks(): Promise<UnsettledBlock[]> {
    const r = await this.db.query<Record<string, unknown>>(Q.UNSETTLED_BLOCKS);
    return r.rows.map((row) => ({
      hash: String(row.hash),
      height: Number(row.height),
      prevHash: (row.prev_hash as string | null) ?? null,
      account: String(row.account),
      worker: String(row.worker),
      reward: BigInt(String(row.reward)),
      hex: (row.block_hex as string | null) ?? null,
      status: row.status as UnsettledBlock['status'],
      time: new Date(row.time as string | Date).getTime(),
      ...(row.checked_at ? { statusAt: new Date(row.checked_at as string | Date).getTime() } : {}),
    }));
  }
}

function blockRow(r: Record<string, unknown>): BlockRow {
  return {
    height: Number(r.height),
    hash: String(r.hash),
    account: String(r.account),
    worker: String(r.worker),
    reward: String(r.reward),
    status: r.status as BlockRow['status'],
    settled: r.settled === true,
    result: (r.result as string | null) ?? null,
    time: iso(r.time),
    confirmations: Number(r.confirmations),
  };
}
