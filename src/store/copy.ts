import type { ShareEvent } from '../shares/events.ts';

// COPY text format (https://www.postgresql.org/docs/current/sql-copy.html, "Text Format"): one line per row,
// columns separated by a tab, \N for NULL, and backslash, tab, newline and carriage return escaped.

const NEEDS_ESCAPE = /[\\\t\n\r\0]/;

export function copyText(v: string | null | undefined): string {
  if (v === null || v === undefined) return '\\N';
  if (!NEEDS_ESCAPE.test(v)) return v;
  // NUL cannot be stored in a Postgres text value at all: drop it rather than fail the whole batch.
  return v.replace(/\0/g, '').replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
}

/** float8 text: JS's shortest round-trip form parses back to the same double in Postgres. */
export function copyFloat(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '-Infinity';
  return String(v);
}

/** A share as it is staged for COPY; userAgent is optional metadata the ingest may add. */
export type StagedShare = ShareEvent & { userAgent?: string };

/**
 * One batch as COPY text for share_staging (column order of queries.COPY_STAGING). Names are capped so a
 * garbage worker name on an unauthorized share cannot bloat the staging table (they are not stored anyway).
 */
export function sharesToCopy(shares: readonly StagedShare[]): string {
  const out: string[] = new Array(shares.length);
  for (let i = 0; i < shares.length; i++) {
    const s = shares[i];
    out[i] = [
      copyText(s.id),
      new Date(s.time).toISOString(),
      copyText(s.account.slice(0, 100)),
      copyText(s.worker.slice(0, 64)),
      copyText(s.outcome),
      copyFloat(s.poolDifficulty),
      copyFloat(s.shareDifficulty),
      copyText(s.jobId.slice(0, 64)),
      String(Math.trunc(s.height)),
      copyText(s.blockHash ?? null),
      copyText(s.userAgent ? s.userAgent.slice(0, 200) : null),
      s.nbits === undefined ? '\\N' : String(s.nbits | 0),
    ].join('\t');
  }
  return out.join('\n') + '\n';
}
