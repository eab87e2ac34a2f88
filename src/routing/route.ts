import { EventEmitter } from 'node:events';
import { toHex } from '../chain/index.ts';
import type { ShareResult, SubmitParams } from '../shares/validator.ts';
import type { SentJob } from '../stratum/sent-jobs.ts';
import type { AuthorizedWorker, RoutedWork, StratumSession, WorkAssignment } from '../stratum/session.ts';
import { RouteError } from './errors.ts';
import type { RouteMeter } from './meter.ts';
import { PrefixAllocator } from './prefixes.ts';
import { RouteJobs } from './route-jobs.ts';
import { DEFAULT_UPSTREAM_OPTIONS, UpstreamClient, type UpstreamOptions, type UpstreamSession } from './upstream.ts';

/** Probing, with the handshake done (the market may allocate workers: their first share completes the probe). */
export const HANDSHAKE_OK = 'probe-handshake-ok';

export interface Destination {
  url: string;
  user: string;
  password: string;
}

export interface RouteSpec {
  id: number;
  name: string;
  /** Tried in order: backups after the first. */
  readonly destinations: Destination[];
  /** "account.worker" (one worker) or "account" (every worker of the account); the market changes them per tick. */
  workers: string[];
  /** Take only this much hashrate (H/s, by the pool's estimate) from the listed workers; absent: all of them. */
  hashrate?: number | null;
  bidId?: number | null;
  /** A market route's lease (ms since the epoch): past it no worker belongs to the route (Route.matches). */
  leaseEndMs?: number | null;
}

export type RouteState = 'probing' | 'ready' | 'paused' | 'failed' | 'stopped';

export interface RouteStatus {
  state: RouteState;
  code: string | null;
  message: string | null;
  since: number;
  destinationIndex: number;
  /** Workers that fit the upstream's extranonce2 after our prefix (null before the first connection). */
  workersFit: number | null;
  extranonce2ForMiners: number | null;
  upstreamDifficulty: number | null;
}

export interface RouteOptions {
  prefixBytes: number;
  minExtranonce2: number;
  /** Miners get the upstream's difficulty ÷ this; only shares meeting the upstream's target are forwarded. 1 = the upstream's (default). */
  minerDifficultyDivisor: number;
  /** Pause when more than this fraction of forwarded valid shares is rejected over rejectWindowMs (at least rejectMinShares answers). */
  maxRejectRatio: number;
  rejectWindowMs: number;
  rejectMinShares: number;
  /** After a pause for rejects, probe again after this long. */
  rejectCooldownMs: number;
  /** A released prefix waits this long before reuse (late shares). */
  prefixGraceMs: number;
  /** A destination asking a higher share difficulty than this is refused ('difficulty-too-high'): our miners would
   *  find too few shares for a meaningful meter. Default: no ceiling. */
  maxUpstreamDifficulty: number;
  upstream: Partial<Omit<UpstreamOptions, 'url' | 'user' | 'password'>>;
}

export const DEFAULT_ROUTE_OPTIONS: RouteOptions = {
  prefixBytes: 2, minExtranonce2: 4, minerDifficultyDivisor: 1, maxRejectRatio: 0.5, rejectWindowMs: 60_000, rejectMinShares: 10,
  rejectCooldownMs: 60_000, prefixGraceMs: 60_000, maxUpstreamDifficulty: Infinity, upstream: {},
};

export interface Member {
  session: StratumSession;
  worker: string;
  prefix: Buffer;
  assignment: WorkAssignment;
}

export interface RouteEvents {
  state: [RouteStatus];
  /** The route's members must change: the router (re)computes who goes where. */
  changed: [];
  /** A share forwarded and answered (for metrics): kind, seconds from submit to answer. */
  answered: [string];
}

/**
 * One destination pool and the sessions working for it: the upstream connection, its jobs as a JobSource, the
 * per-worker extranonce prefixes, share forwarding and the state machine (probing → ready ⇄ paused; failed; stopped).
 */
export class Route extends EventEmitter<RouteEvents> implements RoutedWork {
  readonly routeId: string;
  readonly jobs: RouteJobs;
  versionMask = 0;
  readonly members = new Map<StratumSession, Member>();
  /**
   * The workers (account.worker) each session was given to this route for: its shares of other workers (a proxy's)
   * are refused (admits). Kept after release, for late shares; the router adds a matching worker authorized later.
   */
  private readonly admitted = new WeakMap<StratumSession, Set<string>>();
  private upstream: UpstreamClient | null = null;
  private up: UpstreamSession | null = null;
  private up1Hex = '';
  private prefixes: PrefixAllocator | null = null;
  private prefixBytes = 0;
  private destIndex = 0;
  private failuresThisRound = 0;
  private cooldown: NodeJS.Timeout | null = null;
  private answers: { t: number; ok: boolean }[] = [];
  private badAnswers = 0;
  status: RouteStatus;
  /** The latest upstream failure (a paused route keeps its cause in status while retries fail otherwise). */
  lastError: RouteError | null = null;
  /** Smoothed upstream round-trip time (requests and share answers), seconds. */
  rttSeconds: number | null = null;
  /** Set while probing: shares are probe work until the first accepted one. */
  private probeAccepted = false;

  constructor(readonly spec: RouteSpec, private readonly opts: RouteOptions, private readonly meter: RouteMeter, private readonly now: () => number = Date.now) {
    super();
    this.routeId = String(spec.id);
    this.jobs = new RouteJobs(`r${spec.id}`);
    this.status = { state: 'probing', code: null, message: null, since: now(), destinationIndex: 0, workersFit: null, extranonce2ForMiners: null, upstreamDifficulty: null };
  }

  get state(): RouteState { return this.status.state; }
  /** Whether workers may be on this route now: probing (one worker, once the upstream gave a job) or ready. */
  get accepting(): 'all' | 'one' | 'none' {
    if (!this.up || !this.jobs.current || !this.prefixes) return 'none';
    if (this.status.state === 'ready') return 'all';
    if (this.status.state === 'probing' || this.status.state === 'failed') return 'one';
    return 'none';
  }

  matches(worker: AuthorizedWorker): boolean {
    // Past its lease (a market route whose next clearing did not come) no worker belongs to it, whether or not the
    // routes can be read again (the database down): work past the lease falls in ticks no clearing priced.
    if (this.spec.leaseEndMs != null && this.now() >= this.spec.leaseEndMs) return false;
    const full = `${worker.account}.${worker.worker}`;
    return this.spec.workers.some((w) => w === full || w === worker.name || w === worker.account);
  }

  start(): void {
    this.connect(0);
  }

  /** Shares forwarded to the destination and not answered yet. */
  get pendingAnswers(): number { return this.upstream?.pendingSubmits ?? 0; }

  stop(): void {
    this.setState('stopped', null, null);
    this.upstream?.stop();
    this.upstream = null;
    this.up = null;
    if (this.cooldown) clearTimeout(this.cooldown);
  }

  private connect(index: number): void {
    this.upstream?.stop();
    this.destIndex = index;
    this.status.destinationIndex = index;
    const d = this.spec.destinations[index];
    let client: UpstreamClient;
    try {
      client = new UpstreamClient({ ...DEFAULT_UPSTREAM_OPTIONS, ...this.opts.upstream, url: d.url, user: d.user, password: d.password });
    } catch (e) {
      return this.onDown(e instanceof RouteError ? e : new RouteError('bad-url', (e as Error).message), 0);
    }
    this.upstream = client;
    client.on('up', (s) => { if (this.upstream === client) this.onUp(s); });
    client.on('notify', (n, d2) => { if (this.upstream === client) this.onNotify(n, d2); });
    client.on('extranonce', () => { if (this.upstream === client && client.session) this.onUp(client.session); });
    client.on('versionMask', (m) => {
      if (this.upstream !== client) return;
      this.versionMask = m;
      // Shares are checked against the miner's mask ∩ this one from now: members must roll only those bits.
      for (const s of this.members.keys()) if (s.route === this) s.refreshVersionMask();
    });
    client.on('redirect', () => {
      if (this.upstream !== client) return;
      // Old jobs and extranonce are gone with the old connection; members get new ones after the next `up`.
      this.up = null;
      this.jobs.invalidate();
      this.emit('changed');
    });
    client.on('down', (err, retry) => { if (this.upstream === client) this.onDown(err, retry); });
    client.on('rtt', (sec) => { if (this.upstream === client) this.rttSeconds = this.rttSeconds === null ? sec : 0.8 * this.rttSeconds + 0.2 * sec; });
    client.start();
  }

  private onUp(s: UpstreamSession): void {
    this.jobs.invalidate();
    this.up = s;
    this.up1Hex = toHex(s.extranonce1);
    this.versionMask = s.versionMask;
    const room = s.extranonce2Size - this.opts.minExtranonce2;
    const bytes = Math.min(this.opts.prefixBytes, room);
    if (bytes < 1) {
      this.up = null;
      this.prefixes = null;
      this.emit('changed');
      return this.fail(new RouteError('extranonce2-too-small', `upstream gives ${s.extranonce2Size} bytes of extranonce2; ${this.opts.minExtranonce2} must be left to miners after a prefix of at least 1 byte (${this.opts.minExtranonce2 + 1} needed)`));
    }
    // A new upstream session: every member needs a new extranonce (the old prefixes meant the old extranonce1);
    // the router gives the sessions still on this route new assignments.
    this.members.clear();
    this.prefixes = new PrefixAllocator(bytes, this.opts.prefixGraceMs, this.now);
    this.prefixBytes = bytes;
    this.status.workersFit = 2 ** (8 * bytes);
    this.status.extranonce2ForMiners = s.extranonce2Size - bytes;
    this.emit('changed');
  }

  private fail(err: RouteError): void {
    this.up = null;
    this.jobs.invalidate();
    this.lastError = err;
    // Probing (or failed): the next destination; ready: pause (its workers go back to pool work).
    if (this.status.state === 'ready') this.setState('paused', err.code, err.message);
    else if (this.status.state !== 'stopped' && this.status.state !== 'paused') {
      this.failuresThisRound++;
      if (this.failuresThisRound >= this.spec.destinations.length) this.setState('failed', err.code, err.message);
      else this.status.code = err.code, this.status.message = err.message;
    }
    this.emit('changed');
    // Stop this connection; try the next destination (or again) after a short back-off.
    const next = (this.destIndex + 1) % this.spec.destinations.length;
    this.upstream?.stop();
    this.upstream = null;
    setTimeout(() => { if (this.status.state !== 'stopped') this.connect(next); }, this.spec.destinations.length > 1 ? 1000 : 5000).unref();
  }

  private onDown(err: RouteError, retryMs: number): void {
    this.up = null;
    this.jobs.invalidate();
    if (this.status.state === 'ready') this.setState('paused', err.code, err.message);
    else if (this.status.state === 'probing' || this.status.state === 'failed') {
      this.failuresThisRound++;
      if (this.failuresThisRound >= this.spec.destinations.length) this.setState('failed', err.code, err.message);
    }
    // Paused: the status keeps the pause's cause (recorded with its times); retries' errors are in lastError.
    this.lastError = err;
    this.emit('changed');
    if (this.spec.destinations.length > 1 && this.status.state !== 'stopped') {
      // Backups in order: the next destination after this one's back-off.
      const next = (this.destIndex + 1) % this.spec.destinations.length;
      this.upstream?.stop();
      this.upstream = null;
      setTimeout(() => { if (this.status.state !== 'stopped' && !this.upstream) this.connect(next); }, Math.min(retryMs, 5000)).unref();
    }
  }

  private onNotify(n: Parameters<RouteJobs['add']>[0], difficulty: number): void {
    if (!this.up || !this.prefixes) return;
    if (difficulty > this.opts.maxUpstreamDifficulty) {
      return this.fail(new RouteError('difficulty-too-high', `destination difficulty ${difficulty} is above the ceiling ${this.opts.maxUpstreamDifficulty} (routing.maxUpstreamDifficulty)`));
    }
    const job = this.jobs.add(n, difficulty, this.up.extranonce1.length + this.up.extranonce2Size, this.now());
    this.status.upstreamDifficulty = difficulty;
    if ((this.status.state === 'paused' && this.status.code !== 'rejects') || this.status.state === 'failed' ||
        (this.status.state === 'probing' && this.status.code !== HANDSHAKE_OK)) {
      // Connected, authorized, room for our prefix and a job: the handshake part of the probe passed. The
      // destination is ready after a first accepted share of one worker's real work (probe work, never billed);
      // after a pause the same: one worker first, then everyone.
      this.setState('probing', HANDSHAKE_OK, 'connected, authorized and a job received; waiting for a first accepted share');
    }
    this.failuresThisRound = 0;
    const md = this.minerDifficulty(difficulty);
    for (const m of this.members.values()) if (m.session.route === this) m.session.sendRouteJob(job, md, n.clean);
    this.emit('changed');
  }

  private minerDifficulty(upstream: number): number {
    return upstream / this.opts.minerDifficultyDivisor;
  }

  current(): { job: import('../shares/job.ts').Job; difficulty: number } | null {
    const job = this.jobs.current;
    if (!job) return null;
    const m = this.jobs.info(job);
    return m ? { job, difficulty: this.minerDifficulty(m.upstreamDifficulty) } : null;
  }

  /** Prefixes assign() could give now (0 before the upstream session, or with every one in use or in its grace). */
  freePrefixes(): number {
    return this.up && this.prefixes ? this.prefixes.free : 0;
  }

  /** A new member's extranonce: upstream extranonce1 ‖ its prefix; null when the route cannot take one now. */
  assign(session: StratumSession, worker: string): Member | null {
    if (!this.up || !this.prefixes) return null;
    const prefix = this.prefixes.allocate();
    if (!prefix) return null;
    const extranonce1 = Buffer.concat([this.up.extranonce1, prefix]);
    const assignment: WorkAssignment = { route: this, extranonce1, extranonce1Hex: toHex(extranonce1), extranonce2Size: this.up.extranonce2Size - this.prefixBytes };
    const m: Member = { session, worker, prefix, assignment };
    this.members.set(session, m);
    this.admit(session, worker);
    for (const w of session.workers.values()) if (this.matches(w)) this.admit(session, `${w.account}.${w.worker}`);
    return m;
  }

  /** This worker's shares on this session go to the route (see admitted). */
  admit(session: StratumSession, worker: string): void {
    let set = this.admitted.get(session);
    if (!set) this.admitted.set(session, (set = new Set()));
    set.add(worker);
  }

  admits(session: StratumSession, worker: AuthorizedWorker): boolean {
    return this.admitted.get(session)?.has(`${worker.account}.${worker.worker}`) ?? false;
  }

  release(session: StratumSession): void {
    const m = this.members.get(session);
    if (!m) return;
    this.members.delete(session);
    this.prefixes?.release(m.prefix);
  }

  // ---- shares --------------------------------------------------------------------------------------------

  onShare(session: StratumSession, worker: AuthorizedWorker | null, sent: SentJob | null, result: ShareResult, p: SubmitParams): void {
    const at = this.now();
    const name = worker ? `${worker.account}.${worker.worker}` : p.worker;
    const job = sent?.job;
    const meta = job ? this.jobs.info(job) : undefined;
    const late = session.route !== this;
    const minerDifficulty = sent?.difficulty ?? 0;
    this.meter.verdict(this.spec.id, name, at, result.outcome, minerDifficulty, late && result.outcome === 'stale');
    if (!meta || !sent || !this.upstream) return;
    // A block on the upstream's job is the upstream's, whatever our verdict on the share: stale (its job replaced by
    // clean_jobs: a race it may still win, as ckpool and our own pool submit them) or, with a difficulty divisor,
    // below the upstream's share difficulty. It goes upstream; the upstream's answer decides what is billed.
    const block = result.outcome === 'accepted' ? result.block : result.outcome === 'stale' && result.block !== null;
    // Finer difficulty for miners: only shares that meet the upstream's target go upstream (and are metered on).
    const share = result.outcome === 'accepted' && result.shareDifficulty >= meta.upstreamDifficulty * (1 - 1e-9);
    if (!share && !block) return;
    // A job of an earlier upstream session (a stale one) is not this connection's work: nothing to forward.
    if (!sent.work.extranonce1Hex.startsWith(this.up1Hex)) return;
    // The miner's extranonce1 is the current upstream extranonce1 ‖ its prefix: the upstream's extranonce2 is
    // prefix ‖ the miner's.
    const en2 = sent.work.extranonce1Hex.slice(this.up1Hex.length) + p.extranonce2;
    const params: [string, string, string, string, string] | [string, string, string, string, string, string] = p.versionBits !== undefined
      ? [this.upstream.opts.user, meta.upstreamJobId, en2, p.ntime, p.nonce, p.versionBits]
      : [this.upstream.opts.user, meta.upstreamJobId, en2, p.ntime, p.nonce];
    const probe = this.status.state !== 'ready';
    const id = this.meter.forwarded(this.spec.id, name, at);
    void this.upstream.submit(params).then((a) => {
      this.meter.answer(id, this.spec.id, name, at, meta.upstreamDifficulty, a, { probe: probe && !this.probeAccepted, late });
      this.emit('answered', a.kind);
      if (a.kind === 'accepted' && this.status.state === 'probing') {
        this.probeAccepted = true;
        this.setState('ready', null, null);
        this.emit('changed');
      }
      // A block that is no share at the upstream's difficulty is refused as a share there: not the route's fault.
      if (a.kind === 'accepted' || (a.kind === 'rejected' && share)) this.countAnswer(a.kind === 'accepted');
    });
  }

  private countAnswer(ok: boolean): void {
    const now = this.now();
    this.answers.push({ t: now, ok });
    if (!ok) this.badAnswers++;
    // Running counts over the window (a filter per answer was quadratic at thousands of shares a minute).
    while (this.answers.length && this.answers[0].t < now - this.opts.rejectWindowMs) { if (!this.answers.shift()!.ok) this.badAnswers--; }
    if (this.answers.length < this.opts.rejectMinShares) return;
    const bad = this.badAnswers;
    if (bad / this.answers.length > this.opts.maxRejectRatio && (this.status.state === 'ready' || this.status.state === 'probing')) {
      this.answers = [];
      this.badAnswers = 0;
      this.setState('paused', 'rejects', `${bad} of the last ${bad + (this.answers.length - bad)} valid shares rejected by the upstream`);
      this.status.message = `upstream rejected more than ${Math.round(this.opts.maxRejectRatio * 100)} % of our valid shares over ${this.opts.rejectWindowMs / 1000} s`;
      this.emit('changed');
      this.cooldown = setTimeout(() => {
        if (this.status.state === 'paused' && this.status.code === 'rejects') { this.setState('probing', null, null); this.probeAccepted = false; this.emit('changed'); }
      }, this.opts.rejectCooldownMs);
      this.cooldown.unref();
    }
  }

  private setState(state: RouteState, code: string | null, message: string | null): void {
    if (state === 'probing') this.probeAccepted = false;
    this.status = { ...this.status, state, code, message, since: this.now() };
    this.emit('state', this.status);
  }
}
