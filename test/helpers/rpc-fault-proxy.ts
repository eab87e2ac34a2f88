import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An HTTP proxy on 127.0.0.1 in front of a node's JSON-RPC port, with the faults a real node (or the network
 * to it) produces, chosen per RPC method:
 * - latency: each request is held `ms` before it is forwarded (the answer then comes, late);
 * - reset: the connection is destroyed when a request arrives (ECONNRESET);
 * - status: an answer without asking the node, e.g. 503 "Work queue depth exceeded" or a bare 500;
 * - truncate: the node's answer cut after `bytes` (default half): with `declareFullLength` the HTTP length is
 *   the original one and the socket closes early, otherwise a complete HTTP answer whose JSON is cut.
 * The target can be moved (a node restarted elsewhere). Every request is logged with the fault it got.
 */
export type Fault =
  | { kind: 'latency'; ms: number }
  | { kind: 'reset' }
  | { kind: 'status'; status: number; body: string; contentType?: string }
  | { kind: 'truncate'; bytes?: number; declareFullLength?: boolean };

export const WORK_QUEUE_EXCEEDED: Fault = { kind: 'status', status: 503, body: 'Work queue depth exceeded', contentType: 'text/html; charset=ISO-8859-1' };
export const INTERNAL_ERROR_500: Fault = { kind: 'status', status: 500, body: 'Internal Server Error' };

interface Rule { fault: Fault; methods: Set<string> | null }

export class RpcFaultProxy {
  readonly log: Array<{ method: string; fault: Fault['kind'] | 'pass' }> = [];
  private rule: Rule | null = null;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly agent = new http.Agent({ keepAlive: true });
  private server!: http.Server;
  port = 0;

  private constructor(private target: { host: string; port: number }) {}

  static async start(target: { host: string; port: number }): Promise<RpcFaultProxy> {
    const p = new RpcFaultProxy(target);
    p.server = http.createServer((req, res) => p.handle(req, res));
    p.server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => p.server.listen(0, '127.0.0.1', resolve));
    p.port = (p.server.address() as AddressInfo).port;
    return p;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Apply `fault` to every request, or only to these RPC methods. */
  set(fault: Fault, methods?: string[]): void {
    this.rule = { fault, methods: methods ? new Set(methods) : null };
  }

  /** Back to forwarding everything as it is. */
  clear(): void {
    this.rule = null;
  }

  /** Forward to another port from now on (a node restarted elsewhere). */
  retarget(target: { host: string; port: number }): void {
    this.target = target;
  }

  count(method: string, fault?: Fault['kind'] | 'pass'): number {
    return this.log.filter((l) => l.method === method && (fault === undefined || l.fault === fault)).length;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => undefined);
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const method = rpcMethod(body);
      const rule = this.rule;
      const fault = rule && (rule.methods === null || rule.methods.has(method)) ? rule.fault : null;
      this.log.push({ method, fault: fault?.kind ?? 'pass' });
      if (!fault) return this.forward(req, body, res, null);
      switch (fault.kind) {
        case 'reset':
          req.socket.destroy();
          return;
        case 'status':
          res.writeHead(fault.status, { 'content-type': fault.contentType ?? 'text/plain' }).end(fault.body);
          return;
        case 'latency': {
          const t = setTimeout(() => {
            this.timers.delete(t);
            this.forward(req, body, res, null);
          }, fault.ms);
          this.timers.add(t);
          return;
        }
        case 'truncate':
          return this.forward(req, body, res, fault);
      }
    });
  }

  private forward(req: http.IncomingMessage, body: Buffer, res: http.ServerResponse, cut: Extract<Fault, { kind: 'truncate' }> | null): void {
    const headers = { ...req.headers, host: `${this.target.host}:${this.target.port}`, 'content-length': String(body.length) };
    const up = http.request({ agent: this.agent, host: this.target.host, port: this.target.port, method: req.method, path: req.url, headers }, (answer) => {
      const parts: Buffer[] = [];
      answer.on('data', (c: Buffer) => parts.push(c));
      answer.on('error', () => res.destroy());
      answer.on('end', () => {
        if (res.destroyed) return;
        const full = Buffer.concat(parts);
        const out: http.OutgoingHttpHeaders = { 'content-type': answer.headers['content-type'] ?? 'application/json' };
        if (answer.headers['www-authenticate']) out['www-authenticate'] = answer.headers['www-authenticate'];
        if (!cut) {
          res.writeHead(answer.statusCode ?? 502, { ...out, 'content-length': full.length }).end(full);
          return;
        }
        const part = full.subarray(0, cut.bytes ?? Math.floor(full.length / 2));
        if (cut.declareFullLength) {
          res.writeHead(answer.statusCode ?? 502, { ...out, 'content-length': full.length });
          res.write(part, () => res.destroy());
        } else {
          res.writeHead(answer.statusCode ?? 502, { ...out, 'content-length': part.length }).end(part);
        }
      });
    });
    // The node is down: the client sees its connection reset, as it would without the proxy.
    up.on('error', () => res.destroy());
    up.end(body);
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.agent.destroy();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

function rpcMethod(body: Buffer): string {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as unknown;
    const first = Array.isArray(parsed) ? parsed[0] : parsed;
    const m = (first as { method?: unknown } | null)?.method;
    return typeof m === 'string' ? m : '?';
  } catch {
    return '?';
  }
}
