import type { BlockStatus } from './block-state.ts';
import type { ShareOutcome } from './outcome.ts';

/** One classified share, as storage and accounting will consume it. */
export interface ShareEvent {
  /** Unique per share (node id + session + sequence): storage writes are idempotent on it. */
  id: string;
  time: number;
  account: string;
  worker: string;
  sessionId: string;
  remoteAddress: string;
  jobId: string;
  height: number;
  outcome: ShareOutcome;
  /** Pool difficulty credited (the one in force for the job). */
  poolDifficulty: number;
  /** Difficulty the hash achieved (0 when not hashed). */
  shareDifficulty: number;
  block: boolean;
  blockHash?: string;
  /** Compact target (nbits) of the share's job: FPPS pays by the job's network difficulty. Absent when the
   *  share matched no job, and in events spooled before it was recorded. */
  nbits?: number;
}

/**
 * What happens to a found block, as events for storage (block-state.ts has the state machine): the candidate
 * itself (recorded before the node's answer), every answer of every node, and every status change.
 */
export type BlockEvent =
  | {
      kind: 'candidate';
      time: number;
      height: number;
      hash: string;
      prevHash: string;
      /** '' when the finder is unknown (a block of ours recovered from the chain after a crash). */
      account: string;
      worker: string;
      /** Coinbase value (subsidy + fees), satoshis: what the block's coinbase outputs pay. */
      reward: bigint;
      blockHex: string;
    }
  | {
      kind: 'answer';
      time: number;
      hash: string;
      endpoint: string;
      /** null = accepted; Core's reason string; or "error: …" when the call got no answer. */
      answer: string | null;
    }
  | {
      kind: 'status';
      time: number;
      hash: string;
      status: BlockStatus;
      /** The answer or observation behind the status. */
      result: string | null;
      confirmations: number;
      /** Final: nothing can change the status any more. */
      settled: boolean;
    };

export type StorageRefusalReason =
  /** The spool reached its configured disk budget (the database has been behind for long). */
  | 'budget'
  /** The filesystem has less free space than the configured minimum. */
  | 'disk-full'
  /** A spool write failed (ENOSPC, EIO, EDQUOT…): retried after a back-off. */
  | 'write-failed';

/** Whether the share log can record a share now. A share it cannot record must not be credited. */
export type StorageState =
  | { accepting: true }
  | { accepting: false; reason: StorageRefusalReason; message: string; since: number };

/**
 * The share log seam: validation appends, never waits. In-process first; the same narrow interface can front
 * a durable spool or NATS JetStream later.
 */
export interface ShareLog {
  appendShare(e: ShareEvent): void;
  appendBlock(e: BlockEvent): void;
  /**
   * Asked before a share is appended: can it be recorded? When not, the pool refuses the share (the miner is
   * told it is not credited) and does not append it; the log counts it. Absent = always (in-process logs).
   * Blocks are never refused: appendBlock is always called.
   */
  admitShare?(): StorageState;
  /**
   * A log that buffers share lines within an event-loop turn (DurableShareLog): call fn once the shares
   * appended so far are durable in its spool, and return true; false when nothing is waiting (fn not called).
   * The pool holds the answers to accepted shares until then. fn gets false when some of those lines could not be
   * written (they are held only in memory): their answers must not say "accepted". Absent = appends are durable at once.
   */
  whenSpooled?(fn: (written: boolean) => void): boolean;
}

type Listener<T> = (e: T) => void;

/** In-process share log: fan-out to subscribers, synchronously, never throwing into the hot path. */
export class InProcessShareLog implements ShareLog {
  private shareListeners: Listener<ShareEvent>[] = [];
  private blockListeners: Listener<BlockEvent>[] = [];
  constructor(private readonly onListenerError: (err: unknown) => void = () => {}) {}

  onShare(fn: Listener<ShareEvent>): () => void {
    this.shareListeners.push(fn);
    return () => { this.shareListeners = this.shareListeners.filter((f) => f !== fn); };
  }

  onBlock(fn: Listener<BlockEvent>): () => void {
    this.blockListeners.push(fn);
    return () => { this.blockListeners = this.blockListeners.filter((f) => f !== fn); };
  }

  appendShare(e: ShareEvent): void {
    for (const fn of this.shareListeners) {
      try { fn(e); } catch (err) { this.onListenerError(err); }
    }
  }

  appendBlock(e: BlockEvent): void {
    for (const fn of this.blockListeners) {
      try { fn(e); } catch (err) { this.onListenerError(err); }
    }
  }
}
