// StratumMiner: a Stratum V1 client that grinds real sha256d. Used by tests, benchmarks and operators to
// smoke-test a pool, one miner or 10,000 in one process (see fleet.ts).
//
// Behaviour chosen to match real miners (cgminer/cpuminer/bitaxe), because that is what the pool must survive:
//  - mining.configure (BIP310) is pipelined with mining.subscribe: a pool that ignores configure costs no wait;
//    a mask granted later is applied when it arrives;
//  - mining.set_difficulty applies from the NEXT mining.notify, like cpuminer (the pool must check a share at
//    the difficulty in force for its job);
//  - mining.set_extranonce values apply from the next notify too (NiceHash extranonce extension);
//  - mining.set_version_mask applies at once (BIP310: the new mask is valid immediately);
//  - every notify switches work at the next batch (there is no work queue to drain, so clean_jobs=true and
//    false behave alike here: the old job's unsent work is gone either way).

import { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import { hashToDisplay, toHex } from '../chain/index.ts';
import { prevHashFromStratum, u32Hex } from '../shares/work.ts';
import { type FoundShare, GrindScheduler, Grinder, type MinerJob, defaultScheduler } from './grinder.ts';
import { LineFramer } from '../stratum/framing.ts';
import {
  type NotifyParams, type RpcError, SubscribeResultSchema, grantedVersionMask, parseServerLine, requestLine,
} from './messages.ts';
import { LocalPortAllocator, isPortBusy } from './ports.ts';
import { MinerStats, type MinerStatsSnapshot } from './stats.ts';

export const DEFAULT_USER_AGENT = 'hashhub-miner/0.1.0';
/** What we ask for in mining.configure; the pool answers the subset it allows (BIP310, BIP320 bits). */
export const DEFAULT_VERSION_MASK = 0x1fffe000;

export interface StratumMinerOptions {
  host: string;
  port: number;
  /** address.worker as the pool expects it. */
  user: string;
  password?: string;
  tls?: boolean;
  /** Verify the pool's TLS certificate. Default true. */
  rejectUnauthorized?: boolean;
  /** Source address to bind (127.0.0.2, 127.0.0.3… to get past ~28k ephemeral ports per source address). */
  localAddress?: string;
  /** With localAddress: pick source ports from this allocator instead of the kernel (see ports.ts). */
  localPorts?: LocalPortAllocator;
  userAgent?: string;
  versionRolling?: boolean;
  /** Mask requested in mining.configure. Default 0x1fffe000. */
  requestedVersionMask?: number;
  /** Sent with mining.suggest_difficulty before authorize. */
  suggestDifficulty?: number;
  /** Send mining.extranonce.subscribe after authorize. Default false. */
  extranonceSubscribe?: boolean;
  /** H/s; 0 = as fast as possible. Default 0. */
  hashrate?: number;
  rollNtime?: boolean;
  maxNtimeRollSec?: number;
  /** Per request, ms. Default 10000. */
  requestTimeoutMs?: number;
  /** TCP (+TLS) connect deadline, ms. Default 10000. */
  connectTimeoutMs?: number;
  /** Close and reconnect after this long without traffic, ms. Default 180000 (pools send work every ≤ 60 s). */
  idleTimeoutMs?: number;
  /** Longest accepted line from the pool, bytes. Default 256 KiB (a notify with a 12-level branch is ~2 KB). */
  maxLineLength?: number;
  /** Reconnect after a disconnect. Default true. */
  reconnect?: boolean;
  /** First reconnect delay, ms (doubles per failed attempt, with jitter). Default 1000. */
  reconnectInitialMs?: number;
  /** Longest reconnect delay, ms. Default 30000. */
  reconnectMaxMs?: number;
  /** Found shares beyond this many unanswered submits are dropped (and counted): a too-low difficulty must
   *  not turn the miner into an unbounded queue. Default 1024. */
  maxPendingSubmits?: number;
  /** Latency samples kept (uniform reservoir). Default 1024; a fleet uses less per miner. */
  latencyReservoirSize?: number;
  scheduler?: GrindScheduler;
}

/** Busy source ports tried in a row before falling back to the normal back-off. */
const MAX_PORT_RETRIES = 64;

/** A submitted share and the pool's answer. */
export interface ShareRecord {
  jobId: string;
  extranonce2: string;
  ntime: string;
  nonce: string;
  /** 6th submit param (rolled version bits), null without version rolling. */
  versionBits: string | null;
  /** Block hash in display (explorer) order. */
  hash: string;
  /** Share difficulty of the job it was found for. */
  jobDifficulty: number;
  /** Difficulty the hash achieves. */
  difficulty: number;
  /** The hash also met the network target. */
  block: boolean;
  accepted: boolean;
  /** The pool's JSON-RPC error, if any. */
  error: RpcError | null;
  /** Rejection reason as counted in stats (error message, or 'timeout' / 'disconnected'); null if accepted. */
  reason: string | null;
  /** Submit → answer, ms (high resolution); NaN when no answer came. */
  latencyMs: number;
}

export interface MinerEvents {
  connected: [{ host: string; port: number }];
  subscribed: [{ extranonce1: string; extranonce2Size: number }];
  /** BIP310 mask in force (null: no version rolling). */
  versionMask: [number | null];
  authorized: [];
  difficulty: [number];
  job: [MinerJob];
  share: [ShareRecord];
  /** client.show_message text. */
  message: [string];
  disconnected: [{ reason: string; reconnectInMs: number | null }];
  /** Something odd that the miner survived (bad line, unexpected answer, refused extension). */
  warning: [Error];
  /** The miner gave up (authorization refused); it is stopped. Not 'error', which would throw without a listener. */
  fatal: [Error];
}

export class MinerRequestError extends Error {
  constructor(readonly reason: 'timeout' | 'disconnected' | 'stopped', method: string) {
    super(`${method}: ${reason}`);
  }
}

interface Pending {
  method: string;
  sentAt: number;
  timer: NodeJS.Timeout;
  resolve: (answer: { result: unknown; error: RpcError | null }) => void;
  reject: (e: MinerRequestError) => void;
}

interface Conn {
  socket: net.Socket;
  framer: LineFramer;
  closed: Promise<void>;
}

export class StratumMiner extends EventEmitter<MinerEvents> {
  readonly user: string;
  private host: string;
  private port: number;
  private readonly o: Required<Omit<StratumMinerOptions, 'suggestDifficulty' | 'localAddress' | 'localPorts' | 'scheduler'>> &
    Pick<StratumMinerOptions, 'suggestDifficulty' | 'localAddress' | 'localPorts'>;
  private readonly scheduler: GrindScheduler;
  private readonly grinder: Grinder;
  private readonly statsLive: MinerStats;
  private conn: Conn | null = null;
  private readonly pending = new Map<number, Pending>();
  private pendingSubmits = 0;
  private abandoned = 0;
  private nextId = 1;
  private started = false;
  private stopped = false;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private reconnectAttempt = 0;
  /** Delay requested by client.reconnect for the next connect, ms. */
  private redirectDelayMs: number | null = null;
  private lastError: string | null = null;
  /** The last connect failed only because its source port was busy: retry at once with the next port. */
  private portBusy = false;
  private portRetries = 0;
  private everConnected = false;
  // Per-connection protocol state.
  private extranonce1: Buffer | null = null;
  private extranonce2Size = 0;
  private nextExtranonce: { extranonce1: Buffer; extranonce2Size: number } | null = null;
  private difficulty = 1; // Stratum's implicit difficulty until set_difficulty
  /** Subscription id of the last session (sent back at the next subscribe). */
  private sessionId: string | null = null;
  private mask: number | null = null;
  private authorizeSent = false;
  private earlyNotify: { params: NotifyParams; difficulty: number } | null = null;
  /**
   * mining.set_version_mask messages handled, and how many had been when the configure answer was read: the grant
   * applies in a later microtask, after the lines of the same read, so a set_version_mask right behind the answer
   * (a pool resuming a session onto other work does that) was overridden by the older grant.
   */
  private maskMessages = 0;
  private maskMessagesAtConfigure = 0;
  private job: MinerJob | null = null;
  private drainWaiter: (() => void) | null = null;

  constructor(opts: StratumMinerOptions) {
    super();
    if (!opts.host) throw new Error('host is required');
    if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) throw new Error(`port must be 1..65535, got ${opts.port}`);
    if (!opts.user) throw new Error('user is required');
    if (opts.suggestDifficulty !== undefined && !(opts.suggestDifficulty > 0)) throw new Error(`suggestDifficulty must be > 0, got ${opts.suggestDifficulty}`);
    this.user = opts.user;
    this.host = opts.host;
    this.port = opts.port;
    this.o = {
      host: opts.host,
      port: opts.port,
      user: opts.user,
      password: opts.password ?? 'x',
      tls: opts.tls ?? false,
      rejectUnauthorized: opts.rejectUnauthorized ?? true,
      localAddress: opts.localAddress,
      localPorts: opts.localPorts,
      userAgent: opts.userAgent ?? DEFAULT_USER_AGENT,
      versionRolling: opts.versionRolling ?? false,
      requestedVersionMask: (opts.requestedVersionMask ?? DEFAULT_VERSION_MASK) >>> 0,
      suggestDifficulty: opts.suggestDifficulty,
      extranonceSubscribe: opts.extranonceSubscribe ?? false,
      hashrate: opts.hashrate ?? 0,
      rollNtime: opts.rollNtime ?? false,
      maxNtimeRollSec: opts.maxNtimeRollSec ?? 60,
      requestTimeoutMs: opts.requestTimeoutMs ?? 10_000,
      connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
      idleTimeoutMs: opts.idleTimeoutMs ?? 180_000,
      maxLineLength: opts.maxLineLength ?? 256 * 1024,
      reconnect: opts.reconnect ?? true,
      reconnectInitialMs: opts.reconnectInitialMs ?? 1000,
      reconnectMaxMs: opts.reconnectMaxMs ?? 30_000,
      maxPendingSubmits: opts.maxPendingSubmits ?? 1024,
      latencyReservoirSize: opts.latencyReservoirSize ?? 1024,
    };
    this.scheduler = opts.scheduler ?? defaultScheduler;
    this.statsLive = new MinerStats(this.o.latencyReservoirSize);
    this.grinder = new Grinder({
      hashrate: this.o.hashrate,
      rollNtime: this.o.rollNtime,
      maxNtimeRollSec: this.o.maxNtimeRollSec,
      onShare: (s) => this.submit(s),
    });
  }

  /** Connect and mine until stop(). */
  start(): this {
    if (this.started) return this;
    this.started = true;
    this.scheduler.add(this.grinder);
    this.connect();
    return this;
  }

  get connected(): boolean {
    return this.conn !== null && this.extranonce1 !== null;
  }

  /** True once a connection was ever established. */
  get hasConnected(): boolean {
    return this.everConnected;
  }

  /** The last connection error or close reason, for operators. */
  get lastErrorMessage(): string | null {
    return this.lastError;
  }

  get currentJob(): MinerJob | null {
    return this.job;
  }

  get versionMask(): number | null {
    return this.mask;
  }

  get hashrate(): number {
    return this.grinder.hashrate;
  }

  /** Change the target rate (H/s, 0 = unthrottled) while running. */
  set hashrate(hs: number) {
    if (!(hs >= 0) || !Number.isFinite(hs)) throw new Error(`hashrate must be a finite number >= 0, got ${hs}`);
    this.grinder.hashrate = hs;
  }

  stats(): MinerStatsSnapshot {
    return this.statsLive.snapshot(this.grinder.hashes, this.pendingSubmits + this.abandoned);
  }

  /** Latency samples (reservoir), for callers that merge percentiles themselves. */
  latencySamples(): readonly number[] {
    return this.statsLive.latency.values();
  }

  /**
   * Stop hashing, optionally wait up to `drainMs` for answers to submits in flight, then close the connection.
   * Leaves no timer or socket behind. Unanswered submits stay counted in `pending`.
   */
  async stop(drainMs = 0): Promise<void> {
    if (this.stopped) {
      await this.conn?.closed;
      return;
    }
    this.stopped = true;
    this.scheduler.remove(this.grinder);
    this.grinder.clearJob();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    if (drainMs > 0 && this.pendingSubmits > 0 && this.conn) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, drainMs);
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.drainWaiter = done;
      });
      this.drainWaiter = null;
    }
    this.failPending('stopped');
    const conn = this.conn;
    if (conn) {
      conn.socket.destroy();
      await conn.closed;
    }
  }

  // ---- connection ----

  private connect(): void {
    this.reconnectTimer = null;
    if (this.stopped) return;
    const { host, port } = this;
    const localAddress = this.o.localAddress;
    const localPort = localAddress && this.o.localPorts ? this.o.localPorts.next(localAddress) : undefined;
    const tcp = { host, port, localAddress, localPort };
    const socket = this.o.tls
      // tls.connect passes TCP options on to net.Socket#connect; its typings just do not list them.
      ? tls.connect({
        ...tcp,
        rejectUnauthorized: this.o.rejectUnauthorized,
        // SNI must be a hostname (RFC 6066), never an IP literal.
        servername: net.isIP(host) ? undefined : host,
      } as tls.ConnectionOptions)
      : net.connect(tcp);
    this.portBusy = false;
    let resolveClosed!: () => void;
    const conn: Conn = {
      socket,
      framer: new LineFramer(
        this.o.maxLineLength,
        (line) => { if (this.conn === conn) this.onLine(line); },
        (e) => this.onFramingError(conn, e),
      ),
      closed: new Promise<void>((r) => { resolveClosed = r; }),
    };
    this.conn = conn;
    this.resetSession();
    socket.setNoDelay(true); // submits are tiny and latency is what we measure
    let up = false;
    socket.setTimeout(this.o.connectTimeoutMs);
    socket.on('timeout', () => {
      this.lastError = up ? `no traffic for ${this.o.idleTimeoutMs} ms` : `connect timeout after ${this.o.connectTimeoutMs} ms`;
      socket.destroy();
    });
    socket.once(this.o.tls ? 'secureConnect' : 'connect', () => {
      if (this.conn !== conn) return;
      up = true;
      this.portRetries = 0;
      socket.setTimeout(this.o.idleTimeoutMs);
      this.everConnected = true;
      this.statsLive.connects++;
      this.lastError = null;
      this.emit('connected', { host, port });
      this.handshake(conn).catch((e: unknown) => {
        if (this.conn !== conn || this.stopped) return; // the connection already went away: onClose reports it
        this.lastError = `handshake failed: ${(e as Error).message}`;
        this.emit('warning', new Error(this.lastError));
        socket.destroy();
      });
    });
    socket.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    socket.on('error', (e: NodeJS.ErrnoException) => {
      // 'close' follows; remember why for the disconnect report.
      this.lastError = e.message;
      if (!up && localPort !== undefined && isPortBusy(e)) this.portBusy = true;
    });
    socket.on('close', () => {
      resolveClosed();
      this.onClose(conn);
    });
  }

  private resetSession(): void {
    this.extranonce1 = null;
    this.extranonce2Size = 0;
    this.nextExtranonce = null;
    this.difficulty = 1;
    this.setMask(null);
    this.authorizeSent = false;
    this.earlyNotify = null;
    this.job = null;
    this.grinder.clearJob();
  }

  private onClose(conn: Conn): void {
    if (this.conn !== conn) return;
    const wasUp = this.extranonce1 !== null;
    this.conn = null;
    this.resetSession();
    this.failPending(this.stopped ? 'stopped' : 'disconnected');
    if (wasUp && !this.stopped) this.statsLive.disconnects++; // our own stop() is not a disconnect
    if (this.stopped) return;
    if (this.portBusy && this.portRetries < MAX_PORT_RETRIES) {
      // Not a pool problem: our chosen source port was taken. Next port, no back-off, nothing to report.
      this.portRetries++;
      this.reconnectTimer = setTimeout(() => this.connect(), 0);
      return;
    }
    this.portRetries = 0;
    const reason = this.lastError ?? 'closed by the pool';
    if (!this.o.reconnect) {
      this.emit('disconnected', { reason, reconnectInMs: null });
      return;
    }
    let delay: number;
    if (this.redirectDelayMs !== null) {
      delay = this.redirectDelayMs;
      this.redirectDelayMs = null;
    } else {
      // Exponential back-off with jitter so a fleet does not reconnect in lock-step after a pool restart.
      const base = Math.min(this.o.reconnectMaxMs, this.o.reconnectInitialMs * 2 ** Math.min(this.reconnectAttempt, 20));
      delay = Math.round(base * (0.5 + Math.random() * 0.5));
      this.reconnectAttempt++;
    }
    this.emit('disconnected', { reason, reconnectInMs: delay });
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  private async handshake(conn: Conn): Promise<void> {
    if (this.o.versionRolling) {
      // Pipelined with subscribe: a pool that ignores configure (no answer) costs no round trip; a late grant
      // still applies. Errors and refusals only mean "no version rolling".
      this.request('mining.configure', [
        ['version-rolling'],
        { 'version-rolling.mask': u32Hex(this.o.requestedVersionMask), 'version-rolling.min-bit-count': 2 },
      ]).then(({ result, error }) => {
        if (this.conn !== conn) return;
        if (error) {
          this.emit('warning', new Error(`mining.configure refused: ${error.message}`));
          return;
        }
        const mask = grantedVersionMask(result, this.o.requestedVersionMask);
        if (mask === null) this.emit('warning', new Error(`pool did not grant version rolling: ${JSON.stringify(result)}`));
        // A mining.set_version_mask read after this answer is the newer mask: it stays.
        if (this.maskMessages === this.maskMessagesAtConfigure) this.setMask(mask);
      }, (e: MinerRequestError) => {
        if (e.reason === 'timeout') this.emit('warning', new Error('mining.configure got no answer: no version rolling'));
      });
    }
    // Like cpuminer: the subscription id of the last session goes back in mining.subscribe, so a pool (or a
    // router after client.reconnect) can resume it; a pool that refuses it gets a plain subscribe.
    let sub = await this.request('mining.subscribe', this.sessionId ? [this.o.userAgent, this.sessionId] : [this.o.userAgent]);
    if (sub.error && this.sessionId && this.conn === conn) {
      this.sessionId = null;
      sub = await this.request('mining.subscribe', [this.o.userAgent]);
    }
    if (sub.error) throw new Error(`mining.subscribe refused: ${sub.error.message}`);
    const parsed = SubscribeResultSchema.safeParse(sub.result);
    if (!parsed.success) throw new Error(`unexpected mining.subscribe result: ${JSON.stringify(sub.result).slice(0, 200)}`);
    if (this.conn !== conn) return;
    this.extranonce1 = parsed.data.extranonce1;
    this.extranonce2Size = parsed.data.extranonce2Size;
    this.sessionId = parsed.data.sessionId;
    this.emit('subscribed', { extranonce1: toHex(this.extranonce1), extranonce2Size: this.extranonce2Size });

    if (this.o.suggestDifficulty !== undefined) {
      // Advisory: many pools never answer it, so neither silence nor an error stops the session.
      this.request('mining.suggest_difficulty', [this.o.suggestDifficulty]).then(({ error }) => {
        if (error) this.emit('warning', new Error(`mining.suggest_difficulty refused: ${error.message}`));
      }, () => { /* no answer is the common case for this method; the request was still sent */ });
    }
    const authorize = this.request('mining.authorize', [this.o.user, this.o.password]);
    this.authorizeSent = true;
    if (this.earlyNotify) {
      const early = this.earlyNotify;
      this.earlyNotify = null;
      this.onNotify(early.params, early.difficulty);
    } else if (this.job) {
      this.startJob(this.job);
    }
    const auth = await authorize;
    if (this.conn !== conn) return;
    if (auth.error || auth.result !== true) {
      const why = auth.error?.message || `result ${JSON.stringify(auth.result)}`;
      const err = new Error(`mining.authorize refused for "${this.o.user}": ${why}`);
      this.lastError = err.message;
      this.emit('fatal', err);
      await this.stop();
      return;
    }
    this.reconnectAttempt = 0;
    this.emit('authorized');
    if (this.o.extranonceSubscribe) {
      this.request('mining.extranonce.subscribe', []).then(({ result, error }) => {
        if (error || result !== true) this.emit('warning', new Error(`mining.extranonce.subscribe not supported: ${error?.message ?? JSON.stringify(result)}`));
      }, (e: MinerRequestError) => {
        if (e.reason === 'timeout') this.emit('warning', new Error('mining.extranonce.subscribe got no answer'));
      });
    }
  }

  // ---- messages ----

  private onData(conn: Conn, chunk: Buffer): void {
    if (this.conn !== conn) return;
    conn.framer.push(chunk);
  }

  /** Framing is lost (an over-long line): nothing after this point can be trusted on this connection. */
  private onFramingError(conn: Conn, e: Error): void {
    this.lastError = e.message;
    this.emit('warning', e);
    conn.socket.destroy();
  }

  private onLine(line: string): void {
    let msg;
    try {
      msg = parseServerLine(line);
    } catch (e) {
      this.emit('warning', e as Error);
      return;
    }
    switch (msg.kind) {
      case 'response': {
        const id = typeof msg.id === 'number' ? msg.id : Number(msg.id);
        const p = this.pending.get(id);
        if (!p) {
          this.emit('warning', new Error(`answer to unknown request id ${JSON.stringify(msg.id)} (timed out?)`));
          return;
        }
        this.pending.delete(id);
        clearTimeout(p.timer);
        if (p.method === 'mining.configure') this.maskMessagesAtConfigure = this.maskMessages;
        p.resolve({ result: msg.result, error: msg.error });
        return;
      }
      case 'notify':
        if (this.extranonce1 === null) {
          // Work before the subscribe answer was handled (same read): keep the newest with the difficulty in
          // force now, and build it once the extranonce is known.
          this.earlyNotify = { params: msg.params, difficulty: this.difficulty };
          return;
        }
        this.onNotify(msg.params, this.difficulty);
        return;
      case 'set_difficulty':
        this.difficulty = msg.difficulty;
        this.emit('difficulty', msg.difficulty);
        return;
      case 'set_extranonce':
        this.nextExtranonce = { extranonce1: msg.extranonce1, extranonce2Size: msg.extranonce2Size };
        return;
      case 'set_version_mask':
        this.maskMessages++;
        if (!this.o.versionRolling) {
          this.emit('warning', new Error('mining.set_version_mask without version rolling negotiated: ignored'));
          return;
        }
        this.setMask((msg.mask & this.o.requestedVersionMask) >>> 0 || null);
        return;
      case 'reconnect':
        this.redirect(msg.host, msg.port, msg.waitSec);
        return;
      case 'show_message':
        this.emit('message', msg.text);
        return;
      case 'get_version':
        if (msg.id !== null) this.conn?.socket.write(`${JSON.stringify({ id: msg.id, result: this.o.userAgent, error: null })}\n`);
        return;
      case 'unknown':
        return; // Stratum has many vendor extensions; ignoring them is what miners do.
    }
  }

  private onNotify(p: NotifyParams, difficulty: number): void {
    if (this.nextExtranonce) {
      this.extranonce1 = this.nextExtranonce.extranonce1;
      this.extranonce2Size = this.nextExtranonce.extranonce2Size;
      this.nextExtranonce = null;
    }
    const job: MinerJob = {
      jobId: p.jobId,
      prevHash: prevHashFromStratum(p.prevHashHex),
      coinb1: p.coinb1,
      coinb2: p.coinb2,
      branch: p.branch,
      version: p.version,
      bits: p.bits,
      ntime: p.ntime,
      clean: p.clean,
      difficulty,
      extranonce1: this.extranonce1 as Buffer,
      extranonce2Size: this.extranonce2Size,
      receivedAtMs: Date.now(),
    };
    this.job = job;
    this.emit('job', job);
    if (this.authorizeSent) this.startJob(job);
  }

  private startJob(job: MinerJob): void {
    try {
      this.grinder.setJob(job);
    } catch (e) {
      this.grinder.clearJob();
      this.emit('warning', new Error(`cannot work job ${job.jobId}: ${(e as Error).message}`));
    }
  }

  private setMask(mask: number | null): void {
    if (mask === this.mask) return;
    this.mask = mask;
    this.grinder.setVersionMask(mask);
    this.emit('versionMask', mask);
  }

  private redirect(host: string | undefined, port: number | undefined, waitSec: number): void {
    if (host) this.host = host;
    if (port) this.port = port;
    this.redirectDelayMs = Math.round(waitSec * 1000);
    this.lastError = `client.reconnect to ${this.host}:${this.port}`;
    this.conn?.socket.destroy();
  }

  // ---- requests ----

  private request(method: string, params: unknown[]): Promise<{ result: unknown; error: RpcError | null }> {
    const conn = this.conn;
    if (!conn) return Promise.reject(new MinerRequestError('disconnected', method));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new MinerRequestError('timeout', method));
      }, this.o.requestTimeoutMs);
      this.pending.set(id, { method, sentAt: performance.now(), timer, resolve, reject });
      conn.socket.write(requestLine(id, method, params));
    });
  }

  private failPending(reason: 'disconnected' | 'stopped'): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) {
      clearTimeout(p.timer);
      p.reject(new MinerRequestError(reason, p.method));
    }
  }

  private submit(share: FoundShare): void {
    if (!this.conn || this.stopped) return;
    if (this.pendingSubmits >= this.o.maxPendingSubmits) {
      this.statsLive.dropped++;
      return;
    }
    const params: string[] = [this.o.user, share.job.jobId, toHex(share.extranonce2), u32Hex(share.ntime), u32Hex(share.nonce)];
    if (share.versionBits !== null) params.push(u32Hex(share.versionBits));
    const s = this.statsLive;
    s.submitted++;
    if (share.isBlock) s.blocks++;
    this.pendingSubmits++;
    const sentAt = performance.now();
    const record = (accepted: boolean, error: RpcError | null, reason: string | null, latencyMs: number): void => {
      this.pendingSubmits--;
      if (this.pendingSubmits === 0) this.drainWaiter?.();
      const rec: ShareRecord = {
        jobId: share.job.jobId,
        extranonce2: params[2],
        ntime: params[3],
        nonce: params[4],
        versionBits: params[5] ?? null,
        hash: hashToDisplay(share.hash),
        jobDifficulty: share.job.difficulty,
        difficulty: share.difficulty,
        block: share.isBlock,
        accepted,
        error,
        reason,
        latencyMs,
      };
      this.emit('share', rec);
    };
    this.request('mining.submit', params).then(({ result, error }) => {
      const latencyMs = performance.now() - sentAt;
      s.latency.record(latencyMs);
      if (result === true && !error) {
        s.accepted++;
        s.acceptedDifficulty += share.job.difficulty;
        record(true, null, null, latencyMs);
      } else {
        const reason = error ? (error.message || `error ${error.code}`) : `result ${JSON.stringify(result)}`;
        s.reject(reason);
        record(false, error, reason, latencyMs);
      }
    }, (e: MinerRequestError) => {
      if (e.reason === 'stopped') {
        this.abandoned++; // not the pool's fault: it just had no time to answer
        record(false, null, 'stopped', NaN);
      } else {
        s.reject(e.reason);
        record(false, null, e.reason, NaN);
      }
    });
  }
}
