// Block index: every block the chain has seen (active chain and side branches), with chain work, median time
// past and validity, as Bitcoin Core's CBlockIndex / CChain keep them (src/chain.h).

import { type BlockHeader, bitsToTarget, hashToDisplay } from '../../chain/index.ts';
import { blockProof } from './params.ts';

/** Why a block is not a candidate for the best chain (Core's BLOCK_FAILED_VALID / BLOCK_FAILED_CHILD). */
export interface BlockFailure {
  kind: 'invalid' | 'invalidated' | 'child';
  reason: string;
}

export interface BlockEntry {
  /** Internal byte order. */
  readonly hash: Buffer;
  /** Display hex. */
  readonly hashHex: string;
  readonly header: BlockHeader;
  readonly height: number;
  readonly parent: BlockEntry | null;
  readonly children: BlockEntry[];
  /** Cumulative chain work up to and including this block. */
  readonly chainWork: bigint;
  /** Median of the times of this block and up to 10 ancestors (CBlockIndex::GetMedianTimePast). */
  readonly mtp: number;
  /** Arrival order: among equal work the earlier block wins (Core's nSequenceId). */
  readonly seq: number;
  failed: BlockFailure | null;
  /** Full block (witness serialization); null once pruned or for a block stored only as invalid. */
  bytes: Buffer | null;
  /** txids (internal order), coinbase first; null once pruned. */
  txids: Buffer[] | null;
  readonly nTx: number;
  readonly size: number;
  readonly strippedSize: number;
  readonly weight: number;
  /** Sum of the coinbase outputs, satoshis. */
  readonly coinbaseOut: bigint;
  /** Result of the connect-time checks (inputs, coinbase amount), computed when the block is first connected. */
  connectError?: string | null;
  /** Sum of the fees of its transactions, satoshis (known once connect checks ran). */
  fees?: bigint;
}

export interface NewEntry {
  hash: Buffer;
  header: BlockHeader;
  bytes: Buffer | null;
  txids: Buffer[] | null;
  nTx: number;
  size: number;
  strippedSize: number;
  weight: number;
  coinbaseOut: bigint;
  failed?: BlockFailure | null;
}

const MEDIAN_TIME_SPAN = 11;

export class BlockIndex {
  private readonly byHash = new Map<string, BlockEntry>();
  /** Active chain, indexed by height. */
  readonly active: BlockEntry[] = [];
  private nextSeq = 0;

  constructor(genesis: NewEntry) {
    const g = this.add(genesis, null);
    this.active.push(g);
  }

  get tip(): BlockEntry { return this.active[this.active.length - 1]; }
  get genesis(): BlockEntry { return this.active[0]; }
  get size(): number { return this.byHash.size; }

  get(hashHex: string): BlockEntry | undefined { return this.byHash.get(hashHex.toLowerCase()); }
  getByHash(hash: Uint8Array): BlockEntry | undefined { return this.byHash.get(hashToDisplay(hash)); }
  entries(): IterableIterator<BlockEntry> { return this.byHash.values(); }

  add(e: NewEntry, parent: BlockEntry | null): BlockEntry {
    const times: number[] = [e.header.time];
    for (let p = parent; p && times.length < MEDIAN_TIME_SPAN; p = p.parent) times.push(p.header.time);
    times.sort((a, b) => a - b);
    const entry: BlockEntry = {
      hash: e.hash,
      hashHex: hashToDisplay(e.hash),
      header: e.header,
      height: parent ? parent.height + 1 : 0,
      parent,
      children: [],
      chainWork: (parent?.chainWork ?? 0n) + blockProof(bitsToTarget(e.header.bits)),
      mtp: times[Math.floor(times.length / 2)],
      seq: this.nextSeq++,
      failed: e.failed ?? (parent?.failed ? { kind: 'child', reason: 'bad-prevblk' } : null),
      bytes: e.bytes,
      txids: e.txids,
      nTx: e.nTx,
      size: e.size,
      strippedSize: e.strippedSize,
      weight: e.weight,
      coinbaseOut: e.coinbaseOut,
    };
    this.byHash.set(entry.hashHex, entry);
    parent?.children.push(entry);
    return entry;
  }

  isActive(e: BlockEntry): boolean { return this.active[e.height] === e; }

  /** The ancestor of `e` at `height` (or e itself). Walks side branches, then jumps through the active chain. */
  ancestor(e: BlockEntry, height: number): BlockEntry | null {
    if (height < 0 || height > e.height) return null;
    let p: BlockEntry | null = e;
    while (p && p.height > height) {
      if (this.isActive(p)) return this.active[height];
      p = p.parent;
    }
    return p;
  }

  /** `a` is `b` or one of its ancestors. */
  isAncestor(a: BlockEntry, b: BlockEntry | null): boolean {
    return b !== null && this.ancestor(b, a.height) === a;
  }

  /** Last common block of the two branches. */
  fork(a: BlockEntry, b: BlockEntry): BlockEntry {
    let x: BlockEntry | null = a;
    let y: BlockEntry | null = b;
    if (x.height > y.height) x = this.ancestor(x, y.height);
    else if (y.height > x.height) y = this.ancestor(y, x.height);
    while (x && y && x !== y) { x = x.parent; y = y.parent; }
    if (!x) throw new Error('blocks share no ancestor');
    return x;
  }

  /** `e` and every block built on it. */
  *subtree(e: BlockEntry): Generator<BlockEntry> {
    const stack = [e];
    for (let n = stack.pop(); n; n = stack.pop()) {
      yield n;
      stack.push(...n.children);
    }
  }

  /**
   * The block the best chain should end at: most work among blocks not failed, earliest arrival on ties
   * (Core's CBlockIndexWorkComparator over setBlockIndexCandidates). Leaves are enough: a block with a valid
   * child has less work than that child.
   */
  bestCandidate(): BlockEntry {
    let best = this.tip.failed ? this.genesis : this.tip;
    for (const e of this.candidateLeaves()) {
      if (e.txids === null && !this.isActive(e)) continue; // pruned side branch: cannot be connected
      if (e.chainWork > best.chainWork || (e.chainWork === best.chainWork && e.seq < best.seq)) best = e;
    }
    return best;
  }

  private leaves = new Set<BlockEntry>();
  private leavesDirty = true;

  /** Call after a block's failure flags changed (invalid, invalidateblock, reconsiderblock). */
  markFailuresChanged(): void { this.leavesDirty = true; }

  /** Keeps the leaf set current when a valid block arrives (cheap path, no full scan). */
  noteNewBlock(e: BlockEntry): void {
    if (this.leavesDirty || e.failed) return;
    if (e.parent) this.leaves.delete(e.parent);
    this.leaves.add(e);
  }

  private candidateLeaves(): Set<BlockEntry> {
    if (this.leavesDirty) {
      this.leaves.clear();
      for (const e of this.byHash.values()) {
        if (!e.failed && !e.children.some((c) => !c.failed)) this.leaves.add(e);
      }
      this.leavesDirty = false;
    }
    return this.leaves;
  }
}
