// JSON-RPC over HTTP as Bitcoin Core serves it (src/httprpc.cpp, src/rpc/request.cpp, Core 28):
// - POST only (405 otherwise), on "/" and "/wallet/…"; Basic auth (401 with an empty body and
//   `WWW-Authenticate: Basic realm="jsonrpc"` when missing or wrong).
// - Legacy requests (no "jsonrpc", "1.0", "1.1"): `{"result":…,"error":null,"id":…}`; an error has result null
//   and HTTP 400 (-32600), 404 (-32601) or 500 (anything else).
// - JSON-RPC 2.0 requests: result xor error, always HTTP 200; a notification (no id) gets 204 and no body.
// - A batch (array) is answered with HTTP 200 and an array, each element by the rules above.
// - Work queue (src/httpserver.cpp): each request is one work item run by one of `rpcthreads` workers; items
//   wait in a queue of at most `rpcworkqueue`; a request arriving at a full queue is answered at once with
//   HTTP 503 "Work queue depth exceeded" (before authentication). A worker stays busy until its handler
//   returns: a long poll pins one until the tip changes, even after its client went away (Core does not watch
//   the connection).

import http from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import {
  RPC_INVALID_REQUEST, RPC_MISC_ERROR, RPC_PARSE_ERROR, RpcFault, httpStatusForRpcError,
} from './errors.ts';
import type { CallContext, Dispatch } from './rpc-methods.ts';

export interface RpcServerOptions {
  user: string;
  password: string;
  logger?: Logger;
  /** Larger request bodies get HTTP 413. Default 32 MiB (Core's MAX_SIZE): room for a 4 MB block in hex. */
  maxBodyBytes?: number;
  /** Requests run at once (Core's -rpcthreads). Default 16 (DEFAULT_HTTP_THREADS). */
  rpcThreads?: number;
  /** Requests waiting for a worker before new ones get 503 (Core's -rpcworkqueue). Default 64. */
  rpcWorkQueue?: number;
}

export interface RpcServer {
  readonly server: http.Server;
  /** Work items running (at most rpcThreads) and waiting for a worker. */
  readonly work: { running: number; queued: number; rejected: number };
  /** Ends pending long polls, keep-alive sockets and the listener. */
  close(): Promise<void>;
}

interface Reply {
  body: Record<string, unknown> | null;
  status: number;
}

const sha = (s: string): Buffer => createHash('sha256').update(s).digest();

export function createRpcServer(dispatch: Dispatch, opts: RpcServerOptions): RpcServer {
  const expected = sha(`${opts.user}:${opts.password}`);
  const maxBody = opts.maxBodyBytes ?? 32 * 1024 * 1024;
  const threads = Math.max(1, opts.rpcThreads ?? 16);
  const depth = Math.max(1, opts.rpcWorkQueue ?? 64);
  // Ended when the server closes (long polls then answer); never by a client going away, as in Core.
  const shutdown = new AbortController();
  const queue: Array<() => void> = [];
  const work = { running: 0, queued: 0, rejected: 0 };
  let closing = false;

  /** Runs `item` on a free worker, or queues it; false when the queue is full (the caller answers 503). */
  const dispatchWork = (item: () => Promise<void>): boolean => {
    if (queue.length >= depth) { work.rejected++; return false; }
    const run = (): void => {
      work.running++;
      item().catch(() => undefined).finally(() => {
        work.running--;
        const next = queue.shift();
        work.queued = queue.length;
        next?.();
      });
    };
    if (work.running < threads) run();
    else { queue.push(run); work.queued = queue.length; }
    return true;
  };

  const authorized = (header: string | undefined): boolean => {
    if (!header || !header.startsWith('Basic ')) return false;
    const given = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
    return timingSafeEqual(sha(given), expected);
  };

  async function execOne(req: unknown, ctx: CallContext): Promise<Reply> {
    if (typeof req !== 'object' || req === null || Array.isArray(req)) {
      return legacyError(new RpcFault(RPC_INVALID_REQUEST, 'Invalid Request object'), null);
    }
    const r = req as Record<string, unknown>;
    const id = r.id === undefined ? null : r.id;
    const version = r.jsonrpc;
    if (version !== undefined && version !== '1.0' && version !== '1.1' && version !== '2.0') {
      return legacyError(new RpcFault(RPC_INVALID_REQUEST, 'JSON-RPC version not supported'), id);
    }
    const v2 = version === '2.0';
    const notification = v2 && !('id' in r);
    let result: unknown;
    try {
      if (typeof r.method !== 'string') throw new RpcFault(RPC_INVALID_REQUEST, 'Method must be a string');
      const params = r.params;
      if (params !== undefined && params !== null && typeof params !== 'object') {
        throw new RpcFault(RPC_INVALID_REQUEST, 'Params must be an array or object');
      }
      result = await dispatch(r.method, params, ctx);
    } catch (err) {
      const fault = err instanceof RpcFault ? err : internal(err, r.method);
      if (notification) return { body: null, status: 204 };
      if (v2) return { body: { jsonrpc: '2.0', error: { code: fault.code, message: fault.message }, id }, status: 200 };
      return legacyError(fault, id);
    }
    if (notification) return { body: null, status: 204 };
    return { body: v2 ? { jsonrpc: '2.0', result: result ?? null, id } : { result: result ?? null, error: null, id }, status: 200 };
  }

  function internal(err: unknown, method: unknown): RpcFault {
    // Core turns a std::exception in a handler into RPC_MISC_ERROR with its text; the server keeps running.
    opts.logger?.error({ err, method }, 'embedded chain: RPC handler failed');
    return new RpcFault(RPC_MISC_ERROR, err instanceof Error ? err.message : String(err));
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer, ctx: CallContext): Promise<void> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      return send(res, legacyError(new RpcFault(RPC_PARSE_ERROR, 'Parse error'), null));
    }
    if (Array.isArray(parsed)) {
      if (parsed.length === 0) return send(res, legacyError(new RpcFault(RPC_INVALID_REQUEST, 'Invalid Request object'), null));
      const out: unknown[] = [];
      // In order, one at a time: a submitblock followed by getbestblockhash sees its own block.
      for (const item of parsed) {
        const r = await execOne(item, ctx);
        if (r.body) out.push(r.body);
      }
      if (out.length === 0) return send(res, { body: null, status: 204 });
      res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(out)}\n`);
      return;
    }
    if (typeof parsed !== 'object' || parsed === null) {
      return send(res, legacyError(new RpcFault(RPC_PARSE_ERROR, 'Top-level object parse error'), null));
    }
    return send(res, await execOne(parsed, ctx));
  }

  const server = http.createServer((req, res) => {
    req.on('error', () => { /* the socket went away; a running call still runs to its end, as in Core */ });
    if (closing) { res.writeHead(503, { connection: 'close' }).end(); return; }
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/' && !path.startsWith('/wallet/')) { res.writeHead(404).end(); return; }
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    req.on('data', (c: Buffer) => {
      if (tooBig) return;
      size += c.length;
      if (size > maxBody) {
        tooBig = true;
        res.writeHead(413, { connection: 'close' }).end();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (tooBig) return;
      const accepted = dispatchWork(async () => {
        // On the worker, as Core's HTTPReq_JSONRPC: method, then authentication, then the call.
        if (req.method !== 'POST') { res.writeHead(405).end('JSONRPC server handles only POST requests'); return; }
        if (!authorized(req.headers.authorization)) {
          res.writeHead(401, { 'www-authenticate': 'Basic realm="jsonrpc"' }).end();
          return;
        }
        await handle(req, res, Buffer.concat(chunks), { signal: shutdown.signal }).catch((err: unknown) => {
          opts.logger?.error({ err }, 'embedded chain: request failed');
          if (!res.headersSent && !res.destroyed) send(res, legacyError(new RpcFault(RPC_MISC_ERROR, 'internal error'), null));
        });
      });
      if (!accepted) {
        opts.logger?.warn('embedded chain: request rejected because the http work queue depth is exceeded');
        res.writeHead(503, { 'content-type': 'text/html; charset=ISO-8859-1' }).end('Work queue depth exceeded');
      }
    });
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    else socket.destroy();
  });

  return {
    server,
    work,
    close: () => new Promise<void>((resolve) => {
      closing = true;
      shutdown.abort(); // long polls answer now with the current template
      for (const run of queue.splice(0)) run(); // queued items run, see the shutdown and end
      server.close(() => resolve());
      server.closeIdleConnections();
      // One turn of the loop lets the aborted calls write their answers; then every socket goes.
      setImmediate(() => server.closeAllConnections());
    }),
  };
}

function legacyError(fault: RpcFault, id: unknown): Reply {
  return { body: { result: null, error: { code: fault.code, message: fault.message }, id }, status: httpStatusForRpcError(fault.code) };
}

function send(res: http.ServerResponse, r: Reply): void {
  if (res.headersSent || res.destroyed) return;
  if (r.body === null) { res.writeHead(r.status).end(); return; }
  res.writeHead(r.status, { 'content-type': 'application/json' }).end(`${JSON.stringify(r.body)}\n`);
}
