import type { Socket } from 'node:net';
import { difficultyToTarget, targetBytes, targetToDifficulty, toHex, u32Hex } from '../chain/index.ts';
import { type Job, notifyLine } from '../shares/job.ts';
import type { JobManager } from '../shares/jobs.ts';
import { REJECT_ERRORS, type ShareOutcome } from '../shares/outcome.ts';
import { type ShareResult, type SubmitParams, newRootCache, validateShare } from '../shares/validator.ts';
import { LineFramer, type LineTooLongError } from './framing.ts';
import type { StratumOptions } from './options.ts';
import { ProtocolError, type RequestId, type StratumRequest, parseMessage } from './protocol.ts';
import { Vardiff, clampDifficulty } from './vardiff.ts';

export interface AuthorizedWorker {
  /** "account.worker" as the miner sent it. */
  name: string;
  account: string;
  worker: string;
}

export type AuthResult = ({ ok: true } & AuthorizedWorker) | { ok: false; reason: string };

/** What a session needs from the pool around it. Stratum knows nothing of HTTP, SQL or the node. */
export interface StratumHost {
  readonly jobs: JobManager;
  authorize(user: string, password: string, session: StratumSession): AuthResult;
  /** Called for every classified share before the miner is answered (a block is submitted from here first). */
  onShare(session: StratumSession, worker: AuthorizedWorker | null, poolDifficulty: number, result: ShareResult, params: SubmitParams): void;
  /** Abuse the session cannot handle alone: the server bans and closes. */
  onAbuse(session: StratumSession, reason: string): void;
  onClose(session: StratumSession): void;
  /** Time from a submit line's parse to its answer being written, for the latency histogram. */
  observeSubmit?(seconds: number): void;
  now(): number;
}

interface SentJob {
  job: Job;
  difficulty: number;
  /** 32 little-endian bytes. */
  target: Buffer;
}

const MAX_SENT_JOBS = 64;
/** Proxies authorize many workers on one connection; the cap keeps one peer from growing the map forever. */
const MAX_WORKERS_PER_SESSION = 1024;
const ZERO_TARGET = Buffer.alloc(32);

/** One miner connection: the protocol state machine. */
export class StratumSession {
  readonly connectedAt: number;
  readonly remoteAddress: string;
  userAgent = '';
  subscribed = false;
  extranonceSubscribed = false;
  versionMask = 0;
  readonly workers = new Map<string, AuthorizedWorker>();
  difficulty: number;
  private minDifficulty: number;
  private suggested: number | null = null;
  private vardiff: Vardiff;
  private readonly sentJobs = new Map<string, SentJob>();
  private reissue = 0;
  private lastJob: Job | null = null;
  private lastSentId = '';
  /** Latest ntime sent for lastJob (re-issues of one job never repeat an ntime). */
  private lastNtime = 0;
  private readonly rootCache = newRootCache();
  private cachedTarget: { difficulty: number; target: Buffer } | null = null;
  lastShareAt = 0;
  authorizedAt = 0;
  lastActivityAt: number;
  closed = false;
  readonly counts: Partial<Record<ShareOutcome, number>> = {};
  private readonly framer: LineFramer;
  // token bucket
  private tokens: number;
  private tokensAt: number;
  // abuse window
  private windowStart: number;
  private windowShares = 0;
  private windowRejects = 0;
  private windowGarbage = 0;

  constructor(
    readonly id: string,
    readonly socket: Socket,
    readonly extranonce1: Buffer,
    private readonly host: StratumHost,
    private readonly opts: StratumOptions,
  ) {
    const now = host.now();
    this.connectedAt = now;
    this.lastActivityAt = now;
    this.windowStart = now;
    this.remoteAddress = socket.remoteAddress ?? 'unknown';
    this.minDifficulty = opts.vardiff.minDifficulty;
    this.difficulty = clampDifficulty(opts.initialDifficulty, this.minDifficulty, opts.vardiff.maxDifficulty);
    this.vardiff = new Vardiff(opts.vardiff, this.difficulty, now);
    this.tokens = opts.messageBurst;
    this.tokensAt = now;
    this.extranonce1Hex = toHex(extranonce1);
    this.framer = new LineFramer(opts.maxLineBytes, (line) => this.onLine(line), (err) => this.onOversized(err));
    socket.on('data', (chunk: Buffer) => this.framer.push(chunk));
  }

  readonly extranonce1Hex: string;

  get authorized(): boolean { return this.workers.size > 0; }

  // ---- inbound -------------------------------------------------------------------------------------------

  private onLine(line: string): void {
    if (this.closed) return;
    const now = this.host.now();
    this.lastActivityAt = now;
    this.rollWindow(now);
    if (!this.takeToken(now)) {
      this.garbage('message rate limit exceeded');
      return this.sendError(extractId(line), 20, 'Rate limit exceeded: slow down');
    }
    let msg: ReturnType<typeof parseMessage>;
    try {
      msg = parseMessage(line);
    } catch (e) {
      if (e instanceof ProtocolError) {
        this.garbage(e.message);
        return this.sendError(e.id, e.code, e.message);
      }
      throw e;
    }
    if ('kind' in msg) return; // a response to something we asked (client.get_version…)
    this.dispatch(msg, now);
  }

  private dispatch(req: StratumRequest, now: number): void {
    switch (req.method) {
      case 'mining.submit': return this.onSubmit(req.id, req.submit, now);
      case 'mining.subscribe': return this.onSubscribe(req.id, req.userAgent);
      case 'mining.authorize': return this.onAuthorize(req.id, req.user, req.password);
      case 'mining.configure': return this.onConfigure(req.id, req.extensions, req.params);
      case 'mining.suggest_difficulty': this.suggestDifficulty(req.difficulty); return this.sendResult(req.id, true);
      case 'mining.suggest_target': {
        const t = BigInt('0x' + req.target);
        if (t > 0n) this.suggestDifficulty(targetToDifficulty(t));
        return this.sendResult(req.id, true);
      }
      case 'mining.extranonce.subscribe': this.extranonceSubscribed = true; return this.sendResult(req.id, true);
      case 'mining.ping': return this.sendResult(req.id, 'pong');
    }
  }

  private onSubscribe(id: RequestId, userAgent: string): void {
    if (this.subscribed) return this.sendError(id, 20, 'Already subscribed');
    this.subscribed = true;
    this.userAgent = userAgent;
    for (const [prefix, min] of Object.entries(this.opts.userAgentMinDifficulty)) {
      if (userAgent.toLowerCase().startsWith(prefix.toLowerCase())) this.minDifficulty = Math.max(this.minDifficulty, min);
    }
    if (this.difficulty < this.minDifficulty) this.setDifficultyNow(this.minDifficulty);
    // The subscribe reply must be the first line the server sends (cpuminer): nothing is sent before it.
    this.write(`{"id":${JSON.stringify(id)},"result":[[["mining.set_difficulty","${this.id}"],["mining.notify","${this.id}"]],"${this.extranonce1Hex}",${this.opts.extranonce2Size}],"error":null}\n`);
    // Authorized before subscribing (some firmware does): work follows the subscribe reply.
    if (this.authorized && this.host.jobs.current) this.sendJob(this.host.jobs.current, true);
  }

  private onAuthorize(id: RequestId, user: string, password: string): void {
    const res = this.host.authorize(user, password, this);
    if (!res.ok) {
      this.garbage(`authorization refused: ${res.reason}`);
      this.sendError(id, 24, res.reason);
      return;
    }
    if (!this.workers.has(res.name) && this.workers.size >= MAX_WORKERS_PER_SESSION) {
      this.garbage('too many workers on one connection');
      return this.sendError(id, 24, `at most ${MAX_WORKERS_PER_SESSION} workers per connection`);
    }
    const first = !this.authorized;
    if (first) this.authorizedAt = this.host.now();
    this.workers.set(res.name, { name: res.name, account: res.account, worker: res.worker });
    const d = /(?:^|[,;\s])d=([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)/i.exec(password);
    if (d && first && !this.lastJob) this.suggestDifficulty(Number(d[1]));
    this.sendResult(id, true);
    // Work only after the authorize reply (cpuminer takes the first unknown line as that reply).
    if (first && this.subscribed) {
      const job = this.host.jobs.current;
      if (job) this.sendJob(job, true);
    }
  }

  private onConfigure(id: RequestId, extensions: string[], params: Record<string, unknown>): void {
    const result: Record<string, unknown> = {};
    for (const ext of extensions) {
      if (ext === 'version-rolling') {
        const requested = parseInt(String(params['version-rolling.mask'] ?? 'ffffffff'), 16) >>> 0;
        this.versionMask = (requested & this.opts.versionMask) >>> 0;
        result['version-rolling'] = true;
        result['version-rolling.mask'] = u32Hex(this.versionMask);
      } else if (ext === 'minimum-difficulty') {
        const v = Number(params['minimum-difficulty.value']);
        if (v > 0 && Number.isFinite(v)) {
          this.minDifficulty = clampDifficulty(v, this.opts.vardiff.minDifficulty, this.opts.vardiff.maxDifficulty);
          if (this.difficulty < this.minDifficulty) this.suggestDifficulty(this.minDifficulty);
          result['minimum-difficulty'] = true;
        } else {
          result['minimum-difficulty'] = false;
        }
      } else if (ext === 'subscribe-extranonce') {
        this.extranonceSubscribed = true;
        result['subscribe-extranonce'] = true;
      } else {
        result[ext] = false; // unknown extensions are answered, never fatal (ASICs fail over otherwise)
      }
    }
    this.sendResult(id, result);
  }

  private onSubmit(id: RequestId, p: SubmitParams, now: number): void {
    const t0 = this.host.observeSubmit ? performance.now() : 0;
    this.handleSubmit(id, p, now);
    if (t0) this.host.observeSubmit!((performance.now() - t0) / 1000);
  }

  private handleSubmit(id: RequestId, p: SubmitParams, now: number): void {
    if (!this.subscribed) return this.sendError(id, 25, 'Not subscribed');
    const worker = this.workers.get(p.worker) ?? null;
    const sent = this.sentJobs.get(p.jobId);
    let result: ShareResult;
    if (!worker) {
      result = { outcome: 'unauthorized', job: sent?.job };
    } else {
      result = validateShare(this.host.jobs, {
        extranonce1: this.extranonce1,
        extranonce1Hex: this.extranonce1Hex,
        extranonce2Size: this.opts.extranonce2Size,
        versionMask: this.versionMask,
        job: sent?.job,
        target: sent?.target ?? ZERO_TARGET,
        rootCache: this.rootCache,
        nowSec: Math.floor(now / 1000),
        maxNtimeAheadSec: this.opts.maxNtimeAheadSec,
      }, p);
    }
    const poolDifficulty = sent?.difficulty ?? this.difficulty;
    this.counts[result.outcome] = (this.counts[result.outcome] ?? 0) + 1;
    // The host submits a block candidate to the node before anything else happens to the share.
    this.host.onShare(this, worker, poolDifficulty, result, p);
    this.windowShares++;
    if (result.outcome === 'accepted') {
      this.lastShareAt = now;
      this.sendResult(id, true);
      // Only shares at the current difficulty say anything about the current rate.
      if (poolDifficulty === this.vardiff.current) {
        const next = this.vardiff.onShare(now);
        if (next !== null) this.applyDifficulty(next);
      }
      return;
    }
    if (result.outcome !== 'stale') this.windowRejects++;
    const [code, message] = REJECT_ERRORS[result.outcome];
    this.sendError(id, code, message);
    this.checkRejects();
  }

  private onOversized(err: LineTooLongError): void {
    this.host.onAbuse(this, err.message);
  }

  // ---- difficulty ----------------------------------------------------------------------------------------

  /** suggest_difficulty / d= / minimum-difficulty: before the first job it sets the start; after, it retargets. */
  suggestDifficulty(d: number): void {
    const next = clampDifficulty(d, this.minDifficulty, this.opts.vardiff.maxDifficulty);
    this.suggested = next;
    if (!this.lastJob) this.setDifficultyNow(next);
    else this.applyDifficulty(next);
  }

  private setDifficultyNow(d: number): void {
    this.difficulty = d;
    this.vardiff.reset(d, this.host.now());
  }

  /**
   * A new difficulty applies from the next job: send set_difficulty, then re-issue the current job under a
   * new id, so shares are always checked at the difficulty in force for the job they answer.
   */
  private applyDifficulty(d: number): void {
    d = clampDifficulty(d, this.minDifficulty, this.opts.vardiff.maxDifficulty);
    if (this.lastJob) d = Math.min(d, this.lastJob.networkDifficulty);
    if (this.closed) return;
    if (d === this.difficulty) {
      // Clamped back to where it was: vardiff must agree, or it stops counting shares at this difficulty.
      this.vardiff.reset(d, this.host.now());
      return;
    }
    this.setDifficultyNow(d);
    const job = this.lastJob;
    if (job && !this.host.jobs.isStale(job)) {
      // A later ntime than any sent for this job, so the re-issued work is new work (see notifyLine).
      const ntime = Math.max(Math.floor(this.host.now() / 1000), this.lastNtime + 1);
      this.sendJob(job, false, `${job.id}-${(++this.reissue).toString(16)}`, ntime);
    }
  }

  /** Periodic: timeouts and vardiff for miners that stopped finding shares. */
  tick(now: number): void {
    if (this.closed) return;
    if (!this.subscribed && now - this.connectedAt > this.opts.subscribeTimeoutMs) return this.close('no mining.subscribe in time');
    if (!this.authorized && now - this.connectedAt > this.opts.authorizeTimeoutMs) return this.close('no successful mining.authorize in time');
    // Shares, not pings, count as life: a connection that only keeps itself open is not mining.
    if (this.authorized && now - Math.max(this.lastShareAt, this.authorizedAt) > this.opts.shareTimeoutMs) return this.close('idle: no share for too long');
    if (this.lastJob) {
      const next = this.vardiff.onTick(now);
      if (next !== null) this.applyDifficulty(next);
    }
  }

  // ---- outbound ------------------------------------------------------------------------------------------

  /** Send a job (set_difficulty first when it changed: cpuminer applies it at the next notify). */
  sendJob(job: Job, clean: boolean, id = job.id, ntime = job.ntime): void {
    if (this.closed || !this.authorized || !this.subscribed) return;
    // A job on another tip than the last one sent always drops old work, whatever the caller said.
    if (this.lastJob && !this.lastJob.prevHash.equals(job.prevHash)) clean = true;
    if (this.difficulty > job.networkDifficulty) this.setDifficultyNow(job.networkDifficulty);
    const prev = this.lastJob ? this.sentJobs.get(this.lastSentId)?.difficulty : undefined;
    let out = '';
    if (prev !== this.difficulty) out += `{"id":null,"method":"mining.set_difficulty","params":[${this.difficulty}]}\n`;
    if (job !== this.lastJob) this.lastNtime = 0;
    ntime = Math.max(ntime, this.lastNtime === 0 ? 0 : this.lastNtime + 1);
    this.lastNtime = ntime;
    out += notifyLine(job, id, clean, ntime);
    this.sentJobs.set(id, { job, difficulty: this.difficulty, target: this.targetFor(this.difficulty) });
    if (this.sentJobs.size > MAX_SENT_JOBS) this.sentJobs.delete(this.sentJobs.keys().next().value as string);
    this.lastJob = job;
    this.lastSentId = id;
    this.write(out);
  }

  private targetFor(difficulty: number): Buffer {
    if (this.cachedTarget?.difficulty !== difficulty) this.cachedTarget = { difficulty, target: targetBytes(difficultyToTarget(difficulty)) };
    return this.cachedTarget.target;
  }

  /** BIP310 server-side mask change (only to sessions that negotiated version rolling). */
  setVersionMask(mask: number): void {
    if (!this.versionMask) return;
    this.versionMask = (mask & this.opts.versionMask) >>> 0;
    this.write(`{"id":null,"method":"mining.set_version_mask","params":["${u32Hex(this.versionMask)}"]}\n`);
  }

  sendReconnect(host?: string, port?: number): void {
    const params = host && port ? `["${host}",${port},0]` : '[]';
    this.write(`{"id":null,"method":"client.reconnect","params":${params}}\n`);
  }

  sendResult(id: RequestId, result: unknown): void {
    this.write(`{"id":${JSON.stringify(id)},"result":${JSON.stringify(result)},"error":null}\n`);
  }

  sendError(id: RequestId, code: number, message: string): void {
    this.write(`{"id":${JSON.stringify(id)},"result":null,"error":[${code},${JSON.stringify(message)},null]}\n`);
  }

  private write(s: string): void {
    if (this.closed || this.socket.destroyed) return;
    if (this.socket.writableLength > this.opts.maxWriteBufferBytes) return this.close('peer is not reading (write buffer full)');
    this.socket.write(s);
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    this.framer.stop();
    this.socket.end();
    // Half-closed peers must not hold the slot: destroy after a short grace.
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  closeReason = '';

  // ---- abuse ---------------------------------------------------------------------------------------------

  private takeToken(now: number): boolean {
    this.tokens = Math.min(this.opts.messageBurst, this.tokens + ((now - this.tokensAt) * this.opts.messagesPerSecond) / 1000);
    this.tokensAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private rollWindow(now: number): void {
    if (now - this.windowStart < this.opts.ban.windowMs) return;
    this.windowStart = now;
    this.windowShares = 0;
    this.windowRejects = 0;
    this.windowGarbage = 0;
  }

  private garbage(reason: string): void {
    if (++this.windowGarbage >= this.opts.ban.maxGarbage) this.host.onAbuse(this, `too many bad messages (last: ${reason})`);
  }

  private checkRejects(): void {
    const b = this.opts.ban;
    if (this.windowRejects >= b.maxRejects && this.windowRejects / this.windowShares >= b.minRejectRatio) {
      this.host.onAbuse(this, `${this.windowRejects} invalid shares of ${this.windowShares} in ${b.windowMs / 1000}s`);
    }
  }
}

function extractId(line: string): RequestId {
  const m = /"id"\s*:\s*(\d{1,15}|"[^"]{0,64}")/.exec(line);
  if (!m) return null;
  return m[1].startsWith('"') ? m[1].slice(1, -1) : Number(m[1]);
}
