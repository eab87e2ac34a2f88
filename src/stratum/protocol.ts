import { z } from 'zod';
import { REJECT_ERRORS, type RejectOutcome } from '../shares/outcome.ts';
import type { SubmitParams } from '../shares/validator.ts';

// Stratum V1 requests, parsed once at the edge into one typed value per method. Params shapes accepted are
// the ones real miners send (cgminer/bmminer/cpuminer/BOSminer/NerdMiner...): strings or numbers where
// firmware differs, extra trailing params ignored.

export type RequestId = number | string | null;

export type StratumRequest =
  | { id: RequestId; method: 'mining.subscribe'; userAgent: string; sessionId?: string }
  | { id: RequestId; method: 'mining.authorize'; user: string; password: string }
  | { id: RequestId; method: 'mining.configure'; extensions: string[]; params: Record<string, unknown> }
  | { id: RequestId; method: 'mining.suggest_difficulty'; difficulty: number }
  | { id: RequestId; method: 'mining.suggest_target'; target: string }
  | { id: RequestId; method: 'mining.extranonce.subscribe' }
  | { id: RequestId; method: 'mining.submit'; submit: SubmitParams }
  | { id: RequestId; method: 'mining.ping' };

/** A response from the miner to something we sent (e.g. client.get_version): ignored. */
export interface StratumResponse { kind: 'response'; id: RequestId }

export class ProtocolError extends Error {
  constructor(readonly id: RequestId, readonly code: number, message: string) { super(message); }
}

// ---- answers ---------------------------------------------------------------------------------------------------

/** An answer's text after its id, from `,"result":` on. */
function resultTail(result: unknown): string {
  return `,"result":${JSON.stringify(result)},"error":null}\n`;
}
function errorTail(code: number, message: string): string {
  return `,"result":null,"error":[${code},${JSON.stringify(message)},null]}\n`;
}
// The answers every share gets, after their id, built once: per share only the id is added. A template literal per
// answer made a string per piece (about 290 B per share at 5k shares/s).
const TRUE_TAIL = resultTail(true);
const REJECT_TAILS = Object.fromEntries(Object.entries(REJECT_ERRORS).map(([o, [code, message]]) => [o, errorTail(code, message)])) as Record<RejectOutcome, string>;

/** A JSON-RPC result answer line: {"id":…,"result":…,"error":null}. */
export function resultLine(id: RequestId, result: unknown): string {
  return `{"id":${JSON.stringify(id)}` + (result === true ? TRUE_TAIL : resultTail(result));
}

/** A JSON-RPC error answer line: {"id":…,"result":null,"error":[code,message,null]}. */
export function errorLine(id: RequestId, code: number, message: string): string {
  return `{"id":${JSON.stringify(id)}` + errorTail(code, message);
}

/** The error answer line of a rejected share: errorLine with the outcome's REJECT_ERRORS. */
export function rejectLine(id: RequestId, outcome: RejectOutcome): string {
  return `{"id":${JSON.stringify(id)}` + REJECT_TAILS[outcome];
}

export const JSONRPC_PARSE_ERROR = -32700;
export const JSONRPC_INVALID_REQUEST = -32600;
export const JSONRPC_METHOD_NOT_FOUND = -32601;
export const JSONRPC_INVALID_PARAMS = -32602;

const str = z.string().max(512);
const numeric = z.union([z.number().finite().positive(), z.string().regex(/^\s*[0-9]*\.?[0-9]+(e[-+]?[0-9]+)?\s*$/i).transform(Number)]);

const subscribeParams = z.union([z.tuple([]).rest(z.unknown()), z.null()]).transform((p) => p ?? []);
const authorizeParams = z.tuple([str]).rest(z.unknown());
const configureParams = z.tuple([z.array(str).max(32), z.record(z.string(), z.unknown()).optional()]).rest(z.unknown());
const suggestDiffParams = z.tuple([numeric]).rest(z.unknown());
const suggestTargetParams = z.tuple([z.string().regex(/^[0-9a-fA-F]{1,64}$/)]).rest(z.unknown());

function paramsError(id: RequestId, method: string, err: z.ZodError): ProtocolError {
  const issue = err.issues[0];
  return new ProtocolError(id, JSONRPC_INVALID_PARAMS, `invalid params for ${method}: ${issue ? `${issue.path.join('.') || 'params'} ${issue.message}` : 'bad shape'}`);
}

function isId(v: unknown): v is RequestId {
  return v === null || typeof v === 'number' || (typeof v === 'string' && v.length <= 64);
}

/**
 * Parse one line. Throws ProtocolError (with the request id when it could be read). A mining.submit in the shape
 * miners send goes through parseSubmitLine (no generic JSON object); anything else, or anything unusual about a
 * submit, through the generic parse.
 */
export function parseMessage(line: string): StratumRequest | StratumResponse {
  return parseSubmitLine(line) ?? parseMessageGeneric(line);
}

/** The generic parse: JSON.parse, then the typed check per method. */
export function parseMessageGeneric(line: string): StratumRequest | StratumResponse {
  let msg: unknown;
  try {
    msg = JSON.parse(line);
  } catch {
    throw new ProtocolError(null, JSONRPC_PARSE_ERROR, 'parse error: not valid JSON');
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw new ProtocolError(null, JSONRPC_INVALID_REQUEST, 'invalid request: expected a JSON object');
  const m = msg as Record<string, unknown>;
  const id = isId(m.id) ? m.id : null;
  if (m.method === undefined && ('result' in m || 'error' in m)) return { kind: 'response', id };
  if (typeof m.method !== 'string') throw new ProtocolError(id, JSONRPC_INVALID_REQUEST, 'invalid request: missing method');
  if (m.id !== undefined && !isId(m.id)) throw new ProtocolError(null, JSONRPC_INVALID_REQUEST, 'invalid request: bad id');
  const params = m.params ?? [];
  const method = m.method;
  switch (method) {
    case 'mining.submit':
      return { id, method, submit: parseSubmit(id, params) };
    case 'mining.subscribe': {
      const r = subscribeParams.safeParse(params);
      if (!r.success) throw paramsError(id, method, r.error);
      const [ua, sid] = r.data;
      return { id, method, userAgent: typeof ua === 'string' ? ua.slice(0, 256) : '', sessionId: typeof sid === 'string' ? sid : undefined };
    }
    case 'mining.authorize': {
      const r = authorizeParams.safeParse(params);
      if (!r.success) throw paramsError(id, method, r.error);
      const pw = r.data[1];
      return { id, method, user: r.data[0].trim(), password: typeof pw === 'string' ? pw : pw == null ? '' : String(pw) };
    }
    case 'mining.configure': {
      const r = configureParams.safeParse(params);
      if (!r.success) throw paramsError(id, method, r.error);
      return { id, method, extensions: r.data[0], params: r.data[1] ?? {} };
    }
    case 'mining.suggest_difficulty': {
      const r = suggestDiffParams.safeParse(Array.isArray(params) ? params : [params]);
      if (!r.success || !(r.data[0] > 0)) throw new ProtocolError(id, JSONRPC_INVALID_PARAMS, 'invalid params for mining.suggest_difficulty: expected a positive number');
      return { id, method, difficulty: r.data[0] };
    }
    case 'mining.suggest_target': {
      const r = suggestTargetParams.safeParse(params);
      if (!r.success) throw paramsError(id, method, r.error);
      return { id, method, target: r.data[0] };
    }
    case 'mining.extranonce.subscribe':
    case 'mining.ping':
      return { id, method };
    default:
      throw new ProtocolError(id, JSONRPC_METHOD_NOT_FOUND, `method not found: ${method.slice(0, 64)}`);
  }
}

/** Hand-parsed: the hot path (a zod pass per share costs more than the share's hashing). */
function parseSubmit(id: RequestId, params: unknown): SubmitParams {
  if (!Array.isArray(params) || params.length < 5) throw new ProtocolError(id, JSONRPC_INVALID_PARAMS, 'invalid params for mining.submit: expected [worker, job_id, extranonce2, ntime, nonce, version_bits?]');
  const [worker, jobId, extranonce2, ntime, nonce, versionBits] = params;
  if (typeof worker !== 'string' || typeof extranonce2 !== 'string' || typeof ntime !== 'string' || typeof nonce !== 'string' ||
      (typeof jobId !== 'string' && typeof jobId !== 'number') || (versionBits !== undefined && versionBits !== null && typeof versionBits !== 'string')) {
    throw new ProtocolError(id, JSONRPC_INVALID_PARAMS, 'invalid params for mining.submit: worker, extranonce2, ntime, nonce and version bits must be strings');
  }
  if (worker.length > 256 || extranonce2.length > 256 || ntime.length > 16 || nonce.length > 16 || (typeof versionBits === 'string' && versionBits.length > 16)) {
    throw new ProtocolError(id, JSONRPC_INVALID_PARAMS, 'invalid params for mining.submit: field too long');
  }
  return { worker: worker.trim(), jobId: String(jobId), extranonce2, ntime, nonce, versionBits: typeof versionBits === 'string' ? versionBits : undefined };
}

// ---- the mining.submit fast path -------------------------------------------------------------------------------

// A submit in the two layouts miners send, matched by one regular expression each (compiled to native code by
// V8): 2.6x less CPU than JSON.parse plus the typed check, measured (bench/parse-count.ts). A JS character
// scanner was tried first and cost more than JSON.parse. Strings without escapes or control characters only,
// JSON whitespace, 5 or 6 params; anything else goes to the generic parse.
const W = '[ \\t\\n\\r]*';
const STR = '"([^"\\\\\\x00-\\x1f]*)"';
const NUM = '-?(?:0|[1-9][0-9]*)(?:\\.[0-9]+)?(?:[eE][-+]?[0-9]+)?';
const ID = `(${NUM}|"[^"\\\\\\x00-\\x1f]*"|null)`;
const PARAMS = `\\[${W}${STR}${W},${W}(?:${STR}|(${NUM}))${W},${W}${STR}${W},${W}${STR}${W},${W}${STR}${W}(?:,${W}(?:${STR}|null)${W})?\\]`;
const METHOD = `"method"${W}:${W}"mining\\.submit"`;
/** {"id":…,"method":"mining.submit","params":[…]} (cpuminer, most firmware, the load generator). */
const ID_FIRST = new RegExp(`^${W}\\{${W}"id"${W}:${W}${ID}${W},${W}${METHOD}${W},${W}"params"${W}:${W}${PARAMS}${W}\\}${W}$`);
/** {"params":[…],"id":…,"method":"mining.submit"} (cgminer, bmminer). */
const PARAMS_FIRST = new RegExp(`^${W}\\{${W}"params"${W}:${W}${PARAMS}${W},${W}"id"${W}:${W}${ID}${W},${W}${METHOD}${W}\\}${W}$`);

/**
 * mining.submit without a generic JSON object, for the layouts above; null for anything else (the caller uses
 * the generic parse, which gives the same result on every line both accept: test/stratum-submit-parse.test.ts).
 * Params are checked by the same parseSubmit, so its errors are the generic path's.
 */
export function parseSubmitLine(line: string): StratumRequest | null {
  let m = ID_FIRST.exec(line);
  let idText: string;
  let p: number;
  if (m) {
    idText = m[1];
    p = 2;
  } else {
    m = PARAMS_FIRST.exec(line);
    if (!m) return null;
    idText = m[8];
    p = 1;
  }
  const id: RequestId = idText.charCodeAt(0) === 34 ? idText.slice(1, -1) : idText === 'null' ? null : Number(idText);
  if (!isId(id)) return null; // a bad id: the generic parse gives its error
  const jobId = m[p + 1] ?? Number(m[p + 2]);
  const params: unknown[] = [m[p], jobId, m[p + 3], m[p + 4], m[p + 5]];
  if (m[p + 6] !== undefined) params.push(m[p + 6]);
  return { id, method: 'mining.submit', submit: parseSubmit(id, params) };
}
