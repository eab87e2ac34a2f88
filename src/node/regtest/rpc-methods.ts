// The Bitcoin Core RPC methods a pool uses, answered from the embedded chain with Core's shapes, parameter
// checks and error codes (src/rpc/mining.cpp, src/rpc/blockchain.cpp, src/rpc/util.cpp).

import {
  type Tx, addressToScript, bitsToTarget, fromHex, hashToDisplay, parseBlock, serializeHeader, serializeTx, toHex,
  txid, wtxid, u32Hex,
} from '../../chain/index.ts';
import type { BlockEntry } from './block-index.ts';
import type { EmbeddedChain, LongpollWait } from './chain.ts';
import {
  RPC_DESERIALIZATION_ERROR, RPC_INVALID_PARAMETER, RPC_METHOD_NOT_FOUND, RPC_MISC_ERROR,
  RPC_TYPE_ERROR, RpcFault,
} from './errors.ts';
import { WITNESS_SCALE_FACTOR } from './params.ts';
import { scriptPubKeyJson, scriptToAsm } from './script-json.ts';
import { isCoinbase } from './validate.ts';

export interface CallContext {
  /** Aborted when the client goes away or the server closes (ends long polls and mining). */
  signal: AbortSignal;
}

/** getzmqnotifications entry (src/zmq/zmqrpc.cpp). */
export interface ZmqNotification {
  type: string;
  address: string;
  hwm: number;
}

export interface MethodOptions {
  /** How a getblocktemplate long poll waits (Core: tip at once, mempool after 1 min then every 10 s, no timeout). */
  longpoll: LongpollWait;
  /** Active ZMQ publishers; getzmqnotifications answers them ([] when none, as Core built with ZMQ). */
  zmqNotifications?: () => ZmqNotification[];
  /** When the server started (chain clock, seconds), for `uptime`. */
  startedAt: number;
  /** Transaction and wallet methods (rpc-wallet.ts), when the chain has a wallet. */
  extraMethods?: Record<string, Method>;
}

export type Kind = 'string' | 'number' | 'bool' | 'object' | 'array';
export interface Param { name: string; kinds: Kind[]; optional?: boolean }
export interface Method { params: Param[]; run: (args: unknown[], ctx: CallContext) => unknown }

export type Dispatch = (method: string, params: unknown, ctx: CallContext) => Promise<unknown>;

export const p = (name: string, ...kinds: Kind[]): Param => ({ name, kinds });
export const opt = (name: string, ...kinds: Kind[]): Param => ({ name, kinds, optional: true });

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'boolean') return 'bool';
  return typeof v === 'object' ? 'object' : typeof v;
}

/** ParseHashV. */
export function parseHash(v: unknown, name: string): string {
  const s = v as string;
  if (!/^[0-9a-fA-F]*$/.test(s)) throw new RpcFault(RPC_INVALID_PARAMETER, `${name} must be hexadecimal string (not '${s}')`);
  if (s.length !== 64) throw new RpcFault(RPC_INVALID_PARAMETER, `${name} must be of length 64 (not ${s.length}, for '${s}')`);
  return s.toLowerCase();
}

export function toInt(v: unknown, name: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new RpcFault(RPC_TYPE_ERROR, `${name}: JSON integer out of range`);
  return v;
}

export const btc = (sats: bigint | number): number => Number(sats) / 1e8;

/**
 * GetDifficulty (src/rpc/blockchain.cpp) in Core's double arithmetic, as Core prints it: regtest's is
 * 4.656542373906925e-10 (JavaScript's shortest form of the same double is 4.6565423739069247e-10).
 */
function coreDifficulty(bits: number): number {
  let shift = (bits >>> 24) & 0xff;
  let diff = 0x0000ffff / (bits & 0x00ffffff);
  while (shift < 29) { diff *= 256.0; shift++; }
  while (shift > 29) { diff /= 256.0; shift--; }
  // UniValue prints doubles with 16 significant digits: the value a client parses is that one.
  return Number(diff.toPrecision(16));
}
const hex64 = (n: bigint): string => n.toString(16).padStart(64, '0');

/** Normalizes positional or named params to an argument list and checks types (RPCHelpMan::Check). */
function bindArgs(method: string, spec: Param[], params: unknown): unknown[] {
  let args: unknown[];
  if (params === undefined || params === null) args = [];
  else if (Array.isArray(params)) args = params;
  else {
    const named = params as Record<string, unknown>;
    for (const k of Object.keys(named)) {
      if (!spec.some((s) => s.name === k)) throw new RpcFault(RPC_INVALID_PARAMETER, `Unknown named parameter ${k}`);
    }
    args = spec.map((s) => named[s.name]);
  }
  const usage = `Usage: ${method}${spec.map((s) => (s.optional ? ` ( ${s.name} )` : ` ${s.name}`)).join('')}`;
  if (args.length > spec.length) throw new RpcFault(RPC_MISC_ERROR, usage);
  spec.forEach((s, i) => {
    const v = args[i];
    if (v === undefined || v === null) {
      if (!s.optional) throw new RpcFault(RPC_MISC_ERROR, usage);
      return;
    }
    if (!s.kinds.includes(jsonType(v) as Kind)) {
      throw new RpcFault(RPC_TYPE_ERROR, `JSON value of type ${jsonType(v)} for field ${s.name} is not of expected type ${s.kinds.join(' or ')}`);
    }
  });
  return args;
}

export function createDispatch(chain: EmbeddedChain, opts: MethodOptions): Dispatch {
  const methods: Record<string, Method> = {
    getblocktemplate: { params: [opt('template_request', 'object')], run: ([req], ctx) => getBlockTemplate(chain, (req ?? {}) as Record<string, unknown>, ctx, opts) },
    submitblock: {
      params: [p('hexdata', 'string'), opt('dummy', 'string')],
      run: ([hex]) => chain.submitBlock(decodeHex(hex as string)),
    },
    getbestblockhash: { params: [], run: () => chain.tip.hashHex },
    getblockcount: { params: [], run: () => chain.height },
    getdifficulty: { params: [], run: () => coreDifficulty(chain.bits) },
    getblockhash: {
      params: [p('height', 'number')],
      run: ([h]) => {
        const height = toInt(h, 'height');
        if (height < 0 || height > chain.height) throw new RpcFault(RPC_INVALID_PARAMETER, 'Block height out of range');
        return chain.index.active[height].hashHex;
      },
    },
    getblock: {
      params: [p('blockhash', 'string'), opt('verbosity', 'number', 'bool')],
      run: ([h, v]) => getBlock(chain, chain.lookup(parseHash(h, 'blockhash')), v === undefined || v === null ? 1 : v === true ? 1 : v === false ? 0 : toInt(v, 'verbosity')),
    },
    getzmqnotifications: { params: [], run: () => opts.zmqNotifications?.() ?? [] },
    getblockheader: {
      params: [p('blockhash', 'string'), opt('verbose', 'bool')],
      run: ([h, v]) => {
        const e = chain.lookup(parseHash(h, 'blockhash'));
        return v === false ? toHex(serializeHeader(e.header)) : headerJson(chain, e);
      },
    },
    getblockchaininfo: {
      params: [],
      run: () => ({
        chain: chain.network,
        blocks: chain.height,
        headers: chain.height,
        bestblockhash: chain.tip.hashHex,
        bits: u32Hex(chain.bits),
        target: hex64(chain.target),
        difficulty: coreDifficulty(chain.bits),
        time: chain.tip.header.time,
        mediantime: chain.tip.mtp,
        verificationprogress: 1,
        initialblockdownload: false,
        chainwork: hex64(chain.tip.chainWork),
        size_on_disk: 0,
        pruned: false,
        ...(chain.isSignet ? { signet_challenge: chain.signetChallenge } : {}),
        warnings: [],
      }),
    },
    getmininginfo: {
      params: [],
      run: () => ({
        blocks: chain.height,
        bits: u32Hex(chain.bits),
        difficulty: coreDifficulty(chain.bits),
        target: hex64(chain.target),
        networkhashps: networkHashPs(chain),
        pooledtx: chain.mempool.size,
        blockmintxfee: 0.00000001,
        chain: chain.network,
        ...(chain.isSignet ? { signet_challenge: chain.signetChallenge } : {}),
        next: { height: chain.height + 1, bits: u32Hex(chain.bits), difficulty: coreDifficulty(chain.bits), target: hex64(chain.target) },
        warnings: [],
      }),
    },
    getnetworkinfo: {
      params: [],
      run: () => ({
        version: 280000,
        subversion: '/hashhub-embedded-regtest:0.1.0/',
        protocolversion: 70016,
        localservices: '0000000000000000',
        localservicesnames: [],
        localrelay: true,
        timeoffset: 0,
        networkactive: false,
        connections: 0,
        connections_in: 0,
        connections_out: 0,
        networks: [],
        relayfee: 0.00001,
        incrementalfee: 0.00001,
        localaddresses: [],
        warnings: [],
      }),
    },
    getconnectioncount: { params: [], run: () => 0 },
    getrawmempool: {
      params: [opt('verbose', 'bool')],
      run: ([v]) => {
        const txs = [...chain.mempool.values()];
        if (v !== true) return txs.map((t) => t.txidHex);
        return Object.fromEntries(txs.map((t) => [t.txidHex, {
          vsize: Math.ceil(t.weight / WITNESS_SCALE_FACTOR), weight: t.weight, wtxid: t.wtxidHex, depends: [],
          fees: { base: btc(t.fee), modified: btc(t.fee), ancestor: btc(t.fee), descendant: btc(t.fee) },
        }]));
      },
    },
    validateaddress: { params: [p('address', 'string')], run: ([a]) => validateAddress(a as string, chain.network) },
    invalidateblock: { params: [p('blockhash', 'string')], run: ([h]) => { chain.invalidateBlock(parseHash(h, 'blockhash')); return null; } },
    reconsiderblock: { params: [p('blockhash', 'string')], run: ([h]) => { chain.reconsiderBlock(parseHash(h, 'blockhash')); return null; } },
    generatetoaddress: {
      params: [p('nblocks', 'number'), p('address', 'string'), opt('maxtries', 'number')],
      run: ([n, a, t], ctx) => chain.generateToAddress(toInt(n, 'nblocks'), a as string, t === undefined || t === null ? 1_000_000 : toInt(t, 'maxtries'), ctx.signal),
    },
    uptime: { params: [], run: () => chain.nowSec() - opts.startedAt },
    ping: { params: [], run: () => null },
    ...opts.extraMethods,
  };

  return async (method, params, ctx) => {
    const m = Object.prototype.hasOwnProperty.call(methods, method) ? methods[method] : undefined;
    if (!m) throw new RpcFault(RPC_METHOD_NOT_FOUND, 'Method not found');
    return m.run(bindArgs(method, m.params, params), ctx);
  };
}

function decodeHex(hex: string): Buffer {
  try {
    return fromHex(hex);
  } catch {
    throw new RpcFault(RPC_DESERIALIZATION_ERROR, 'Block decode failed');
  }
}

async function getBlockTemplate(chain: EmbeddedChain, req: Record<string, unknown>, ctx: CallContext, opts: MethodOptions): Promise<unknown> {
  const mode = req.mode ?? 'template';
  if (typeof mode !== 'string') throw new RpcFault(RPC_INVALID_PARAMETER, 'Invalid mode');
  if (mode === 'proposal') {
    if (typeof req.data !== 'string') throw new RpcFault(RPC_TYPE_ERROR, 'Missing data String key for proposal');
    return chain.proposeBlock(decodeHex(req.data));
  }
  if (mode !== 'template') throw new RpcFault(RPC_INVALID_PARAMETER, 'Invalid mode');
  const rules = Array.isArray(req.rules) ? req.rules : [];
  const lp = req.longpollid;
  if (lp !== undefined && lp !== null) {
    // Core: a string is <tip hash><mempool counter>; anything else watches the current state. It waits before
    // looking at the rules (a long poll without them is answered with the rules error when it ends).
    if (typeof lp === 'string') parseHash(lp.slice(0, 64), 'longpollid');
    const id = typeof lp === 'string' ? lp : chain.longpollId();
    await chain.waitForChange(id, opts.longpoll, ctx.signal);
  }
  // Core checks the signet rule first (src/rpc/mining.cpp), then segwit.
  if (chain.isSignet && !rules.includes('signet')) {
    throw new RpcFault(RPC_INVALID_PARAMETER, 'getblocktemplate must be called with the signet rule set (call with {"rules": ["segwit", "signet"]})');
  }
  if (!rules.includes('segwit')) {
    throw new RpcFault(RPC_INVALID_PARAMETER, 'getblocktemplate must be called with the segwit rule set (call with {"rules": ["segwit"]})');
  }
  return chain.getBlockTemplate();
}

function headerJson(chain: EmbeddedChain, e: BlockEntry): Record<string, unknown> {
  const active = chain.index.isActive(e);
  const next = active ? chain.index.active[e.height + 1] : undefined;
  return {
    hash: e.hashHex,
    confirmations: active ? chain.height - e.height + 1 : -1,
    height: e.height,
    version: e.header.version | 0,
    versionHex: u32Hex(e.header.version),
    merkleroot: hashToDisplay(e.header.merkleRoot),
    time: e.header.time,
    mediantime: e.mtp,
    nonce: e.header.nonce,
    bits: u32Hex(e.header.bits),
    target: hex64(bitsToTarget(e.header.bits)),
    difficulty: coreDifficulty(e.header.bits),
    chainwork: hex64(e.chainWork),
    nTx: e.nTx,
    ...(e.parent ? { previousblockhash: e.parent.hashHex } : {}),
    ...(next ? { nextblockhash: next.hashHex } : {}),
  };
}

function getBlock(chain: EmbeddedChain, e: BlockEntry, verbosity: number): unknown {
  const bytes = chain.blockBytes(e);
  if (!bytes) throw new RpcFault(RPC_MISC_ERROR, e.failed ? 'Block not found on disk' : 'Block not available (pruned data)');
  if (verbosity <= 0) return bytes.toString('hex');
  // blockToJSON: the header's fields, then sizes, then the transactions (src/rpc/blockchain.cpp).
  const block = verbosity >= 2 ? parseBlock(bytes) : null;
  // Core has undo data (so fees) for a block that was connected once; the connect checks ran exactly then.
  const undo = e.connectError === null;
  return {
    ...headerJson(chain, e),
    strippedsize: e.strippedSize,
    size: e.size,
    weight: e.weight,
    tx: block ? block.txs.map((tx) => txJson(chain, tx, undo)) : (e.txids ?? []).map(hashToDisplay),
  };
}

/** TxToUniv with verbosity 2 (core_io.cpp); `undo`: the fee is known (a block's transaction with its undo data). */
export function txJson(chain: EmbeddedChain, tx: Tx, undo = false): Record<string, unknown> {
  const bytes = serializeTx(tx, true);
  const weight = serializeTx(tx, false).length * (WITNESS_SCALE_FACTOR - 1) + bytes.length;
  const id = hashToDisplay(txid(tx));
  const fee = chain.getOffered(id)?.fee;
  const witness = (w: Buffer[]) => (w.length ? { txinwitness: w.map(toHex) } : {});
  return {
    txid: id,
    hash: hashToDisplay(wtxid(tx)),
    version: tx.version,
    size: bytes.length,
    vsize: Math.ceil(weight / WITNESS_SCALE_FACTOR),
    weight,
    locktime: tx.locktime,
    vin: isCoinbase(tx)
      ? [{ coinbase: toHex(tx.inputs[0].scriptSig), ...witness(tx.inputs[0].witness), sequence: tx.inputs[0].sequence }]
      : tx.inputs.map((i) => ({
        txid: hashToDisplay(i.prevTxid), vout: i.vout, scriptSig: { asm: scriptToAsm(i.scriptSig, true), hex: toHex(i.scriptSig) },
        ...witness(i.witness), sequence: i.sequence,
      })),
    vout: tx.outputs.map((o, n) => ({ value: btc(o.value), n, scriptPubKey: scriptPubKeyJson(o.scriptPubKey, chain.network) })),
    ...(undo && fee !== undefined && !isCoinbase(tx) ? { fee: btc(fee) } : {}),
    hex: toHex(bytes),
  };
}

/** GetNetworkHashPS over the last 120 blocks: work done / time taken. */
function networkHashPs(chain: EmbeddedChain): number {
  const tip = chain.tip;
  const back = chain.index.active[Math.max(0, tip.height - 120)];
  const dt = tip.header.time - back.header.time;
  return dt > 0 ? Number(tip.chainWork - back.chainWork) / dt : 0;
}

function validateAddress(address: string, network: 'regtest' | 'signet'): Record<string, unknown> {
  let script: Buffer;
  try {
    script = addressToScript(address, network);
  } catch {
    return { isvalid: false, error: 'Invalid address' };
  }
  const isWitness = script.length >= 4 && script.length <= 42 && (script[0] === 0 || (script[0] >= 0x51 && script[0] <= 0x60)) && script[1] === script.length - 2;
  return {
    isvalid: true,
    address,
    scriptPubKey: toHex(script),
    isscript: script.length === 23 && script[0] === 0xa9 && script[22] === 0x87,
    iswitness: isWitness,
    ...(isWitness ? { witness_version: script[0] === 0 ? 0 : script[0] - 0x50, witness_program: toHex(script.subarray(2)) } : {}),
  };
}
