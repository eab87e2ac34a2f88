// Bitcoin Core JSON-RPC client over HTTP (node:http, keep-alive), with failover between several nodes.
//
// Wire facts this file relies on (Bitcoin Core src/httprpc.cpp, src/httpserver.cpp):
// - Legacy (JSON-RPC 1.0) replies carry RPC errors as HTTP 500 (400 for invalid request, 404 for unknown
//   method) with a JSON body `{"result":null,"error":{"code":-8,"message":"..."},"id":..}`; JSON-RPC 2.0
//   replies (Core >= 28) carry them with HTTP 200. Either way a body with a non-null `error` is an RPC error.
// - 401 has an empty body; 403 means rpcallowip refused us.
// - 503 "Work queue depth exceeded" means the node's RPC queue is full: retry later or elsewhere.
// - The `.cookie` file holds "__cookie__:<hex>" and is rewritten at every bitcoind start.
// - A getblocktemplate long poll has no server-side timeout and Core does not notice a client that gives up:
//   an abandoned long poll pins one of its -rpcthreads until the tip changes. So long polls get no client
//   deadline; TCP keepalive notices a dead node instead.
// - getblocktemplate must carry the rules the chain enforces: "segwit" always, "signet" on signet.

import http from 'node:http';
import https from 'node:https';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { z } from 'zod';
import { NODE_STATE_CODES, type ReplyFailure, type TemplateReading, decodeBody, hash, readReply, readTemplateReply, shapeProblem } from './template-reply.ts';
import { TemplateThread } from './template-thread.ts';
import type { BlockHeaderInfo, BlockchainInfo, BlockTemplate, NodeClient, ZmqNotification } from './types.ts';

export interface RpcEndpoint {
  /** e.g. http://127.0.0.1:18443, optionally http://user:pass@host:port/wallet/x */
  url: string;
  user?: string;
  password?: string;
  /** Bitcoin Core's `.cookie`; used when neither user/password nor URL credentials are given. */
  cookieFile?: string;
}

export interface BitcoinRpcOptions {
  endpoints: RpcEndpoint[];
  /** Per-request deadline, ms (not for long polls: they have none). Default 10000. */
  timeoutMs?: number;
  /** TCP keepalive of a long poll's socket: first probe after this much silence, ms (then 1 s apart, 10
   *  probes). A long poll to a node that died ends within about this + 10 s. Default 15000. */
  longpollKeepAliveMs?: number;
  /** The chain: decides the getblocktemplate rules (signet needs "signet"). Default: rules ["segwit"]. */
  network?: 'mainnet' | 'testnet' | 'signet' | 'regtest';
  logger?: Logger;
  /** First back-off of a failing endpoint, ms (doubles per failure). Default 1000. */
  endpointBackoffMs?: number;
  /** Longest back-off of a failing endpoint, ms. Default 30000. */
  endpointBackoffMaxMs?: number;
  /** Pauses before re-sending a block no endpoint answered, ms. Default [500, 2000]. */
  submitRetryDelaysMs?: number[];
  /** A larger answer is a 'parse' error. Default 64 MiB (a 4 MB block template is ~10 MB of JSON). */
  maxResponseBytes?: number;
  /** Clock for endpoint back-off (ms). Default Date.now. */
  now?: () => number;
  /** Read getblocktemplate replies on a worker thread (template-thread.ts), off the event loop: what a pool
   *  wants (a 3,000-transaction template is ~20 ms of work). Its templates come with `prepared` transactions
   *  (block bytes, merkle branch) and an empty `transactions` list. Default false: read on the event loop, with
   *  the transactions listed. */
  templateThread?: boolean;
}

export interface CallOptions {
  timeoutMs?: number;
  /** Aborting rejects with `signal.reason` (an AbortError by default), not with an RpcError. */
  signal?: AbortSignal;
}

export type RpcErrorKind = 'timeout' | 'network' | 'http' | 'auth' | 'rpc' | 'parse';

interface RpcErrorInit {
  kind: RpcErrorKind;
  method: string;
  endpoint: string;
  detail: string;
  code?: number;
  rpcMessage?: string;
  httpStatus?: number;
  retryable?: boolean;
  attempts?: readonly RpcError[];
  cause?: unknown;
}

export class RpcError extends Error {
  override readonly name = 'RpcError';
  readonly kind: RpcErrorKind;
  readonly method: string;
  /** Endpoint URL without credentials. */
  readonly endpoint: string;
  /** Text after "<method> on <endpoint>: ". */
  readonly detail: string;
  /** JSON-RPC error code (kind 'rpc'). */
  readonly code?: number;
  /** JSON-RPC error message (kind 'rpc'). */
  readonly rpcMessage?: string;
  readonly httpStatus?: number;
  /** Trying again later or on another node may succeed (timeouts, refused connections, 5xx, warm-up). */
  readonly retryable: boolean;
  /** Earlier endpoints' errors when every endpoint failed. */
  readonly attempts: readonly RpcError[];

  constructor(init: RpcErrorInit) {
    super(`${init.method} on ${init.endpoint}: ${init.detail}`, init.cause === undefined ? undefined : { cause: init.cause });
    this.kind = init.kind;
    this.method = init.method;
    this.endpoint = init.endpoint;
    this.detail = init.detail;
    this.code = init.code;
    this.rpcMessage = init.rpcMessage;
    this.httpStatus = init.httpStatus;
    this.retryable = init.retryable ?? false;
    this.attempts = init.attempts ?? [];
  }

  /** The request itself was fine, this endpoint was not: another endpoint should be tried. */
  get endpointFault(): boolean {
    return this.kind !== 'rpc' || (this.code !== undefined && NODE_STATE_CODES.has(this.code));
  }
}

/** One endpoint's answer to a block submission (the error of a failed call is an RpcError here). */
export type SubmitAnswer =
  | { endpoint: string; result: string | null }
  | { endpoint: string; error: RpcError };

interface EndpointState {
  display: string;
  url: URL;
  transport: typeof http | typeof https;
  agent: http.Agent;
  /** Basic credentials from options or the URL; undefined when absent. */
  fixedAuth?: string;
  cookieFile?: string;
  cookieAuth?: string;
  failures: number;
  downUntil: number;
}

interface HttpReply {
  status: number;
  /** The body as it came, `size` bytes in all: decoded by whoever reads it (a template on the template thread). */
  chunks: Buffer[];
  size: number;
}

// Edge validation: the fields the pool reads must be there with the right types; extra fields pass (the
// template's schema is in template-reply.ts).
const headerSchema = z.looseObject({
  hash,
  confirmations: z.number().int(),
  height: z.number().int().nonnegative(),
  nTx: z.number().int().nonnegative().optional(),
  time: z.number().int().optional(),
  // bcoin answers null where Core leaves the field out (genesis's previous, the tip's next): read as absent.
  previousblockhash: hash.nullish().transform((v) => v ?? undefined),
  nextblockhash: hash.nullish().transform((v) => v ?? undefined),
});
const zmqSchema = z.array(z.looseObject({ type: z.string(), address: z.string(), hwm: z.number().optional() }));
const chainInfoSchema = z.looseObject({
  chain: z.string(),
  blocks: z.number().int(),
  headers: z.number().int(),
  bestblockhash: hash,
  difficulty: z.number(),
  // bcoin omits it; a node that answers templates is past IBD, so absent means false.
  initialblockdownload: z.boolean().default(false),
  verificationprogress: z.number().optional(),
});

export class BitcoinRpc implements NodeClient {
  private readonly endpoints: EndpointState[];
  private readonly timeoutMs: number;
  private readonly longpollKeepAliveMs: number;
  private readonly gbtRules: string[];
  private readonly logger?: Logger;
  private readonly backoffMs: number;
  private readonly backoffMaxMs: number;
  private readonly submitRetryDelaysMs: number[];
  private readonly maxResponseBytes: number;
  private readonly now: () => number;
  /** Where getblocktemplate replies are read, when not on the event loop (its stats say where they were). */
  readonly templateThread?: TemplateThread;
  /** Index of the endpoint that answered last: tried first. */
  private preferred = 0;
  private nextId = 1;

  constructor(opts: BitcoinRpcOptions) {
    if (opts.endpoints.length === 0) throw new Error('BitcoinRpc: at least one endpoint is required');
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.longpollKeepAliveMs = opts.longpollKeepAliveMs ?? 15_000;
    this.gbtRules = opts.network === 'signet' ? ['segwit', 'signet'] : ['segwit'];
    this.logger = opts.logger;
    this.backoffMs = opts.endpointBackoffMs ?? 1_000;
    this.backoffMaxMs = opts.endpointBackoffMaxMs ?? 30_000;
    this.submitRetryDelaysMs = opts.submitRetryDelaysMs ?? [500, 2_000];
    this.maxResponseBytes = opts.maxResponseBytes ?? 64 * 1024 * 1024;
    this.now = opts.now ?? Date.now;
    if (opts.templateThread) this.templateThread = new TemplateThread(opts.logger);
    this.endpoints = opts.endpoints.map((ep) => makeEndpoint(ep));
  }

  /** Endpoint URLs (without credentials), in configuration order. */
  get endpointUrls(): string[] {
    return this.endpoints.map((e) => e.display);
  }

  /** Generic call with failover. Throws RpcError (or the abort reason when `signal` aborts). */
  async call<T = unknown>(method: string, params: unknown[] = [], opts: CallOptions = {}): Promise<T> {
    return this.callWithFailover<T>(method, params, opts.timeoutMs ?? this.timeoutMs, opts.signal, false);
  }

  /**
   * BIP22/23 template with this chain's rules. With `longpollId`, a long poll: no deadline (see the top of this
   * file), TCP keepalive on its socket; only `signal` ends it early (and then the node keeps a thread on it).
   */
  async getBlockTemplate(longpollId?: string, signal?: AbortSignal): Promise<BlockTemplate> {
    const request: Record<string, unknown> = { rules: this.gbtRules };
    if (longpollId !== undefined) request.longpollid = longpollId;
    const longpoll = longpollId !== undefined;
    const timeoutMs = longpoll ? Infinity : this.timeoutMs;
    const reading = await this.callWithFailover<{ template: BlockTemplate } | { shape: string }>(
      'getblocktemplate', [request], timeoutMs, signal, longpoll, (ep, reply) => this.readTemplate(ep, reply));
    // A template of the wrong shape is the answer of a node that answered: no other endpoint is tried for it.
    if ('shape' in reading) throw this.shapeError('getblocktemplate', reading.shape);
    return reading.template;
  }

  /** A getblocktemplate reply read (on the template thread when there is one): RPC errors thrown as RpcError. */
  private async readTemplate(ep: EndpointState, reply: HttpReply): Promise<{ template: BlockTemplate } | { shape: string }> {
    let r: TemplateReading;
    if (this.templateThread) r = await this.templateThread.read(reply.status, reply.chunks, reply.size);
    else {
      this.loopTemplateReads++;
      r = readTemplateReply(reply.status, Buffer.concat(reply.chunks, reply.size), false);
    }
    if (r.ok) return { template: r.template };
    if ('failure' in r) throw this.failure(ep, 'getblocktemplate', r.failure);
    return { shape: r.shape };
  }

  /**
   * getblocktemplate replies read so far: on the template thread, and on the event loop (no thread, or the thread
   * failed: each such read is a turn that miners' answers wait behind).
   */
  get templateReads(): { thread: number; eventLoop: number } {
    const t = this.templateThread?.stats;
    return { thread: t?.threaded ?? 0, eventLoop: (t?.fallback ?? 0) + this.loopTemplateReads };
  }
  private loopTemplateReads = 0;

  /** Long polls sent and not answered yet (at most one per TemplateSource). */
  get longpollsOutstanding(): number {
    return this.outstandingLongpolls;
  }
  private outstandingLongpolls = 0;

  /**
   * getblockheader <hash> (verbose): `confirmations` is -1 when the block is not on the node's best chain
   * (src/rpc/blockchain.cpp ComputeNextBlockAndDepth); null when the node does not know the block
   * (RPC_INVALID_ADDRESS_OR_KEY, "Block not found").
   *
   * bcoin 1.0.2 answers `tip - height + 1` for every block it knows, a stale block a longer chain replaced
   * included, so a positive answer is checked against the best chain's block at that height (one getblockhash
   * more, for the few found blocks and deposits asked about); off it, the answer is -1 as Core would give. A
   * chain that shrank between the two calls ("Block height out of range", -8) has left the block off it too.
   */
  async getBlockHeader(blockHash: string): Promise<BlockHeaderInfo | null> {
    let header: BlockHeaderInfo;
    try {
      const raw = await this.call<unknown>('getblockheader', [blockHash, true]);
      header = this.validate('getblockheader', headerSchema, raw);
    } catch (err) {
      if (err instanceof RpcError && err.kind === 'rpc' && err.code === -5) return null;
      throw err;
    }
    if (header.confirmations < 1) return header;
    let atHeight: string | null;
    try {
      atHeight = await this.getBlockHash(header.height);
    } catch (err) {
      if (!(err instanceof RpcError && err.kind === 'rpc' && err.code === -8)) throw err;
      atHeight = null;
    }
    if (atHeight !== null && atHeight.toLowerCase() === header.hash.toLowerCase()) return header;
    return { ...header, confirmations: -1, nextblockhash: undefined };
  }

  /**
   * The node's ZMQ publishers (getzmqnotifications). A node built without ZMQ has no such method: [] then.
   */
  async getZmqNotifications(): Promise<ZmqNotification[]> {
    try {
      const raw = await this.call<unknown>('getzmqnotifications');
      const list = this.validate('getzmqnotifications', zmqSchema, raw);
      const host = this.endpoints[this.preferred].url.hostname.replace(/^\[(.*)\]$/, '$1');
      return list.map((n) => ({ ...n, address: reachableZmqAddress(n.address, host) }));
    } catch (err) {
      if (err instanceof RpcError && err.kind === 'rpc' && err.code === -32601) return [];
      throw err;
    }
  }

  async getBlockchainInfo(): Promise<BlockchainInfo> {
    const raw = await this.call<unknown>('getblockchaininfo');
    return this.validate('getblockchaininfo', chainInfoSchema, raw);
  }

  async getBestBlockHash(signal?: AbortSignal): Promise<string> {
    const raw = await this.call<unknown>('getbestblockhash', [], { signal });
    return this.validate('getbestblockhash', hash, raw);
  }

  async getBlockHash(height: number): Promise<string> {
    const raw = await this.call<unknown>('getblockhash', [height]);
    return this.validate('getblockhash', hash, raw);
  }

  async getBlock(blockHash: string, verbosity: 0 | 1 | 2 = 1): Promise<unknown> {
    return this.call<unknown>('getblock', [blockHash, verbosity]);
  }

  /**
   * Sends the block to every endpoint at once (a found block is worth the extra requests: it also
   * propagates faster) and returns null if any accepted it, else the first reason string in preference
   * order. Rounds where no endpoint answered at all are repeated after `submitRetryDelaysMs`.
   * A JSON-RPC error (e.g. -22 "Block decode failed") with no other answer is thrown as RpcError.
   */
  async submitBlock(blockHex: string): Promise<string | null> {
    for (let round = 0; ; round++) {
      const answers = await this.submitBlockAll(blockHex);
      if (answers.some((a) => 'result' in a && a.result === null)) return null;
      const reason = answers.find((a): a is { endpoint: string; result: string } => 'result' in a);
      if (reason) return reason.result;
      const errors = answers.flatMap((a) => ('error' in a ? [a.error] : []));
      const verdict = errors.find((e) => !e.endpointFault);
      if (verdict) throw verdict;
      const delay = this.submitRetryDelaysMs[round];
      if (delay === undefined) throw combineFailures(errors);
      this.logger?.error({ attempt: round + 1, retryInMs: delay }, 'submitblock reached no endpoint; retrying');
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  /** One submission round to every endpoint (ignoring back-off); never rejects. Logs every answer. */
  async submitBlockAll(blockHex: string): Promise<SubmitAnswer[]> {
    const body = this.encode('submitblock', [blockHex]);
    const order = this.order(true);
    return Promise.all(
      order.map(async (ep): Promise<SubmitAnswer> => {
        try {
          const result = await this.attempt<unknown>(ep, 'submitblock', body, this.timeoutMs, undefined);
          this.markUp(ep);
          if (result !== null && typeof result !== 'string') {
            throw this.error(ep, 'submitblock', 'parse', `expected null or a string, got ${JSON.stringify(result)}`);
          }
          if (result === null) this.logger?.info({ endpoint: ep.display }, 'submitblock accepted');
          else this.logger?.warn({ endpoint: ep.display, reason: result }, 'submitblock rejected');
          return { endpoint: ep.display, result };
        } catch (err) {
          const rpcErr = err instanceof RpcError ? err : this.error(ep, 'submitblock', 'network', String(err), err);
          if (rpcErr.endpointFault) this.markDown(ep, rpcErr);
          this.logger?.error({ endpoint: ep.display, err: rpcErr.message }, 'submitblock failed');
          return { endpoint: ep.display, error: rpcErr };
        }
      }),
    );
  }

  /** Closes idle keep-alive sockets and stops the template thread. Requests in flight still finish. */
  close(): void {
    void this.templateThread?.close();
    for (const ep of this.endpoints) ep.agent.destroy();
  }

  private async callWithFailover<T>(
    method: string,
    params: unknown[],
    timeoutMs: number,
    signal: AbortSignal | undefined,
    longpoll: boolean,
    read: (ep: EndpointState, reply: HttpReply) => T | Promise<T> = (ep, reply) => this.interpret<T>(ep, method, reply),
  ): Promise<T> {
    const body = this.encode(method, params);
    const failures: RpcError[] = [];
    for (const ep of this.order(false)) {
      signal?.throwIfAborted();
      try {
        if (longpoll) this.outstandingLongpolls++;
        const result = await this.attempt<T>(ep, method, body, timeoutMs, signal, longpoll, read).finally(() => {
          if (longpoll) this.outstandingLongpolls--;
        });
        this.markUp(ep);
        return result;
      } catch (err) {
        if (!(err instanceof RpcError)) throw err; // the caller's abort reason
        if (!err.endpointFault) {
          this.markUp(ep); // it answered; the verdict is about the request
          throw err;
        }
        this.markDown(ep, err);
        failures.push(err);
      }
    }
    throw combineFailures(failures);
  }

  /** Healthy endpoints first (the last one that worked leading), then backed-off ones, soonest first. */
  private order(ignoreBackoff: boolean): EndpointState[] {
    const n = this.endpoints.length;
    const rotated = Array.from({ length: n }, (_, i) => this.endpoints[(this.preferred + i) % n]);
    if (ignoreBackoff) return rotated;
    const now = this.now();
    const healthy = rotated.filter((e) => e.downUntil <= now);
    const down = rotated.filter((e) => e.downUntil > now).sort((a, b) => a.downUntil - b.downUntil);
    return [...healthy, ...down];
  }

  private markUp(ep: EndpointState): void {
    if (ep.failures > 0) this.logger?.info({ endpoint: ep.display }, 'node RPC endpoint is answering again');
    ep.failures = 0;
    ep.downUntil = 0;
    this.preferred = this.endpoints.indexOf(ep);
  }

  private markDown(ep: EndpointState, err: RpcError): void {
    ep.failures++;
    const backoff = Math.min(this.backoffMs * 2 ** (ep.failures - 1), this.backoffMaxMs);
    ep.downUntil = this.now() + backoff;
    // Log the transition only; a node that stays down would otherwise flood the log.
    if (ep.failures === 1) this.logger?.warn({ endpoint: ep.display, err: err.message }, 'node RPC endpoint failing');
  }

  private encode(method: string, params: unknown[]): string {
    // JSON-RPC 1.0 framing: understood by every Core version and by bcoin.
    return JSON.stringify({ jsonrpc: '1.0', id: this.nextId++, method, params });
  }

  private async attempt<T>(
    ep: EndpointState,
    method: string,
    body: string,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    longpoll = false,
    read: (ep: EndpointState, reply: HttpReply) => T | Promise<T> = (e, r) => this.interpret<T>(e, method, r),
  ): Promise<T> {
    let auth = ep.fixedAuth ?? (ep.cookieFile ? (ep.cookieAuth ??= await this.readCookie(ep, method)) : undefined);
    let reply = await this.post(ep, method, body, auth, timeoutMs, signal, longpoll);
    if (reply.status === 401 && ep.fixedAuth === undefined && ep.cookieFile) {
      // bitcoind rewrites the cookie at every start: re-read it once before calling it an auth failure.
      const fresh = await this.readCookie(ep, method);
      ep.cookieAuth = fresh;
      if (fresh !== auth) {
        auth = fresh;
        reply = await this.post(ep, method, body, auth, timeoutMs, signal, longpoll);
      }
    }
    return read(ep, reply);
  }

  private async readCookie(ep: EndpointState, method: string): Promise<string> {
    const file = ep.cookieFile as string;
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      throw this.error(ep, method, 'auth', `cannot read cookie file ${file}: ${code} (is the node running with this datadir?)`, err);
    }
    const cookie = text.trim();
    if (!cookie.includes(':')) throw this.error(ep, method, 'auth', `cookie file ${file} is not "user:password"`);
    return 'Basic ' + Buffer.from(cookie).toString('base64');
  }

  private post(
    ep: EndpointState,
    method: string,
    body: string,
    auth: string | undefined,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    longpoll = false,
  ): Promise<HttpReply> {
    return new Promise<HttpReply>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      let settled = false;
      const finish = (err: unknown, reply?: HttpReply): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (reply) resolve(reply);
        else {
          reject(err);
          req.destroy();
        }
      };
      const onAbort = (): void => finish(signal?.reason);
      const headers: http.OutgoingHttpHeaders = {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      };
      if (auth) headers.authorization = auth;
      const req = ep.transport.request(
        {
          agent: ep.agent,
          method: 'POST',
          hostname: ep.url.hostname.replace(/^\[(.*)\]$/, '$1'),
          port: ep.url.port || (ep.url.protocol === 'https:' ? 443 : 80),
          path: ep.url.pathname + ep.url.search,
          headers,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > this.maxResponseBytes) {
              finish(this.error(ep, method, 'parse', `answer larger than ${this.maxResponseBytes} bytes`));
            } else chunks.push(chunk);
          });
          res.on('end', () => finish(null, { status: res.statusCode ?? 0, chunks, size }));
          res.on('error', (err) => finish(this.networkError(ep, method, err)));
        },
      );
      req.on('error', (err) => finish(this.networkError(ep, method, err)));
      // A long poll waits as long as the node holds it; keepalive probes (not a deadline) find a dead node.
      if (longpoll) req.on('socket', (socket) => socket.setKeepAlive(true, this.longpollKeepAliveMs));
      const timer = Number.isFinite(timeoutMs)
        ? setTimeout(() => finish(this.error(ep, method, 'timeout', `no answer within ${timeoutMs} ms`, undefined, true)), timeoutMs)
        : undefined;
      signal?.addEventListener('abort', onAbort, { once: true });
      req.end(body);
    });
  }

  private interpret<T>(ep: EndpointState, method: string, reply: HttpReply): T {
    const r = readReply(reply.status, decodeBody(Buffer.concat(reply.chunks, reply.size)));
    if (!r.ok) throw this.failure(ep, method, r.failure);
    return r.result as T;
  }

  private failure(ep: EndpointState, method: string, f: ReplyFailure): RpcError {
    return new RpcError({ ...f, method, endpoint: ep.display });
  }

  private validate<S extends z.ZodType>(method: string, schema: S, raw: unknown): z.infer<S> {
    const r = shapeProblem(schema, raw);
    if (r.ok) return r.data as z.infer<S>;
    throw this.shapeError(method, r.where);
  }

  private shapeError(method: string, where: string): RpcError {
    const endpoint = this.endpoints[this.preferred].display;
    return new RpcError({ kind: 'parse', method, endpoint, detail: `unexpected answer shape at ${where}` });
  }

  private networkError(ep: EndpointState, method: string, err: Error): RpcError {
    const code = (err as NodeJS.ErrnoException).code;
    const hint = code === 'ECONNREFUSED' ? ' (is the node running? check rpcbind/rpcport)' : '';
    return this.error(ep, method, 'network', `${code ?? err.message}${hint}`, err, true);
  }

  private error(
    ep: EndpointState,
    method: string,
    kind: RpcErrorKind,
    detail: string,
    cause?: unknown,
    retryable = false,
  ): RpcError {
    return new RpcError({ kind, method, endpoint: ep.display, detail, cause, retryable });
  }
}

function makeEndpoint(ep: RpcEndpoint): EndpointState {
  const url = new URL(ep.url);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`BitcoinRpc: unsupported URL scheme ${url.protocol} (use http://host:port)`);
  }
  const path = url.pathname === '/' ? '' : url.pathname;
  const display = `${url.protocol}//${url.host}${path}`;
  let fixedAuth: string | undefined;
  if (ep.user !== undefined || ep.password !== undefined) {
    fixedAuth = basic(ep.user ?? '', ep.password ?? '');
  } else if (url.username || url.password) {
    fixedAuth = basic(decodeURIComponent(url.username), decodeURIComponent(url.password));
  }
  // Credentials live in fixedAuth only, so no error or log line can print them.
  url.username = '';
  url.password = '';
  const transport = url.protocol === 'https:' ? https : http;
  // A few sockets per node: one may sit in a long poll while polls and submits use the others.
  const agent = new transport.Agent({ keepAlive: true, maxSockets: 8 });
  return { display, url, transport, agent, fixedAuth, cookieFile: ep.cookieFile, failures: 0, downUntil: 0 };
}

function basic(user: string, password: string): string {
  return 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
}

/** The last endpoint's error, carrying the others, when every endpoint failed. */
function combineFailures(failures: RpcError[]): RpcError {
  const last = failures[failures.length - 1];
  if (failures.length <= 1) return last;
  return new RpcError({
    kind: last.kind,
    method: last.method,
    endpoint: last.endpoint,
    detail: `${last.detail}; ${failures.length - 1} other endpoint(s) also failed`,
    code: last.code,
    rpcMessage: last.rpcMessage,
    httpStatus: last.httpStatus,
    retryable: failures.some((f) => f.retryable),
    attempts: failures.slice(0, -1),
    cause: last,
  });
}

/**
 * A publisher address as the node reports it, made reachable from here: a wildcard bind (0.0.0.0, *, ::)
 * means "the node's own address", i.e. the host of the RPC URL that answered.
 */
export function reachableZmqAddress(address: string, rpcHost: string): string {
  const m = /^tcp:\/\/(\*|0\.0\.0\.0|\[::\]|::):(\d+)$/.exec(address);
  if (!m) return address;
  const host = rpcHost.includes(':') && !rpcHost.startsWith('[') ? `[${rpcHost}]` : rpcHost;
  return `tcp://${host}:${m[2]}`;
}
