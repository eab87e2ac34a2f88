import net from 'node:net';
import tls from 'node:tls';

export interface Msg { id?: unknown; method?: string; params?: unknown[]; result?: unknown; error?: unknown }

/** A raw Stratum test client: send lines, await the message matching a predicate, see the close. Over TCP to
 *  127.0.0.1:`port` from `localAddress`, or over a socket the caller opened (a TLS one: tls.connect). */
export class LineClient {
  readonly socket: net.Socket;
  readonly messages: Msg[] = [];
  readonly raw: string[] = [];
  closed = false;
  private buf = '';
  private waiters: { pred: (m: Msg) => boolean; resolve: (m: Msg) => void; from: number }[] = [];
  private closeWaiters: (() => void)[] = [];

  constructor(target: number | net.Socket, localAddress = '127.0.0.1') {
    this.socket = typeof target === 'number' ? net.connect({ port: target, host: '127.0.0.1', localAddress }) : target;
    this.socket.setEncoding('utf8');
    this.socket.on('data', (d: string) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) !== -1) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        this.raw.push(line);
        const m = JSON.parse(line) as Msg;
        this.messages.push(m);
        for (const w of [...this.waiters]) {
          if (w.pred(m)) { this.waiters.splice(this.waiters.indexOf(w), 1); w.resolve(m); }
        }
      }
    });
    this.socket.on('error', () => {});
    this.socket.on('close', () => { this.closed = true; for (const w of this.closeWaiters) w(); });
  }

  connected(): Promise<void> {
    const ready = this.socket instanceof tls.TLSSocket ? 'secureConnect' : 'connect';
    return new Promise((resolve, reject) => { this.socket.once(ready, () => resolve()); this.socket.once('error', reject); });
  }

  send(obj: unknown): void { this.socket.write(typeof obj === 'string' ? obj : JSON.stringify(obj) + '\n'); }

  /** Resolve with the first message (already received or future) matching pred. */
  waitFor(pred: (m: Msg) => boolean, timeoutMs = 5000, fromIndex = 0): Promise<Msg> {
    const have = this.messages.slice(fromIndex).find(pred);
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timeout waiting for a message; got: ${this.raw.slice(-5).join(' | ')}`)), timeoutMs);
      this.waiters.push({ pred, from: fromIndex, resolve: (m) => { clearTimeout(t); resolve(m); } });
    });
  }

  /** Send a request and wait for its response by id. */
  async request(id: number, method: string, params: unknown[] = []): Promise<Msg> {
    const from = this.messages.length;
    this.send({ id, method, params });
    return this.waitFor((m) => m.id === id && m.method === undefined, 5000, from);
  }

  waitClose(timeoutMs = 5000): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('connection not closed in time')), timeoutMs);
      this.closeWaiters.push(() => { clearTimeout(t); resolve(); });
    });
  }

  close(): void { this.socket.destroy(); }
}
