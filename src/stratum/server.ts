import net, { type Server, type Socket } from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import type { Job } from '../shares/job.ts';
import { BanList } from './bans.ts';
import { ExtranonceAllocator } from './extranonce.ts';
import type { StratumOptions } from './options.ts';
import { ReadTurns } from './read-turns.ts';
import { type SessionOwner, type StratumHost, StratumSession } from './session.ts';
import { Sessions } from './sessions.ts';
import { WriteBudget } from './write-budget.ts';

/** Sessions sent a job per event-loop turn when miners must drop their work (new tip; see broadcast). */
export const BROADCAST_CHUNK = 500;
/** …and for a refresh on the same tip (old work stays valid), started in the next turn: no latency spike. */
export const REFRESH_CHUNK = 100;
/**
 * …and at most this long a turn, ms: what a notify's write costs varies with the machine and the connection (13-20
 * µs on plain TCP on the bench machine, where 100 made a 1.3-2 ms turn; more under TLS, a busy kernel or a
 * profiler, where 100 made turns of up to 14 ms), and every submit answer waits behind the turn.
 */
export const REFRESH_STEP_MS = 1;
/**
 * The sessions' periodic checks (timeouts, idle vardiff) spend at most this long a turn, ms, going on in the next
 * turns: 10k sessions' checks are most of a millisecond, and sessions that connected together (a restart's reconnect
 * storm) go idle together, so one tick could retarget thousands of them, a set_difficulty and a notify written each.
 */
export const TICK_STEP_MS = 1;
const TICK_CLOCK_EVERY = 16;

export interface StratumServerStats {
  connections: number;
  authorized: number;
  connectionsTotal: number;
  refused: { banned: number; perIp: number; full: number };
  /** Connections closed for abuse without (yet) banning their IP. */
  abuseClosed: number;
  bans: number;
  /** Bytes buffered for slow readers across all connections, and connections closed past the pool-wide cap. */
  writeBuffers: { bufferedBytes: number; slowReadersClosed: number };
}

/**
 * Miners' sockets' high-water mark, bytes, for a socket that reads through 'data' (see StratumSession's
 * HELD_BYTES_MAX: TCP sockets read into a shared buffer instead, where Node offers it). Reading: a paused socket
 * takes at most the one read already under way and then stops being read, instead of reading on up to Node's
 * default 16 KB per connection. In flowing mode a chunk is handed over as it comes (only a chunk arriving while
 * earlier ones are still being handed over stops and restarts reading). Writing: nothing here waits for 'drain'
 * (WriteBudget counts the bytes). Node 20's TLS server builds its TLSSocket without it, so TLS connections keep
 * the 16 KB default.
 */
const SOCKET_HIGH_WATER_MARK = 1;

/**
 * Stratum V1 over TCP (and TLS): accepts connections, enforces limits, owns the sessions and fans jobs out.
 * build (constructor) is split from listen() so tests can hand it sockets.
 */
export class StratumServer implements SessionOwner {
  readonly sessions = new Sessions<StratumSession>();
  private readonly perIp = new Map<string, number>();
  private readonly bans: BanList;
  private readonly extranonces: ExtranonceAllocator;
  private readonly writeBudget: WriteBudget;
  /** One budget per event-loop turn for all connections' lines (opts.readTurnBudgetMs). */
  readonly readTurns: ReadTurns;
  private servers: Server[] = [];
  private timer: NodeJS.Timeout | null = null;
  private sessionSeq = 0;
  private draining = false;
  private readonly onSocketError: (this: Socket, err: Error) => void;
  readonly stats: StratumServerStats;

  constructor(
    private readonly host: StratumHost,
    readonly opts: StratumOptions,
    private readonly log?: Logger,
  ) {
    this.bans = new BanList(opts.ban.baseMs, opts.ban.maxMs);
    this.extranonces = new ExtranonceAllocator(opts.nodeId, opts.extranonce1Size);
    this.readTurns = new ReadTurns(opts.readTurnBudgetMs);
    this.writeBudget = new WriteBudget(opts.maxTotalWriteBufferBytes, () => this.sessions, log);
    // One listener for every socket (`this` is the socket): no closure per connection.
    this.onSocketError = function (this: Socket, err: Error) { log?.debug({ ip: this.remoteAddress, err: err.message }, 'socket error'); };
    this.stats = {
      connections: 0, authorized: 0, connectionsTotal: 0, refused: { banned: 0, perIp: 0, full: 0 }, abuseClosed: 0, bans: 0,
      writeBuffers: this.writeBudget.stats,
    };
  }

  /** Start listening; resolves with the bound ports (port 0 picks a free one). */
  async listen(): Promise<{ port: number; tlsPort?: number }> {
    const plain = net.createServer({ noDelay: true, highWaterMark: SOCKET_HIGH_WATER_MARK }, (s) => this.accept(s));
    const port = await listenOn(plain, this.opts.host, this.opts.port);
    this.servers.push(plain);
    let tlsPort: number | undefined;
    if (this.opts.tls) {
      const secure = tls.createServer({ cert: this.opts.tls.cert, key: this.opts.tls.key, noDelay: true }, (s) => this.accept(s));
      // A failed handshake is the peer's problem, never ours.
      secure.on('tlsClientError', (err) => this.log?.debug({ err: err.message }, 'TLS handshake failed'));
      tlsPort = await listenOn(secure, this.opts.tls.host ?? this.opts.host, this.opts.tls.port);
      this.servers.push(secure);
    }
    this.timer = setInterval(() => this.tick(), this.opts.tickMs);
    this.timer.unref();
    return { port, tlsPort };
  }

  /** Take a connected socket (from listen() or a test). */
  accept(socket: Socket): void {
    const ip = socket.remoteAddress ?? 'unknown';
    const now = this.host.now();
    socket.on('error', this.onSocketError);
    if (this.draining) return void socket.destroy();
    if (this.bans.isBanned(ip, now)) { this.stats.refused.banned++; return void socket.destroy(); }
    if (this.sessions.size >= this.opts.maxConnections) { this.stats.refused.full++; return void socket.destroy(); }
    const count = this.perIp.get(ip) ?? 0;
    if (count >= this.opts.maxConnectionsPerIp) { this.stats.refused.perIp++; return void socket.destroy(); }
    this.perIp.set(ip, count + 1);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    const en1 = this.extranonces.allocate();
    const session = new StratumSession((++this.sessionSeq).toString(16), socket, en1, this.host, this.opts, this.writeBudget, this.readTurns, this);
    this.sessions.add(session);
    this.stats.connections = this.sessions.size;
    this.stats.connectionsTotal++;
  }

  /** A session's socket closed (after the session handled the lines it had read): free its slot. */
  sessionClosed(session: StratumSession): void {
    session.closed = true;
    if (!this.sessions.delete(session)) return;
    this.extranonces.release(session.extranonce1);
    const ip = session.remoteAddress;
    const n = (this.perIp.get(ip) ?? 1) - 1;
    if (n <= 0) this.perIp.delete(ip); else this.perIp.set(ip, n);
    this.stats.connections = this.sessions.size;
    this.host.onClose(session);
  }

  /** An abusive session is closed; its IP is banned (with back-off) after repeated offences. */
  ban(session: StratumSession, reason: string): void {
    // Once per connection: the lines it had read are handled before it closes, and may offend again meanwhile.
    if (session.closed || session.closing) return;
    const now = this.host.now();
    const b = this.opts.ban;
    if (!this.bans.strike(session.remoteAddress, now, b.offencesBeforeBan, b.strikeWindowMs)) {
      this.stats.abuseClosed++;
      this.log?.warn({ ip: session.remoteAddress, session: session.id, reason }, 'closing abusive connection');
      session.close(`abuse: ${reason}`);
      return;
    }
    const ms = this.bans.ban(session.remoteAddress, now);
    this.stats.bans++;
    this.log?.warn({ ip: session.remoteAddress, session: session.id, reason, banMs: ms }, 'banning peer');
    session.close(`banned: ${reason}`);
  }

  isBanned(ip: string): boolean {
    return this.bans.isBanned(ip, this.host.now());
  }

  /**
   * Fan a job out to every authorized session, BROADCAST_CHUNK sessions per event-loop turn: one notify per
   * socket is a write syscall each, and 10k of them in one turn would stall every submit behind them. A newer
   * job supersedes a broadcast still under way: the sessions not yet reached get the newer job instead (and
   * clean_jobs if it is on another tip than their last job: see StratumSession.sendJob). A refresh on the same
   * tip is not urgent (work on the previous job stays valid): it goes out REFRESH_CHUNK sessions a turn, and no
   * more than REFRESH_STEP_MS of them, from the next turn, so the template's processing and its fan-out never make
   * one long turn — unless it supersedes a new-tip broadcast still under way, whose sessions must still switch at
   * full pace (at least one session a turn either way).
   */
  broadcast(job: Job, clean: boolean): void {
    const gen = ++this.broadcastGen;
    const sessions = [...this.sessions];
    const urgent = clean || this.urgentUnderWay;
    this.urgentUnderWay = urgent;
    const chunk = urgent ? BROADCAST_CHUNK : REFRESH_CHUNK;
    let i = 0;
    const step = () => {
      if (gen !== this.broadcastGen) return; // superseded by a newer job
      const end = Math.min(i + chunk, sessions.length);
      const until = urgent ? Infinity : performance.now() + REFRESH_STEP_MS;
      while (i < end) {
        sessions[i++].sendJob(job, clean);
        if (performance.now() >= until) break;
      }
      if (i < sessions.length) setImmediate(step);
      else this.urgentUnderWay = false;
    };
    if (urgent) step();
    else setImmediate(step);
  }

  /** A new-tip broadcast has sessions left to reach. */
  private urgentUnderWay = false;
  private broadcastGen = 0;

  /** The sessions' checks under way (tick), TICK_STEP_MS a turn; null between passes. */
  private tickPass: { sessions: IterableIterator<StratumSession>; now: number; authorized: number } | null = null;

  private tick(): void {
    if (this.tickPass) return; // the last pass is still going (a loop this busy): it finishes first
    this.tickPass = { sessions: this.sessions.values(), now: this.host.now(), authorized: 0 };
    this.tickStep();
  }

  private readonly tickStep = (): void => {
    const pass = this.tickPass;
    if (!pass) return;
    const until = performance.now() + TICK_STEP_MS;
    // TICK_CLOCK_EVERY sessions between looks at the clock (a session's check is ~70 ns, a look ~40), so at least
    // that many a turn. A session closed meanwhile is not visited (a Set's iterator skips it).
    do {
      for (let k = 0; k < TICK_CLOCK_EVERY; k++) {
        const next = pass.sessions.next();
        if (next.done) {
          this.stats.authorized = pass.authorized;
          this.bans.sweep(pass.now);
          this.tickPass = null;
          return;
        }
        next.value.tick(pass.now);
        if (next.value.authorized) pass.authorized++;
      }
    } while (performance.now() < until);
    setImmediate(this.tickStep);
  };

  /**
   * Graceful shutdown: stop accepting, ask miners to reconnect (to us after restart, or elsewhere), give them
   * `graceMs` to go, then close what is left.
   */
  async close(graceMs = 2000): Promise<void> {
    this.draining = true;
    if (this.timer) clearInterval(this.timer);
    this.tickPass = null;
    const closing = this.servers.map((s) => new Promise<void>((r) => s.close(() => r())));
    for (const s of this.sessions) s.sendReconnect(this.opts.reconnectHost, this.opts.reconnectPort);
    const deadline = Date.now() + graceMs;
    while (this.sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const left = [...this.sessions];
    for (const s of left) s.close('shutdown');
    // One turn for the shares those closes handled to reach the spool and their answers to leave (see close()).
    await new Promise((r) => setImmediate(r));
    for (const s of left) s.socket.destroy();
    await Promise.all(closing);
  }

  get isDraining(): boolean { return this.draining; }
}

function listenOn(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    // The errno code stays on the error: the CLI turns EADDRINUSE/EACCES into a one-line explanation.
    const onError = (err: NodeJS.ErrnoException) => reject(Object.assign(new Error(`cannot listen on ${host}:${port}: ${err.message}`), { code: err.code, host, port }));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const addr = server.address();
      resolve(typeof addr === 'object' && addr ? addr.port : port);
    });
  });
}
