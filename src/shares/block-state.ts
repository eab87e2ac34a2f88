// The block state machine: what a found block is, from the share that found it to a final verdict. Pure
// functions only (no I/O), so every transition is testable on its own; block-tracker.ts drives them.
//
//   submitted ──(node gave no verdict: transport error, timeout, 5xx, work queue full)──▶ submitted (retried)
//   submitted ──(null / duplicate / inconclusive / duplicate-inconclusive)──▶ unconfirmed ──chain check──▶ …
//   submitted ──(a final reason: high-hash, bad-txnmrklroot, duplicate-invalid, …)──▶ rejected (final)
//   unconfirmed / pending / orphaned ──chain check (getblockheader confirmations)──▶
//       confirmations ≥ maturity → confirmed (final)
//       confirmations ≥ 1        → pending (on the best chain, immature)
//       not on the best chain and the chain has moved past the block's height → orphaned
//       otherwise                → unchanged (asked again at the next check; a block with no verdict keeps
//                                   being resubmitted)
//   orphaned ──(the chain is `maturity` blocks past its height)──▶ settled (nothing can bring it back)
//
// A won block is never `rejected`: a rejection is only recorded when every endpoint answered, none said anything
// else, and the chain does not hold the block. A transport error is never a rejection, and an endpoint that could
// not be reached has not judged the block: a rejection by one node while another gave no verdict is retried (to
// every endpoint) until the silent one answers, or until the chain moves past the block (then: rejected).

export const BLOCK_STATUSES = ['submitted', 'unconfirmed', 'pending', 'confirmed', 'orphaned', 'rejected'] as const;
export type BlockStatus = (typeof BLOCK_STATUSES)[number];

/** One endpoint's answer to submitblock, classified. */
export type SubmitVerdict =
  /** null: the node took the block (Core: it became the tip or is stored; bcoin: even on a side branch). */
  | { kind: 'accepted' }
  /** The node has seen it or cannot say yet (duplicate, inconclusive…): only the chain can tell. */
  | { kind: 'ask-chain'; reason: string }
  /** A final reason: the block is invalid and retrying cannot change that. */
  | { kind: 'rejected'; reason: string }
  /** No verdict at all (transport error, timeout, HTTP 5xx, work queue full, node warming up): retry. */
  | { kind: 'no-verdict'; reason: string };

/** What a submission round as a whole means for the block. */
export type RoundOutcome =
  | { next: 'check-chain'; accepted: boolean; reason: string | null }
  | { next: 'rejected'; reason: string }
  /** No verdict from some endpoint (and none took the block): retried. `rejected`: another endpoint's final reason. */
  | { next: 'retry'; reason: string; rejected: string | null };

// Answers that are not verdicts on the block's validity. Core: `duplicate` (already have it, valid),
// `duplicate-inconclusive` (have it, not fully validated: side branch), `inconclusive` (valid, not on the best
// chain: lost a race or a side branch), `inconclusive-not-best-prevblk` (BIP22 proposal). 'prev-blk-not-found'
// means the node lacks our parent (it lags or we are ahead): retrying may work once it catches up.
// 'time-too-new' is not cached as invalid by Core (BLOCK_TIME_FUTURE): later it is a valid block.
const ASK_CHAIN = /^(duplicate|duplicate-inconclusive|inconclusive.*)$/;
const RETRYABLE_REASONS = new Set(['prev-blk-not-found', 'time-too-new']);

/** Classify a reason string from submitblock (bcoin prefixes its reasons with "rejected: "). */
export function classifyReason(result: string | null): SubmitVerdict {
  if (result === null) return { kind: 'accepted' };
  const reason = result.replace(/^rejected:\s*/, '').trim();
  if (ASK_CHAIN.test(reason)) return { kind: 'ask-chain', reason };
  if (RETRYABLE_REASONS.has(reason)) return { kind: 'no-verdict', reason };
  return { kind: 'rejected', reason };
}

/** A JSON-RPC error that judges the block itself (Core: -22 decode failed, -25 verify error). */
const FINAL_RPC_CODES = new Set([-22, -25]);

/** Classify a failed submitblock call: only an RPC error about the block is a verdict. */
export function classifyError(err: { kind?: string; code?: number; message: string }): SubmitVerdict {
  if (err.kind === 'rpc' && err.code !== undefined && FINAL_RPC_CODES.has(err.code)) return { kind: 'rejected', reason: err.message };
  return { kind: 'no-verdict', reason: err.message };
}

/** Combine one round's answers from every endpoint. */
export function combineRound(verdicts: readonly SubmitVerdict[]): RoundOutcome {
  const accepted = verdicts.some((v) => v.kind === 'accepted');
  const ask = verdicts.find((v): v is Extract<SubmitVerdict, { kind: 'ask-chain' }> => v.kind === 'ask-chain');
  if (accepted || ask) return { next: 'check-chain', accepted, reason: accepted ? null : ask!.reason };
  const rejected = verdicts.find((v): v is Extract<SubmitVerdict, { kind: 'rejected' }> => v.kind === 'rejected');
  const silent = verdicts.filter((v) => v.kind === 'no-verdict');
  if (rejected && silent.length === 0) return { next: 'rejected', reason: rejected.reason };
  // One node's rejection is not final while another has not judged the block: it may be the node that is right
  // (the rejecting one lagging a soft fork, misconfigured, or on another chain), and it never got the block.
  const why = silent.map((v) => ('reason' in v ? v.reason : '')).filter(Boolean).join('; ');
  return {
    next: 'retry',
    reason: rejected ? `rejected by one node (${rejected.reason}), no verdict from another: ${why || 'no answer'}` : why || 'no endpoint answered',
    rejected: rejected?.reason ?? null,
  };
}

/** What the node's chain says about a block: getblockheader's confirmations (null: the node does not know it). */
export interface ChainView {
  confirmations: number | null;
  /** The node's best height when asked. */
  bestHeight: number;
}

export interface ChainDecision {
  status: BlockStatus;
  confirmations: number;
  /** Nothing can change the status any more: stop checking. */
  settled: boolean;
}

/**
 * The status a chain check gives a block that is past submission. `current` is kept when the chain cannot tell
 * yet (not on the best chain, but the chain has not moved past the block's height).
 */
export function decideFromChain(height: number, current: BlockStatus, view: ChainView, maturity: number): ChainDecision {
  const c = view.confirmations ?? -1;
  if (c >= maturity) return { status: 'confirmed', confirmations: c, settled: true };
  if (c >= 1) return { status: 'pending', confirmations: c, settled: false };
  if (view.bestHeight > height) {
    // Valid (or never judged) but not on the best chain, which has moved past its height: lost or reorged out.
    // Once the chain is `maturity` past it, no realistic reorg brings it back.
    return { status: 'orphaned', confirmations: 0, settled: view.bestHeight - height >= maturity };
  }
  return { status: current, confirmations: 0, settled: false };
}

/** Submission back-off: 250 ms doubling to 10 s, forever (until a verdict or the chain moves past). */
export function retryDelayMs(attempt: number, minMs = 250, maxMs = 10_000): number {
  return Math.min(maxMs, minMs * 2 ** Math.max(0, attempt - 1));
}

/** Statuses that move money (accounting credits pending → confirmed blocks only). */
export function isOnChain(status: BlockStatus): boolean {
  return status === 'pending' || status === 'confirmed';
}

/** Counters of found blocks since start, flat (for the API and metrics): candidates and blocks per status. */
export type BlockCounters = Record<BlockStatus, number> & {
  candidates: number;
  /** submitblock rounds (each sent to every endpoint). */
  submissions: number;
  /** Blocks of ours found on the chain at start with no record. */
  recovered: number;
  /** Candidates not sent because our own block on the same parent was taken first. */
  superseded: number;
};

export const BLOCK_COUNTER_KEYS = ['candidates', 'submissions', 'recovered', 'superseded', ...BLOCK_STATUSES] as const;

export function emptyBlockCounters(): BlockCounters {
  return { candidates: 0, submissions: 0, recovered: 0, superseded: 0, submitted: 0, unconfirmed: 0, pending: 0, confirmed: 0, orphaned: 0, rejected: 0 };
}

/** A block not settled yet, as the block tracker takes it up at start from the journal or the database. */
export interface UnsettledBlock {
  hash: string;
  height: number;
  prevHash: string | null;
  /** '' when the finder is unknown. */
  account: string;
  worker: string;
  reward: bigint;
  /** null when only the block's share reached the database. */
  hex: string | null;
  status: BlockStatus;
  time: number;
  /** Time of its last recorded status (the journal's, or the database's check), if any: later statuses come after. */
  statusAt?: number;
}
