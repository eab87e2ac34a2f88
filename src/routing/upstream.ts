import { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { LineFramer } from '../stratum/framing.ts';
import { RouteError, type RouteErrorCode } from './errors.ts';
import { type UpstreamAddress, parseUpstreamUrl } from './url.ts';

// A Stratum V1 client to another pool (one per route destination): configure, subscribe, authorize,
// suggest_difficulty; follows set_difficulty / notify / set_extranonce / set_version_mask / client.reconnect;
// reconnects with back-off. Every upstream line is framed with the same limit as miners' lines.

export interface UpstreamOptions {
  url: string;
  user: string;
  password: string;
  userAgent: string;
  maxLineBytes: number;
  /** BIP310 mask asked for (our miners' space); 0: no version rolling asked. */
  versionMask: number;
  suggestDifficulty?: number;
  connectTimeoutMs: number;
  /** configure/subscribe/authorize answers. */
  requestTimeoutMs: number;
  /** A submitted share without an answer this long is "no answer". */
  answerTimeoutMs: number;
  /** Authorized but no job for this long: 'no-job'; after the first job, nothing at all from the upstream (no job,
   *  no answer) for twice this long: 'no-answer' (a stopped process, a black hole; twice, for pools that send a job
   *  only every minute). The connection is dropped and tried again. */
  noJobTimeoutMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  rejectUnauthorized: boolean;
}

export const DEFAULT_UPSTREAM_OPTIONS: Omit<UpstreamOptions, 'url' | 'user' | 'password'> = {
  userAgent: 'hashhub-router/0.1', maxLineBytes: 8192, versionMask: 0x1fffe000, connectTimeoutMs: 10_000, requestTimeoutMs: 10_000,
  answerTimeoutMs: 30_000, noJobTimeoutMs: 60_000, backoffMinMs: 500, backoffMaxMs: 30_000, rejectUnauthorized: true,
};

export interface UpstreamNotify {
  jobId: string;
  /** As sent: stratum word-swapped prev hash, hex. */
  prevHash: string;
  coinb1: string;
  coinb2: string;
  branch: string[];
  version: string;
  nbits: string;
  ntime: string;
  clean: boolean;
}

export type SubmitAnswer =
  | { kind: 'accepted' }
  | { kind: 'rejected'; reason: string }
  | { kind: 'stale'; reason: string }
  | { kind: 'no-answer'; reason: string };

export interface UpstreamSession {
  extranonce1: Buffer;
  extranonce2Size: number;
  /** Granted BIP310 mask; 0 when the upstream did not grant version rolling. */
  versionMask: number;
}

export interface UpstreamEvents {
  /** Subscribed and authorized. */
  up: [UpstreamSession];
  /** A job, with the difficulty in force for it (set_difficulty applies from the next notify). */
  notify: [UpstreamNotify, number];
  /** mining.set_extranonce: new extranonce space from the next job. */
  extranonce: [{ extranonce1: Buffer; extranonce2Size: number }];
  versionMask: [number];
  /** The connection failed or ended; the client tries again after `retryInMs` unless stopped. */
  down: [RouteError, number];
  /** client.reconnect from the upstream: it is followed (not a failure); a new `up` follows. */
  redirect: [string, number];
  /** Round-trip time of an answered request, seconds. */
  rtt: [number];
}

interface Pending {
  method: string;
  sentAt: number;
  timer: NodeJS.Timeout;
  resolve: (v: Answer) => void;
}

const HEX = /^[0-9a-fA-F]*$/;

/** An answer as received: ckpool (and its forks) put a refusal's reason in `reject-reason`, with `error: null`. */
interface Answer { result: unknown; error: unknown; rejectReason?: string }

export class UpstreamClient extends EventEmitter<UpstreamEvents> {
  private addr: UpstreamAddress;
  private socket: net.Socket | null = null;
  private framer: LineFramer | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private stopped = false;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private noJobTimer: NodeJS.Timeout | null = null;
  private difficulty = 1;
  private pendingDifficulty: number | null = null;
  /** Set once subscribed and authorized on this connection. */
  session: UpstreamSession | null = null;
  private gotJob = false;
  /** When the upstream last sent a line (performance.now()): the silence timer's measure once a job came. */
  private heardAt = 0;
  private failure: RouteError | null = null;
  private redirect: UpstreamAddress | null = null;
  lastError: RouteError | null = null;

  constructor(readonly opts: UpstreamOptions) {
    super();
    this.addr = parseUpstreamUrl(opts.url); // throws RouteError('bad-url' | 'unknown-scheme')
  }

  get connected(): boolean { return this.session !== null; }
  get currentDifficulty(): number { return this.difficulty; }
  /** Shares sent and not answered yet (each is answered, or times out after answerTimeoutMs). */
  get pendingSubmits(): number {
    let n = 0;
    for (const p of this.pending.values()) if (p.method === 'mining.submit') n++;
    return n;
  }

  start(): void {
    this.stopped = false;
    if (!this.socket && !this.retryTimer) this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.drop(null);
  }

  /** Forward a share; resolves with the upstream's answer (or no-answer after answerTimeoutMs / on disconnect). */
  submit(params: [string, string, string, string, string] | [string, string, string, string, string, string]): Promise<SubmitAnswer> {
    if (!this.session) return Promise.resolve({ kind: 'no-answer', reason: 'upstream not connected' });
    return this.request('mining.submit', params, this.opts.answerTimeoutMs).then(({ result, error, rejectReason }) => classifyAnswer(result, error, rejectReason), (e: Error) => ({ kind: 'no-answer', reason: e.message }));
  }

  private connect(): void {
    this.retryTimer = null;
    if (this.stopped) return;
    const { host, port, tls: secure } = this.redirect ?? this.addr;
    this.redirect = null;
    this.failure = null;
    this.session = null;
    this.gotJob = false;
    this.pendingDifficulty = null;
    this.difficulty = 1;
    const socket: net.Socket = secure
      ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host, rejectUnauthorized: this.opts.rejectUnauthorized })
      : net.connect({ host, port });
    this.socket = socket;
    const framer = new LineFramer(this.opts.maxLineBytes, (line) => { if (this.socket === socket) this.onLine(line); }, () => {
      this.fail(new RouteError('line-too-long', `upstream sent a line over ${this.opts.maxLineBytes} bytes`));
    });
    this.framer = framer;
    socket.setNoDelay(true);
    socket.setTimeout(this.opts.connectTimeoutMs, () => {
      if (this.socket !== socket) return;
      this.fail(new RouteError(this.session ? 'no-answer' : 'unreachable', `no answer from ${host}:${port} in ${this.opts.connectTimeoutMs} ms`));
    });
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      if (this.socket !== socket) return;
      socket.setTimeout(0);
      void this.handshake(socket);
    });
    socket.on('data', (chunk: Buffer) => { if (this.socket === socket) framer.push(chunk); });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      if (this.socket !== socket) return;
      this.fail(socketError(e, host, port, secure, this.session !== null));
    });
    socket.on('close', () => {
      if (this.socket !== socket) return;
      this.fail(new RouteError(this.session ? 'disconnected' : 'unreachable', `${host}:${port} closed the connection${this.session ? '' : ' during the handshake'}`));
    });
  }

  private async handshake(socket: net.Socket): Promise<void> {
    const o = this.opts;
    if (o.versionMask) {
      // Pipelined before subscribe; a pool that does not know configure answers with an error (no rolling).
      void this.request('mining.configure', [['version-rolling'], { 'version-rolling.mask': o.versionMask.toString(16).padStart(8, '0'), 'version-rolling.min-bit-count': 2 }], o.requestTimeoutMs)
        .then(({ result }) => {
          const r = result as Record<string, unknown> | null;
          if (r && r['version-rolling'] === true && typeof r['version-rolling.mask'] === 'string' && HEX.test(r['version-rolling.mask'])) {
            this.grantedMask = (parseInt(r['version-rolling.mask'], 16) & o.versionMask) >>> 0;
            if (this.session) { this.session.versionMask = this.grantedMask; this.emit('versionMask', this.grantedMask); }
          }
        }, () => undefined);
    }
    try {
      const sub = await this.request('mining.subscribe', [o.userAgent], o.requestTimeoutMs);
      if (this.socket !== socket) return;
      if (sub.error) throw new RouteError('subscribe-refused', `mining.subscribe refused: ${errorText(sub.error)}`);
      const r = sub.result;
      if (!Array.isArray(r) || r.length < 3 || typeof r[1] !== 'string' || !HEX.test(r[1]) || r[1].length % 2 !== 0 || !Number.isInteger(r[2]) || (r[2] as number) < 1 || (r[2] as number) > 32) {
        throw new RouteError('garbage', `unexpected mining.subscribe result: ${JSON.stringify(r).slice(0, 200)}`);
      }
      const extranonce1 = Buffer.from(r[1], 'hex');
      const extranonce2Size = r[2] as number;
      if (o.suggestDifficulty) void this.request('mining.suggest_difficulty', [o.suggestDifficulty], o.requestTimeoutMs).catch(() => undefined);
      const auth = await this.request('mining.authorize', [o.user, o.password], o.requestTimeoutMs);
      if (this.socket !== socket) return;
      if (auth.error || auth.result !== true) throw new RouteError('auth-refused', `mining.authorize refused for "${o.user}": ${auth.error ? errorText(auth.error) : JSON.stringify(auth.result)}`);
      // set_extranonce from the upstream later (NiceHash's extension); pools that do not know it answer an error.
      void this.request('mining.extranonce.subscribe', [], o.requestTimeoutMs).catch(() => undefined);
      this.session = { extranonce1, extranonce2Size, versionMask: this.grantedMask };
      this.attempt = 0;
      this.armSilenceTimer(socket);
      this.emit('up', this.session);
      // A notify that came before the authorize answer (some pools send work right after subscribe).
      for (const [n, d] of this.early.splice(0)) this.deliver(n, d);
    } catch (e) {
      if (this.socket !== socket) return;
      this.fail(e instanceof RouteError ? e : new RouteError('no-answer', (e as Error).message));
    }
  }

  /**
   * No job within noJobTimeoutMs of authorize: 'no-job'. After the first job, nothing at all from the upstream (no
   * job, no answer to our shares) for twice that since its last line: 'no-answer', gone even if its connection is
   * not closed. Before, the timer ran only until the first job, and a stopped upstream kept its route ready for
   * good. A line only stamps heardAt (every forwarded share's answer is one); the timer, when it fires, waits again
   * for what is left of the silence it measures.
   */
  private armSilenceTimer(socket: net.Socket, ms = this.gotJob ? 2 * this.opts.noJobTimeoutMs : this.opts.noJobTimeoutMs): void {
    if (this.noJobTimer) clearTimeout(this.noJobTimer);
    this.noJobTimer = setTimeout(() => {
      if (this.socket !== socket) return;
      if (!this.gotJob) return this.fail(new RouteError('no-job', `no mining.notify within ${ms / 1000} s of authorize`));
      const limit = 2 * this.opts.noJobTimeoutMs;
      const silent = performance.now() - this.heardAt;
      if (silent < limit) return this.armSilenceTimer(socket, limit - silent);
      this.fail(new RouteError('no-answer', `nothing from the upstream for ${limit / 1000} s (no job, no answer)`));
    }, ms);
    this.noJobTimer.unref();
  }

  private grantedMask = 0;
  private early: [UpstreamNotify, number][] = [];

  private onLine(line: string): void {
    this.heardAt = performance.now(); // alive (see armSilenceTimer)
    let msg: Record<string, unknown>;
    try {
      const v: unknown = JSON.parse(line);
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
      msg = v as Record<string, unknown>;
    } catch {
      return this.fail(new RouteError('garbage', `upstream sent a line that is not JSON-RPC: ${line.slice(0, 80)}`));
    }
    if (typeof msg.method !== 'string') {
      if (typeof msg.id !== 'number') return; // an answer to nothing we asked: ignored
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      clearTimeout(p.timer);
      this.emit('rtt', (performance.now() - p.sentAt) / 1000);
      const reason = msg['reject-reason'];
      p.resolve({ result: msg.result, error: msg.error ?? null, rejectReason: typeof reason === 'string' && reason ? reason.slice(0, 200) : undefined });
      return;
    }
    const params = Array.isArray(msg.params) ? msg.params : [];
    switch (msg.method) {
      case 'mining.set_difficulty': {
        const d = Number(params[0]);
        if (!(d > 0) || !Number.isFinite(d)) return this.fail(new RouteError('garbage', `bad mining.set_difficulty ${JSON.stringify(params).slice(0, 80)}`));
        this.pendingDifficulty = d;
        return;
      }
      case 'mining.notify': {
        const n = parseNotify(params);
        if (!n) return this.fail(new RouteError('garbage', `malformed mining.notify ${JSON.stringify(params).slice(0, 120)}`));
        if (this.pendingDifficulty !== null) { this.difficulty = this.pendingDifficulty; this.pendingDifficulty = null; }
        if (!this.session) { this.early.push([n, this.difficulty]); if (this.early.length > 8) this.early.shift(); return; }
        return this.deliver(n, this.difficulty);
      }
      case 'mining.set_extranonce': {
        const [en1, size] = params;
        if (typeof en1 !== 'string' || !HEX.test(en1) || en1.length % 2 !== 0 || !Number.isInteger(size) || (size as number) < 1 || (size as number) > 32) {
          return this.fail(new RouteError('garbage', `bad mining.set_extranonce ${JSON.stringify(params).slice(0, 80)}`));
        }
        if (this.session) {
          this.session.extranonce1 = Buffer.from(en1, 'hex');
          this.session.extranonce2Size = size as number;
          this.emit('extranonce', { extranonce1: this.session.extranonce1, extranonce2Size: this.session.extranonce2Size });
        }
        return;
      }
      case 'mining.set_version_mask': {
        const m = typeof params[0] === 'string' && /^[0-9a-fA-F]{1,8}$/.test(params[0]) ? parseInt(params[0], 16) >>> 0 : null;
        if (m === null) return;
        this.grantedMask = (m & this.opts.versionMask) >>> 0;
        if (this.session) { this.session.versionMask = this.grantedMask; this.emit('versionMask', this.grantedMask); }
        return;
      }
      case 'client.reconnect': {
        const host = typeof params[0] === 'string' && params[0] ? params[0] : this.addr.host;
        const port = Number(params[1]) > 0 && Number(params[1]) < 65536 ? Number(params[1]) : this.addr.port;
        this.redirect = { host, port, tls: this.addr.tls };
        const wait = Math.min(Math.max(Number(params[2]) || 0, 0), 60) * 1000;
        // Followed, not a failure: no 'down' (the route is not paused for a pool moving its clients).
        this.drop(null);
        this.emit('redirect', host, port);
        if (!this.stopped) { this.retryTimer = setTimeout(() => this.connect(), wait); this.retryTimer.unref(); }
        return;
      }
      case 'client.get_version':
        if (typeof msg.id === 'number' || typeof msg.id === 'string') this.write({ id: msg.id, result: this.opts.userAgent, error: null });
        return;
      default:
        return; // client.show_message and vendor extensions: ignored, as miners do
    }
  }

  private deliver(n: UpstreamNotify, difficulty: number): void {
    const first = !this.gotJob;
    this.gotJob = true;
    if (first && this.socket) this.armSilenceTimer(this.socket);
    this.emit('notify', n, difficulty);
  }

  private request(method: string, params: unknown[], timeoutMs: number): Promise<Answer> {
    if (!this.socket) return Promise.reject(new Error('not connected'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RouteError('no-answer', `no answer to ${method} in ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.pending.set(id, { method, sentAt: performance.now(), timer, resolve: (v) => resolve(v) });
      this.write({ id, method, params });
    });
  }

  private write(msg: unknown): void {
    if (this.socket && !this.socket.destroyed) this.socket.write(JSON.stringify(msg) + '\n');
  }

  private fail(err: RouteError): void {
    if (this.failure) return;
    this.failure = err;
    this.lastError = err;
    this.drop(err);
  }

  /** Close the connection; answer every pending request; retry unless stopped. */
  private drop(err: RouteError | null, retryMs?: number): void {
    const socket = this.socket;
    this.socket = null;
    this.framer?.stop();
    this.framer = null;
    if (this.noJobTimer) clearTimeout(this.noJobTimer);
    this.noJobTimer = null;
    this.session = null;
    this.early = [];
    socket?.destroy();
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.resolve({ result: null, error: [-1, `connection lost (${err?.message ?? 'stopped'})`, null] });
    }
    if (this.stopped || !err) return;
    const base = Math.min(this.opts.backoffMaxMs, this.opts.backoffMinMs * 2 ** Math.min(this.attempt, 16));
    const delay = retryMs ?? Math.round(base * (0.5 + Math.random() * 0.5));
    this.attempt++;
    this.emit('down', err, delay);
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.retryTimer.unref();
  }
}

function parseNotify(p: unknown[]): UpstreamNotify | null {
  if (p.length < 9) return null;
  const [jobId, prevHash, coinb1, coinb2, branch, version, nbits, ntime, clean] = p;
  if ((typeof jobId !== 'string' && typeof jobId !== 'number') || String(jobId).length > 64) return null;
  const hex = (v: unknown, len?: number): v is string => typeof v === 'string' && HEX.test(v) && v.length % 2 === 0 && (len === undefined || v.length === len);
  if (!hex(prevHash, 64) || !hex(coinb1) || !hex(coinb2) || !hex(version, 8) || !hex(nbits, 8) || !hex(ntime, 8)) return null;
  if (!Array.isArray(branch) || branch.length > 32 || !branch.every((b) => hex(b, 64))) return null;
  return { jobId: String(jobId), prevHash, coinb1, coinb2, branch: branch as string[], version, nbits, ntime, clean: clean === true };
}

function errorText(e: unknown): string {
  if (Array.isArray(e)) return `${String(e[1] ?? e[0]).slice(0, 200)}${e[0] !== undefined ? ` (code ${String(e[0])})` : ''}`;
  if (e && typeof e === 'object' && 'message' in e) return String((e as { message: unknown }).message).slice(0, 200);
  return JSON.stringify(e).slice(0, 200);
}

/**
 * The upstream's answer to a share: stale by code 21 or by "stale"/"job not found" in the reason (public-pool;
 * ckpool's "Stale" and "Invalid JobID"). ckpool answers a refusal `"result": false, "error": null` with the reason
 * in `"reject-reason"` (`rejectReason`): it is the reason, as an error's message is.
 */
export function classifyAnswer(result: unknown, error: unknown, rejectReason?: string): SubmitAnswer {
  if (!error && result === true) return { kind: 'accepted' };
  if (!error && !rejectReason) return { kind: 'rejected', reason: `result ${JSON.stringify(result).slice(0, 80)}` };
  const text = error ? errorText(error) : rejectReason!;
  if (Array.isArray(error) && error[0] === -1) return { kind: 'no-answer', reason: text };
  if ((Array.isArray(error) && error[0] === 21) || /stale|job not found|unknown job|invalid job ?id/i.test(text)) return { kind: 'stale', reason: text };
  return { kind: 'rejected', reason: text };
}

/** `established`: subscribed and authorized on this connection — a reset then is the upstream dropping a working
 *  connection ('disconnected', as a close is), not a destination that cannot be reached. */
function socketError(e: NodeJS.ErrnoException, host: string, port: number, secure: boolean, established: boolean): RouteError {
  const code: RouteErrorCode = e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN' ? 'dns'
    : secure && (e.code?.startsWith('ERR_TLS') || e.code?.startsWith('ERR_SSL') || /certificate|SSL|TLS|self.signed|wrong version/i.test(e.message)) ? 'tls'
      : established ? 'disconnected' : 'unreachable';
  return new RouteError(code, `${host}:${port}: ${e.message}`);
}
