import type { Socket } from 'node:net';
import { difficultyToTarget, targetBytes, targetToDifficulty, toHex, u32Hex } from '../chain/index.ts';
import { type Job, notifyBytes, notifyLine } from '../shares/job.ts';
import type { JobManager, JobSource } from '../shares/jobs.ts';
import type { ShareOutcome } from '../shares/outcome.ts';
import { type MerkleRootCache, type ShareResult, type SubmitParams, newRootCache, validateShare } from '../shares/validator.ts';
import { LineFramer, type LineTooLongError } from './framing.ts';
import { readIntoShared } from './read-into.ts';
import type { StratumOptions } from './options.ts';
import type { ReadTurns } from './read-turns.ts';
import { ProtocolError, type RequestId, type StratumRequest, errorLine, parseMessage, rejectLine, resultLine } from './protocol.ts';
import { type SentJob, SentJobs } from './sent-jobs.ts';
import { Vardiff, clampDifficulty } from './vardiff.ts';
import type { WriteBudget } from './write-budget.ts';
import { AuthorizedWorkers, interned, internedAddress } from './workers.ts';

export interface AuthorizedWorker {
  /** "account.worker" as the miner sent it. */
  name: string;
  account: string;
  worker: string;
}

export type AuthResult = ({ ok: true } & AuthorizedWorker) | { ok: false; reason: string };

/** The host cannot take a valid share (its storage is full): the miner gets this error, the share no credit. */
export interface ShareRefusal {
  code: number;
  message: string;
}

/** What a session needs from the pool around it. Stratum knows nothing of HTTP, SQL or the node. */
export interface StratumHost {
  readonly jobs: JobManager;
  authorize(user: string, password: string, session: StratumSession): AuthResult;
  /**
   * Called for every classified share before the miner is answered (a block is submitted from here first). A
   * refusal turns the answer to a valid share into that error (the share is not credited).
   */
  onShare(session: StratumSession, worker: AuthorizedWorker | null, poolDifficulty: number, result: ShareResult, params: SubmitParams): ShareRefusal | void;
  /** Abuse the session cannot handle alone: the server bans and closes. */
  onAbuse(session: StratumSession, reason: string): void;
  onClose(session: StratumSession): void;
  /**
   * At mining.subscribe, before the reply (which fixes the miner's extranonce1): the work this miner resumes, when
   * it sends back a subscription id it was given earlier (cpuminer does after client.reconnect) or routing has it
   * otherwise. null or absent: pool work.
   */
  resumeWork?(session: StratumSession, subscriptionId: string | undefined): WorkAssignment | null;
  /** After each successful authorize (routing moves the session of a routed worker). */
  onAuthorized?(session: StratumSession, worker: AuthorizedWorker): void;
  /** Time from a submit line's parse to its answer being written, for the latency histogram. */
  observeSubmit?(seconds: number): void;
  /**
   * The work this session gets for a pool job: the job itself, or a variant of it with this session's own
   * coinbase (a SOLO miner's, paying its address). Called once per job sent, never per share.
   */
  workFor?(job: Job, session: StratumSession): Job;
  now(): number;
}

/** Where a session's work comes from now (DESIGN.md "JobSource per session"): the pool's jobs or a route's. */
export interface WorkAssignment {
  /** null: the pool's own jobs. */
  readonly route: RoutedWork | null;
  readonly extranonce1: Buffer;
  readonly extranonce1Hex: string;
  readonly extranonce2Size: number;
}

/** A route's side of a routed session (src/routing implements it; stratum knows nothing of upstreams). */
export interface RoutedWork {
  readonly routeId: string;
  readonly jobs: JobSource;
  /** BIP310 mask the upstream allows (the session's is its intersection with the miner's). */
  readonly versionMask: number;
  /** The job and difficulty a miner on this route works on now; null before the upstream's first job. */
  current(): { job: Job; difficulty: number } | null;
  /**
   * Every share on one of this route's jobs (sent: null when the miner named no job we sent), after local
   * validation against the upstream job and target. The miner is answered from `result`; the route forwards
   * and meters. Never submits a block to our node: a block on routed work is the upstream pool's.
   */
  onShare(session: StratumSession, worker: AuthorizedWorker | null, sent: SentJob | null, result: ShareResult, p: SubmitParams): void;
  /**
   * Whether this worker's shares on this session may go to the route (a proxy's connection carries several): false
   * for a worker the route was not given with the session. Its shares on the route's jobs are refused (24) without
   * being validated, forwarded or metered. Absent: all.
   */
  admits?(session: StratumSession, worker: AuthorizedWorker): boolean;
}

const MAX_SENT_JOBS = 64;
/** Lines one connection may have handled in one event-loop turn before it yields (fairness, timers, I/O). */
const LINES_PER_TURN = 64;
const TURN_BUDGET_MS = 5;
/**
 * Bytes a waiting connection may have held, unparsed, before its socket is paused: a few lines. A TCP miner's
 * socket reads into the shared buffer (read-into.ts): a read is at most READ_BUFFER_BYTES, and a paused socket stops
 * reading at once, so TCP pushes back. (Without that, on a Node that lacks it, the server's one-byte high-water mark
 * lets a paused socket take the one read already under way, up to 64 KB; a TLS socket keeps Node's 16 KB.) It was
 * 16 KB, with Node's own 16 KB behind it: past saturation with 10k connections, every waiting connection went on
 * being read while it waited, and the poll phase spent seconds reading and copying bytes that then waited too, with
 * 5 ms per turn left for lines (the answered rate at 50k/s offered fell to 388-9,287/s in 3 runs of 6, the loop
 * delay p99 to 0.7-1.1 s).
 */
const HELD_BYTES_MAX = 1024;
/** Proxies authorize many workers on one connection; the cap keeps one peer from growing the map forever. */
const MAX_WORKERS_PER_SESSION = 1024;
const ZERO_TARGET = Buffer.alloc(32);

/**
 * Share targets by difficulty, shared by every session (read only: validateShare compares against them). Most
 * sessions are at one of a few difficulties, and a Buffer per session and job was ~170 bytes of heap each.
 */
const targets = new Map<number, Buffer>();
const TARGETS_MAX = 4096;
function targetFor(difficulty: number): Buffer {
  let t = targets.get(difficulty);
  if (!t) {
    if (targets.size >= TARGETS_MAX) targets.clear();
    t = targetBytes(difficultyToTarget(difficulty));
    targets.set(difficulty, t);
  }
  return t;
}

/**
 * The session a socket belongs to. Its listeners are functions shared by every connection and find their session
 * here: a closure (and a `once` wrapper) per socket and event cost about 1 KB of heap per idle connection.
 */
const SESSION = Symbol('hashhub.stratumSession');
type SessionSocket = Socket & { [SESSION]?: StratumSession };

const NO_OUTCOMES: Readonly<Partial<Record<ShareOutcome, number>>> = Object.freeze({});

/**
 * The session's times are kept as the host's clock less this (ms): while the difference fits a small integer (24
 * days from the process's start), a field holding it is stored in the object itself, where a full Date.now() value
 * is a heap number of its own, 16 bytes each and about 100 bytes per idle connection in all. Past that they are
 * heap numbers again: only memory, never a wrong answer (only differences are ever compared).
 */
const CLOCK_EPOCH = Date.now();

/** What owns the session (StratumServer): told once the socket has closed, after the session's own handling. */
export interface SessionOwner {
  sessionClosed(session: StratumSession): void;
}

/** One miner connection: the protocol state machine. */
export class StratumSession {
  /** When the connection came (the host's clock, ms). */
  get connectedAt(): number { return this.connectedRel + CLOCK_EPOCH; }
  private readonly connectedRel: number;
  readonly remoteAddress: string;
  userAgent = '';
  subscribed = false;
  extranonceSubscribed = false;
  /** BIP310 mask negotiated at mining.configure (the miner's ∩ the pool's); 0: no version rolling. */
  versionMask = 0;
  /** The mask the miner was last told (configure, set_version_mask): on routed work, versionMask ∩ the route's. */
  private toldVersionMask = 0;
  readonly workers = new AuthorizedWorkers();
  difficulty: number;
  private minDifficulty: number;
  private suggested: number | null = null;
  private vardiff: Vardiff;
  /**
   * The last MAX_SENT_JOBS jobs sent, less those their source dropped (see SentJobs). Arrays, not a Map: a Map that
   * keeps 64 entries by adding the 65th and deleting the oldest grows a 128-entry table full of deleted slots,
   * about 4 KB per connection once a miner has been sent 64 jobs.
   */
  private readonly sent: SentJobs;
  private reissue = 0;
  /** The last pool job sent (vardiff re-issues it). */
  private lastJob: Job | null = null;
  private lastSentId = '';
  /** Difficulty of the last job sent, either source; null forces set_difficulty with the next job. */
  private sentDifficulty: number | null = null;
  /** The pool's assignment (the allocated extranonce1, the configured extranonce2 size), and the current one. */
  readonly poolWork: WorkAssignment;
  private work: WorkAssignment;
  /** Latest ntime sent for lastJob (re-issues of one job never repeat an ntime). */
  private lastNtime = 0;
  /** Made at the first share: an idle connection needs none. */
  private rootCache: MerkleRootCache | null = null;
  // Times below are the host's clock less CLOCK_EPOCH (see there): small integers, no heap number each.
  /** The first authorization, then each accepted share: shares, not pings, count as life (see tick). */
  private livedRel = 0;
  closed = false;
  /** Shares handled on this connection, by outcome; made at the first share (an idle connection needs none). */
  private outcomes: Partial<Record<ShareOutcome, number>> | null = null;
  get counts(): Readonly<Partial<Record<ShareOutcome, number>>> { return this.outcomes ?? NO_OUTCOMES; }
  /** Times this connection's reads were held: the read throttle, a batch of LINES_PER_TURN, or a spent turn budget. */
  readPauses = 0;
  private readonly framer: LineFramer<StratumSession>;
  // token bucket
  private tokens: number;
  private tokensAt: number;
  // abuse window
  private windowStart: number;
  private windowShares = 0;
  private windowRejects = 0;
  private windowGarbage = 0;
  // read throttle (per 100 ms window)
  private readWindowStart = 0;
  private linesInWindow = 0;
  private linesThisTurn = 0;
  private turnStartedAt = 0;

  constructor(
    readonly id: string,
    readonly socket: Socket,
    readonly extranonce1: Buffer,
    private readonly host: StratumHost,
    private readonly opts: StratumOptions,
    /** Pool-wide accounting of bytes buffered for slow readers (StratumServer's); absent in unit tests. */
    private readonly writeBudget?: WriteBudget,
    /** The server's per-turn budget for handling lines (StratumServer's); absent in unit tests. */
    private readonly readTurns?: ReadTurns,
    /** Told when the socket has closed (StratumServer); absent in unit tests. */
    private readonly owner?: SessionOwner,
  ) {
    const now = host.now() - CLOCK_EPOCH;
    this.connectedRel = now;
    this.windowStart = now;
    this.remoteAddress = internedAddress(socket.remoteAddress ?? 'unknown');
    // Node caches the peer's address on the socket, an object and a property of its own (_peername: about 60 bytes
    // of every connection's heap); the session keeps the address, so the cache goes (Node would ask the kernel again).
    delete (socket as { _peername?: unknown })._peername;
    this.minDifficulty = opts.vardiff.minDifficulty;
    this.difficulty = clampDifficulty(opts.initialDifficulty, this.minDifficulty, opts.vardiff.maxDifficulty);
    this.vardiff = new Vardiff(opts.vardiff, this.difficulty, now);
    this.tokens = opts.messageBurst;
    this.tokensAt = now;
    this.extranonce1Hex = toHex(extranonce1);
    this.poolWork = { route: null, extranonce1, extranonce1Hex: this.extranonce1Hex, extranonce2Size: opts.extranonce2Size };
    this.sent = new SentJobs(MAX_SENT_JOBS);
    this.work = this.poolWork;
    this.framer = new LineFramer<StratumSession>(opts.maxLineBytes, StratumSession.framedLine, StratumSession.lineTooLong, this);
    this.readWindowStart = now;
    (socket as SessionSocket)[SESSION] = this;
    if (opts.sharedReadBuffer === false || !readIntoShared(socket, StratumSession.socketRead)) socket.on('data', StratumSession.socketData);
    socket.on('close', StratumSession.socketClosed);
  }

  // The socket's and the framer's listeners: one function each for all sessions (`this` is the socket, or the
  // session for the framer's).
  private static socketData(this: SessionSocket, chunk: Buffer): void { this[SESSION]!.onData(chunk); }
  private static socketRead(this: SessionSocket, nread: number, buf: Buffer): void { this[SESSION]!.onData(buf.subarray(0, nread)); }
  private static socketClosed(this: SessionSocket): void { this[SESSION]!.onSocketClosed(); }
  private static framedLine(this: StratumSession, line: string): void {
    this.inLine = true;
    try { this.onLine(line); this.afterLine(); } finally { this.inLine = false; }
  }
  private static lineTooLong(this: StratumSession, err: LineTooLongError): void { this.onOversized(err); }

  private onData(chunk: Buffer): void {
    // This turn's budget for lines is spent: the chunk waits, unparsed, for a later turn (see ReadTurns).
    if (!this.framer.isHolding && this.readTurns && !this.readTurns.hasBudget()) this.holdReads(0);
    if (this.framer.isHolding) {
      // Waiting (for a later turn, or the read throttle): the chunk queues behind what is held.
      this.framer.push(chunk);
    } else {
      this.linesThisTurn = 0;
      this.turnStartedAt = performance.now();
      // The answers to one chunk's lines leave together (one writev), not one write(2) per line. Only for a chunk
      // of several lines: a cork makes each answer a buffered entry and a second pass, and most reads carry one share.
      const nl = chunk.indexOf(10);
      if (nl === -1 || chunk.indexOf(10, nl + 1) === -1) {
        this.framer.push(chunk);
      } else {
        this.socket.cork();
        try { this.framer.push(chunk); } finally { this.socket.uncork(); }
      }
    }
    // Waiting with more than a few lines held (this chunk's rest, or chunks since): the socket stops being read
    // until the connection's turn, so TCP pushes back on the miner instead of the pool reading what it cannot
    // handle yet.
    if (this.framer.isHolding && this.framer.heldBytes > HELD_BYTES_MAX && !this.socket.isPaused()) this.socket.pause();
  }

  /** The socket closed: lines it had read are handled while the session is still open, then the owner is told. */
  private onSocketClosed(): void {
    try {
      this.drainHeld();
      // A close asked meanwhile (from a line of the drain, or deferred to the end of a chunk) completes now.
      if (this.closeReason !== '') this.completeClose();
    } finally { this.owner?.sessionClosed(this); }
  }

  readonly extranonce1Hex: string;

  get authorized(): boolean { return this.workers.size > 0; }

  /** The accounts authorized on this connection (one, except behind a proxy). */
  accounts(): Set<string> {
    const out = new Set<string>();
    for (const w of this.workers.values()) out.add(w.account);
    return out;
  }

  /** The route this session works for now; null on pool work. */
  get route(): RoutedWork | null { return this.work.route; }

  get assignment(): WorkAssignment { return this.work; }

  /** The pool's estimate of this miner's hashrate, H/s: vardiff aims at one share per target interval, so the
   *  session's own difficulty × 2^32 / interval (what routing uses to take a hashrate amount from workers). */
  estimatedHashrate(): number {
    return (this.vardiff.current * 2 ** 32) / (this.opts.vardiff.targetIntervalMs / 1000);
  }

  // ---- inbound -------------------------------------------------------------------------------------------

  private onLine(line: string): void {
    if (this.closed) return;
    const now = this.host.now();
    this.rollWindow(now);
    let msg: ReturnType<typeof parseMessage>;
    try {
      msg = parseMessage(line);
    } catch (e) {
      if (e instanceof ProtocolError) {
        if (!this.takeToken(now)) return this.rateLimited(extractId(line));
        this.garbage(e.message);
        return this.sendError(e.id, e.code, e.message);
      }
      throw e;
    }
    if ('kind' in msg) return; // a response to something we asked (client.get_version…)
    // Shares pay their way by their outcome (see handleSubmit), and so does authorize (see onAuthorize: a proxy brings
    // hundreds of workers at once); every other message costs a token, so a flood of them is limited while a miner
    // whose shares are valid never is, however fast it finds them.
    if (msg.method !== 'mining.submit' && msg.method !== 'mining.authorize' && !this.takeToken(now)) return this.rateLimited(msg.id);
    this.dispatch(msg, now);
  }

  private rateLimited(id: RequestId): void {
    this.garbage('message rate limit exceeded');
    this.sendError(id, 20, 'Rate limit exceeded: slow down');
  }

  /**
   * CPU per connection is bounded by reading less, never by dropping a line or closing: after LINES_PER_TURN lines
   * (or TURN_BUDGET_MS) in one event-loop turn the connection yields until the next turn, and past
   * readLinesPerSecond the socket is paused for the rest of its 100 ms window, so TCP pushes back on the miner.
   * Every line it sent is still read and hashed, in order.
   */
  private afterLine(): void {
    this.linesInWindow++;
    this.linesThisTurn++;
    if (this.closed || this.framer.isHolding || this.drainingHeld) return;
    const now = this.relNow();
    if (now - this.readWindowStart >= 100) {
      this.readWindowStart = now;
      this.linesInWindow = 0;
    } else if (this.linesInWindow >= Math.max(1, Math.floor(this.opts.readLinesPerSecond / 10))) {
      return this.holdReads(this.readWindowStart + 100 - now);
    }
    if (this.linesThisTurn >= LINES_PER_TURN || performance.now() - this.turnStartedAt > TURN_BUDGET_MS) return this.holdReads(0);
    if (this.readTurns && !this.readTurns.hasBudget()) this.holdReads(0);
  }

  private holdReads(ms: number): void {
    this.framer.hold();
    this.readPauses++;
    if (ms > 0) {
      this.socket.pause();
      setTimeout(() => this.resumeReads(), ms).unref();
    } else if (this.readTurns) {
      // Not paused: a connection that waits a turn or two with a line or two (the common case past saturation with
      // many connections) costs no pause and resume; HELD_BYTES_MAX pauses the ones that keep sending.
      this.readTurns.wait(this);
    } else {
      this.socket.pause();
      setImmediate(() => this.resumeReads());
    }
  }

  /**
   * Lines already read still wait for a turn and the connection is ending (the peer left, or the pool closes it
   * other than for abuse: see close): handle them all now. Any of them may be a block, and every share a miner
   * sent is validated and recorded; answers go out only while the socket is still open.
   */
  private drainHeld(): void {
    if (this.closed) return;
    // A paused socket may hold a chunk of its own (read before it stopped: see HELD_BYTES_MAX): lines the miner
    // sent too, queued behind the held ones. Read here, not through 'data', which a closed stream no longer emits.
    if (this.socket.readableLength > 0) {
      this.socket.off('data', StratumSession.socketData);
      this.framer.hold();
      let chunk: Buffer | null;
      while ((chunk = this.socket.read() as Buffer | null) !== null) this.framer.push(chunk);
    }
    if (!this.framer.isHolding) return;
    this.drainingHeld = true;
    this.framer.release();
  }

  private drainingHeld = false;
  /** True while a line is being handled (the framer's callback). */
  private inLine = false;

  /** Go on reading after holdReads: the lines held first, in order, then the socket. */
  resumeReads(): void {
    if (this.closed) return;
    this.linesThisTurn = 0;
    this.turnStartedAt = performance.now();
    const now = this.relNow();
    if (now - this.readWindowStart >= 100) { this.readWindowStart = now; this.linesInWindow = 0; }
    // As in the data handler: the answers to the held lines leave together (one writev), not one write(2) each.
    this.socket.cork();
    try { this.framer.release(); } finally { this.socket.uncork(); }
    if (!this.framer.isHolding && this.socket.isPaused()) this.socket.resume();
  }

  private dispatch(req: StratumRequest, now: number): void {
    switch (req.method) {
      case 'mining.submit': return this.onSubmit(req.id, req.submit, now);
      case 'mining.subscribe': return this.onSubscribe(req.id, req.userAgent, req.sessionId);
      case 'mining.authorize': return this.onAuthorize(req.id, req.user, req.password, now);
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

  private onSubscribe(id: RequestId, userAgent: string, subscriptionId?: string): void {
    if (this.subscribed) return this.sendError(id, 20, 'Already subscribed');
    this.subscribed = true;
    this.userAgent = interned(userAgent);
    for (const [prefix, min] of Object.entries(this.opts.userAgentMinDifficulty)) {
      if (userAgent.toLowerCase().startsWith(prefix.toLowerCase())) this.minDifficulty = Math.max(this.minDifficulty, min);
    }
    if (this.difficulty < this.minDifficulty) this.setDifficultyNow(this.minDifficulty);
    // A miner coming back (client.reconnect) to routed work gets the route's extranonce in this very reply.
    const resumed = this.host.resumeWork?.(this, subscriptionId) ?? null;
    if (resumed) this.work = resumed;
    const w = this.work;
    // The subscribe reply must be the first line the server sends (cpuminer): nothing is sent before it.
    this.write(`{"id":${JSON.stringify(id)},"result":[[["mining.set_difficulty","${this.id}"],["mining.notify","${this.id}"]],"${w.extranonce1Hex}",${w.extranonce2Size}],"error":null}\n`);
    // mining.configure (before subscribe) told a version-rolling miner the pool's mask: resumed onto a route, it
    // gets the route's (shares are checked against it; without this every share rolling other bits was refused).
    if (resumed) this.refreshVersionMask();
    // Authorized before subscribing (some firmware does): work follows the subscribe reply.
    if (this.authorized) this.sendCurrentWork(true);
  }

  private onAuthorize(id: RequestId, user: string, password: string, now: number): void {
    // A worker new to this connection that the host authorizes costs no token: a proxy (NiceHash, a farm's
    // stratum proxy) authorizes all its workers at once on connecting, and hundreds past the burst were rate
    // limited, counted as garbage and the connection closed (every worker on it lost). A repeat or a refusal
    // costs one, as any other message; MAX_WORKERS_PER_SESSION bounds the free ones.
    if (this.workers.has(user) && !this.takeToken(now)) return this.rateLimited(id);
    const res = this.host.authorize(user, password, this);
    if (!res.ok && !this.takeToken(now)) return this.rateLimited(id);
    if (!res.ok) {
      this.garbage(`authorization refused: ${res.reason}`);
      this.sendError(id, 24, res.reason);
      return;
    }
    if (!this.workers.has(res.name) && this.workers.size >= MAX_WORKERS_PER_SESSION) {
      if (!this.takeToken(now)) return this.rateLimited(id);
      this.garbage('too many workers on one connection');
      return this.sendError(id, 24, `at most ${MAX_WORKERS_PER_SESSION} workers per connection`);
    }
    const first = !this.authorized;
    if (first) this.livedRel = this.relNow();
    this.workers.set({ name: res.name, account: interned(res.account), worker: res.worker });
    const d = /(?:^|[,;\s])d=([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)/i.exec(password);
    if (d && first && !this.lastJob) this.suggestDifficulty(Number(d[1]));
    this.sendResult(id, true);
    // Work only after the authorize reply (cpuminer takes the first unknown line as that reply).
    if (first && this.subscribed) this.sendCurrentWork(true);
    this.host.onAuthorized?.(this, this.workers.get(res.name)!);
  }

  private onConfigure(id: RequestId, extensions: string[], params: Record<string, unknown>): void {
    const result: Record<string, unknown> = {};
    for (const ext of extensions) {
      if (ext === 'version-rolling') {
        const requested = parseInt(String(params['version-rolling.mask'] ?? 'ffffffff'), 16) >>> 0;
        this.versionMask = (requested & this.opts.versionMask) >>> 0;
        // On routed work already (configure after subscribe): the mask its shares are checked against.
        this.toldVersionMask = this.effectiveVersionMask();
        result['version-rolling'] = true;
        result['version-rolling.mask'] = u32Hex(this.toldVersionMask);
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
    const at = this.sent.find(p.jobId); // the entry of the job named, or -1
    const job = at >= 0 ? this.sent.jobAt(at) : undefined;
    // Validated against the job it names, with that job's own source, extranonce and target: a share for a job of
    // the previous source after a move (a late share) is still checked, and routed, where its job came from.
    const work = at >= 0 ? this.sent.workAt(at) : this.work;
    const route = work.route;
    let result: ShareResult;
    if (worker && route?.admits && !route.admits(this, worker)) {
      // A proxy's worker that is not routed (another account's, or a worker no route names) on a job of the route
      // this connection works for, or worked for: delivered, it would be work no one is billed or paid for, and
      // credited by the pool, work the pool did not get. Refused; not the miner's fault (no abuse count).
      const outcomes = (this.outcomes ??= {});
      outcomes.unauthorized = (outcomes.unauthorized ?? 0) + 1;
      return this.sendError(id, 24, `Worker ${worker.name} is not routed with this connection: its share for routed job ${p.jobId} is refused`);
    }
    if (!worker) {
      result = { outcome: 'unauthorized', job };
    } else {
      result = validateShare(route ? route.jobs : this.host.jobs, {
        extranonce1: work.extranonce1,
        extranonce2Size: work.extranonce2Size,
        versionMask: this.effectiveVersionMask(route),
        job,
        target: at >= 0 ? this.sent.targetAt(at) : ZERO_TARGET,
        rootCache: (this.rootCache ??= newRootCache()),
        nowSec: Math.floor(now / 1000),
        maxNtimeAheadSec: this.opts.maxNtimeAheadSec,
      }, p);
    }
    const poolDifficulty = at >= 0 ? this.sent.difficultyAt(at) : this.difficulty;
    const outcomes = (this.outcomes ??= {});
    outcomes[result.outcome] = (outcomes[result.outcome] ?? 0) + 1;
    let refusal: ShareRefusal | void = undefined;
    // Routed work is metered and forwarded by its route, never credited by the pool nor submitted to our node.
    if (route) route.onShare(this, worker, at >= 0 ? this.sent.entry(at) : null, result, p);
    // The host submits a block candidate to the node before anything else happens to the share.
    else refusal = this.host.onShare(this, worker, poolDifficulty, result, p);
    this.windowShares++;
    if (result.outcome === 'accepted') {
      this.livedRel = now - CLOCK_EPOCH;
      // Refused for want of storage: valid work all the same (not an offence, vardiff still counts it).
      if (refusal) this.sendError(id, refusal.code, refusal.message);
      else this.sendResult(id, true);
      if (route) return; // a routed miner works at the upstream's difficulty: no vardiff
      // A share at another difficulty (sent before a change, or capped at the network's) counts in proportion.
      const next = this.vardiff.onShare(now - CLOCK_EPOCH, poolDifficulty / this.vardiff.current);
      if (next !== null) this.applyDifficulty(next);
      return;
    }
    // Stale shares follow every tip change through no fault of the miner: they cost nothing. Invalid work does.
    if (result.outcome !== 'stale') {
      this.windowRejects++;
      if (!this.takeToken(now)) this.garbage('message rate limit exceeded (invalid shares)');
    }
    this.write(rejectLine(id, result.outcome));
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
    this.vardiff.reset(d, this.relNow());
  }

  /**
   * A new difficulty applies from the next job: send set_difficulty, then re-issue the current job under a
   * new id, so shares are always checked at the difficulty in force for the job they answer.
   * `d` is the session's own (vardiff's) difficulty; what the miner gets is capped at the job's network
   * difficulty, so a temporary cap (a testnet minimum-difficulty template) never lowers the session's own.
   */
  private applyDifficulty(d: number): void {
    d = clampDifficulty(d, this.minDifficulty, this.opts.vardiff.maxDifficulty);
    if (this.closed) return;
    if (this.work.route) {
      // Routed: the upstream sets the difficulty; the session's own applies again when it is back on pool work.
      this.vardiff.reset(d, this.relNow());
      return;
    }
    this.vardiff.reset(d, this.relNow());
    const effective = this.lastJob ? Math.min(d, this.lastJob.networkDifficulty) : d;
    if (effective === this.difficulty) return;
    this.difficulty = effective;
    const job = this.lastJob;
    if (job && !this.host.jobs.isStale(job)) {
      // A later ntime than any sent for this job, so the re-issued work is new work (see notifyLine).
      const ntime = Math.max(Math.floor(this.host.now() / 1000), this.lastNtime + 1);
      this.sendJob(job, false, `${job.id}-${(++this.reissue).toString(16)}`, ntime);
    }
  }

  /** The host's clock less CLOCK_EPOCH: what the session's time fields hold. */
  private relNow(): number { return this.host.now() - CLOCK_EPOCH; }

  /** Periodic: timeouts and vardiff for miners that stopped finding shares. */
  tick(now: number): void {
    if (this.closed) return;
    const rel = now - CLOCK_EPOCH;
    if (!this.subscribed && rel - this.connectedRel > this.opts.subscribeTimeoutMs) return this.close('no mining.subscribe in time');
    if (!this.authorized && rel - this.connectedRel > this.opts.authorizeTimeoutMs) return this.close('no successful mining.authorize in time');
    // Shares, not pings, count as life: a connection that only keeps itself open is not mining.
    if (this.authorized && rel - this.livedRel > this.opts.shareTimeoutMs) return this.close('idle: no share for too long');
    if (this.lastJob && !this.work.route) {
      const next = this.vardiff.onTick(rel);
      if (next !== null) this.applyDifficulty(next);
    }
  }

  // ---- outbound ------------------------------------------------------------------------------------------

  /** The current job of the session's source (pool or route). */
  private sendCurrentWork(clean: boolean): void {
    const route = this.work.route;
    if (route) {
      const c = route.current();
      if (c) this.sendRouteJob(c.job, c.difficulty, clean);
    } else if (this.host.jobs.current) {
      this.sendJob(this.host.jobs.current, clean);
    }
  }

  /**
   * Move this session to other work in place: mining.set_extranonce (then the mask, the difficulty and the new
   * source's job with clean_jobs, which is when miners apply the new extranonce). Only for miners that sent
   * mining.extranonce.subscribe (or subscribe-extranonce in configure); false otherwise (use client.reconnect).
   * Jobs already sent keep their own source: late shares for them are validated and routed there.
   */
  switchWork(next: WorkAssignment): boolean {
    if (this.closed || !this.extranonceSubscribed || !this.subscribed) return false;
    this.work = next;
    let out = `{"id":null,"method":"mining.set_extranonce","params":["${next.extranonce1Hex}",${next.extranonce2Size}]}\n`;
    if (this.versionMask) out += this.tellVersionMask(this.effectiveVersionMask());
    this.write(out);
    this.sentDifficulty = null;
    this.lastJob = null; // the pool job (if any) is sent again under the new extranonce, clean
    this.sendCurrentWork(true);
    return true;
  }

  /** Set the work without telling the miner (it is about to reconnect, or has not subscribed yet). */
  setWork(next: WorkAssignment): void {
    this.work = next;
    this.sentDifficulty = null;
  }

  /** A job of the session's route (the route fans its upstream's jobs out to its sessions). */
  sendRouteJob(job: Job, difficulty: number, clean: boolean): void {
    const w = this.work;
    if (this.closed || !this.authorized || !this.subscribed || w.route === null) return;
    let out = '';
    if (this.sentDifficulty !== difficulty) out += `{"id":null,"method":"mining.set_difficulty","params":[${difficulty}]}\n`;
    out += notifyLine(job, job.id, clean, job.ntime);
    this.sent.add(job.id, job, difficulty, targetFor(difficulty), w, this.host.jobs);
    this.lastSentId = job.id;
    this.sentDifficulty = difficulty;
    this.write(out);
  }

  /** Send a pool job (set_difficulty first when it changed: cpuminer applies it at the next notify). */
  sendJob(pooled: Job, clean: boolean, id?: string, ntime = pooled.ntime): void {
    if (this.closed || !this.authorized || !this.subscribed) return;
    if (this.work.route) return; // on routed work: pool jobs are not for this miner now
    // The work this miner gets from that job: a SOLO miner's coinbase pays its own address.
    const job = this.host.workFor ? this.host.workFor(pooled, this) : pooled;
    id ??= job.id;
    // A job on another tip than the last one sent always drops old work, whatever the caller said.
    if (this.lastJob && !this.lastJob.prevHash.equals(job.prevHash)) clean = true;
    // The miner's difficulty never exceeds the network's (a higher share target would hide blocks), and comes
    // back to the session's own as soon as the network's allows (vardiff keeps the session's own).
    this.difficulty = Math.min(this.vardiff.current, job.networkDifficulty);
    let out = '';
    if (this.sentDifficulty !== this.difficulty) out += `{"id":null,"method":"mining.set_difficulty","params":[${this.difficulty}]}\n`;
    if (job !== this.lastJob) this.lastNtime = 0;
    ntime = Math.max(ntime, this.lastNtime === 0 ? 0 : this.lastNtime + 1);
    this.lastNtime = ntime;
    // The job as broadcast (its own id and ntime, no difficulty change): the bytes every miner gets.
    const shared = out === '' && id === job.id && ntime === job.ntime ? notifyBytes(job, clean) : null;
    if (!shared) out += notifyLine(job, id, clean, ntime);
    this.sent.add(id, job, this.difficulty, targetFor(this.difficulty), this.poolWork, this.host.jobs);
    this.lastJob = job;
    this.lastSentId = id;
    this.sentDifficulty = this.difficulty;
    this.write(shared ?? out);
  }

  /** BIP310 server-side mask change (only to sessions that negotiated version rolling). */
  setVersionMask(mask: number): void {
    if (!this.versionMask) return;
    this.versionMask = (mask & this.opts.versionMask) >>> 0;
    this.write(this.tellVersionMask(this.effectiveVersionMask()));
  }

  /** The mask shares on `route`'s work (default: the current work's) are checked against: negotiated ∩ the route's. */
  effectiveVersionMask(route: RoutedWork | null = this.work.route): number {
    return route ? (this.versionMask & route.versionMask) >>> 0 : this.versionMask;
  }

  /**
   * Tell a version-rolling miner its effective mask when it differs from the one it was last told: after a resume
   * onto a route, or when its route's upstream changed its mask. A miner that negotiated none gets nothing.
   */
  refreshVersionMask(): void {
    if (!this.versionMask || this.closed) return;
    const mask = this.effectiveVersionMask();
    if (mask !== this.toldVersionMask) this.write(this.tellVersionMask(mask));
  }

  /** The mining.set_version_mask line for `mask`, noted as what the miner was last told. */
  private tellVersionMask(mask: number): string {
    this.toldVersionMask = mask;
    return `{"id":null,"method":"mining.set_version_mask","params":["${u32Hex(mask)}"]}\n`;
  }

  sendReconnect(host?: string, port?: number): void {
    // The port as a string, as ckpool sends it: cgminer and its derivatives (bmminer, most ASIC firmware) read it
    // with json_string_value only and fall back to the current port for a number. cpuminer and bfgminer take either.
    const params = host && port ? `[${JSON.stringify(host)},"${port}",0]` : '[]';
    this.write(`{"id":null,"method":"client.reconnect","params":${params}}\n`);
  }

  sendResult(id: RequestId, result: unknown): void {
    this.write(resultLine(id, result));
  }

  sendError(id: RequestId, code: number, message: string): void {
    this.write(errorLine(id, code, message));
  }

  private write(s: string | Buffer): void {
    if (this.closed || this.socket.destroyed) return;
    if (this.socket.writableLength > this.opts.maxWriteBufferBytes) {
      // Closing already, its held lines being handled (drainHeld): a close from here, inside a line, would stop
      // the framer and drop the lines not reached yet. The answer is not sent; the line is still handled.
      if (this.drainingHeld) return;
      return this.close('peer is not reading (write buffer full)');
    }
    if (this.writeBudget) this.writeBudget.write(this, s);
    else this.socket.write(s);
  }

  /** Bytes written and not yet taken by the kernel (counted by the write budget). */
  pendingWriteBytes = 0;

  close(reason: string): void {
    if (this.closed || this.closeReason !== '') return;
    this.closeReason = reason || 'closed';
    // Lines already read and not handled yet are shares the miner sent before we chose to close (shutdown, a move
    // to another pool, a full write buffer, abuse): any of them may be a block, so they are handled first, as when
    // the peer leaves (drainHeld). Bounded: a paused socket holds a few KB at most (HELD_BYTES_MAX, one read).
    if (this.inLine) {
      // Decided while handling a line (too many invalid shares, a full write buffer): the framer keeps the rest of
      // this chunk, and the close completes once the chunk is done. Inside a drain, the drain goes on (its caller
      // completes the close).
      if (!this.drainingHeld) {
        this.framer.hold();
        queueMicrotask(() => this.completeClose());
      }
      return;
    }
    this.completeClose();
  }

  /** A close was asked (closeReason set), its held lines not yet handled or the socket not yet ended. */
  get closing(): boolean { return this.closeReason !== '' && !this.closed; }

  private completeClose(): void {
    if (this.closed) return;
    this.drainHeld();
    this.closed = true;
    this.framer.stop();
    // end() uncorks at once (Node 20). A socket still corked holds answers to accepted shares until their spool
    // write (the pool's AnswerGate releases it then, at the latest at the turn's end): end it after that, or a share
    // the miner saw accepted could be lost to a crash in between.
    if (this.socket.writableCorked > 0) setImmediate(() => this.socket.end());
    else this.socket.end();
    // Half-closed peers must not hold the slot: destroy after a short grace.
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  closeReason = '';

  // ---- abuse ---------------------------------------------------------------------------------------------

  private takeToken(now: number): boolean {
    const rel = now - CLOCK_EPOCH;
    this.tokens = Math.min(this.opts.messageBurst, this.tokens + ((rel - this.tokensAt) * this.opts.messagesPerSecond) / 1000);
    this.tokensAt = rel;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private rollWindow(now: number): void {
    const rel = now - CLOCK_EPOCH;
    if (rel - this.windowStart < this.opts.ban.windowMs) return;
    this.windowStart = rel;
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
