import type { BlockEvent, ShareEvent } from '../shares/events.ts';
import { NAME_CAPS, type StagedShare, invalidTimeError, sharesToCopy, storableText } from './copy.ts';
import type { Database, Queryable } from './db.ts';
import * as Q from './queries.ts';
import type { ShareRowMeta, ShareWriter, WriteResult } from './types.ts';

const DAY_MS = 86_400_000;
/** Rows encoded per event-loop turn (see encodeInSlices). */
const COPY_SLICE = 500;

/**
 * The batch's COPY text, COPY_SLICE rows per event-loop turn: the writer shares the pool's thread, and a batch of
 * 5,000 rows (the writer catching up on a backlog) encoded at once was a ~20 ms turn that every miner's answer
 * waited behind.
 */
async function encodeInSlices(shares: readonly StagedShare[]): Promise<string> {
  if (shares.length <= COPY_SLICE) return sharesToCopy(shares);
  const parts: string[] = [];
  for (let i = 0; i < shares.length; i += COPY_SLICE) {
    if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    parts.push(sharesToCopy(shares.slice(i, i + COPY_SLICE)));
  }
  return parts.join('');
}

/**
 * UPDATE_USER_AGENTS_OF's arrays for a batch: each account and worker (as the staging table keeps the names) with
 * its session's user agent, once. Most shares repeat their session's last account and worker: those are skipped
 * without building a key.
 */
function userAgentUpdates(shares: readonly ShareRowMeta[], userAgentOf: (sessionId: string) => string | undefined) {
  const out = { accounts: [] as string[], workers: [] as string[], userAgents: [] as string[] };
  const seen = new Set<string>();
  const lastOfSession = new Map<string, ShareRowMeta>();
  for (const s of shares) {
    const last = lastOfSession.get(s.sessionId);
    if (last && s.account === last.account && s.worker === last.worker) continue;
    lastOfSession.set(s.sessionId, s);
    const ua = userAgentOf(s.sessionId);
    if (!ua || s.account === '') continue;
    const account = storableText(s.account.slice(0, NAME_CAPS.account));
    const worker = storableText(s.worker.slice(0, NAME_CAPS.worker));
    const key = account + '\0' + worker + '\0' + ua;
    if (seen.has(key)) continue;
    seen.add(key);
    out.accounts.push(account);
    out.workers.push(worker);
    out.userAgents.push(storableText(ua.slice(0, NAME_CAPS.userAgent)));
  }
  return out;
}

/**
 * ShareWriter over SQL. A batch is one transaction: COPY into a temp staging table, insert into shares /
 * share_rejects with ON CONFLICT DO NOTHING, then rollups and workers from the rows actually inserted. Any
 * failure rolls the whole batch back, so the caller can simply retry it.
 */
export class SqlShareWriter implements ShareWriter {
  /** UTC days (epoch day numbers) whose partitions this process has created or seen. */
  private readonly knownDays = new Set<number>();

  constructor(
    private readonly db: Database,
    private readonly opts: {
      /** Abort a batch transaction after this long (Postgres). */
      timeoutMs?: number;
      /** Runs before every write, e.g. "migrate once the database is reachable". */
      prepare?: () => Promise<void>;
    } = {},
  ) {}

  async writeShares(shares: readonly StagedShare[]): Promise<WriteResult> {
    if (shares.length === 0) return { inserted: 0, duplicates: 0 };
    await this.opts.prepare?.();
    await this.ensureDays(shares);
    const hasUserAgent = shares.some((s) => s.userAgent);
    const copyText = await encodeInSlices(shares);
    return this.writeStaged(shares, Q.COPY_STAGING, copyText, hasUserAgent ? (tx) => tx.query(Q.UPDATE_USER_AGENTS) : null);
  }

  async writeShareRows(shares: readonly ShareRowMeta[], rows: string, userAgentOf: (sessionId: string) => string | undefined): Promise<WriteResult> {
    if (shares.length === 0) return { inserted: 0, duplicates: 0 };
    await this.opts.prepare?.();
    await this.ensureDays(shares);
    const ua = userAgentUpdates(shares, userAgentOf);
    const update = ua.accounts.length > 0
      ? (tx: Queryable) => tx.query(Q.UPDATE_USER_AGENTS_OF, [ua.accounts, ua.workers, ua.userAgents])
      : null;
    return this.writeStaged(shares, Q.COPY_STAGING_ROWS, rows, update);
  }

  /** One batch: COPY into the staging table, then the statements that move it into the tables (one transaction). */
  private async writeStaged(shares: readonly ShareRowMeta[], copySql: string, copyText: string,
    updateUserAgents: ((tx: Queryable) => Promise<unknown>) | null): Promise<WriteResult> {
    const hasBlock = shares.some((s) => s.blockHash && s.outcome === 'accepted');
    try {
      const inserted = await this.db.transaction(async (tx) => {
        await tx.exec(Q.CREATE_STAGING);
        await tx.copyFrom(copySql, copyText);
        await tx.query(Q.UPSERT_ACCOUNTS);
        await tx.query(Q.UPSERT_WORKERS);
        const ins = await tx.query(Q.INSERT_SHARES);
        if (ins.rowCount > 0) {
          await tx.query(Q.UPSERT_WORKER_ROLLUPS);
          await tx.query(Q.UPSERT_POOL_ROLLUPS);
          await tx.query(Q.UPDATE_WORKERS);
        }
        if (updateUserAgents) await updateUserAgents(tx);
        if (hasBlock) await tx.query(Q.INSERT_BLOCK_CANDIDATES);
        return ins.rowCount;
      }, { timeoutMs: this.opts.timeoutMs });
      return { inserted, duplicates: shares.length - inserted };
    } catch (e) {
      // 23514: "no partition of relation … found for row": a partition we thought existed was dropped (by
      // retention, or another process). Forget what we know; the retry creates what is missing.
      if ((e as { code?: string }).code === '23514') this.knownDays.clear();
      throw e;
    }
  }

  async writeBlock(b: BlockEvent): Promise<void> {
    await this.writeBlocks([b]);
  }

  /**
   * Block events, atomically: candidates, then answers, then the latest status per block (a block's status always
   * comes after its candidate, so this order gives what applying them one by one would).
   */
  async writeBlocks(events: readonly BlockEvent[]): Promise<void> {
    if (events.length === 0) return;
    await this.opts.prepare?.();
    const iso = (t: number) => new Date(t).toISOString();
    const cands = events.filter((e): e is Extract<BlockEvent, { kind: 'candidate' }> => e.kind === 'candidate');
    const answers = events.filter((e): e is Extract<BlockEvent, { kind: 'answer' }> => e.kind === 'answer');
    const statuses = events.filter((e): e is Extract<BlockEvent, { kind: 'status' }> => e.kind === 'status');
    await this.db.transaction(async (tx) => {
      if (cands.length > 0) {
        const accounts = cands.map((c) => c.account);
        const workers = cands.map((c) => c.worker);
        const times = cands.map((c) => iso(c.time));
        await tx.query(Q.UPSERT_ACCOUNTS_OF, [accounts]);
        await tx.query(Q.UPSERT_WORKERS_OF, [accounts, workers, times]);
        await tx.query(Q.UPSERT_BLOCK_CANDIDATES, [
          cands.map((c) => c.hash), cands.map((c) => c.height), cands.map((c) => c.prevHash), accounts, workers,
          cands.map((c) => c.reward.toString()), times, cands.map((c) => c.blockHex),
        ]);
      }
      if (answers.length > 0) {
        await tx.query(Q.INSERT_BLOCK_ANSWERS, [answers.map((a) => a.hash), answers.map((a) => iso(a.time)), answers.map((a) => a.endpoint), answers.map((a) => a.answer)]);
      }
      if (statuses.length > 0) {
        await tx.query(Q.UPDATE_BLOCK_STATUSES, [
          statuses.map((x) => x.hash), statuses.map((x) => x.status), statuses.map((x) => x.result), statuses.map((x) => x.confirmations),
          statuses.map((x) => x.settled), statuses.map((x) => iso(x.time)),
        ]);
      }
    }, { timeoutMs: this.opts.timeoutMs });
  }

  async ping(): Promise<void> {
    await this.db.query(Q.PING);
  }

  async recordWatermark(source: string, committedTo: number, description?: string): Promise<void> {
    await this.opts.prepare?.();
    await this.db.query(Q.RECORD_WATERMARK, [source, new Date(committedTo).toISOString(), description ?? null]);
  }

  /** Forget cached partitions (after maintenance dropped some). */
  forgetPartitions(): void {
    this.knownDays.clear();
  }

  private async ensureDays(shares: readonly { time: number }[]): Promise<void> {
    let missing: Set<number> | null = null;
    for (const s of shares) {
      const day = Math.floor(s.time / DAY_MS);
      if (!this.knownDays.has(day)) (missing ??= new Set()).add(day);
    }
    if (!missing) return;
    for (const day of missing) {
      const start = new Date(day * DAY_MS);
      if (Number.isNaN(start.getTime())) throw invalidTimeError(day * DAY_MS);
      const d = start.toISOString().slice(0, 10);
      await this.db.query(Q.ENSURE_PARTITIONS, [d, d]);
      this.knownDays.add(day);
    }
  }
}
