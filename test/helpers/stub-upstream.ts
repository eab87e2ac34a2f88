import { randomBytes } from 'node:crypto';
import { freePort } from './free-port.ts';
import net from 'node:net';

// A light Stratum V1 pool standing in for a route's destination: subscribe, authorize, set_difficulty, notify,
// and submits answered as told (accept / reject / never). It does not validate shares: the router's local
// validation is what tests and the benchmark look at (the real second hashhub checks correctness end to end).

export interface StubUpstreamOptions {
  extranonce1Size?: number;
  extranonce2Size?: number;
  difficulty?: number;
  authorize?: boolean;
  answer?: 'accept' | 'reject' | 'silent';
  /** Send a new job this often (ms); 0 = only the first. */
  jobEveryMs?: number;
  /** Merkle branch length of its jobs (12 = a full mainnet block), for CPU comparisons with pool jobs. */
  branchLevels?: number;
  /** After authorize, send client.reconnect to this port on 127.0.0.1 (a pool moving its clients). */
  redirectTo?: number;
  /** Send set_extranonce with this size after authorize (a destination leaving too little room later). */
  laterExtranonce2Size?: number;
  /** Grant version rolling with this mask at mining.configure (absent: configure is answered "unsupported"). */
  versionMask?: number;
  /** The answer to a submit as written on the wire (its id is added): a pool's own shape, e.g. ckpool's
   *  `{"result":false,"error":null,"reject-reason":"Stale"}`. Takes precedence over `answer`. */
  answerRaw?: (params: unknown[]) => Record<string, unknown>;
  /** nBits of its jobs (default 1d00ffff); 207fffff makes nearly every share a block (regtest). */
  nbits?: string;
  /** Accept submits this long after they arrive (a slow or far pool). */
  answerDelayMs?: number;
}

export class StubUpstream {
  private server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  port = 0;
  submits: unknown[][] = [];
  connections = 0;
  private jobSeq = 0;
  /** Frozen: nothing is written to any connection (a pool process stopped, a network black hole). */
  frozen = false;
  private timer: NodeJS.Timeout | null = null;
  prevHash = randomBytes(32).toString('hex');
  private readonly branch: string[];

  constructor(readonly o: StubUpstreamOptions = {}) {
    this.server = net.createServer((s) => this.accept(s));
    this.branch = Array.from({ length: o.branchLevels ?? 0 }, () => randomBytes(32).toString('hex'));
  }

  /**
   * Listens on `port`, by default one from freePort (not listen(0)): tests close a stub and expect its port refused,
   * or listen on it again, and a port the kernel handed out could meanwhile go to the other test file's listen(0).
   */
  async listen(port?: number): Promise<number> {
    port ??= await freePort();
    await new Promise<void>((r) => this.server.listen(port, '127.0.0.1', () => r()));
    this.port = (this.server.address() as net.AddressInfo).port;
    if (this.o.jobEveryMs) this.timer = setInterval(() => { for (const s of this.sockets) this.notify(s, false); }, this.o.jobEveryMs);
    return this.port;
  }

  notifyLine(clean: boolean): string {
    const id = (++this.jobSeq).toString(16);
    const ntime = Math.floor(Date.now() / 1000).toString(16).padStart(8, '0');
    // coinb1 ends where the extranonce goes; a plausible coinbase shape is enough (not validated here).
    const coinb1 = '01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20' + '03a08601';
    const coinb2 = '2f737475622fffffffff0100f2052a010000001976a914000000000000000000000000000000000000000088ac00000000';
    return JSON.stringify({ id: null, method: 'mining.notify', params: [id, this.prevHash, coinb1, coinb2, this.branch, '20000000', this.o.nbits ?? '1d00ffff', ntime, clean] }) + '\n';
  }

  private notify(s: net.Socket, clean: boolean): void {
    if (!s.destroyed && !this.frozen) s.write(this.notifyLine(clean));
  }

  private accept(s: net.Socket): void {
    this.connections++;
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => undefined);
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      if (this.frozen) return; // a stopped process reads nothing and answers nothing
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let m: { id: unknown; method: string; params: unknown[] };
        try { m = JSON.parse(line); } catch { continue; }
        const reply = (result: unknown, error: unknown = null) => s.write(JSON.stringify({ id: m.id, result, error }) + '\n');
        switch (m.method) {
          case 'mining.subscribe':
            reply([[['mining.notify', 'x']], randomBytes(this.o.extranonce1Size ?? 4).toString('hex'), this.o.extranonce2Size ?? 8]);
            break;
          case 'mining.authorize':
            if (this.o.authorize === false) { reply(null, [24, 'Unauthorized worker', null]); break; }
            reply(true);
            s.write(JSON.stringify({ id: null, method: 'mining.set_difficulty', params: [this.o.difficulty ?? 1e-6] }) + '\n');
            this.notify(s, true);
            if (this.o.redirectTo) s.write(JSON.stringify({ id: null, method: 'client.reconnect', params: ['127.0.0.1', this.o.redirectTo, 0] }) + '\n');
            if (this.o.laterExtranonce2Size) s.write(JSON.stringify({ id: null, method: 'mining.set_extranonce', params: ['abcdef01', this.o.laterExtranonce2Size] }) + '\n');
            break;
          case 'mining.configure':
            if (this.o.versionMask === undefined) { reply(null, [20, 'unsupported', null]); break; }
            reply({ 'version-rolling': true, 'version-rolling.mask': this.o.versionMask.toString(16).padStart(8, '0') });
            break;
          case 'mining.submit':
            this.submits.push(m.params);
            if (this.o.answerRaw) { s.write(JSON.stringify({ ...this.o.answerRaw(m.params), id: m.id }) + '\n'); break; }
            if (this.o.answer === 'silent') break;
            if (this.o.answerDelayMs) { setTimeout(() => { if (!s.destroyed) reply(true); }, this.o.answerDelayMs); break; }
            if (this.o.answer === 'reject') reply(null, [23, 'Low difficulty share', null]);
            else reply(true);
            break;
          default:
            reply(null, [20, 'unsupported', null]);
        }
      }
    });
  }

  /** mining.set_version_mask to every connection (the destination changes its BIP310 mask mid-session). */
  setVersionMask(mask: number): void {
    for (const s of this.sockets) s.write(JSON.stringify({ id: null, method: 'mining.set_version_mask', params: [mask.toString(16).padStart(8, '0')] }) + '\n');
  }

  /** A new tip: a new prev hash, and its job with clean_jobs to every connection (older jobs are stale). */
  newTip(): void {
    this.prevHash = randomBytes(32).toString('hex');
    for (const s of this.sockets) this.notify(s, true);
  }

  /** Drop every connection (the "pool died" case without closing the listener). */
  dropAll(): void { for (const s of this.sockets) s.destroy(); }

  /** Reset every connection (RST, as when the pool's process is killed with data unread): the client sees ECONNRESET. */
  resetAll(): void { for (const s of this.sockets) s.resetAndDestroy(); }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}
