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
}

/** A block candidate and what the node answered. */
export interface BlockEvent {
  time: number;
  height: number;
  hash: string;
  prevHash: string;
  account: string;
  worker: string;
  /** Coinbase value (subsidy + fees), satoshis. */
  reward: bigint;
  /** null = accepted by the node; otherwise the reason string or the error. */
  result: string | null;
  accepted: boolean;
  blockHex: string;
}

/**
 * The share log seam: validation appends, never waits. In-process first; the same narrow interface can front
 * a durable spool or NATS JetStream later.
 */
export interface ShareLog {
  appendShare(e: ShareEvent): void;
  appendBlock(e: BlockEvent): void;
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
