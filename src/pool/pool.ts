import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { type NetworkName, type Tx, addressToScript, hashToDisplay, toHex } from '../chain/index.ts';
import { BlockJournal, retireJournalDir } from '../ingest/block-journal.ts';
import { TemplateSource, type TemplateSourceOptions } from '../node/template-source.ts';
import { type BlockTemplate, type NodeClient, templateTxCount } from '../node/types.ts';
import type { BlockCounters, UnsettledBlock } from '../shares/block-state.ts';
import type { ShareLog, StorageState } from '../shares/events.ts';
import { type Job, assembleShareBlock } from '../shares/job.ts';
import { JobManager } from '../shares/jobs.ts';
import { type ShareOutcome, emptyOutcomeCounts } from '../shares/outcome.ts';
import type { ShareResult, SubmitParams } from '../shares/validator.ts';
import type { StratumOptions } from '../stratum/options.ts';
import { StratumServer } from '../stratum/server.ts';
import type { AuthResult, AuthorizedWorker, ShareRefusal, StratumHost, StratumSession, WorkAssignment } from '../stratum/session.ts';
import { AnswerGate } from './answer-gate.ts';
import { BlockTracker, type BlockTrackerOptions, DEFAULT_BLOCK_TRACKER_OPTIONS } from './block-tracker.ts';
import { type SoloDirectory, soloOutputs } from './solo.ts';

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export interface PoolOptions {
  network: NetworkName;
  /** Where the coinbase pays (until accounting splits it). */
  payoutAddress: string;
  poolTag: string;
  /** Require the account part of "account.worker" to be a valid address of the network (SOLO-style). */
  requireAddressAccounts: boolean;
  stratum: StratumOptions;
  templates: TemplateSourceOptions;
  jobRetentionMs?: number;
  /** Found blocks: where the journal lives (null: no journal, for tests that need none) and the tracker's rules. */
  blocks: {
    journalDir: string | null;
    reserveBytes?: number;
    /** Journals of Stratum processes no longer started (the cluster's lead): their unsettled blocks are taken up at start. */
    adoptJournalDirs?: string[];
  } & Partial<Omit<BlockTrackerOptions, 'isOurCoinbase' | 'tipHeight'>>;
  /** Blocks the database holds unsettled (taken up at start besides the journal's). */
  loadStoredBlocks?: () => Promise<UnsettledBlock[]>;
}

export interface BlockRecord {
  height: number;
  hash: string;
  account: string;
  worker: string;
  result: string | null;
  time: number;
}

export interface PoolStats {
  shares: Record<ShareOutcome, number>;
  acceptedDifficulty: number;
  readonly blocks: BlockCounters;
  /** The nodes' submitblock answers: 'accepted' for null, else the reason (or "error: …"). */
  blockResults: Record<string, number>;
  lastBlock: BlockRecord | null;
  jobs: number;
  templateHeight: number | null;
}

/** Routing of sessions to other pools' work (src/routing's Router), set by the wiring. */
export interface SessionRouting {
  resumeWork(session: StratumSession, subscriptionId: string | undefined): WorkAssignment | null;
  onAuthorized(session: StratumSession, worker: AuthorizedWorker): void;
  onClose(session: StratumSession): void;
}

const ACCOUNT_RE = /^[A-Za-z0-9_-]{1,100}$/;
const WORKER_RE = /^[A-Za-z0-9_.:-]{0,64}$/;

/**
 * The pool: templates from a node become jobs, miners' shares are validated by the stratum sessions, block
 * candidates go to the node first (BlockTracker), and every classified share and block goes to the share log.
 */
export class Pool implements StratumHost {
  readonly jobs: JobManager;
  readonly server: StratumServer;
  readonly templates: TemplateSource;
  readonly blocks: BlockTracker;
  readonly stats: PoolStats;
  private readonly journal: BlockJournal | null;
  private readonly bootId = randomBytes(4).toString('hex');
  private shareSeq = 0;
  private readonly payoutScript: Buffer;
  private readonly tagBytes: Buffer;
  /** Who mines SOLO (from the books); null: nobody does, every session gets the pool's coinbase. */
  private solo: SoloDirectory | null = null;
  /** Answers to accepted shares wait for the share log's spool write of the turn (see AnswerGate). */
  private readonly answers: AnswerGate;

  constructor(
    private readonly node: NodeClient,
    private readonly opts: PoolOptions,
    private readonly shareLog: ShareLog,
    private readonly log: Logger,
    readonly now: () => number = Date.now,
  ) {
    this.payoutScript = addressToScript(opts.payoutAddress, opts.network);
    this.tagBytes = Buffer.from(opts.poolTag, 'utf8');
    this.answers = new AnswerGate(shareLog);
    this.jobs = new JobManager({
      extranonceSize: opts.stratum.extranonce1Size + opts.stratum.extranonce2Size,
      tag: this.tagBytes,
      outputs: (value) => [{ value, scriptPubKey: this.payoutScript }],
      retentionMs: opts.jobRetentionMs,
    });
    this.server = new StratumServer(this, opts.stratum, log.child({ mod: 'stratum' }));
    this.templates = new TemplateSource(node, { ...opts.templates, logger: log.child({ mod: 'templates' }) });
    this.templates.on('template', (t, meta) => this.onTemplate(t, meta.newTip));
    // The node's tip moved before a template on it came (ZMQ, polling; getblocktemplate may be failing):
    // work on the old tip is stale at once; miners get new work with the next template.
    this.templates.on('tip', (hash) => this.jobs.markTip(hash));
    const b = opts.blocks;
    this.journal = b.journalDir === null ? null : new BlockJournal(b.journalDir, { reserveBytes: b.reserveBytes, logger: log.child({ mod: 'block-journal' }) });
    const results: Record<string, number> = {};
    this.blocks = new BlockTracker(node, this.journal, (e) => {
      if (e.kind === 'answer') {
        const key = e.answer ?? 'accepted';
        results[key] = (results[key] ?? 0) + 1;
      }
      this.shareLog.appendBlock(e);
    }, {
      ...DEFAULT_BLOCK_TRACKER_OPTIONS,
      ...stripUndefined(b),
      isOurCoinbase: (cb) => this.isOurCoinbase(cb),
      tipHeight: () => (this.jobs.current ? this.jobs.current.height - 1 : null),
    }, log.child({ mod: 'blocks' }), now);
    // Our own block moves the pool at once: ask for the next template now, and again until it builds on it.
    this.blocks.on('accepted', (hash) => this.templates.expectTip(hash));
    const tracker = this.blocks;
    this.stats = {
      shares: emptyOutcomeCounts(),
      acceptedDifficulty: 0,
      get blocks(): BlockCounters {
        const t = tracker.stats;
        return { candidates: t.candidates, submissions: t.rounds, recovered: t.recovered, superseded: t.superseded, ...t.byStatus };
      },
      blockResults: results,
      lastBlock: null,
      jobs: 0,
      templateHeight: null,
    };
  }

  /** Take up the unsettled blocks of a journal no process opens any more, then retire it (see adoptJournal). */
  private adoptLeftoverJournal(dir: string): void {
    let other: BlockJournal;
    try {
      other = new BlockJournal(dir, { reserveBytes: 0, logger: this.log.child({ mod: 'block-journal', journal: dir }) });
    } catch (e) {
      // Held by a live process (an older pool still running on this data dir): left to it.
      this.log.warn({ dir, err: (e as Error).message }, 'the block journal of a Stratum process no longer started cannot be taken up now');
      return;
    }
    try {
      this.blocks.adoptJournal(other);
    } finally {
      other.close();
    }
    try {
      this.log.info({ dir, retiredTo: retireJournalDir(dir) }, 'retired the block journal of a Stratum process no longer started');
    } catch (e) {
      // Taken up again at the next start: blocks already in this journal are skipped.
      this.log.warn({ dir, err: (e as Error).message }, 'could not retire a taken-up block journal');
    }
  }

  /** Take up unsettled blocks, wait for the first template, then open the stratum ports. */
  async start(): Promise<{ port: number; tlsPort?: number }> {
    this.blocks.start();
    for (const dir of this.opts.blocks.adoptJournalDirs ?? []) this.adoptLeftoverJournal(dir);
    if (this.opts.loadStoredBlocks) {
      // The database may be down: its blocks are taken up when it answers, without holding up the start.
      this.opts.loadStoredBlocks().then(
        (stored) => this.blocks.adoptStored(stored),
        (err: unknown) => this.log.warn({ err: (err as Error).message }, 'could not read unsettled blocks from the database; the journal\'s are taken up'),
      );
    }
    const first = await this.templates.start();
    if (!this.jobs.current) this.onTemplate(first, true);
    return this.server.listen();
  }

  private onTemplate(t: BlockTemplate, newTip: boolean): void {
    let added;
    try {
      added = this.jobs.addTemplate(t, this.now());
    } catch (err) {
      // A template we cannot turn into a job (e.g. a coinbase over 100 bytes): keep serving the last job.
      this.log.error({ err: (err as Error).message, height: t.height }, 'cannot build a job from the template');
      return;
    }
    this.stats.jobs++;
    this.stats.templateHeight = t.height;
    const clean = added.clean || newTip;
    this.log.debug({ job: added.job.id, height: t.height, txs: templateTxCount(t), clean }, 'new job');
    this.server.broadcast(added.job, clean);
    // A new tip can settle blocks (confirmations, orphans) and ends retries of blocks the chain moved past.
    if (clean) void this.blocks.checkAll();
  }

  /** A coinbase the pool built: it carries the pool's tag and pays the pool's address. */
  private isOurCoinbase(cb: Tx): boolean {
    const sig = cb.inputs[0]?.scriptSig;
    if (!sig || Buffer.from(sig).indexOf(this.tagBytes) === -1) return false;
    return cb.outputs.some((o) => Buffer.from(o.scriptPubKey).equals(this.payoutScript));
  }

  /** Where SOLO payouts come from (the books). Sessions get their coinbase from the next job sent. */
  setSoloDirectory(dir: SoloDirectory | null): void {
    this.solo = dir;
  }

  /**
   * These accounts' SOLO payouts changed (joined or left SOLO, a new payout address took effect): their sessions
   * get the current job again at once, with the coinbase that now applies, and drop work on the old one.
   */
  soloChanged(accounts: Iterable<string>): number {
    const changed = new Set(accounts);
    const job = this.jobs.current;
    if (changed.size === 0 || !job) return 0;
    let n = 0;
    for (const s of this.server.sessions) {
      for (const a of s.accounts()) {
        if (changed.has(a)) {
          s.sendJob(job, true);
          n++;
          break;
        }
      }
    }
    return n;
  }

  // ---- StratumHost ---------------------------------------------------------------------------------------

  workFor(job: Job, session: StratumSession): Job {
    const base = job.base ?? job;
    const solo = this.solo;
    if (!solo?.active) return base;
    const accounts = session.accounts();
    // A proxy's connection with several accounts mines with the pool (authorize keeps SOLO accounts alone).
    if (accounts.size !== 1) return base;
    const payout = solo.payoutFor(accounts.values().next().value as string);
    if (!payout) return base;
    return this.jobs.variant(base, payout.key, (value) => soloOutputs(value, payout, this.payoutScript));
  }

  authorize(user: string, _password: string, session: StratumSession): AuthResult {
    const dot = user.indexOf('.');
    const account = dot === -1 ? user : user.slice(0, dot);
    const worker = dot === -1 ? 'default' : user.slice(dot + 1) || 'default';
    if (!ACCOUNT_RE.test(account)) return { ok: false, reason: `invalid account name "${account.slice(0, 100)}": use letters, digits, _ or -` };
    if (!WORKER_RE.test(worker)) return { ok: false, reason: `invalid worker name "${worker.slice(0, 64)}"` };
    if (this.opts.requireAddressAccounts) {
      try {
        addressToScript(account, this.opts.network);
      } catch (e) {
        return { ok: false, reason: (e as Error).message };
      }
    }
    if (this.solo?.active) {
      // A SOLO coinbase pays one account: a connection that mines for one cannot also mine for another.
      const others = [...session.accounts()].filter((a) => a !== account);
      const soloOne = this.solo.payoutFor(account) ? account : others.find((a) => this.solo!.payoutFor(a));
      if (others.length > 0 && soloOne) {
        return { ok: false, reason: `account "${soloOne}" mines SOLO (its coinbase pays it alone): open one connection per SOLO account (this one already mines for "${others[0]}")` };
      }
    }
    this.log.debug({ session: session.id, ip: session.remoteAddress, account, worker, ua: session.userAgent }, 'authorized');
    return { ok: true, name: user, account, worker };
  }

  onShare(session: StratumSession, worker: AuthorizedWorker | null, poolDifficulty: number, result: ShareResult, p: SubmitParams): ShareRefusal | void {
    const now = this.now();
    // Block first: before counting, logging or answering, a candidate goes to the node, then to the journal.
    let blockHash: string | undefined;
    const found = result.outcome === 'accepted' ? (result.block ? result : null) : result.outcome === 'stale' ? result.block : null;
    if (found && worker) {
      const job = result.job!;
      blockHash = hashToDisplay(found.hash);
      const hex = toHex(assembleShareBlock(job, session.extranonce1, found.extranonce2, found.header));
      this.blocks.found({
        hash: blockHash, height: job.height, prevHash: job.prevHashHex, account: worker.account, worker: worker.worker,
        reward: job.coinbaseValue, hex, time: now,
      });
      this.stats.lastBlock = { height: job.height, hash: blockHash, account: worker.account, worker: worker.worker, result: null, time: now };
    }
    const refusal = this.refuseWithoutStorage();
    if (refusal) return refusal;
    this.stats.shares[result.outcome]++;
    if (result.outcome === 'accepted') this.stats.acceptedDifficulty += poolDifficulty;
    this.shareLog.appendShare({
      id: `${this.bootId}-${session.id}-${(++this.shareSeq).toString(36)}`,
      time: now,
      account: worker?.account ?? '',
      worker: worker?.worker ?? p.worker,
      sessionId: session.id,
      remoteAddress: session.remoteAddress,
      jobId: p.jobId,
      height: result.job?.height ?? 0,
      outcome: result.outcome,
      poolDifficulty,
      shareDifficulty: result.shareDifficulty ?? 0,
      block: !!blockHash,
      blockHash,
      nbits: result.job?.bits,
    });
    if (result.outcome === 'accepted' || blockHash) this.answers.hold(session.socket);
  }

  /**
   * A share the share log cannot record now (disk budget or disk full, spool writes failing) is not appended and
   * not credited: the miner is told so (the block of a block share was submitted above all the same, and block
   * events are always recorded). The share log counts and logs the refusals.
   */
  private refuseWithoutStorage(): ShareRefusal | null {
    const st: StorageState | undefined = this.shareLog.admitShare?.();
    if (!st || st.accepting) return null;
    const what = st.reason === 'write-failed' ? 'storage failing' : 'storage full';
    return { code: 20, message: `Pool cannot record shares right now (${what}); not credited` };
  }

  /** Set by the metrics layer to receive submit latencies (seconds). */
  submitObserver: ((seconds: number) => void) | null = null;

  observeSubmit(seconds: number): void {
    this.submitObserver?.(seconds);
  }

  onAbuse(session: StratumSession, reason: string): void {
    this.server.ban(session, reason);
  }

  /** null: every session works on pool jobs. */
  routing: SessionRouting | null = null;

  resumeWork(session: StratumSession, subscriptionId: string | undefined): WorkAssignment | null {
    return this.routing ? this.routing.resumeWork(session, subscriptionId) : null;
  }

  onAuthorized(session: StratumSession, worker: AuthorizedWorker): void {
    this.routing?.onAuthorized(session, worker);
  }

  onClose(session: StratumSession): void {
    this.routing?.onClose(session);
    this.log.debug({ session: session.id, ip: session.remoteAddress, reason: session.closeReason }, 'connection closed');
  }

  /**
   * Graceful: stop accepting, client.reconnect to miners, give block submissions in flight a moment; a block
   * still without a verdict stays in the journal and is resubmitted at the next start.
   */
  async stop(graceMs = 2000): Promise<void> {
    await this.server.close(graceMs);
    await this.blocks.stop(graceMs);
    await this.templates.stop();
    this.journal?.close();
  }
}
