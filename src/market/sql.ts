// Small helpers for the market's SQL: both engines hand numeric and bigint columns back as strings (pg) or
// numbers (PGlite, for small values); the market wants bigint or number, exactly.

import type { Queryable } from '../store/db.ts';

export function big(v: unknown): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new TypeError(`not an exact integer: ${v}`);
    return BigInt(v);
  }
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v);
  throw new TypeError(`not an integer: ${String(v)}`);
}

export function bigOrNull(v: unknown): bigint | null {
  return v === null || v === undefined ? null : big(v);
}

export function int(v: unknown): number {
  const b = big(v);
  if (b > BigInt(Number.MAX_SAFE_INTEGER) || b < BigInt(Number.MIN_SAFE_INTEGER)) throw new RangeError(`integer out of range: ${b}`);
  return Number(b);
}

export function intOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : int(v);
}

export function dateOrNull(v: unknown): Date | null {
  if (v === null || v === undefined) return null;
  return v instanceof Date ? v : new Date(String(v));
}

/** Advisory lock keys (arbitrary constants): one market clearing / settlement at a time across processes. */
export const MARKET_LOCK = 4841526130;

export async function lockMarket(tx: Queryable): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock($1)', [MARKET_LOCK]);
}

/** JSON with bigints as decimal strings (digests, jsonb columns). */
export function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));
}
