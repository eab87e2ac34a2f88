// The embedded regtest chain: block index with side branches, best-chain selection and reorgs, a mempool of
// synthetic transactions, templates, long-poll waits and CPU mining. No I/O: rpc-server.ts serves it.

import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { type Tx, addressToScript, bitsToDifficulty, bitsToTarget, hashToDisplay, serializeBlock } from '../../chain/index.ts';
import { type BlockEntry, BlockIndex } from './block-index.ts';
import { RPC_DESERIALIZATION_ERROR, RPC_INTERNAL_ERROR, RPC_INVALID_ADDRESS_OR_KEY, RPC_INVALID_PARAMETER, RpcFault } from './errors.ts';
import { Mempool, type OfferedTx, offer, syntheticTx } from './mempool.ts';
import { buildCandidate, candidateBytes, grindNonce } from './miner.ts';
import { TEMPLATE_VERSION, bitsForDifficulty, blockProof, blockSubsidy, regtestGenesis } from './params.ts';
import { type EmbeddedBlockTemplate, buildTemplate, selectTransactions } from './template.ts';
import {
  type DecodedBlock, addDefaultCoinbaseWitness, checkBlock, contextualCheckBlock, contextualCheckHeader, decodeBlock,
  describeBlock, isCoinbase,
} from './validate.ts';

export interface EmbeddedChainOptions {
  /** Network difficulty (float). Default: regtest's bits 0x207fffff (difficulty 4.66e-10). */
  difficulty?: number;
  /** Synthetic transactions kept waiting in the mempool (topped up at every new tip). Default 40. */
  mempoolTxs?: number;
  /** New synthetic transactions arrive this often (the oldest leave), ms; 0 disables. Default 10000. */
  mempoolRefreshMs?: number;
  /** How many arrive per refresh. Default max(1, ceil(mempoolTxs / 8)). */
  mempoolRefreshTxs?: number;
  /** Blocks and spent transactions deeper than this below the tip are forgotten (0 keeps all). Default 1000. */
  pruneDepth?: number;
  /** Clock, ms since the epoch. Default Date.now. */
  now?: () => number;
  logger?: Logger;
}

export interface MineBlockOptions {
  /** Parent (display hex); default the tip. Any known block: mining on a non-tip parent builds a side branch. */
  prevHash?: string;
  /** Regtest address paid by the coinbase. */
  address?: string;
  /** Or a raw scriptPubKey. Default OP_TRUE. */
  scriptPubKey?: Uint8Array;
  /** 'mempool' (default on the tip): the template's selection; 'none' (default elsewhere); or txids (display hex). */
  txs?: 'mempool' | 'none' | string[];
  /** Header time; default max(now, parent's median time past + 1). */
  time?: number;
  /** Coinbase value in satoshis; default subsidy + fees (set more to build a bad-cb-amount block). */
  coinbaseValue?: bigint;
  /** Hashes to try before giving up. Default 50× the expected number for one block (at least 100000). */
  maxTries?: number;
  signal?: AbortSignal;
}

export interface MinedBlock {
  hash: string;
  height: number;
  hex: string;
  /** submitblock's answer: null when it became (part of) the best chain. */
  result: string | null;
  tries: number;
}

export interface EmbeddedChainEvents {
  tip: [tip: BlockEntry];
  mempool: [];
  block: [info: { hash: string; height: number | null; result: string | null }];
}

const OP_TRUE = Buffer.from([0x51]);
const PRUNE_EVERY = 100;
const MAX_FORGOTTEN_OFFERS = 100_000;

export class EmbeddedChain extends EventEmitter<EmbeddedChainEvents> {
  readonly index: BlockIndex;
  readonly bits: number;
  readonly target: bigint;
  readonly mempool = new Mempool();
  /** Every transaction the chain ever offered and has not forgotten, by txid (display hex). */
  private readonly offered = new Map<string, OfferedTx>();
  private mempoolVersion = 0;
  private readonly waiters = new Set<() => void>();
  private templateCache: EmbeddedBlockTemplate | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private prunedTo = 0;
  private readonly now: () => number;
  private readonly log?: Logger;
  private readonly mempoolTxs: number;
  private readonly refreshTxs: number;
  private readonly pruneDepth: number;

  constructor(opts: EmbeddedChainOptions = {}) {
    super();
    this.now = opts.now ?? Date.now;
    this.log = opts.logger;
    this.bits = bitsForDifficulty(opts.difficulty);
    this.target = bitsToTarget(this.bits);
    this.mempoolTxs = Math.max(0, Math.floor(opts.mempoolTxs ?? 40));
    this.refreshTxs = Math.max(1, Math.floor(opts.mempoolRefreshTxs ?? Math.ceil(this.mempoolTxs / 8)));
    this.pruneDepth = Math.max(0, Math.floor(opts.pruneDepth ?? 1000));
    const g = regtestGenesis();
    const d = describeBlock(g);
    this.index = new BlockIndex({
      hash: d.hash, header: g.header, bytes: serializeBlock(g), txids: d.txids, nTx: 1, size: d.size,
      strippedSize: d.strippedSize, weight: d.weight, coinbaseOut: g.txs[0].outputs[0].value,
    });
    this.index.genesis.connectError = null;
    this.index.genesis.fees = 0n;
    this.addSynthetic(this.mempoolTxs);
    const refreshMs = opts.mempoolRefreshMs ?? 10_000;
    if (refreshMs > 0) {
      this.timer = setInterval(() => this.refreshMempool(), refreshMs);
      this.timer.unref(); // an in-process chain alone never keeps the process alive
    }
  }

  get tip(): BlockEntry { return this.index.tip; }
  get height(): number { return this.index.tip.height; }
  get difficulty(): number { return bitsToDifficulty(this.bits); }
  nowSec(): number { return Math.floor(this.now() / 1000); }

  /** BIP22 long-poll id, as Core forms it: tip hash ‖ mempool update counter. */
  longpollId(): string { return `${this.tip.hashHex}${this.mempoolVersion}`; }

  /** Stops the refresh timer and releases every pending long poll. */
  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.wake();
  }

  // ---------- templates ----------

  /** The current template (shared with a cache: treat it as read-only). */
  getBlockTemplate(): EmbeddedBlockTemplate {
    const lpid = this.longpollId();
    if (!this.templateCache || this.templateCache.longpollid !== lpid) {
      this.templateCache = buildTemplate({
        tip: this.tip, mempool: this.mempool.byFeeRate(), bits: this.bits, longpollid: lpid, nowSec: this.nowSec(),
      });
    }
    const t = this.templateCache;
    return { ...t, curtime: Math.max(this.nowSec(), t.mintime) };
  }

  /** Resolves when the long-poll id differs from `longpollId` (new tip or mempool change), on timeout or abort. */
  waitForChange(longpollId: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.closed || signal?.aborted || longpollId !== this.longpollId()) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const check = (): void => { if (this.closed || longpollId !== this.longpollId()) done(); };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(check);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  private mempoolChanged(): void {
    this.mempoolVersion++;
    this.emit('mempool');
    this.wake();
  }

  // ---------- mempool ----------

  private addSynthetic(n: number): void {
    for (let i = 0; i < n; i++) this.admit(offer(syntheticTx(), this.tip.height));
  }

  private admit(tx: OfferedTx): void {
    this.offered.set(tx.txidHex, tx);
    this.mempool.add(tx);
  }

  /** The periodic arrival: a few new transactions, the oldest beyond `mempoolTxs` leave. */
  refreshMempool(): void {
    if (this.closed || this.mempoolTxs === 0) return;
    this.addSynthetic(this.refreshTxs);
    this.mempool.trimTo(this.mempoolTxs);
    this.mempoolChanged();
  }

  /** Offers a given transaction (e.g. a test's own) with a fee, in satoshis. */
  offerTransaction(tx: Tx, fee: number): OfferedTx {
    if (!Number.isSafeInteger(fee) || fee < 0) throw new Error(`fee must be a non-negative integer: ${fee}`);
    const o = { ...offer(tx, this.tip.height), fee };
    this.admit(o);
    this.mempoolChanged();
    return o;
  }

  getOffered(txidHex: string): OfferedTx | undefined { return this.offered.get(txidHex); }

  // ---------- blocks ----------

  /** submitblock: null when the block is (now part of) the best chain, else Core's reason string. */
  submitBlock(bytes: Uint8Array): string | null {
    let d = decodeBlock(bytes);
    if (!isCoinbase(d.block.txs[0])) throw new RpcFault(RPC_DESERIALIZATION_ERROR, 'Block does not start with a coinbase');
    const known = this.index.getByHash(d.hash);
    if (known) return this.report(d, known.height, known.failed ? 'duplicate-invalid' : 'duplicate');
    const prev = this.index.getByHash(d.block.header.prevHash) ?? null;
    if (prev && addDefaultCoinbaseWitness(d.block)) d = describeBlock(d.block);
    const { result, height } = this.accept(d, prev);
    return this.report(d, height, result);
  }

  /** getblocktemplate mode "proposal" (BIP23): would this block be valid on the tip? Nothing is stored. */
  proposeBlock(bytes: Uint8Array): string | null {
    const d = decodeBlock(bytes);
    const known = this.index.getByHash(d.hash);
    if (known) return known.failed ? 'duplicate-invalid' : known.connectError === null ? 'duplicate' : 'duplicate-inconclusive';
    if (!d.block.header.prevHash.equals(this.tip.hash)) return 'inconclusive-not-best-prevblk';
    const rej = checkBlock(d, { checkPow: false }) ?? contextualCheckHeader(d.block.header, this.tip, this.bits, this.nowSec())
      ?? contextualCheckBlock(d, this.tip);
    if (rej) return rej.reason;
    return this.connectCheckTxs(d.txids, d.block.txs[0].outputs.reduce((s, o) => s + o.value, 0n), this.tip, null).error;
  }

  private report(d: DecodedBlock, height: number | null, result: string | null): string | null {
    const hash = hashToDisplay(d.hash);
    this.emit('block', { hash, height, result });
    if (result === null) this.log?.debug({ hash, height, txs: d.block.txs.length }, 'embedded chain: block accepted');
    else this.log?.info({ hash, height, reason: result }, 'embedded chain: block not accepted');
    return result;
  }

  private accept(d: DecodedBlock, prev: BlockEntry | null): { result: string | null; height: number | null } {
    const early = checkBlock(d, { checkPow: true });
    if (early) return { result: early.reason, height: null };
    if (!prev) return { result: 'prev-blk-not-found', height: null };
    const height = prev.height + 1;
    if (prev.failed) return { result: 'bad-prevblk', height };
    const header = contextualCheckHeader(d.block.header, prev, this.bits, this.nowSec());
    if (header) return { result: header.reason, height };
    const entryData = {
      hash: d.hash, header: d.block.header, nTx: d.block.txs.length, size: d.size, strippedSize: d.strippedSize,
      weight: d.weight, coinbaseOut: d.block.txs[0].outputs.reduce((s, o) => s + o.value, 0n),
    };
    const body = contextualCheckBlock(d, prev);
    if (body) {
      // Core caches consensus failures as BLOCK_FAILED_VALID (a resubmission is "duplicate-invalid"), but not
      // mutations, which say nothing about the header.
      if (!body.mutated) {
        this.index.add({ ...entryData, bytes: null, txids: null, failed: { kind: 'invalid', reason: body.reason } }, prev);
      }
      return { result: body.reason, height };
    }
    const entry = this.index.add({ ...entryData, bytes: serializeBlock(d.block), txids: d.txids }, prev);
    for (let i = 1; i < d.txids.length; i++) this.offered.get(hashToDisplay(d.txids[i]))?.minedIn.push(entry);
    this.index.noteNewBlock(entry);
    const before = this.tip;
    const checked = this.activateBestChain();
    this.finishTipChange(before);
    return { result: checked.has(entry) ? (checked.get(entry) as string | null) : 'inconclusive', height };
  }

  /** ConnectBlock's checks that need the branch: offered, unspent transactions; coinbase within subsidy + fees. */
  private connectCheck(b: BlockEntry): string | null {
    if (b.connectError !== undefined) return b.connectError;
    if (!b.txids) return null;
    const r = this.connectCheckTxs(b.txids, b.coinbaseOut, b.parent as BlockEntry, b);
    b.connectError = r.error;
    b.fees = r.fees;
    return r.error;
  }

  private connectCheckTxs(txids: readonly Buffer[], coinbaseOut: bigint, parent: BlockEntry, self: BlockEntry | null) {
    const seen = new Set<string>();
    let fees = 0n;
    for (let i = 1; i < txids.length; i++) {
      const id = hashToDisplay(txids[i]);
      const o = this.offered.get(id);
      const spent = o?.minedIn.some((m) => m !== self && this.index.isAncestor(m, parent));
      if (!o || spent || seen.has(id)) return { error: 'bad-txns-inputs-missingorspent', fees };
      seen.add(id);
      fees += BigInt(o.fee);
    }
    if (coinbaseOut > blockSubsidy(parent.height + 1) + fees) return { error: 'bad-cb-amount', fees };
    return { error: null, fees };
  }

  /**
   * ActivateBestChain: move to the most-work valid branch. A block that fails its connect checks is marked
   * invalid with its descendants and the choice is made again. Returns the connect result per block tried.
   */
  private activateBestChain(): Map<BlockEntry, string | null> {
    const checked = new Map<BlockEntry, string | null>();
    for (;;) {
      const best = this.index.bestCandidate();
      if (best === this.tip) return checked;
      const fork = this.index.fork(this.tip, best);
      const path: BlockEntry[] = [];
      for (let b: BlockEntry = best; b !== fork; b = b.parent as BlockEntry) path.push(b);
      path.reverse();
      const bad = path.find((b) => this.connectCheck(b) !== null);
      if (bad) {
        checked.set(bad, bad.connectError as string);
        this.markInvalid(bad, { kind: 'invalid', reason: bad.connectError as string });
        continue;
      }
      while (this.tip !== fork) this.disconnectTip();
      for (const b of path) {
        this.index.active.push(b);
        for (const id of b.txids?.slice(1) ?? []) this.mempool.delete(hashToDisplay(id));
        checked.set(b, null);
      }
    }
  }

  /** The tip leaves the active chain; its transactions go back to the mempool. */
  private disconnectTip(): void {
    const t = this.index.active.pop() as BlockEntry;
    for (const id of t.txids?.slice(1) ?? []) {
      const o = this.offered.get(hashToDisplay(id));
      if (o) this.mempool.add(o);
    }
  }

  private markInvalid(e: BlockEntry, failure: NonNullable<BlockEntry['failed']>): void {
    e.failed = failure;
    for (const d of this.index.subtree(e)) if (d !== e && !d.failed) d.failed = { kind: 'child', reason: 'bad-prevblk' };
    this.index.markFailuresChanged();
  }

  private finishTipChange(before: BlockEntry): void {
    if (this.tip === before) return;
    if (this.mempool.size < this.mempoolTxs) this.addSynthetic(this.mempoolTxs - this.mempool.size);
    this.log?.info({ height: this.tip.height, hash: this.tip.hashHex, reorg: !this.index.isActive(before) }, 'embedded chain: new tip');
    if (this.pruneDepth > 0 && this.tip.height - this.pruneDepth - this.prunedTo >= PRUNE_EVERY) this.prune();
    this.emit('tip', this.tip);
    this.mempoolChanged();
  }

  /** invalidateblock: the block and its descendants leave the best chain; their transactions return. */
  invalidateBlock(hashHex: string): void {
    const e = this.lookup(hashHex);
    if (e.height === 0) throw new RpcFault(RPC_INVALID_PARAMETER, 'Cannot invalidate the genesis block');
    const before = this.tip;
    if (this.index.isActive(e)) while (this.tip !== e.parent) this.disconnectTip();
    this.markInvalid(e, { kind: 'invalidated', reason: 'invalidated' });
    this.activateBestChain();
    this.finishTipChange(before);
  }

  /** reconsiderblock: clears the failure flags of the block, its ancestors and descendants; reorgs if due. */
  reconsiderBlock(hashHex: string): void {
    const e = this.lookup(hashHex);
    const before = this.tip;
    const clear = (b: BlockEntry): void => {
      // A block stored without data (it failed before connecting) stays out of the candidates.
      if (b.txids !== null) b.failed = null;
    };
    for (const d of this.index.subtree(e)) clear(d);
    for (let p = e.parent; p; p = p.parent) clear(p);
    this.index.markFailuresChanged();
    this.activateBestChain();
    this.finishTipChange(before);
  }

  lookup(hashHex: string): BlockEntry {
    const e = this.index.get(hashHex);
    if (!e) throw new RpcFault(RPC_INVALID_ADDRESS_OR_KEY, 'Block not found');
    return e;
  }

  /** Block bytes, or null when pruned. */
  blockBytes(e: BlockEntry): Buffer | null { return e.bytes; }

  /** Forgets block data and spent or long-gone transactions deeper than `pruneDepth` (bounded memory). */
  private prune(): void {
    const cutoff = this.tip.height - this.pruneDepth;
    for (let h = Math.max(1, this.prunedTo + 1); h <= cutoff; h++) {
      const e = this.index.active[h];
      for (const id of e.txids?.slice(1) ?? []) this.offered.delete(hashToDisplay(id));
    }
    for (const e of this.index.entries()) {
      if (e.height > 0 && e.height <= cutoff) { e.bytes = null; e.txids = null; }
    }
    let unmined = 0;
    for (const [id, o] of this.offered) {
      if (o.minedIn.length > 0 || this.mempool.has(id)) continue;
      if (o.bornHeight < cutoff || ++unmined > MAX_FORGOTTEN_OFFERS) this.offered.delete(id);
    }
    this.prunedTo = cutoff;
  }

  // ---------- mining ----------

  /** CPU-mines one block (by default on the tip with the template's transactions) and submits it. */
  async mineBlock(opts: MineBlockOptions = {}): Promise<MinedBlock> {
    const prev = opts.prevHash ? this.lookup(opts.prevHash) : this.tip;
    const scriptPubKey = opts.scriptPubKey ? Buffer.from(opts.scriptPubKey) : opts.address ? this.addressScript(opts.address) : OP_TRUE;
    const choice = opts.txs ?? (prev === this.tip ? 'mempool' : 'none');
    const txs = choice === 'none' ? [] : choice === 'mempool' ? selectTransactions(this.mempool.byFeeRate())
      : choice.map((id) => {
        const o = this.offered.get(id.toLowerCase());
        if (!o) throw new RpcFault(RPC_INVALID_ADDRESS_OR_KEY, `Transaction ${id} not offered by this chain`);
        return o;
      });
    const height = prev.height + 1;
    const fees = txs.reduce((s, t) => s + BigInt(t.fee), 0n);
    const maxTries = opts.maxTries ?? Math.max(100_000, Number(blockProof(this.target)) * 50);
    let tries = 0;
    for (let extranonce = 0; ; extranonce++) {
      const c = buildCandidate({
        prevHash: prev.hash, height, version: TEMPLATE_VERSION, bits: this.bits,
        time: opts.time ?? Math.max(this.nowSec(), prev.mtp + 1), scriptPubKey,
        coinbaseValue: opts.coinbaseValue ?? blockSubsidy(height) + fees, txs, extranonce,
      });
      const r = await grindNonce(c.header, this.target, { maxTries: maxTries - tries, signal: opts.signal });
      tries += r.tries;
      if (r.found) {
        const bytes = candidateBytes(c);
        const hash = hashToDisplay(decodeBlock(bytes).hash);
        return { hash, height, hex: bytes.toString('hex'), result: this.submitBlock(bytes), tries };
      }
      if (tries >= maxTries || opts.signal?.aborted || this.closed) {
        throw new Error(`mineBlock: no block found in ${tries} hashes`);
      }
    }
  }

  /** generatetoaddress: mines up to `n` blocks on the tip within `maxTries` hashes in total; their hashes. */
  async generateToAddress(n: number, address: string, maxTries = 1_000_000, signal?: AbortSignal): Promise<string[]> {
    const scriptPubKey = this.addressScript(address);
    const hashes: string[] = [];
    let left = maxTries;
    while (hashes.length < n && left > 0 && !this.closed && !signal?.aborted) {
      let mined: MinedBlock;
      try {
        mined = await this.mineBlock({ scriptPubKey, maxTries: left, signal });
      } catch {
        break; // out of tries (Core returns the blocks found so far)
      }
      left -= mined.tries;
      // Core counts a stored block even when another tip won the race (inconclusive); anything else is a bug.
      if (mined.result !== null && mined.result !== 'inconclusive') {
        throw new RpcFault(RPC_INTERNAL_ERROR, `ProcessNewBlock, block not accepted: ${mined.result}`);
      }
      hashes.push(mined.hash);
    }
    return hashes;
  }

  private addressScript(address: string): Buffer {
    try {
      return addressToScript(address, 'regtest');
    } catch {
      throw new RpcFault(RPC_INVALID_ADDRESS_OR_KEY, 'Error: Invalid address');
    }
  }

}
