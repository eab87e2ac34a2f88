import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { type NetworkName, addressToScript, hashToDisplay, toHex } from '../chain/index.ts';
import { TemplateSource, type TemplateSourceOptions } from '../node/template-source.ts';
import type { BlockTemplate, NodeClient } from '../node/types.ts';
import type { ShareLog } from '../shares/events.ts';
import { assembleShareBlock } from '../shares/job.ts';
import { JobManager } from '../shares/jobs.ts';
import { type ShareOutcome, emptyOutcomeCounts } from '../shares/outcome.ts';
import type { ShareResult, SubmitParams } from '../shares/validator.ts';
import type { StratumOptions } from '../stratum/options.ts';
import { StratumServer } from '../stratum/server.ts';
import type { AuthResult, AuthorizedWorker, StratumHost, StratumSession } from '../stratum/session.ts';

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
  blocks: { candidates: number; accepted: number; rejected: number; errors: number };
  blockResults: Record<string, number>;
  lastBlock: BlockRecord | null;
  jobs: number;
  templateHeight: number | null;
}

const ACCOUNT_RE = /^[A-Za-z0-9_-]{1,100}$/;
const WORKER_RE = /^[A-Za-z0-9_.:-]{0,64}$/;

/**
 * The pool: templates from a node become jobs, miners' shares are validated by the stratum sessions, block
 * candidates go to the node first, and every classified share and block goes to the share log.
 */
export class Pool implements StratumHost {
  readonly jobs: JobManager;
  readonly server: StratumServer;
  readonly templates: TemplateSource;
  readonly stats: PoolStats = {
    shares: emptyOutcomeCounts(),
    acceptedDifficulty: 0,
    blocks: { candidates: 0, accepted: 0, rejected: 0, errors: 0 },
    blockResults: {},
    lastBlock: null,
    jobs: 0,
    templateHeight: null,
  };
  private readonly bootId = randomBytes(4).toString('hex');
  private shareSeq = 0;
  private readonly pendingBlocks = new Set<Promise<void>>();
  private readonly payoutScript: Buffer;

  constructor(
    private readonly node: NodeClient,
    private readonly opts: PoolOptions,
    private readonly shareLog: ShareLog,
    private readonly log: Logger,
    readonly now: () => number = Date.now,
  ) {
    this.payoutScript = addressToScript(opts.payoutAddress, opts.network);
    this.jobs = new JobManager({
      extranonceSize: opts.stratum.extranonce1Size + opts.stratum.extranonce2Size,
      tag: Buffer.from(opts.poolTag, 'utf8'),
      outputs: (value) => [{ value, scriptPubKey: this.payoutScript }],
      retentionMs: opts.jobRetentionMs,
    });
    this.server = new StratumServer(this, opts.stratum, log.child({ mod: 'stratum' }));
    this.templates = new TemplateSource(node, { ...opts.templates, logger: log.child({ mod: 'templates' }) });
    this.templates.on('template', (t, meta) => this.onTemplate(t, meta.newTip));
  }

  /** Wait for the first template, then open the stratum ports. */
  async start(): Promise<{ port: number; tlsPort?: number }> {
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
    this.log.debug({ job: added.job.id, height: t.height, txs: t.transactions.length, clean }, 'new job');
    this.server.broadcast(added.job, clean);
  }

  // ---- StratumHost ---------------------------------------------------------------------------------------

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
    this.log.debug({ session: session.id, ip: session.remoteAddress, account, worker, ua: session.userAgent }, 'authorized');
    return { ok: true, name: user, account, worker };
  }

  onShare(session: StratumSession, worker: AuthorizedWorker | null, poolDifficulty: number, result: ShareResult, p: SubmitParams): void {
    const now = this.now();
    // Block first: before counting, logging or answering, the candidate goes to the node.
    let blockHash: string | undefined;
    if (result.outcome === 'accepted' && result.block) {
      blockHash = hashToDisplay(result.hash);
      this.submitBlock(session, worker!, result, blockHash, now);
    }
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
    });
  }

  private submitBlock(session: StratumSession, worker: AuthorizedWorker, r: Extract<ShareResult, { outcome: 'accepted' }>, hash: string, now: number): void {
    const blockHex = toHex(assembleShareBlock(r.job, session.extranonce1, r.extranonce2, r.header));
    this.stats.blocks.candidates++;
    this.log.info({ height: r.job.height, hash, account: worker.account, worker: worker.worker }, 'block candidate found, submitting');
    const p = this.node.submitBlock(blockHex).then(
      (res) => (res === null ? this.confirmOnBestChain(r.job.height, hash) : res),
      (err: Error) => { this.stats.blocks.errors++; return `error: ${err.message}`; },
    ).then((res) => {
      const accepted = res === null;
      if (accepted) this.stats.blocks.accepted++; else this.stats.blocks.rejected++;
      const key = res ?? 'accepted';
      this.stats.blockResults[key] = (this.stats.blockResults[key] ?? 0) + 1;
      const rec: BlockRecord = { height: r.job.height, hash, account: worker.account, worker: worker.worker, result: res, time: now };
      this.stats.lastBlock = rec;
      if (accepted) this.log.info(rec, 'block accepted by the node');
      else this.log.warn(rec, 'block rejected by the node');
      this.shareLog.appendBlock({
        time: now, height: r.job.height, hash, prevHash: r.job.prevHashHex, account: worker.account, worker: worker.worker,
        reward: r.job.coinbaseValue, result: res, accepted, blockHex,
      });
      // Our own block is a new tip: fetch the next template now rather than at the next poll.
      this.templates.notifyNewTip();
    }).finally(() => { this.pendingBlocks.delete(p); });
    this.pendingBlocks.add(p);
  }

  /** Set by the metrics layer to receive submit latencies (seconds). */
  submitObserver: ((seconds: number) => void) | null = null;

  observeSubmit(seconds: number): void {
    this.submitObserver?.(seconds);
  }

  /**
   * null from submitblock means "valid", not "on the best chain": bcoin answers null for a competing block at a
   * height it already has (Core says "inconclusive"). Check the best chain at that height before calling the
   * block ours; when the node cannot be asked, trust its answer (accounting re-checks confirmations later).
   */
  private async confirmOnBestChain(height: number, hash: string): Promise<string | null> {
    try {
      const atHeight = await this.node.getBlockHash(height);
      return atHeight === hash ? null : 'inconclusive: valid but not on the best chain';
    } catch (err) {
      this.log.warn({ height, hash, err: (err as Error).message }, 'could not confirm the submitted block on the best chain');
      return null;
    }
  }

  onAbuse(session: StratumSession, reason: string): void {
    this.server.ban(session, reason);
  }

  onClose(session: StratumSession): void {
    this.log.debug({ session: session.id, ip: session.remoteAddress, reason: session.closeReason }, 'connection closed');
  }

  /** Graceful: stop accepting, client.reconnect to miners, wait for block submissions in flight. */
  async stop(graceMs = 2000): Promise<void> {
    await this.server.close(graceMs);
    await Promise.allSettled([...this.pendingBlocks]);
    await this.templates.stop();
  }
}
