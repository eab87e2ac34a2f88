import type { BlockEvent, ShareEvent } from '../shares/events.ts';
import { SHARE_OUTCOMES, type ShareOutcome } from '../shares/outcome.ts';

// One spool line per event: a JSON array (no key names: ~40 % smaller than an object), tagged 's' for a share
// and 'b' for a block. The tags are the format version: a changed layout gets a new tag, old spools still
// replay. Non-finite numbers become strings (JSON would turn Infinity into null).

export type LogEvent = { kind: 'share'; event: ShareEvent } | { kind: 'block'; event: BlockEvent };

const OUTCOMES = new Set<string>(SHARE_OUTCOMES);

function num(v: number): number | string {
  return Number.isFinite(v) ? v : String(v);
}

export function encodeShare(e: ShareEvent): string {
  return JSON.stringify([
    's', e.id, e.time, e.account, e.worker, e.sessionId, e.remoteAddress, e.jobId, e.height, e.outcome,
    num(e.poolDifficulty), num(e.shareDifficulty), e.block ? 1 : 0, e.blockHash ?? null,
  ]) + '\n';
}

export function encodeBlock(e: BlockEvent): string {
  return JSON.stringify([
    'b', e.time, e.height, e.hash, e.prevHash, e.account, e.worker, e.reward.toString(), e.result, e.accepted ? 1 : 0,
    e.blockHex,
  ]) + '\n';
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

/** Parse one spool line (without its newline). Throws SpoolFormatError on anything unexpected. */
export function decodeLine(line: string): LogEvent {
  let a: unknown;
  try {
    a = JSON.parse(line);
  } catch {
    throw new SpoolFormatError('not JSON');
  }
  if (!Array.isArray(a)) throw new SpoolFormatError('not an array');
  if (a[0] === 's' && a.length === 14) {
    const outcome = str(a[9], 'outcome');
    if (!OUTCOMES.has(outcome)) throw new SpoolFormatError(`unknown outcome ${outcome}`);
    const event: ShareEvent = {
      id: str(a[1], 'id'), time: n(a[2], 'time'), account: str(a[3], 'account'), worker: str(a[4], 'worker'),
      sessionId: str(a[5], 'sessionId'), remoteAddress: str(a[6], 'remoteAddress'), jobId: str(a[7], 'jobId'),
      height: n(a[8], 'height'), outcome: outcome as ShareOutcome, poolDifficulty: n(a[10], 'poolDifficulty'),
      shareDifficulty: n(a[11], 'shareDifficulty'), block: a[12] === 1,
    };
    if (a[13] !== null) event.blockHash = str(a[13], 'blockHash');
    return { kind: 'share', event };
  }
  if (a[0] === 'b' && a.length === 11) {
    const reward = str(a[7], 'reward');
    if (!/^\d+$/.test(reward)) throw new SpoolFormatError('reward: expected decimal satoshis');
    return {
      kind: 'block',
      event: {
        time: n(a[1], 'time'), height: n(a[2], 'height'), hash: str(a[3], 'hash'), prevHash: str(a[4], 'prevHash'),
        account: str(a[5], 'account'), worker: str(a[6], 'worker'), reward: BigInt(reward),
        result: a[8] === null ? null : str(a[8], 'result'), accepted: a[9] === 1, blockHex: str(a[10], 'blockHex'),
      },
    };
  }
  throw new SpoolFormatError(`unknown record tag ${JSON.stringify(a[0])} or length ${a.length}`);
}
