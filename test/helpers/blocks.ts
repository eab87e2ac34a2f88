import type { BlockStatus } from '../../src/shares/block-state.ts';
import type { BlockEvent } from '../../src/shares/events.ts';

export type CandidateEvent = Extract<BlockEvent, { kind: 'candidate' }>;

/** What the block events say about each block: its candidate record, every node answer, its latest status. */
export interface BlockFold {
  candidate: CandidateEvent;
  answers: (string | null)[];
  status: BlockStatus;
  result: string | null;
  confirmations: number;
  settled: boolean;
}

/** Fold a stream of block events into one record per block hash (in the order found). */
export function foldBlocks(events: readonly BlockEvent[]): Map<string, BlockFold> {
  const out = new Map<string, BlockFold>();
  for (const e of events) {
    if (e.kind === 'candidate') {
      if (!out.has(e.hash)) out.set(e.hash, { candidate: e, answers: [], status: 'submitted', result: null, confirmations: 0, settled: false });
      continue;
    }
    const b = out.get(e.hash);
    if (!b) throw new Error(`block event for ${e.hash} before its candidate`);
    if (e.kind === 'answer') b.answers.push(e.answer);
    else Object.assign(b, { status: e.status, result: e.result, confirmations: e.confirmations, settled: e.settled });
  }
  return out;
}

/** Blocks whose latest status is on the best chain (pending or confirmed). */
export function onChain(events: readonly BlockEvent[]): BlockFold[] {
  return [...foldBlocks(events).values()].filter((b) => b.status === 'pending' || b.status === 'confirmed');
}
