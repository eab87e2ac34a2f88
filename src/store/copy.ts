import type { ShareEvent } from '../shares/events.ts';

// COPY text format (https://www.postgresql.org/docs/current/sql-copy.html, "Text Format"): one line per row,
// columns separated by a tab, \N for NULL, and backslash, tab, newline and carriage return escaped.

const NEEDS_ESCAPE = /[\\\t\n\r\0]/;

/** A text value as Postgres can hold it: NUL cannot be stored at all, so it is dropped rather than fail a batch. */
export function storableText(v: string): string {
  return v.includes('\0') ? v.replace(/\0/g, '') : v;
}

export function copyText(v: string | null | undefined): string {
  if (v === null || v === undefined) return '\\N';
  if (!NEEDS_ESCAPE.test(v)) return v;
  return storableText(v).replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
}

/**
 * Names as the staging table takes them: capped, so a garbage name on an unauthorized share cannot bloat it
 * (such names are not stored anyway).
 */
export const NAME_CAPS = { account: 100, worker: 64, jobId: 64, userAgent: 200 } as const;

/**
 * float8 text that parses back to the same double in Postgres (and in ingest/codec.ts). An integer as String gives
 * it; any other number in exponent form with the fewest digits that tell it apart (toExponential() without an
 * argument: the same shortest round-trip digits String finds, 1.2345e+3 for 1234.5). Not String for those: V8 puts
 * every number String turns into text in its number-to-string cache, and a share's own difficulty is a new double
 * for every share, so each share's text outlived a few young-generation GCs in that cache and was promoted (38 B per
 * share at 5k shares/s, for the mark-compact to collect later); toExponential builds a string and keeps nothing,
 * and took 165 ns against 434 for String on random doubles (Node 20).
 */
export function copyFloat(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '-Infinity';
  return Number.isSafeInteger(v) ? String(v) : v.toExponential();
}

/** A share as it is staged for COPY; userAgent is optional metadata the ingest may add. */
export type StagedShare = ShareEvent & { userAgent?: string };

/**
 * A share time that is no time at all (NaN, infinite, past year 275760), refused as Postgres refuses one: SQLSTATE
 * 22007 is a data exception, so the share log sets the share aside in its dead-letter file instead of retrying its
 * batch for ever (a RangeError from Date was retried as if the database were down).
 */
export function invalidTimeError(ms: number): Error {
  return Object.assign(new Error(`share time ${ms} is not a valid time`), { code: '22007' });
}

/**
 * A share's time as Postgres reads it (Date#toISOString's form). Shares of a batch fall in a handful of seconds,
 * so the part up to the second is formatted once per second; only the milliseconds change per row.
 */
class IsoTimes {
  private sec = Number.NaN;
  private prefix = '';

  format(ms: number): string {
    if (!isPlainTime(ms)) {
      const d = new Date(ms);
      if (Number.isNaN(d.getTime())) throw invalidTimeError(ms);
      return d.toISOString();
    }
    const sec = Math.floor(ms / 1000);
    if (sec !== this.sec) {
      this.sec = sec;
      this.prefix = new Date(sec * 1000).toISOString().slice(0, 20);
    }
    const m = ms - sec * 1000;
    return this.prefix + (m < 10 ? '00' : m < 100 ? '0' : '') + m + 'Z';
  }
}

/** Milliseconds since 1970 that IsoTimes formats itself and shareRowLine can write (from 1970 to 9999). */
export function isPlainTime(ms: number): boolean {
  return Number.isSafeInteger(ms) && ms >= 0 && ms < 253402300800000;
}

const rowTimes = new IsoTimes();

/**
 * The columns both COPY forms start with (queries.COPY_STAGING and COPY_STAGING_ROWS after its tag): id, time,
 * account, worker, outcome, pool_difficulty, share_difficulty, job_id, height, block_hash, nbits; written into
 * `row` from index `at`.
 */
function fillShareColumns(row: string[], at: number, s: ShareEvent, times: IsoTimes): void {
  row[at] = copyText(s.id);
  row[at + 1] = times.format(s.time);
  row[at + 2] = copyText(s.account.slice(0, NAME_CAPS.account));
  row[at + 3] = copyText(s.worker.slice(0, NAME_CAPS.worker));
  row[at + 4] = s.outcome;
  row[at + 5] = copyFloat(s.poolDifficulty);
  row[at + 6] = copyFloat(s.shareDifficulty);
  row[at + 7] = copyText(s.jobId.slice(0, NAME_CAPS.jobId));
  row[at + 8] = String(Math.trunc(s.height));
  row[at + 9] = copyText(s.blockHash ?? null);
  row[at + 10] = s.nbits === undefined ? '\\N' : String(s.nbits | 0);
}

/**
 * One spool line's fields: a tag, the row's 14 columns, and the newline with the last column. Filled and joined
 * for every share, one array for all: join writes one flat string, where `+` made a cons string per field (about
 * 1 KB of them per share at 5k shares/s, the largest allocation of the share path, then flattened again when the
 * turn's lines were written).
 */
const LINE_FIELDS: string[] = Array.from({ length: 15 }, () => '');

/**
 * A share as one spool line: `tag`, a tab, the share as one COPY text row of share_staging's row columns
 * (queries.COPY_STAGING_ROWS, after its leading tag), and a newline; null when its time or height cannot be written
 * this way (never for a pool clock's time and a template's height). The ingest spool stores shares in this form, so
 * the writer hands spool lines to COPY without re-encoding them.
 */
export function shareRowLine(tag: string, s: ShareEvent): string | null {
  // Only what reads back as written (ingest/codec.ts decodes integers for the height): anything else is spooled as
  // JSON, which holds it, and the database refuses it there, where it is set aside whole.
  if (!isPlainTime(s.time) || !Number.isSafeInteger(Math.trunc(s.height))) return null;
  const f = LINE_FIELDS;
  f[0] = tag;
  fillShareColumns(f, 1, s, rowTimes);
  f[12] = copyText(s.sessionId);
  f[13] = copyText(s.remoteAddress);
  f[14] = s.block ? '1\n' : '0\n';
  return f.join('\t');
}

/** Columns of a share row (shareRowLine's, after its tag), in order. */
export const SHARE_ROW_COLUMNS = 14;

const UNESCAPE = /\\(.)/g;
const UNESCAPED: Record<string, string> = { t: '\t', n: '\n', r: '\r' };

/** One COPY text field back to its value (null for \N). */
export function fromCopyText(v: string): string | null {
  if (v === '\\N') return null;
  return v.includes('\\') ? v.replace(UNESCAPE, (_m, c: string) => UNESCAPED[c] ?? c) : v;
}

/**
 * One batch as COPY text for share_staging (column order of queries.COPY_STAGING). One join per row into the
 * batch's text, no per-row array or Date: this runs for every stored share.
 */
export function sharesToCopy(shares: readonly StagedShare[]): string {
  const times = new IsoTimes();
  const f = COPY_FIELDS;
  let out = '';
  for (const s of shares) {
    fillShareColumns(f, 0, s, times);
    f[11] = copyText(s.userAgent ? s.userAgent.slice(0, NAME_CAPS.userAgent) : null) + '\n';
    out += f.join('\t');
  }
  return out;
}

/** One COPY_STAGING row's fields (see LINE_FIELDS). */
const COPY_FIELDS: string[] = Array.from({ length: 12 }, () => '');
