import net from 'node:net';
import { freePort } from './free-port.ts';

/**
 * A TCP proxy on 127.0.0.1 the test controls, for putting a network between the pool and Postgres:
 * - cut(): every open connection is destroyed and new ones are refused (the listener is closed: ECONNREFUSED);
 * - stall(): connections stay open but nothing is forwarded (a black-holed network: only timeouts notice);
 * - restore(): back to forwarding, on the same port (connections that were stalled are dropped);
 * - slowUplink(ms): what clients send is forwarded a read at a time, each followed by a pause of ms (a slow link
 *   towards the target; its answers come at once); `forwarded` counts those bytes.
 */
export class TcpProxy {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private stalled = false;
  private uplinkPauseMs = 0;
  /** Bytes forwarded from clients to the target. */
  forwarded = 0;
  port = 0;

  private constructor(private readonly target: { host: string; port: number }) {}

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const p = new TcpProxy(target);
    // A port from freePort, not listen(0): restore() listens on it again after a cut, and a port the kernel handed
    // out could meanwhile go to the other test file's listen(0).
    await p.listen(await freePort());
    return p;
  }

  get connections(): number {
    return this.sockets.size / 2;
  }

  private listen(port: number): Promise<void> {
    const server = net.createServer((client) => this.accept(client));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        this.port = (server.address() as net.AddressInfo).port;
        resolve();
      });
    });
  }

  private accept(client: net.Socket): void {
    const upstream = net.connect(this.target.port, this.target.host);
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        this.sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (d) => {
      if (this.stalled) return;
      this.forwarded += d.length;
      upstream.write(d);
      if (this.uplinkPauseMs > 0) {
        client.pause();
        setTimeout(() => client.resume(), this.uplinkPauseMs);
      }
    });
    upstream.on('data', (d) => { if (!this.stalled) client.write(d); });
  }

  private destroyAll(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  /** Drop every connection and refuse new ones. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    this.destroyAll();
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }

  /** Forward what clients send a read at a time, pausing ms after each (0: at once again). */
  slowUplink(ms: number): void {
    this.uplinkPauseMs = ms;
  }

  /** Keep connections open but forward nothing (bytes are dropped). */
  stall(): void {
    this.stalled = true;
  }

  async restore(): Promise<void> {
    // Stalled connections lost bytes: their protocol state is gone, as after a real timeout.
    if (this.stalled) this.destroyAll();
    this.stalled = false;
    if (!this.server) await this.listen(this.port);
  }

  async close(): Promise<void> {
    await this.cut();
  }
}
