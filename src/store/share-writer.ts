import type { BlockEvent } from '../shares/events.ts';
import { type StagedShare, sharesToCopy } from './copy.ts';
import type { Database } from './db.ts';
import * as Q from './queries.ts';
import type { ShareWriter, WriteResult } from './types.ts';

const DAY_MS = 86_400_000;

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
    const hasBlock = shares.some((s) => s.blockHash && s.outcome === 'accepted');
    try {
      const inserted = await this.db.transaction(async (tx) => {
        await tx.exec(Q.CREATE_STAGING);
        await tx.copyFrom(Q.COPY_STAGING, sharesToCopy(shares));
        await tx.query(Q.UPSERT_ACCOUNTS);
        await tx.query(Q.UPSERT_WORKERS);
        const ins = await tx.query(Q.INSERT_SHARES);
        if (ins.rowCount > 0) {
          await tx.query(Q.UPSERT_WORKER_ROLLUPS);
          await tx.query(Q.UPSERT_POOL_ROLLUPS);
          await tx.query(Q.UPDATE_WORKERS);
        }
        if (hasUserAgent) await tx.query(Q.UPDATE_USER_AGENTS);
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
    await this.opts.prepare?.();
    const time = new Date(b.time).toISOString();
    await this.db.transaction(async (tx) => {
      await tx.query(Q.UPSERT_ACCOUNT, [b.account]);
      await tx.query(Q.UPSERT_WORKER, [b.account, b.worker, time]);
      const r = await tx.query(Q.INSERT_BLOCK, [
        b.hash, b.height, b.prevHash, b.account, b.worker, b.reward.toString(), b.accepted ? 'accepted' : 'rejected', b.result,
        time, b.blockHex,
      ]);
      return r.rowCount;
    }, { timeoutMs: this.opts.timeoutMs });
  }

  async ping(): Promise<void> {
    await this.db.query(Q.PING);
  }

  /** Forget cached partitions (after maintenance dropped some). */
  forgetPartitions(): void {
    this.knownDays.clear();
  }

  private async ensureDays(shares: readonly StagedShare[]): Promise<void> {
    let missing: Set<number> | null = null;
    for (const s of shares) {
      const day = Math.floor(s.time / DAY_MS);
      if (!this.knownDays.has(day)) (missing ??= new Set()).add(day);
    }
    if (!missing) return;
    for (const day of missing) {
      const d = new Date(day * DAY_MS).toISOString().slice(0, 10);
      await this.db.query(Q.ENSURE_PARTITIONS, [d, d]);
      this.knownDays.add(day);
    }
  }
}
