// Found blocks from the share that found them to a final verdict (block-state.ts has the rules):
// - found(): submitblock to every node endpoint, then the durable journal record, in the same event-loop turn;
// - at most one submission per previous block at a time: a second candidate on the same parent waits for the
//   first one's verdict and is sent only if the first failed (a regtest flood otherwise sends hundreds of
//   competing blocks that all lose to the first);
// - no verdict (transport error, timeout, 5xx, work queue full): resubmitted with back-off, to every endpoint,
//   until a verdict or until the chain has moved past the block's height;
// - a recurring chain check (getblockheader confirmations) moves blocks to pending, confirmed or orphaned;
// - start(): what the journal holds unsettled is resubmitted or re-checked, and the recent chain is scanned
//   for blocks of ours that have no record (a crash between submitblock and the journal write).

import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { type Tx, hashToDisplay, parseBlock } from '../chain/index.ts';
import type { BlockJournal, JournalBlock } from '../ingest/block-journal.ts';
import type { NodeClient, SubmitAnswer } from '../node/types.ts';
import {
  type BlockStatus, type SubmitVerdict, type UnsettledBlock, classifyError, classifyReason, combineRound, decideFromChain, retryDelayMs,
} from '../shares/block-state.ts';
import type { BlockEvent } from '../shares/events.ts';

export interface BlockCandidate {
  hash: string;
  height: number;
  prevHash: string;
  account: string;
  worker: string;
  reward: bigint;
  hex: string;
  time: number;
}

export interface BlockTrackerOptions {
  /** Confirmations at which a block is confirmed (a coinbase is spendable at 101). */
  maturity: number;
  /** Recurring chain check interval, ms (also run at every new tip). */
  checkIntervalMs: number;
  retryMinMs: number;
  retryMaxMs: number;
  /** Blocks below the tip scanned at start for blocks of ours without a record. */
  recoveryScanDepth: number;
  /** Whether a coinbase is one the pool built (pays the pool and carries its tag). */
  isOurCoinbase: (coinbase: Tx) => boolean;
  /** Height of the node's best block as the pool last saw it (from its templates); null when unknown. */
  tipHeight: () => number | null;
}

export const DEFAULT_BLOCK_TRACKER_OPTIONS: Omit<BlockTrackerOptions, 'isOurCoinbase' | 'tipHeight'> = {
  maturity: 101,
  checkIntervalMs: 30_000,
  retryMinMs: 250,
  retryMaxMs: 10_000,
  recoveryScanDepth: 20,
};

export type BlockNode = Pick<NodeClient, 'submitBlockAll' | 'getBlockHeader' | 'getBlockchainInfo' | 'getBlockHash' | 'getBlock'>;

interface Tracked {
  c: BlockCandidate;
  status: BlockStatus;
  result: string | null;
  confirmations: number;
  settled: boolean;
  attempts: number;
  /** A submission round is in flight. */
  submitting: boolean;
  /** Some endpoint answered null (the node took it; bcoin says null for a side branch too). */
  acceptedByNode: boolean;
  /** A chain check has answered since the last submission (its status reflects the node's chain). */
  chainSeen: boolean;
  /** Sent at least once (queued candidates are not). */
  sent: boolean;
  retryTimer: NodeJS.Timeout | null;
  /** A final reason from one endpoint while another gave no verdict (see combineRound): the block's status if the
   *  chain moves past it without it. */
  rejectedBy?: string;
  /** Time of the last status event (unset: none yet in this process). */
  statusAt?: number;
}

export interface BlockTrackerStats {
  candidates: number;
  /** submitblock rounds (each to every endpoint). */
  rounds: number;
  /** Node answers by kind: accepted, ask-chain, rejected, no-verdict. */
  answers: Record<SubmitVerdict['kind'], number>;
  /** Blocks by current status (unsettled and settled this process has seen). */
  byStatus: Record<BlockStatus, number>;
  /** Blocks of ours found on the chain without a record, recovered at start. */
  recovered: number;
  /** Candidates not sent because our own block on the same parent was taken. */
  superseded: number;
}

export interface BlockTrackerEvents {
  /** A node took one of our blocks (null answer): the pool fetches the next template at once. */
  accepted: [hash: string, height: number];
  status: [hash: string, status: BlockStatus];
}

export class BlockTracker extends EventEmitter<BlockTrackerEvents> {
  private readonly blocks = new Map<string, Tracked>();
  /** prevHash → the candidate on it being submitted (or whose verdict is awaited). */
  private readonly activeByPrev = new Map<string, string>();
  /** prevHash → candidates waiting for the active one's verdict, in the order found. */
  private readonly waitingByPrev = new Map<string, string[]>();
  private checkTimer: NodeJS.Timeout | null = null;
  private syncTimer: NodeJS.Timeout | null = null;
  private checking: Promise<void> | null = null;
  private checkAgain = false;
  private running = false;
  private readonly inflight = new Set<Promise<unknown>>();
  readonly stats: BlockTrackerStats = {
    candidates: 0, rounds: 0, answers: { accepted: 0, 'ask-chain': 0, rejected: 0, 'no-verdict': 0 },
    byStatus: { submitted: 0, unconfirmed: 0, pending: 0, confirmed: 0, orphaned: 0, rejected: 0 },
    recovered: 0, superseded: 0,
  };

  constructor(
    private readonly node: BlockNode,
    private readonly journal: BlockJournal | null,
    private readonly emitEvent: (e: BlockEvent) => void,
    private readonly opts: BlockTrackerOptions,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    super();
  }

  // ---- the hot path ----------------------------------------------------------------------------------------

  /**
   * A share met the network target. Synchronous: the block goes to the node (unless our own block on the same
   * parent is ahead of it), then to the journal (fdatasync), then to the share log, before this returns.
   */
  found(c: BlockCandidate): void {
    if (this.blocks.has(c.hash)) return; // the same block twice (a duplicate share): one record, one submission
    const t: Tracked = {
      c, status: 'submitted', result: null, confirmations: 0, settled: false, attempts: 0, submitting: false,
      acceptedByNode: false, chainSeen: false, sent: false, retryTimer: null,
    };
    this.blocks.set(c.hash, t);
    this.stats.candidates++;
    this.stats.byStatus.submitted++;
    const tip = this.opts.tipHeight();
    // Found on work whose tip was replaced two or more blocks ago: it cannot become part of the best chain.
    const admission = tip !== null && c.height < tip ? 'hopeless' : this.admit(t);
    // Block first: the request leaves before the journal's fdatasync. A candidate waiting behind another on the
    // same parent (a regtest flood) is written at once but synced with the next sync: it is only ever sent if the
    // first fails, and the journal is synced before it is.
    if (admission === 'send') this.submit(t);
    this.record(t, admission === 'send');
    this.log.info({ height: c.height, hash: c.hash, account: c.account, worker: c.worker, admission }, 'block candidate found');
    if (admission === 'hopeless') this.setStatus(t, 'orphaned', `found on a replaced tip (chain at ${tip}); not submitted`, 0, true);
    if (admission === 'superseded') this.supersede(t, this.activeByPrev.get(c.prevHash)!);
  }

  /** The journal record (durable) and the event for the database, for a block seen for the first time. */
  private record(t: Tracked, sync = true): void {
    const c = t.c;
    try {
      this.journal?.appendCandidate({
        hash: c.hash, height: c.height, prevHash: c.prevHash, account: c.account, worker: c.worker,
        reward: c.reward.toString(), hex: c.hex, time: c.time,
      }, sync);
    } catch (err) {
      // Still submitted and still in the share log; say it loudly: only the disk can lose it now.
      this.log.fatal({ err: (err as Error).message, hash: c.hash }, 'BLOCK NOT JOURNALED: the disk refused the block record');
    }
    this.emitCandidate(c);
  }

  private emitCandidate(c: BlockCandidate): void {
    this.emitEvent({
      kind: 'candidate', time: c.time, height: c.height, hash: c.hash, prevHash: c.prevHash, account: c.account,
      worker: c.worker, reward: c.reward, blockHex: c.hex,
    });
  }

  /**
   * Send now, wait behind the candidate already being submitted on the same parent, or not at all when our own
   * block on that parent is already on the chain.
   */
  private admit(t: Tracked): 'send' | 'wait' | 'superseded' {
    const prev = t.c.prevHash;
    const active = this.blocks.get(this.activeByPrev.get(prev) ?? '');
    if (!active || active === t) {
      this.activeByPrev.set(prev, t.c.hash);
      return 'send';
    }
    if (active.status === 'pending' || active.status === 'confirmed') return 'superseded';
    const q = this.waitingByPrev.get(prev) ?? [];
    q.push(t.c.hash);
    this.waitingByPrev.set(prev, q);
    return 'wait';
  }

  private supersede(t: Tracked, winner: string): void {
    this.stats.superseded++;
    this.setStatus(t, 'orphaned', `not submitted: our block ${winner} on the same parent was taken`, 0, true);
  }

  private submit(t: Tracked): void {
    if (t.settled || t.submitting) return;
    t.submitting = true;
    t.sent = true;
    t.chainSeen = false;
    t.attempts++;
    this.stats.rounds++;
    this.track(this.node.submitBlockAll(t.c.hex).then(
      (answers) => this.onRound(t, answers),
      (err: Error) => this.onRound(t, [{ endpoint: '?', error: { kind: 'network', message: err.message } }]),
    ).catch((err: unknown) => this.log.error({ err, hash: t.c.hash }, 'block tracker: handling a submission round failed'))
      .finally(() => { t.submitting = false; }));
  }

  // ---- verdicts --------------------------------------------------------------------------------------------

  private async onRound(t: Tracked, answers: SubmitAnswer[]): Promise<void> {
    const time = this.now();
    const verdicts: SubmitVerdict[] = [];
    for (const a of answers) {
      const answer = 'error' in a ? `error: ${a.error.message}` : a.result;
      const v = 'error' in a ? classifyError(a.error) : classifyReason(a.result);
      verdicts.push(v);
      this.stats.answers[v.kind]++;
      this.journal?.appendAnswer({ hash: t.c.hash, time, endpoint: a.endpoint, answer });
      this.emitEvent({ kind: 'answer', time, hash: t.c.hash, endpoint: a.endpoint, answer });
    }
    const round = combineRound(verdicts);
    this.log.info({ hash: t.c.hash, height: t.c.height, attempt: t.attempts, outcome: round.next, reason: 'reason' in round ? round.reason : null }, 'block submission answered');
    if (round.next === 'check-chain') {
      if (round.accepted) {
        t.acceptedByNode = true;
        this.emit('accepted', t.c.hash, t.c.height);
      }
      this.setStatus(t, 'unconfirmed', round.reason, 0, false);
      await this.checkOne(t);
      this.releaseParent(t);
      return;
    }
    if (round.next === 'rejected') {
      // A rejection is only final if the chain does not hold the block (a won block is never 'rejected').
      const onChain = await this.checkOne(t, round.reason);
      if (!onChain && !t.settled) this.setStatus(t, 'rejected', round.reason, 0, true);
      this.releaseParent(t);
      return;
    }
    // No verdict. The chain may still answer (e.g. an earlier round reached the node but its answer was lost).
    t.result = round.reason;
    if (round.rejected !== null) t.rejectedBy = round.rejected;
    const tip = this.opts.tipHeight();
    if (tip !== null && tip > t.c.height) {
      await this.checkOne(t);
      if (t.status !== 'submitted') return this.releaseParent(t);
    }
    this.scheduleRetry(t);
  }

  private scheduleRetry(t: Tracked): void {
    if (!this.running && this.stoppedForGood) return;
    const ms = retryDelayMs(t.attempts, this.opts.retryMinMs, this.opts.retryMaxMs);
    if (t.attempts === 1 || t.attempts % 10 === 0) {
      this.log.error({ hash: t.c.hash, height: t.c.height, attempt: t.attempts, retryInMs: ms, reason: t.result },
        t.rejectedBy === undefined ? 'block submission reached no node; retrying until a verdict or the chain moves past'
          : 'block submission rejected by one node while another gave no verdict; retrying until every node answers or the chain moves past');
    }
    clearTimeout(t.retryTimer ?? undefined);
    t.retryTimer = setTimeout(() => {
      t.retryTimer = null;
      if (!t.settled && t.status === 'submitted') this.submit(t);
    }, ms);
  }

  /**
   * The active candidate on a parent has a verdict: queued ones on the same parent are sent only if it did not
   * make it (rejected, or not on the best chain). While the chain has not been seen since it answered, they wait.
   */
  private releaseParent(t: Tracked): void {
    const prev = t.c.prevHash;
    if (this.activeByPrev.get(prev) !== t.c.hash) return;
    const won = t.status === 'pending' || t.status === 'confirmed';
    if (!won && t.status === 'unconfirmed' && !t.chainSeen) return; // asked again at the next check
    const waiting = this.waitingByPrev.get(prev) ?? [];
    if (won) {
      this.waitingByPrev.delete(prev);
      for (const hash of waiting) {
        const w = this.blocks.get(hash);
        if (w && !w.settled) this.supersede(w, t.c.hash);
      }
      return;
    }
    // It did not make it: the next one on this parent gets its chance (or the parent is free again).
    const next = waiting.shift();
    if (waiting.length === 0) this.waitingByPrev.delete(prev);
    const n = next === undefined ? undefined : this.blocks.get(next);
    if (!n) {
      this.activeByPrev.delete(prev);
      return;
    }
    this.activeByPrev.set(prev, n.c.hash);
    this.journal?.sync(); // it was journaled without a sync while it waited
    this.submit(n);
  }

  // ---- the chain -------------------------------------------------------------------------------------------

  /** Ask the node where the block stands; true if it is on the best chain. Node errors leave the status as is. */
  private async checkOne(t: Tracked, reasonIfOff: string | null = null): Promise<boolean> {
    let header;
    let best: number;
    try {
      header = await this.node.getBlockHeader(t.c.hash);
      best = header && header.confirmations > 0 ? header.height + header.confirmations - 1 : (await this.node.getBlockchainInfo()).blocks;
    } catch (err) {
      this.log.warn({ hash: t.c.hash, err: (err as Error).message }, 'block chain check failed; asking again later');
      return false;
    }
    t.chainSeen = true;
    if (t.settled) return t.status === 'pending' || t.status === 'confirmed';
    const d = decideFromChain(t.c.height, t.status, { confirmations: header?.confirmations ?? null, bestHeight: best }, this.opts.maturity);
    if (d.status === 'submitted') return false; // not on the chain, chain not past it: keep submitting
    if (reasonIfOff !== null && d.status !== 'pending' && d.status !== 'confirmed') return false; // the caller rejects it
    if (d.status === 'orphaned' && t.status === 'submitted' && t.rejectedBy !== undefined) {
      // Never taken by any node, judged invalid by one: the chain moved past it, so the rejection stands.
      this.setStatus(t, 'rejected', t.rejectedBy, 0, true);
      return false;
    }
    const result = d.status === 'orphaned' && t.status !== 'orphaned'
      ? `not on the best chain (chain at ${best})`
      : d.status === 'pending' || d.status === 'confirmed' ? null : t.result;
    this.setStatus(t, d.status, result, d.confirmations, d.settled);
    return d.status === 'pending' || d.status === 'confirmed';
  }

  /** Re-check every unsettled block past submission (at every new tip and every checkIntervalMs). */
  checkAll(): Promise<void> {
    if (this.checking) {
      this.checkAgain = true;
      return this.checking;
    }
    this.checking = (async () => {
      do {
        this.checkAgain = false;
        for (const t of [...this.blocks.values()]) {
          if (t.settled || t.submitting || !this.running) continue;
          if (t.status === 'submitted') {
            // Not yet answered: only the chain moving past it ends the retries.
            const tip = this.opts.tipHeight();
            if (tip === null || tip <= t.c.height || !t.sent) continue;
          }
          await this.checkOne(t);
          if (t.status !== 'submitted') this.releaseParent(t);
        }
      } while (this.checkAgain && this.running);
    })().catch((err: unknown) => this.log.error({ err }, 'block chain check crashed')).finally(() => { this.checking = null; });
    return this.checking;
  }

  private setStatus(t: Tracked, status: BlockStatus, result: string | null, confirmations: number, settled: boolean): void {
    if (t.status === status && t.result === result && t.confirmations === confirmations && t.settled === settled) return;
    const changed = t.status !== status;
    if (changed) {
      this.stats.byStatus[t.status]--;
      this.stats.byStatus[status]++;
    }
    t.status = status;
    t.result = result;
    t.confirmations = confirmations;
    t.settled = settled;
    // Strictly later than this block's previous status: the database keeps the latest by time, and two statuses in
    // one millisecond could otherwise be applied in either order (one batch's DISTINCT ON, a status held in memory
    // while the spool is read back).
    const time = Math.max(this.now(), (t.statusAt ?? 0) + 1);
    t.statusAt = time;
    try {
      this.journal?.appendStatus({ hash: t.c.hash, time, status, result, confirmations, settled, attempts: t.attempts });
    } catch (err) {
      this.log.error({ err: (err as Error).message, hash: t.c.hash }, 'block journal: status not written (re-derived from the chain at start)');
    }
    this.emitEvent({ kind: 'status', time, hash: t.c.hash, status, result, confirmations, settled });
    if (changed) {
      const level = status === 'rejected' || status === 'orphaned' ? 'warn' : 'info';
      this.log[level]({ hash: t.c.hash, height: t.c.height, status, result, confirmations }, `block ${status}`);
      this.emit('status', t.c.hash, status);
    }
    if (settled) {
      clearTimeout(t.retryTimer ?? undefined);
      t.retryTimer = null;
    }
  }

  // ---- lifecycle -------------------------------------------------------------------------------------------

  private stoppedForGood = false;

  /**
   * Take up what the journal (and, when given, the database) holds unsettled: resubmit what has no verdict,
   * re-check the rest, then scan the recent chain for blocks of ours without a record. Does not wait for the
   * node: with the node down, retries continue in the background.
   */
  start(): void {
    this.running = true;
    for (const b of this.journal?.unsettled() ?? []) this.adopt(fromJournal(b), true);
    this.checkTimer = setInterval(() => void this.checkAll(), this.opts.checkIntervalMs);
    this.checkTimer.unref();
    // Answers, statuses and queued candidates are written at once and synced here (cheap when nothing is new).
    this.syncTimer = setInterval(() => this.journal?.sync(), 1000);
    this.syncTimer.unref();
    this.track(this.scanChain());
  }

  /**
   * The unsettled blocks of another process's journal (a Stratum process no longer started: stratum.processes lowered
   * on this data dir), taken into this one: each candidate and its latest status is written to this journal and
   * synced, then taken up as at start (resubmitted, or re-checked). Without it they stayed in a journal no process
   * opened: a block whose share-log record was lost was never recorded, and none was ever resubmitted or settled.
   * Returns how many were taken; the caller retires the other journal once this returns.
   */
  adoptJournal(other: BlockJournal): number {
    const taken = other.unsettled().filter((b) => !this.blocks.has(b.candidate.hash));
    for (const b of taken) {
      const { t: _c, ...candidate } = b.candidate;
      this.journal?.appendCandidate(candidate, false);
      if (b.status) {
        const { t: _s, ...status } = b.status;
        this.journal?.appendStatus(status);
      }
    }
    this.journal?.sync();
    for (const b of taken) this.adopt(fromJournal(b), true);
    if (taken.length > 0) this.log.warn({ journal: other.dir, blocks: taken.length }, 'took up unsettled blocks from the journal of a Stratum process no longer started');
    return taken.length;
  }

  /** Blocks the database holds unsettled that the journal does not (a lost journal, an older process's). */
  adoptStored(stored: readonly UnsettledBlock[]): void {
    let n = 0;
    for (const s of stored) {
      if (this.blocks.has(s.hash)) continue;
      this.adopt(s);
      n++;
    }
    if (n > 0) this.log.info({ blocks: n }, 'took up unsettled blocks from the database');
  }

  /**
   * A block from the journal or the database: resubmit it if it never got a verdict, else re-check it. One from the
   * journal is recorded in the share log again first: the journal is synced before the share log's spool write, so
   * a crash (or a power loss within the spool's fsync interval, or a full disk) can leave a block in the journal
   * only, and its status events alone would update no row (the database would never hold the block, and accounting
   * would never split it). Recorded twice, it is one row: candidates are idempotent on the hash.
   */
  private adopt(s: UnsettledBlock, fromTheJournal = false): void {
    const t: Tracked = {
      c: { hash: s.hash, height: s.height, prevHash: s.prevHash ?? '', account: s.account, worker: s.worker, reward: s.reward, hex: s.hex ?? '', time: s.time },
      status: s.status, result: null, confirmations: 0, settled: false, attempts: 0, submitting: false,
      acceptedByNode: false, chainSeen: false, sent: s.status !== 'submitted', retryTimer: null,
      // The database keeps a status only if it is not older than the one it has: after a restart on a clock that
      // stepped back, the next status still comes after the last one recorded.
      statusAt: s.statusAt,
    };
    this.blocks.set(s.hash, t);
    this.stats.byStatus[s.status]++;
    if (fromTheJournal) this.emitCandidate(t.c);
    if (s.status === 'submitted' && s.hex) {
      this.log.warn({ hash: s.hash, height: s.height }, 'resubmitting a block that had no verdict before the restart');
      const admission = this.admit(t);
      if (admission === 'send') this.submit(t);
      else if (admission === 'superseded') this.supersede(t, this.activeByPrev.get(t.c.prevHash)!);
    } else {
      t.sent = true;
      void this.checkAll();
    }
  }

  /** Blocks of ours on the chain with no record: a crash between submitblock and the journal write. */
  private async scanChain(): Promise<void> {
    for (let attempt = 0; this.running; attempt++) {
      try {
        const best = (await this.node.getBlockchainInfo()).blocks;
        const low = Math.max(1, best - this.opts.recoveryScanDepth + 1);
        for (let h = best; h >= low && this.running; h--) {
          const hash = await this.node.getBlockHash(h);
          if (this.blocks.has(hash)) continue;
          const hex = await this.node.getBlock(hash, 0);
          if (typeof hex !== 'string') continue;
          let block;
          try {
            block = parseBlock(Buffer.from(hex, 'hex'));
          } catch (err) {
            this.log.warn({ hash, height: h, err: (err as Error).message }, 'start-up chain scan: cannot parse a block; skipped');
            continue;
          }
          const coinbase = block.txs[0];
          if (!coinbase || !this.opts.isOurCoinbase(coinbase)) continue;
          this.stats.recovered++;
          this.log.warn({ hash, height: h }, 'found a block of ours on the chain with no record: recovering it');
          const c: BlockCandidate = {
            hash, height: h, prevHash: hashToDisplay(block.header.prevHash), account: '', worker: '',
            reward: coinbase.outputs.reduce((s, o) => s + o.value, 0n), hex, time: block.header.time * 1000,
          };
          const t: Tracked = {
            c, status: 'unconfirmed', result: 'recovered from the chain at start', confirmations: 0, settled: false,
            attempts: 0, submitting: false, acceptedByNode: true, chainSeen: false, sent: true, retryTimer: null,
          };
          this.blocks.set(hash, t);
          this.stats.byStatus.unconfirmed++;
          this.record(t);
          await this.checkOne(t);
        }
        return;
      } catch (err) {
        if (attempt === 0) this.log.warn({ err: (err as Error).message }, 'start-up chain scan for unrecorded blocks failed; retrying');
        await this.sleep(Math.min(30_000, 1000 * 2 ** attempt));
      }
    }
  }

  /** Resolves after ms, or at once when stop() runs. */
  private sleep(ms: number): Promise<void> {
    const signal = this.stopping.signal;
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const timer = setTimeout(done, ms);
      function done(): void { clearTimeout(timer); signal.removeEventListener('abort', done); resolve(); }
      signal.addEventListener('abort', done, { once: true });
    });
  }

  private readonly stopping = new AbortController();

  private track<T>(p: Promise<T>): void {
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  /** Submissions and checks in flight (for a graceful stop). */
  get busy(): boolean { return this.inflight.size > 0; }

  /**
   * Stop retrying and checking; wait up to graceMs for rounds in flight. Whatever has no verdict stays in the
   * journal and is resubmitted at the next start.
   */
  async stop(graceMs = 2000): Promise<void> {
    this.running = false;
    this.stoppedForGood = true;
    this.stopping.abort();
    if (this.checkTimer) clearInterval(this.checkTimer);
    if (this.syncTimer) clearInterval(this.syncTimer);
    for (const t of this.blocks.values()) { clearTimeout(t.retryTimer ?? undefined); t.retryTimer = null; }
    let timer: NodeJS.Timeout | undefined;
    // A chain check under way (a tip's or the timer's) is waited for too: its status must reach the journal before
    // the pool closes it.
    const busy = [...this.inflight, ...(this.checking ? [this.checking] : [])];
    await Promise.race([Promise.allSettled(busy), new Promise((r) => { timer = setTimeout(r, graceMs); })]);
    clearTimeout(timer);
    this.journal?.sync();
  }

  /** A snapshot of one block (for tests and the API). */
  get(hash: string): { status: BlockStatus; result: string | null; confirmations: number; settled: boolean; attempts: number } | undefined {
    const t = this.blocks.get(hash);
    return t && { status: t.status, result: t.result, confirmations: t.confirmations, settled: t.settled, attempts: t.attempts };
  }

  /** Blocks not settled yet (for tests and the operator). */
  get unsettledCount(): number {
    let n = 0;
    for (const t of this.blocks.values()) if (!t.settled) n++;
    return n;
  }
}

function fromJournal(b: JournalBlock): UnsettledBlock {
  const c = b.candidate;
  return {
    hash: c.hash, height: c.height, prevHash: c.prevHash, account: c.account, worker: c.worker, reward: BigInt(c.reward),
    hex: c.hex, status: (b.status?.status as BlockStatus | undefined) ?? 'submitted', time: c.time,
    ...(b.status ? { statusAt: b.status.time } : {}),
  };
}
