// Reading a node's JSON-RPC answer, and a getblocktemplate answer all the way to what a job needs of its
// transactions (their block bytes and the coinbase's merkle branch). Pure functions of the reply's bytes, so the
// same code runs on the template thread (template-thread.ts) and, when that thread is unavailable, on the event
// loop: either way a template gives the same job and a bad answer the same error.

import { isAscii } from 'node:buffer';
import { z } from 'zod';
import { coinbaseMerkleBranch, hashFromDisplay } from '../chain/index.ts';
import type { BlockTemplate, PreparedTransactions, TemplateTransaction } from './types.ts';

export type ReplyFailureKind = 'http' | 'auth' | 'rpc' | 'parse';

/** Why an answer is not a result: what RpcError carries, less the method and endpoint the caller knows. */
export interface ReplyFailure {
  kind: ReplyFailureKind;
  detail: string;
  httpStatus: number;
  retryable: boolean;
  code?: number;
  rpcMessage?: string;
}

export type ReplyReading = { ok: true; result: unknown } | { ok: false; failure: ReplyFailure };

// RPC error codes that describe the node's state, not the request (Core src/rpc/protocol.h):
// RPC_IN_WARMUP, RPC_CLIENT_NOT_CONNECTED, RPC_CLIENT_IN_INITIAL_DOWNLOAD. Another node may answer.
export const NODE_STATE_CODES: ReadonlySet<number> = new Set([-28, -9, -10]);

/**
 * The reply's bytes as text. A node's JSON is ASCII (hex, numbers, field names), and an ASCII check plus a
 * one-byte copy is several times cheaper than UTF-8 decoding a 1.6 MB template; anything else is decoded as
 * UTF-8 (an error message may carry other characters).
 */
export function decodeBody(bytes: Uint8Array): string {
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return isAscii(b) ? b.toString('latin1') : b.toString('utf8');
}

/**
 * A JSON-RPC reply (Bitcoin Core src/httprpc.cpp): legacy replies carry RPC errors as HTTP 500/400/404 with a JSON
 * body whose `error` is not null, JSON-RPC 2.0 replies carry them with HTTP 200; 401 has an empty body and 403
 * means rpcallowip refused us; 503 means the node's work queue is full.
 */
export function readReply(status: number, body: string): ReplyReading {
  const fail = (kind: ReplyFailureKind, detail: string, retryable = false, extra: Partial<ReplyFailure> = {}): ReplyReading =>
    ({ ok: false, failure: { kind, detail, httpStatus: status, retryable, ...extra } });
  if (status === 401) return fail('auth', 'HTTP 401 (check rpcuser/rpcpassword or the cookie file)');
  if (status === 403) return fail('auth', 'HTTP 403 (check rpcallowip on the node)');
  let parsed: unknown;
  let parseError: unknown;
  try {
    parsed = body.length > 0 ? JSON.parse(body) : undefined;
  } catch (err) {
    parseError = err; // reported below, with the status that tells what went wrong
  }
  if (isRecord(parsed) && parsed.error !== undefined && parsed.error !== null) {
    const e = isRecord(parsed.error) ? parsed.error : {};
    const code = typeof e.code === 'number' ? e.code : undefined;
    const msg = typeof e.message === 'string' ? e.message : JSON.stringify(parsed.error);
    return fail('rpc', `RPC error ${code ?? '?'}: ${msg}`, code !== undefined && NODE_STATE_CODES.has(code), { code, rpcMessage: msg });
  }
  if (status !== 200) {
    const text = body.trim().slice(0, 200);
    const hint = status === 503 ? ' (node RPC overloaded: raise rpcworkqueue/rpcthreads or poll less)' : '';
    return fail('http', `HTTP ${status}${text ? ` ${text}` : ''}${hint}`, status >= 500 || status === 429);
  }
  if (parseError !== undefined || !isRecord(parsed) || !('result' in parsed)) {
    const why = parseError instanceof Error ? parseError.message : 'no "result" member';
    return fail('parse', `unreadable JSON-RPC answer: ${why}: ${body.slice(0, 120)}`);
  }
  return { ok: true, result: parsed.result };
}

/** The result, checked; or where it does not have the shape we read ("transactions.3.txid: expected …"). */
export function shapeProblem(schema: z.ZodType, raw: unknown): { ok: true; data: unknown } | { ok: false; where: string } {
  const r = schema.safeParse(raw);
  if (r.success) return { ok: true, data: r.data };
  const issue = r.error.issues[0];
  return { ok: false, where: issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : r.error.message };
}

const hex = z.string().regex(/^[0-9a-fA-F]*$/);
export const hash = z.string().regex(/^[0-9a-fA-F]{64}$/);
const HASH_RE = /^[0-9a-fA-F]{64}$/;
const HEX_RE = /^[0-9a-fA-F]*$/;

/**
 * The template's transactions: { data, txid, hash, fee, weight? } each, checked in one loop (a zod object per
 * transaction was ~7 ms of the pool's event loop for 3,000 of them). data is hex: checked when its bytes are
 * made (prepareTransactions), with one decode of them all. The first bad field is reported with its path, as zod
 * reports.
 */
function templateTransactions() {
  return z.array(z.unknown()).superRefine((txs, ctx) => {
    for (let i = 0; i < txs.length; i++) {
      const t = txs[i] as Record<string, unknown> | null;
      const bad = (field: string, message: string) => ctx.addIssue({ code: 'custom', path: [i, field], message });
      if (typeof t !== 'object' || t === null || Array.isArray(t)) return bad('', 'expected an object');
      if (typeof t.data !== 'string') return bad('data', 'expected a string');
      if (typeof t.txid !== 'string' || !HASH_RE.test(t.txid)) return bad('txid', 'expected a 64-digit hex hash');
      if (typeof t.hash !== 'string' || !HASH_RE.test(t.hash)) return bad('hash', 'expected a 64-digit hex hash');
      if (typeof t.fee !== 'number') return bad('fee', 'expected a number');
      if (t.weight !== undefined && typeof t.weight !== 'number') return bad('weight', 'expected a number');
    }
  }) as unknown as z.ZodType<TemplateTransaction[]>;
}

export const templateSchema = z.looseObject({
  version: z.number().int(),
  rules: z.array(z.string()),
  previousblockhash: hash,
  transactions: templateTransactions(),
  coinbasevalue: z.number().int().nonnegative(),
  longpollid: z.string().optional(),
  target: hash,
  mintime: z.number().int(),
  curtime: z.number().int(),
  bits: z.string().regex(/^[0-9a-fA-F]{8}$/),
  height: z.number().int().nonnegative(),
  default_witness_commitment: hex.optional(),
});

/**
 * What a job needs of the template's transactions: their block bytes (one hex decode of them all: 3,000 separate
 * decodes and hex checks were ~15 ms of the pool's event loop per template) and the coinbase's merkle branch.
 * Bad hex is not thrown here but kept as `error`: a template we cannot build a job from is the job builder's
 * verdict (the pool keeps serving its last job), wherever the template was read.
 */
export function prepareTransactions(txs: readonly TemplateTransaction[]): PreparedTransactions {
  const branch = coinbaseMerkleBranch(txidsInternal(txs));
  let hexLength = 0;
  for (let i = 0; i < txs.length; i++) {
    const tx = txs[i];
    if (tx.data.length % 2 !== 0) {
      return { count: txs.length, bytes: Buffer.alloc(0), branch, error: `template transaction ${i} (${tx.txid}) has odd-length hex data` };
    }
    hexLength += tx.data.length;
  }
  // A hex decode stops at the first pair that is not hex, so a short result is what tells bad hex (an odd-length
  // entry would have shifted every later one: checked above) — for ASCII: it reads a character above U+00FF by its
  // low byte ('İ' as '0'), so the text is checked to be ASCII first (its UTF-8 length is its length: one native
  // pass). Its own ArrayBuffer, never the pool's slab: the template thread hands it over (transfers it) to the
  // event loop.
  const bytes = Buffer.from(new ArrayBuffer(hexLength / 2));
  const hex = txs.map((tx) => tx.data).join('');
  const written = txs.length === 0 || Buffer.byteLength(hex, 'utf8') !== hex.length ? 0 : bytes.write(hex, 'hex');
  if (written * 2 !== hexLength) return { count: txs.length, bytes: Buffer.alloc(0), branch, error: 'template transaction data is not hex' };
  return { count: txs.length, bytes, branch };
}

/**
 * The transactions' txids in internal byte order, from one decode of them all: 3,000 hashFromDisplay calls (a
 * regex, a decode and a reversed copy each) were 2.5 ms of a 17 ms template read. Anything that is not 64 hex
 * digits each goes through hashFromDisplay, for its error.
 */
function txidsInternal(txs: readonly TemplateTransaction[]): Uint8Array[] {
  const each64 = txs.every((tx) => typeof tx.txid === 'string' && tx.txid.length === 64);
  const joined = each64 ? txs.map((tx) => tx.txid).join('') : '';
  // Checked, not left to Buffer.from: it decodes a character above U+00FF by its low byte ('İ' as '0').
  if (!each64 || !HEX_RE.test(joined)) return txs.map((tx) => hashFromDisplay(tx.txid));
  const bytes = Buffer.from(joined, 'hex');
  const ids: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += 32) {
    bytes.subarray(at, at + 32).reverse();
    ids.push(bytes.subarray(at, at + 32));
  }
  return ids;
}

/** A getblocktemplate reply read: the checked template, why the answer is no result, or where its shape is wrong. */
export type TemplateReading =
  | { ok: true; template: BlockTemplate }
  | { ok: false; failure: ReplyFailure }
  | { ok: false; shape: string };

/**
 * A getblocktemplate reply from its bytes to a checked template. With `prepare` (the template thread), its
 * transactions are made into `prepared` and the list dropped: 3,000 objects of hex strings that a job does not read
 * once its bytes are made, and that would cost the event loop as much to take over from the thread as to parse.
 */
export function readTemplateReply(status: number, bytes: Uint8Array, prepare: boolean): TemplateReading {
  const reply = readReply(status, decodeBody(bytes));
  if (!reply.ok) return reply;
  const checked = shapeProblem(templateSchema, reply.result);
  if (!checked.ok) return { ok: false, shape: checked.where };
  const template = checked.data as BlockTemplate;
  if (prepare) {
    template.prepared = prepareTransactions(template.transactions);
    template.transactions = [];
  }
  return { ok: true, template };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
