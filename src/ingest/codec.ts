import type { BlockEvent, ShareEvent } from '../shares/events.ts';
import { BLOCK_STATUSES, type BlockStatus } from '../shares/block-state.ts';
import { SHARE_OUTCOMES, type ShareOutcome } from '../shares/outcome.ts';

// One spool line per event: a JSON array (no key names: ~40 % smaller than an object), tagged 's2' for a share
// and 'bc' / 'ba' / 'bs' for a block candidate, a node's answer and a block status change. The tags are the format
// version: a changed layout gets a new tag, old spools still replay ('s' = a share before nbits was recorded, 'b' =
// the first block layout). Non-finite numbers become strings (JSON would turn Infinity into null).

export type LogEvent = { kind: 'share'; event: ShareEvent } | { kind: 'block'; event: BlockEvent };

const OUTCOMES = new Set<string>(SHARE_OUTCOMES);
const BLOCK_STATUS_SET = new Set<string>(BLOCK_STATUSES);

function num(v: number): number | string {
  return Number.isFinite(v) ? v : String(v);
}

export function encodeShare(e: ShareEvent): string {
  return JSON.stringify([
    's2', e.id, e.time, e.account, e.worker, e.sessionId, e.remoteAddress, e.jobId, e.height, e.outcome,
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

/** Parse one spool line (without its newline). Throws SpoolFormatError on anything unexpected. */
export function decodeLine(line: string): LogEvent {
  let a: unknown;
  try {
    a = JSON.parse(line);
  } catch {
    throw new SpoolFormatError('not JSON');
  }
  if (!Array.isArray(a)) throw new SpoolFormatError('not an array');
  if ((a[0] === 's' && a.length === 14) || (a[0] === 's2' && a.length === 15)) {
    const outcome = str(a[9], 'outcome');
    if (!OUTCOMES.has(outcome)) throw new SpoolFormatError(`unknown outcome ${outcome}`);
    const event: ShareEvent = {
      id: str(a[1], 'id'), time: n(a[2], 'time'), account: str(a[3], 'account'), worker: str(a[4], 'worker'),
      sessionId: str(a[5], 'sessionId'), remoteAddress: str(a[6], 'remoteAddress'), jobId: str(a[7], 'jobId'),
      height: n(a[8], 'height'), outcome: outcome as ShareOutcome, poolDifficulty: n(a[10], 'poolDifficulty'),
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
