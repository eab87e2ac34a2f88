import type { BlockEvent, ShareEvent } from '../shares/events.ts';
import { BLOCK_STATUSES, type BlockStatus } from '../shares/block-state.ts';
import { SHARE_OUTCOMES, type ShareOutcome } from '../shares/outcome.ts';
import { SHARE_ROW_COLUMNS, fromCopyText, shareRowLine } from '../store/copy.ts';

// One spool line per event. A share is 's3' and a tab, then the share as a COPY text row of the database's
// staging table (store/copy.ts shareRowLine): the writer hands these lines to COPY as they are, so a share is encoded
// once, on its way into the spool, not a second time for the database. Block events are JSON arrays tagged 'bc' /
// 'ba' / 'bs' (a block candidate, a node's answer, a block status change). The tags are the format version: a
// changed layout gets a new tag, and old spools still replay ('s2' = a share as a JSON array, written before
// 's3' and still for a time the row cannot hold; 's' = a share before nbits was recorded; 'b' = the first block
// layout). In JSON lines non-finite numbers become strings (JSON would turn Infinity into null).

export type LogEvent = { kind: 'share'; event: ShareEvent } | { kind: 'block'; event: BlockEvent };

const OUTCOMES = new Set<string>(SHARE_OUTCOMES);
const BLOCK_STATUS_SET = new Set<string>(BLOCK_STATUSES);

function num(v: number): number | string {
  return Number.isFinite(v) ? v : String(v);
}

/** The tag of a share line in the COPY-row form, and the tag with its separator, which start such a line. */
const SHARE_ROW_TAG = 's3';
export const SHARE_ROW_PREFIX = `${SHARE_ROW_TAG}\t`;

export function encodeShare(e: ShareEvent): string {
  const line = shareRowLine(SHARE_ROW_TAG, e);
  if (line !== null) return line;
  // Not a row (a time or height a row cannot hold): JSON, with non-finite numbers as strings so the line reads
  // back (JSON would write NaN as null, and the share would be refused as unreadable on its way back).
  return JSON.stringify([
    's2', e.id, num(e.time), e.account, e.worker, e.sessionId, e.remoteAddress, e.jobId, num(e.height), e.outcome,
    num(e.poolDifficulty), num(e.shareDifficulty), e.block ? 1 : 0, e.blockHash ?? null, e.nbits ?? null,
  ]) + '\n';
}

export function encodeBlock(e: BlockEvent): string {
  switch (e.kind) {
    case 'candidate':
      return JSON.stringify([
        'bc', e.time, e.height, e.hash, e.prevHash, e.account, e.worker, e.reward.toString(), e.blockHex,
      ]) + '\n';
    case 'answer':
      return JSON.stringify(['ba', e.time, e.hash, e.endpoint, e.answer]) + '\n';
    case 'status':
      return JSON.stringify(['bs', e.time, e.hash, e.status, e.result, e.confirmations, e.settled ? 1 : 0]) + '\n';
  }
}

export class SpoolFormatError extends Error {}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string') throw new SpoolFormatError(`${what}: expected a string`);
  return v;
}

function n(v: unknown, what: string): number {
  const x = typeof v === 'string' ? Number(v) : v;
  if (typeof x !== 'number' || (Number.isNaN(x) && v !== 'NaN')) throw new SpoolFormatError(`${what}: expected a number`);
  return x;
}

function outcomeOf(v: unknown): ShareOutcome {
  const outcome = str(v, 'outcome');
  if (!OUTCOMES.has(outcome)) throw new SpoolFormatError(`unknown outcome ${outcome}`);
  return outcome as ShareOutcome;
}

// What shareRowLine writes, checked strictly on the way back: a line damaged on disk must be refused (set aside as
// unreadable), never read as a different share.
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const INTEGER = /^-?\d+$/;
const FLOAT = /^(?:-?(?:\d+(?:\.\d+)?|\.\d+)(?:e[-+]?\d+)?|NaN|-?Infinity)$/;

function rowNumber(v: string, re: RegExp, what: string): number {
  if (!re.test(v)) throw new SpoolFormatError(`${what}: not a number as the spool writes it`);
  return Number(v);
}

/** A share line in the COPY-row form (see shareRowLine for the columns). */
function decodeShareRow(line: string): LogEvent {
  const f = line.split('\t');
  if (f.length !== SHARE_ROW_COLUMNS + 1) throw new SpoolFormatError(`share row has ${f.length - 1} columns, expected ${SHARE_ROW_COLUMNS}`);
  const text = (i: number, what: string) => str(fromCopyText(f[i]), what);
  if (!ISO_MS.test(f[2])) throw new SpoolFormatError('time: expected an ISO time');
  const time = Date.parse(f[2]);
  if (!Number.isFinite(time)) throw new SpoolFormatError('time: expected an ISO time');
  if (f[14] !== '0' && f[14] !== '1') throw new SpoolFormatError('block: expected 0 or 1');
  const event: ShareEvent = {
    id: text(1, 'id'), time, account: text(3, 'account'), worker: text(4, 'worker'), sessionId: text(12, 'sessionId'),
    remoteAddress: text(13, 'remoteAddress'), jobId: text(8, 'jobId'), height: rowNumber(f[9], INTEGER, 'height'),
    outcome: outcomeOf(f[5]), poolDifficulty: rowNumber(f[6], FLOAT, 'poolDifficulty'),
    shareDifficulty: rowNumber(f[7], FLOAT, 'shareDifficulty'), block: f[14] === '1',
  };
  const blockHash = fromCopyText(f[10]);
  if (blockHash !== null) event.blockHash = blockHash;
  if (f[11] !== '\\N') event.nbits = rowNumber(f[11], INTEGER, 'nbits');
  return { kind: 'share', event };
}

/** Parse one spool line (without its newline). Throws SpoolFormatError on anything unexpected. */
export function decodeLine(line: string): LogEvent {
  if (line.startsWith(SHARE_ROW_PREFIX)) return decodeShareRow(line);
  let a: unknown;
  try {
    a = JSON.parse(line);
  } catch {
    throw new SpoolFormatError('not JSON');
  }
  if (!Array.isArray(a)) throw new SpoolFormatError('not an array');
  if ((a[0] === 's' && a.length === 14) || (a[0] === 's2' && a.length === 15)) {
    const outcome = outcomeOf(a[9]);
    const event: ShareEvent = {
      id: str(a[1], 'id'), time: n(a[2], 'time'), account: str(a[3], 'account'), worker: str(a[4], 'worker'),
      sessionId: str(a[5], 'sessionId'), remoteAddress: str(a[6], 'remoteAddress'), jobId: str(a[7], 'jobId'),
      height: n(a[8], 'height'), outcome, poolDifficulty: n(a[10], 'poolDifficulty'),
      shareDifficulty: n(a[11], 'shareDifficulty'), block: a[12] === 1,
    };
    if (a[13] !== null) event.blockHash = str(a[13], 'blockHash');
    if (a[0] === 's2' && a[14] !== null) event.nbits = n(a[14], 'nbits');
    return { kind: 'share', event };
  }
  // 'b' is the first block layout (candidate and answer in one record, written after the node answered): it
  // replays as the candidate; its status is re-derived from the chain by the block tracker.
  if ((a[0] === 'bc' && a.length === 9) || (a[0] === 'b' && a.length === 11)) {
    const legacy = a[0] === 'b';
    const reward = str(a[7], 'reward');
    if (!/^\d+$/.test(reward)) throw new SpoolFormatError('reward: expected decimal satoshis');
    return {
      kind: 'block',
      event: {
        kind: 'candidate', time: n(a[1], 'time'), height: n(a[2], 'height'), hash: str(a[3], 'hash'),
        prevHash: str(a[4], 'prevHash'), account: str(a[5], 'account'), worker: str(a[6], 'worker'), reward: BigInt(reward),
        blockHex: str(legacy ? a[10] : a[8], 'blockHex'),
      },
    };
  }
  if (a[0] === 'ba' && a.length === 5) {
    return {
      kind: 'block',
      event: { kind: 'answer', time: n(a[1], 'time'), hash: str(a[2], 'hash'), endpoint: str(a[3], 'endpoint'), answer: a[4] === null ? null : str(a[4], 'answer') },
    };
  }
  if (a[0] === 'bs' && a.length === 7) {
    const status = str(a[3], 'status');
    if (!BLOCK_STATUS_SET.has(status)) throw new SpoolFormatError(`unknown block status ${status}`);
    return {
      kind: 'block',
      event: {
        kind: 'status', time: n(a[1], 'time'), hash: str(a[2], 'hash'), status: status as BlockStatus,
        result: a[4] === null ? null : str(a[4], 'result'), confirmations: n(a[5], 'confirmations'), settled: a[6] === 1,
      },
    };
  }
  throw new SpoolFormatError(`unknown record tag ${JSON.stringify(a[0])} or length ${a.length}`);
}
