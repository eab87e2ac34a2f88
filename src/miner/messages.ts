// Server -> miner Stratum V1 messages, parsed once at the edge into typed values (zod). Every param shape seen
// from real pools is accepted; anything else is an error the client reports and ignores.
//
// Wire facts (Stratum V1 as implemented by cpuminer/cgminer/ckpool; BIP310 for configure/version masks):
//  - a response is {id, result, error} with error = null | [code, message, data] (some pools send
//    {code, message} or a bare string);
//  - a notification/request is {id: null | n, method, params[]}.

import { z } from 'zod';

const hex = z.string().regex(/^(?:[0-9a-fA-F]{2})*$/, 'hex string');
const hex32 = z.string().regex(/^[0-9a-fA-F]{64}$/, '32-byte hex');
const u32hex = z.string().regex(/^[0-9a-fA-F]{1,8}$/, 'uint32 hex');
/** Difficulty as a JSON number, or as a numeric string (some proxies stringify it). */
const difficulty = z.union([z.number(), z.string().regex(/^\d+(?:\.\d*)?(?:[eE][-+]?\d+)?$/).transform(Number)])
  .refine((d) => d > 0 && Number.isFinite(d), 'difficulty must be a positive finite number');
const id = z.union([z.number(), z.string(), z.null()]);

export interface NotifyParams {
  jobId: string;
  /** notify form: each 4-byte word byte-swapped (see shares/work.ts prevHashFromStratum). */
  prevHashHex: string;
  coinb1: Buffer;
  coinb2: Buffer;
  branch: Buffer[];
  version: number;
  bits: number;
  ntime: number;
  clean: boolean;
}

// mining.notify [job_id, prevhash, coinb1, coinb2, merkle_branch[], version, nbits, ntime, clean_jobs]
const NotifySchema = z.tuple([z.string().min(1), hex32, hex, hex, z.array(hex32), u32hex, u32hex, u32hex, z.boolean()])
  .rest(z.unknown())
  .transform(([jobId, prevHashHex, coinb1, coinb2, branch, version, bits, ntime, clean]): NotifyParams => ({
    jobId,
    prevHashHex,
    coinb1: Buffer.from(coinb1, 'hex'),
    coinb2: Buffer.from(coinb2, 'hex'),
    branch: branch.map((h) => Buffer.from(h, 'hex')),
    version: parseInt(version, 16) >>> 0,
    bits: parseInt(bits, 16) >>> 0,
    ntime: parseInt(ntime, 16) >>> 0,
    clean,
  }));

// mining.set_difficulty [difficulty]
const SetDifficultySchema = z.tuple([difficulty]).rest(z.unknown()).transform(([d]) => d);
// mining.set_extranonce [extranonce1, extranonce2_size]
const SetExtranonceSchema = z.tuple([hex, z.number().int().min(0).max(100)]).rest(z.unknown())
  .transform(([en1, size]) => ({ extranonce1: Buffer.from(en1, 'hex'), extranonce2Size: size }));
// mining.set_version_mask [mask] (BIP310)
const SetVersionMaskSchema = z.tuple([u32hex]).rest(z.unknown()).transform(([m]) => parseInt(m, 16) >>> 0);
// client.reconnect [host?, port?, wait_seconds?]: every param optional; port and wait are sometimes strings.
const portLike = z.union([z.number(), z.string().regex(/^\d+$/).transform(Number)]).pipe(z.number().int().min(1).max(65535));
const waitLike = z.union([z.number(), z.string().regex(/^\d+(?:\.\d+)?$/).transform(Number)]).pipe(z.number().min(0).max(3600));
const absent = z.union([z.null(), z.undefined(), z.literal('')]).transform(() => undefined);
const ReconnectSchema = z.tuple([z.union([z.string(), z.null()]).optional(), z.union([absent, portLike]).optional(), z.union([absent, waitLike]).optional()])
  .rest(z.unknown())
  .transform(([host, port, waitSec]) => ({ host: host || undefined, port, waitSec: waitSec ?? 0 }));
// client.show_message [text]
const ShowMessageSchema = z.tuple([z.string()]).rest(z.unknown()).transform(([t]) => t);

export type ServerMessage =
  | { kind: 'notify'; params: NotifyParams }
  | { kind: 'set_difficulty'; difficulty: number }
  | { kind: 'set_extranonce'; extranonce1: Buffer; extranonce2Size: number }
  | { kind: 'set_version_mask'; mask: number }
  | { kind: 'reconnect'; host?: string; port?: number; waitSec: number }
  | { kind: 'show_message'; text: string }
  | { kind: 'get_version'; id: number | string | null }
  | { kind: 'unknown'; method: string }
  | { kind: 'response'; id: number | string | null; result: unknown; error: RpcError | null };

export interface RpcError {
  code: number | null;
  message: string;
}

const ErrorSchema = z.union([
  z.null(),
  z.undefined(),
  z.literal(false), // some pools send error:false for success
  z.tuple([z.union([z.number(), z.null()]), z.string().nullish()]).rest(z.unknown())
    .transform(([code, message]): RpcError => ({ code, message: message ?? '' })),
  z.object({ code: z.number().nullish(), message: z.string().nullish() })
    .refine((e) => e.code != null || e.message != null)
    .transform((e): RpcError => ({ code: e.code ?? null, message: e.message ?? '' })),
  z.string().transform((message): RpcError => ({ code: null, message })),
  // Any other shape is still an error answer: keep it readable rather than drop the answer.
  z.unknown().transform((e): RpcError => ({ code: null, message: JSON.stringify(e).slice(0, 200) })),
]).transform((e) => (e === null || e === undefined || e === false ? null : e));

const EnvelopeSchema = z.object({
  id: id.optional(),
  method: z.string().optional(),
  params: z.unknown().optional(),
  result: z.unknown().optional(),
  error: z.unknown().optional(),
});

export class ProtocolError extends Error {}

/** Parse one line from the server. Throws ProtocolError on bad JSON or a malformed known message. */
export function parseServerLine(line: string): ServerMessage {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch (e) {
    throw new ProtocolError(`invalid JSON from server: ${(e as Error).message}: ${line.slice(0, 120)}`);
  }
  const env = EnvelopeSchema.safeParse(json);
  if (!env.success) throw new ProtocolError(`not a JSON-RPC message: ${line.slice(0, 120)}`);
  const { method, params } = env.data;
  if (method === undefined) {
    const error = ErrorSchema.parse(env.data.error); // total: every shape maps to null or an RpcError
    return { kind: 'response', id: env.data.id ?? null, result: env.data.result ?? null, error };
  }
  const p = params ?? [];
  const parse = <T>(schema: z.ZodType<T>): T => {
    const r = schema.safeParse(p);
    if (!r.success) throw new ProtocolError(`malformed ${method} params: ${r.error.issues[0]?.message ?? ''}: ${line.slice(0, 160)}`);
    return r.data;
  };
  switch (method) {
    case 'mining.notify': return { kind: 'notify', params: parse(NotifySchema) };
    case 'mining.set_difficulty': return { kind: 'set_difficulty', difficulty: parse(SetDifficultySchema) };
    case 'mining.set_extranonce': return { kind: 'set_extranonce', ...parse(SetExtranonceSchema) };
    case 'mining.set_version_mask': return { kind: 'set_version_mask', mask: parse(SetVersionMaskSchema) };
    case 'client.reconnect': return { kind: 'reconnect', ...parse(ReconnectSchema) };
    case 'client.show_message': return { kind: 'show_message', text: parse(ShowMessageSchema) };
    case 'client.get_version': return { kind: 'get_version', id: env.data.id ?? null };
    default: return { kind: 'unknown', method };
  }
}

// Results of the miner's own requests.

/** mining.subscribe result: [[subscriptions...], extranonce1, extranonce2_size]. */
export const SubscribeResultSchema = z.tuple([z.unknown(), hex, z.number().int().min(0).max(100)]).rest(z.unknown())
  .transform(([subs, en1, size]) => ({ extranonce1: Buffer.from(en1, 'hex'), extranonce2Size: size, sessionId: notifySubscriptionId(subs) }));

/**
 * The subscription id of mining.notify in a subscribe result ([["mining.notify", id], …]), which a miner sends
 * back in its next mining.subscribe to resume its session (cpuminer's get_stratum_session_id does the same).
 */
function notifySubscriptionId(subs: unknown): string | null {
  if (!Array.isArray(subs)) return null;
  const flat = subs.length === 2 && typeof subs[0] === 'string' ? [subs] : subs;
  for (const s of flat) {
    if (Array.isArray(s) && s[0] === 'mining.notify' && typeof s[1] === 'string' && s[1].length <= 64) return s[1];
  }
  return null;
}

/** mining.configure result (BIP310): {"version-rolling": bool, "version-rolling.mask": hex, ...}. */
export const ConfigureResultSchema = z.object({
  'version-rolling': z.union([z.boolean(), z.string()]).optional(),
  'version-rolling.mask': u32hex.optional(),
}).loose();

/** The mask the server granted, or null when version rolling was refused (or answered in a shape we do not know). */
export function grantedVersionMask(result: unknown, requested: number): number | null {
  const r = ConfigureResultSchema.safeParse(result);
  if (!r.success || r.data['version-rolling'] !== true || r.data['version-rolling.mask'] === undefined) return null;
  // The server may only narrow what we asked for (BIP310); never roll bits we did not offer.
  const mask = (parseInt(r.data['version-rolling.mask'], 16) & requested) >>> 0;
  return mask === 0 ? null : mask;
}

/** One line of JSON-RPC to the server. */
export function requestLine(reqId: number, method: string, params: unknown[]): string {
  return `${JSON.stringify({ id: reqId, method, params })}\n`;
}
