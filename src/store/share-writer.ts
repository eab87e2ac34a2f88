import type { BlockEvent, ShareEvent } from '../shares/events.ts';
import { type StagedShare, invalidTimeError, sharesToCopy } from './copy.ts';
import type { Database, Queryable } from './db.ts';
import * as Q from './queries.ts';
import type { ShareRowMeta, ShareWriter, WriteResult } from './types.ts';
import { UserAgentSteps } from './user-agents.ts';

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

/** Workers whose stored user agent the writer remembers; the map is emptied when full (one update each again). */
const AGENTS_WRITTEN_MAX = 50_000;

/**
 * The statements that move a staged batch into the tables, sent as one script after the COPY: one round trip
 * instead of one per statement (with the database on another machine, each is a network round trip; on one machine
 * each was a wake-up of both processes, and at 5k shares/s the writer's statements were about a tenth of the pool's
 * CPU). Over an empty share_inserted (a batch of duplicates) the rollups and the workers' update change nothing.
 */
const MOVE_STAGED = [Q.UPSERT_ACCOUNTS, Q.UPSERT_WORKERS, Q.INSERT_SHARES, Q.UPSERT_WORKER_ROLLUPS, Q.UPSERT_POOL_ROLLUPS,
  Q.UPDATE_WORKERS].join(';\n');

/**
 * ShareWriter over SQL. A batch is one transaction: COPY into a temp staging table, insert into shares /
 * share_rejects with ON CONFLICT DO NOTHING, then rollups and workers from the rows actually inserted. Any
 * failure rolls the whole batch back, so the caller can simply retry it.
 */
export class SqlShareWriter implements ShareWriter {
  /** UTC days (epoch day numbers) whose partitions this process has created or seen. */
  private readonly knownDays = new Set<number>();
  /** "account\0worker" (as staged) → the user agent this writer stored for it, and when (UserAgentSteps). */
  private readonly agentsWritten = new Map<string, { userAgent: string; at: number }>();
  private readonly agentSteps = new UserAgentSteps();

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
    // This path writes agents too (a batch written whole after a failure, shares without rows): what
    // writeShareRows noted may no longer be what the database holds.
    if (hasUserAgent) this.agentsWritten.clear();
    const copyText = await encodeInSlices(shares);
    return this.writeStaged(shares, Q.COPY_STAGING, copyText, hasUserAgent ? Q.UPDATE_USER_AGENTS : null, null);
  }

  async writeShareRows(shares: readonly ShareRowMeta[], rows: string | Uint8Array, userAgentOf: (sessionId: string) => string | undefined): Promise<WriteResult> {
    if (shares.length === 0) return { inserted: 0, duplicates: 0 };
    await this.opts.prepare?.();
    await this.ensureDays(shares);
    const now = Date.now();
    const ua = this.agentSteps.forBatch(shares, userAgentOf, this.agentsWritten, now);
    const update = ua.accounts.length > 0
      ? (tx: Queryable) => tx.query(Q.UPDATE_USER_AGENTS_OF, [ua.accounts, ua.workers, ua.userAgents])
      : null;
    let result: WriteResult;
    try {
      result = await this.writeStaged(shares, Q.COPY_STAGING_ROWS, rows, null, update);
    } catch (e) {
      // Rolled back, or committed behind a timeout: what the database holds for these workers is not known.
      for (const [key] of ua.remember) this.agentsWritten.delete(key);
      for (const key of ua.forget) this.agentsWritten.delete(key);
      throw e;
    }
    // Committed: these agents are stored.
    if (this.agentsWritten.size + ua.remember.length > AGENTS_WRITTEN_MAX) this.agentsWritten.clear();
    for (const [key, userAgent] of ua.remember) this.agentsWritten.set(key, { userAgent, at: now });
    for (const key of ua.forget) this.agentsWritten.delete(key);
    return result;
  }

  /**
   * One batch in one transaction: the staging tables, the COPY, the statements that move it into the tables (one
   * script, MOVE_STAGED, with `extraSql` after it), `update` if any, and the count of rows actually inserted.
   */
  private async writeStaged(shares: readonly ShareRowMeta[], copySql: string, copyText: string | Uint8Array, extraSql: string | null,
    update: ((tx: Queryable) => Promise<unknown>) | null): Promise<WriteResult> {
    const hasBlock = shares.some((s) => s.blockHash && s.outcome === 'accepted');
    let script = MOVE_STAGED;
    if (extraSql) script += ';\n' + extraSql;
    if (hasBlock) script += ';\n' + Q.INSERT_BLOCK_CANDIDATES;
    try {
      const inserted = await this.db.transaction(async (tx) => {
        await tx.exec(Q.CREATE_STAGING);
        const copied = await tx.copyFrom(copySql, copyText);
        // Every share of the batch is a row of the COPY text: fewer rows copied would be counted as duplicates
        // below and the batch committed, the missing shares lost without a word. Failed, it is retried, loudly.
        if (copied !== shares.length) throw new Error(`COPY took ${copied} rows for a batch of ${shares.length} shares`);
        await tx.exec(script);
        if (update) await update(tx);
        return (await tx.query<{ n: number }>(Q.COUNT_INSERTED)).rows[0].n;
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
