// bcoin@1.0.2 (a full node nobody here wrote) started in this process on regtest, in memory, serving its
// Bitcoin Core-style JSON-RPC on 127.0.0.1 (POST / on the HTTP port, Basic auth: any user name, the API key as
// password). Used to prove that the blocks the pool builds are valid to an independent implementation.
//
// bcoin regtest differs from Bitcoin Core's (see ../shared/README.md): addresses are `R…` (P2PKH, version 0x3c)
// and `rb1…` (bech32 HRP `rb`); segwit is a BIP9 deployment that becomes active at height 432 (before that the
// template's `rules` lack segwit although `default_witness_commitment` is returned); submitblock reasons are
// prefixed `rejected: `; subsidy halves every 150 blocks.

import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { type Server, request } from 'node:http';
import { REGTEST_NETWORK } from '../../src/node/regtest/index.ts';

// ---- The few parts of bcoin's API used here (bcoin ships no TypeScript types) -------------------------------

/**
 * One JSON-RPC POST on a connection of its own. Not fetch: its keep-alive pool reuses a connection bcoin's HTTP
 * server may be closing at that moment (idle for its keep-alive timeout), and the call failed with `read
 * ECONNRESET` (once in a CI run); a POST cannot be retried blindly (generatetoaddress would mine twice).
 */
function post(at: string, authorization: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(at, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', authorization, 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

export interface BcoinScript { toRaw(): Buffer }
export interface BcoinAddress { toString(network?: string): string; getHash(): Buffer }
export interface BcoinOutput { value: number; script: BcoinScript }
export interface BcoinTX {
  txid(): string;
  wtxid(): string;
  hasWitness(): boolean;
  outputs: BcoinOutput[];
  toRaw(): Buffer;
}
export interface BcoinBlock { txs: BcoinTX[]; rhash(): string }
export interface BcoinKeyRing {
  witness: boolean;
  getAddress(enc: 'string', network: string): string;
  getAddress(): BcoinAddress;
  getKeyHash(): Buffer;
}
export interface BcoinMTX {
  addCoin(coin: unknown): unknown;
  addOutput(address: BcoinAddress | string, value: number): unknown;
  sign(ring: BcoinKeyRing): number;
  toTX(): BcoinTX;
}
export interface BcoinModule {
  FullNode: new (options: Record<string, unknown>) => BcoinFullNode;
  wallet: { plugin: unknown };
  KeyRing: { generate(compressed?: boolean): BcoinKeyRing };
  MTX: new () => BcoinMTX;
  Coin: { fromTX(tx: BcoinTX, index: number, height: number): unknown };
  TX: { fromRaw(data: Buffer | string, enc?: 'hex'): BcoinTX };
  Block: { fromRaw(data: Buffer | string, enc?: 'hex'): BcoinBlock };
  Address: { fromString(addr: string, network?: string): BcoinAddress; fromWitnessPubkeyhash(hash: Buffer): BcoinAddress; fromPubkeyhash(hash: Buffer): BcoinAddress };
}
interface BcoinFullNode {
  use(plugin: unknown): void;
  require(name: string): { http: { http: Server; address(): { address: string; port: number } | null } };
  open(): Promise<void>;
  close(): Promise<void>;
  on(event: 'error', fn: (err: Error) => void): unknown;
  http: { http: Server; address(): { address: string; port: number } | null };
  pool: { invMap: Map<string, { resolve(): void }> };
}

let cached: BcoinModule | Error | undefined;

/** bcoin's module, or the Error that loading it raised (a test skips on that). */
export function loadBcoin(): BcoinModule | Error {
  if (cached === undefined) {
    try {
      cached = createRequire(import.meta.url)('bcoin') as BcoinModule;
    } catch (e) {
      cached = e instanceof Error ? e : new Error(String(e));
    }
  }
  return cached;
}

export class BcoinRpcError extends Error {
  constructor(readonly method: string, readonly code: number | undefined, message: string) {
    super(`bcoin ${method}: ${message}${code !== undefined ? ` (code ${code})` : ''}`);
  }
}

export interface BcoinNodeHandle {
  /** http://127.0.0.1:<port>/ — the RPC endpoint, without credentials. */
  url: string;
  user: string;
  password: string;
  /** One JSON-RPC call; throws BcoinRpcError on an RPC error or an HTTP status other than 200. */
  rpc<T = unknown>(method: string, params?: unknown[]): Promise<T>;
  /** The bcoin module, for its primitives (keys, transactions, block parsing). */
  bcoin: BcoinModule;
  /** The wallet's RPC endpoint (POST /, same credentials), when started with `wallet: true`. */
  walletUrl: string | null;
  /** One JSON-RPC call to the wallet (the "primary" wallet). */
  walletRpc<T = unknown>(method: string, params?: unknown[]): Promise<T>;
  /** Errors bcoin reported on its own (e.g. a transaction `sendrawtransaction` took but the mempool refused:
   *  bcoin answers the txid at once and only logs the verification failure). */
  errors: Error[];
  /** Closes the node and its HTTP server (open connections included) so the process can exit. */
  stop(): Promise<void>;
}

export interface StartBcoinOptions {
  /** HTTP/RPC port; default 0 (the kernel picks a free one). */
  port?: number;
  /** bcoin log level; default 'none', or BCOIN_LOG (e.g. BCOIN_LOG=debug prints bcoin's own log to the console). */
  logLevel?: string;
  /** Also run bcoin's wallet (its own HTTP/RPC server on a free 127.0.0.1 port, the same API key). */
  wallet?: boolean;
}

/** Start bcoin on regtest in memory. Rejects if bcoin cannot load or open on this machine. */
export async function startBcoinNode(opts: StartBcoinOptions = {}): Promise<BcoinNodeHandle> {
  const bcoin = loadBcoin();
  if (bcoin instanceof Error) throw bcoin;
  const password = randomBytes(16).toString('hex');
  const user = 'bitcoinrpc'; // bcoin ignores the user name; only the API key (password) is checked
  const node = new bcoin.FullNode({
    network: 'regtest',
    memory: true,
    workers: false,
    listen: false,
    // No peers needed: bcoin's regtest is `selfConnect`, so getblocktemplate answers without any.
    httpHost: '127.0.0.1',
    httpPort: opts.port ?? 0,
    apiKey: password,
    logLevel: opts.logLevel ?? process.env.BCOIN_LOG ?? 'none',
    logConsole: !!process.env.BCOIN_LOG,
    // With its wallet, a transaction index too: bcoin 1.0.2's wallet gettransaction fails on confirmed
    // transactions ("Invalid integer value."), so their confirmations are read with the node's getrawtransaction.
    ...(opts.wallet ? { walletHttpHost: '127.0.0.1', walletHttpPort: 0, indexTX: true } : {}),
  });
  if (opts.wallet) node.use(bcoin.wallet.plugin);
  const errors: Error[] = [];
  node.on('error', (err) => errors.push(err));
  try {
    await node.open();
  } catch (e) {
    await node.close().catch(() => undefined);
    throw e;
  }
  const addr = node.http.address();
  if (!addr || !addr.port) {
    await node.close().catch(() => undefined);
    throw new Error('bcoin HTTP server has no address after open()');
  }
  const url = `http://127.0.0.1:${addr.port}/`;
  const walletAddr = opts.wallet ? node.require('walletdb').http.address() : null;
  const walletUrl = walletAddr ? `http://127.0.0.1:${walletAddr.port}/` : null;
  const auth = 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
  let nextId = 1;
  let stopped: Promise<void> | undefined;

  async function rpc<T = unknown>(method: string, params: unknown[] = [], at = url): Promise<T> {
    const res = await post(at, auth, JSON.stringify({ jsonrpc: '1.0', id: nextId++, method, params }));
    const text = res.text;
    let body: { result?: unknown; error?: { code?: number; message?: string } | null };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new BcoinRpcError(method, undefined, `HTTP ${res.status}: ${text.slice(0, 200) || '(empty body)'}`);
    }
    if (body.error) throw new BcoinRpcError(method, body.error.code, body.error.message ?? JSON.stringify(body.error));
    if (res.status !== 200) throw new BcoinRpcError(method, undefined, `HTTP ${res.status}`);
    return body.result as T;
  }

  return {
    url, user, password, rpc, bcoin, errors, walletUrl,
    walletRpc: <T>(method: string, params: unknown[] = []) => {
      if (!walletUrl) throw new Error('bcoin was started without its wallet');
      return rpc<T>(method, params, walletUrl);
    },
    stop() {
      stopped ??= (async () => {
        // A refused transaction is "broadcast anyway" to peers we do not have, with a 60 s timer per item
        // that would hold the process open; the pool only clears them on disconnect from a network we never
        // joined.
        for (const item of [...node.pool.invMap.values()]) item.resolve();
        // A pending getblocktemplate long poll is never answered once nothing connects: cut open
        // connections so http.Server.close() (inside node.close()) does not wait for them.
        node.http.http.closeAllConnections();
        if (opts.wallet) node.require('walletdb').http.http.closeAllConnections();
        await node.close();
      })();
      return stopped;
    },
  };
}

/** bcoin's regtest subsidy at a height (50 BTC halving every 150 blocks), satoshis. */
export function bcoinRegtestSubsidy(height: number): bigint {
  const halvings = Math.floor(height / 150);
  return halvings >= 64 ? 0n : 5_000_000_000n >> BigInt(halvings);
}

/** bcoin's regtest address encodings (@scure/btc-signer network): `rb` bech32, `R…` P2PKH (see the header). */
export const BCOIN_REGTEST = { ...REGTEST_NETWORK, bech32: 'rb', pubKeyHash: 0x3c, scriptHash: 0x26, wif: 0x5a };
