// The embedded regtest chain: block index with side branches, best-chain selection and reorgs, a mempool of
// synthetic transactions, templates, long-poll waits and CPU mining. No I/O: rpc-server.ts serves it.

import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import {
  type BlockHeader, type Tx, addressToScript, bitsToDifficulty, bitsToTarget, hashToDisplay, headerHash, parseBlock, parseTx,
  serializeBlock, serializeTx, txid,
} from '../../chain/index.ts';
import { type BlockEntry, BlockIndex } from './block-index.ts';
import {
  RPC_DESERIALIZATION_ERROR, RPC_INTERNAL_ERROR, RPC_INVALID_ADDRESS_OR_KEY, RPC_INVALID_PARAMETER, RPC_VERIFY_ALREADY_IN_CHAIN,
  RPC_VERIFY_ERROR, RPC_VERIFY_REJECTED, RpcFault,
} from './errors.ts';
import { Mempool, type OfferedTx, offer, syntheticTx } from './mempool.ts';
import { buildCandidate, candidateBytes, grindNonce } from './miner.ts';
import {
  COINBASE_MATURITY, TEMPLATE_VERSION, WITNESS_SCALE_FACTOR, bitsForDifficulty, blockProof, blockSubsidy, regtestGenesis, signetGenesis,
} from './params.ts';
import { checkInput } from './script-check.ts';
import { type BlockTxs, type Coin, type CoinView, OverlayView, type Undo, UtxoSet, inputKey, outKey, tryApplyBlock } from './utxo.ts';
import { type EmbeddedBlockTemplate, buildTemplate, selectTransactions } from './template.ts';
import {
  type DecodedBlock, addDefaultCoinbaseWitness, checkBlock, checkStoredBlock, decodeStoredBlock, contextualCheckBlock, contextualCheckHeader, decodeBlock,
  checkTransaction, describeBlock, isCoinbase,
} from './validate.ts';

export interface EmbeddedChainOptions {
  /**
   * 'regtest' (default) or 'signet': a custom signet with the challenge OP_TRUE (`-signetchallenge=51`), run at
   * the configured (regtest-like) difficulty. It answers like Core's signet: getblocktemplate wants the "signet"
   * rule and lists "!signet", every block needs a witness commitment and a parseable solution
   * ("bad-signet-blksig"), and `chain` is "signet". Addresses are signet's (tb1…).
   */
  network?: 'regtest' | 'signet';
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
  /** Extra coinbase outputs after the main one (e.g. a pool fee output of a SOLO coinbase). */
  extraOutputs?: { value: bigint; scriptPubKey: Uint8Array }[];
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

/** Long-poll waits as Core's getblocktemplate does them (src/rpc/mining.cpp). */
export interface LongpollWait {
  /** A mempool change is noticed only after this long (Core: 1 minute), ms. */
  mempoolFirstMs: number;
  /** …and then at this interval (Core: 10 s), ms. */
  mempoolEveryMs: number;
  /** Answer with the unchanged template after this long; undefined: never (Core has no server-side timeout). */
  timeoutMs?: number;
}

export interface EmbeddedChainEvents {
  /** The best chain changed; `previous` is the tip before (an ancestor of `tip` when blocks were only added). */
  tip: [tip: BlockEntry, previous: BlockEntry];
  mempool: [];
  block: [info: { hash: string; height: number | null; result: string | null }];
  /** A block was stored with its data (what a block file keeps): bytes as stored and the fee of each
   *  transaction after the coinbase, satoshis (the synthetic transactions' fees cannot be read from them). */
  stored: [info: { bytes: Buffer; fees: number[]; real: boolean[] }];
  /** Block data below this height was just forgotten: the coins at that height are what a restart needs. */
  pruned: [height: number];
  /** A stored block failed its connect checks when its branch was to become the best chain. */
  invalid: [info: { hash: Buffer; reason: string }];
  /** A real (signed) transaction entered the mempool. */
  tx: [txid: string];
}

/** A stored block as a block file keeps it: whole (recent), or by its header (data pruned). */
export type PersistedBlock =
  | { kind: 'block'; entry: BlockEntry; bytes: Buffer; fees: number[]; real: boolean[] }
  | { kind: 'header'; entry: BlockEntry };

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
  readonly network: 'regtest' | 'signet';
  /** Set while blocks are replayed from a block file: no logs, no `stored` events, no clock checks. */
  private restoring = false;
  /** Whether the last restoreBlock() stored its block (as it was when first submitted). */
  lastRestoreStored = false;
  /** Blocks stored with their data at some point (what a block file holds; not the invalid stubs). */
  private readonly persisted = new WeakSet<BlockEntry>();
  /** Coins of the active chain (coinbase outputs and real transactions' outputs), with each block's undo. */
  readonly utxo = new UtxoSet();
  private readonly undos = new Map<BlockEntry, Undo>();
  /** Coinbase txid → the block that carries it, for the wallet's gettransaction. */
  readonly coinbaseTxs = new Map<string, BlockEntry>();
  /** estimatesmartfee's answer in sat/vB; null answers as Core does without data (an error list). */
  feeEstimate: number | null = null;

  constructor(opts: EmbeddedChainOptions = {}) {
    super();
    this.network = opts.network ?? 'regtest';
    this.now = opts.now ?? Date.now;
    this.log = opts.logger;
    this.bits = bitsForDifficulty(opts.difficulty);
    this.target = bitsToTarget(this.bits);
    this.mempoolTxs = Math.max(0, Math.floor(opts.mempoolTxs ?? 40));
    this.refreshTxs = Math.max(1, Math.floor(opts.mempoolRefreshTxs ?? Math.ceil(this.mempoolTxs / 8)));
    this.pruneDepth = Math.max(0, Math.floor(opts.pruneDepth ?? 1000));
    const g = this.network === 'signet' ? signetGenesis() : regtestGenesis();
    const d = describeBlock(g);
    this.index = new BlockIndex({
      hash: d.hash, header: g.header, bytes: serializeBlock(g), txids: d.txids, nTx: 1, size: d.size,
      strippedSize: d.strippedSize, weight: d.weight, coinbaseOut: g.txs[0].outputs[0].value,
    });
    this.index.genesis.connectError = null;
    this.index.genesis.fees = 0n;
    this.connectCoins(this.index.genesis);
    this.addSynthetic(this.mempoolTxs);
    const refreshMs = opts.mempoolRefreshMs ?? 10_000;
    if (refreshMs > 0) {
      this.timer = setInterval(() => this.refreshMempool(), refreshMs);
      this.timer.unref(); // an in-process chain alone never keeps the process alive
    }
  }

  get tip(): BlockEntry { return this.index.tip; }
  get isSignet(): boolean { return this.network === 'signet'; }
  /** Blocks deeper than this below the tip keep no data (0: all do). */
  get pruneDepthBlocks(): number { return this.pruneDepth; }
  /** Core's signet_challenge of a `-signetchallenge=51` signet (hex). */
  get signetChallenge(): string | undefined { return this.isSignet ? '51' : undefined; }
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
        tip: this.tip, mempool: this.templateCandidates(), bits: this.bits, longpollid: lpid, nowSec: this.nowSec(),
      });
    }
    const t = this.templateCache;
    const signet = this.isSignet
      ? { rules: [...t.rules.slice(0, 2), '!signet', ...t.rules.slice(2)], signet_challenge: this.signetChallenge }
      : {};
    return { ...t, ...signet, curtime: Math.max(this.nowSec(), t.mintime) };
  }

  /** Long polls waiting right now (each pins one RPC worker, as in Core). */
  get longpollsWaiting(): number { return this.pendingLongpolls; }
  private pendingLongpolls = 0;

  /**
   * A BIP22 long poll as Core holds it: answers at once when the id's tip is not the current tip, as soon as the
   * tip changes, and for mempool changes only after `mempoolFirstMs` (then every `mempoolEveryMs`). It never
   * times out unless `timeoutMs` is set, and it does not notice a client that went away (only `signal`, the
   * server shutting down, ends it).
   */
  waitForChange(longpollId: string, wait: LongpollWait, signal?: AbortSignal): Promise<void> {
    const watchedTip = longpollId.slice(0, 64).toLowerCase();
    const watchedMempool = longpollId.slice(64);
    const tipMoved = (): boolean => this.tip.hashHex !== watchedTip;
    const mempoolMoved = (): boolean => String(this.mempoolVersion) !== watchedMempool;
    if (this.closed || signal?.aborted || tipMoved()) return Promise.resolve();
    this.pendingLongpolls++;
    return new Promise((resolve) => {
      let mempoolTimer: NodeJS.Timeout | undefined;
      let timeout: NodeJS.Timeout | undefined;
      const done = (): void => {
        clearTimeout(mempoolTimer);
        clearTimeout(timeout);
        this.waiters.delete(check);
        signal?.removeEventListener('abort', done);
        this.pendingLongpolls--;
        resolve();
      };
      const check = (): void => { if (this.closed || tipMoved()) done(); };
      const mempoolCheck = (): void => {
        if (mempoolMoved()) done();
        else mempoolTimer = setTimeout(mempoolCheck, wait.mempoolEveryMs);
      };
      mempoolTimer = setTimeout(mempoolCheck, wait.mempoolFirstMs);
      if (wait.timeoutMs !== undefined) timeout = setTimeout(done, wait.timeoutMs);
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
    return this.submitDecoded(decodeBlock(bytes), bytes);
  }

  /** submitBlock once decoded; `raw` is the block's canonical serialization (kept instead of a new one). */
  private submitDecoded(d: DecodedBlock, raw: Uint8Array | null): string | null {
    if (!isCoinbase(d.block.txs[0])) throw new RpcFault(RPC_DESERIALIZATION_ERROR, 'Block does not start with a coinbase');
    const known = this.index.getByHash(d.hash);
    if (known) return this.report(d, known.height, known.failed ? 'duplicate-invalid' : 'duplicate');
    const prev = this.index.getByHash(d.block.header.prevHash) ?? null;
    if (prev && addDefaultCoinbaseWitness(d.block)) { d = describeBlock(d.block); raw = null; }
    const { result, height } = this.accept(d, prev, raw);
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
    return this.connectCheckTxs(d.txids, d.block.txs[0].outputs.reduce((s, o) => s + o.value, 0n), this.tip, null).error
      ?? this.checkCoins({ height: this.tip.height + 1, txs: d.block.txs, isReal: (id) => this.isReal(id) }, new OverlayView(this.utxo));
  }

  /**
   * Replays a block from the block file: its transactions are offered again with their recorded fees, then it
   * goes through submitblock's validation (no clock check). Returns submitblock's answer.
   */
  restoreBlock(bytes: Buffer, fees: readonly number[], real: readonly boolean[] | null = null): string | null {
    const d = decodeStoredBlock(bytes);
    const parent = this.index.getByHash(d.block.header.prevHash);
    const bornHeight = parent ? parent.height : this.tip.height;
    // Records from before the real flags: a real transaction spends coins (of the chain or of an earlier real
    // one in the block); a synthetic one spends made-up outpoints, never coins.
    const created = new Set<string>();
    const isReal = (tx: Tx, i: number): boolean => {
      if (real) return real[i] === true;
      const yes = tx.inputs.every((_, k) => { const key = inputKey(tx, k); return created.has(key) || this.utxo.get(key) !== undefined; });
      if (yes) tx.outputs.forEach((_, vout) => created.add(outKey(hashToDisplay(d.txids[i + 1]), vout)));
      return yes;
    };
    d.block.txs.slice(1).forEach((tx, i) => {
      const fee = fees[i];
      if (fee === undefined || fee < 0) return; // never offered: left unknown, as it was
      const id = hashToDisplay(d.txids[i + 1]);
      if (this.offered.has(id)) return;
      // A real transaction's outputs are coins (and its inputs spend coins): it must come back as real.
      const o: OfferedTx = { ...offer(tx, bornHeight, 1, d.forms[i + 1]), fee };
      if (isReal(tx, i)) o.real = { tx, inputs: tx.inputs.map((_, k) => inputKey(tx, k)) };
      this.offered.set(id, o);
    });
    this.restoring = true;
    this.lastRestoreStored = false;
    try {
      return this.submitDecoded(d, bytes);
    } finally {
      this.restoring = false;
    }
  }

  /**
   * Replays a block known by its header only (its data was pruned before the restart): an index entry without
   * data, on the active chain (`active`, extending the tip) or a side branch, failed or not.
   */
  restoreHeader(h: { header: BlockHeader; nTx: number; size: number; active: boolean; invalid: string | null }): BlockEntry {
    const parent = this.index.getByHash(h.header.prevHash);
    if (!parent) throw new Error(`restoreHeader: unknown parent ${hashToDisplay(h.header.prevHash)}`);
    const entry = this.index.add({
      hash: headerHash(h.header), header: h.header, bytes: null, txids: null, nTx: h.nTx, size: h.size,
      // Not known without the data, and only read for blocks that have it.
      strippedSize: h.size, weight: h.size * 4, coinbaseOut: 0n,
      failed: h.invalid === null ? null : { kind: 'invalid', reason: h.invalid },
    }, parent);
    this.persisted.add(entry);
    if (h.active) {
      if (parent !== this.tip) throw new Error('restoreHeader: an active block must extend the tip');
      this.index.active.push(entry);
      entry.connectError = null;
    }
    this.index.markFailuresChanged();
    return entry;
  }

  /** After restoreHeader(): block data and old transactions below this height are already gone. */
  restorePrunedTo(height: number): void {
    this.prunedTo = Math.max(this.prunedTo, height);
  }

  /** Height below which block data is forgotten (0: none is). */
  get prunedHeight(): number { return this.prunedTo; }

  /** After restoreHeader() up to the block a saved chain state was taken at: the coins at that block. */
  restoreCoins(coins: Iterable<[string, Coin]>): void {
    this.utxo.clear();
    for (const [k, c] of coins) this.utxo.add(k, c);
  }

  /**
   * The coins of the active chain as they were at `height` (the tip's coins with the blocks above rolled back
   * through their undo data; `height` must not be below the pruned height).
   */
  coinsAt(height: number): { height: number; hash: string; coins: Map<string, Coin> } {
    const coins = new Map(this.utxo.entries());
    for (let t = this.tip; t.height > height; t = t.parent as BlockEntry) {
      const undo = this.undos.get(t);
      if (!undo) throw new Error(`embedded chain: no undo data for block ${t.height} (coins at ${height} asked)`);
      for (const k of undo.created) coins.delete(k);
      for (const [k, c] of undo.spent) coins.set(k, c);
    }
    const at = this.index.active[height];
    return { height, hash: at.hashHex, coins };
  }

  /** Every stored block in arrival order, whole while its data is kept, else by header: a block file's content. */
  *persistedBlocks(): Generator<PersistedBlock> {
    for (const entry of this.index.entries()) {
      if (!this.persisted.has(entry)) continue;
      if (entry.bytes && entry.txids) {
        const offers = entry.txids.slice(1).map((id) => this.offered.get(hashToDisplay(id)));
        yield { kind: 'block', entry, bytes: entry.bytes, fees: offers.map((o) => o?.fee ?? -1), real: offers.map((o) => o?.real !== undefined) };
      } else {
        yield { kind: 'header', entry };
      }
    }
  }

  private report(d: DecodedBlock, height: number | null, result: string | null): string | null {
    const hash = hashToDisplay(d.hash);
    if (this.restoring) return result;
    this.emit('block', { hash, height, result });
    if (result === null) this.log?.debug({ hash, height, txs: d.block.txs.length }, 'embedded chain: block accepted');
    else this.log?.info({ hash, height, reason: result }, 'embedded chain: block not accepted');
    return result;
  }

  private accept(d: DecodedBlock, prev: BlockEntry | null, raw: Uint8Array | null = null): { result: string | null; height: number | null } {
    // A block read back from the block file passed every check when it arrived: only what damage would break.
    const early = this.restoring ? checkStoredBlock(d) : checkBlock(d, { checkPow: true, signet: this.isSignet });
    if (early) return { result: early.reason, height: null };
    if (!prev) return { result: 'prev-blk-not-found', height: null };
    const height = prev.height + 1;
    if (prev.failed) return { result: 'bad-prevblk', height };
    // A block read back from the block file was accepted once: the clock check (time-too-new) is not redone.
    const header = contextualCheckHeader(d.block.header, prev, this.bits, this.restoring ? Number.MAX_SAFE_INTEGER : this.nowSec());
    if (header) return { result: header.reason, height };
    const entryData = {
      hash: d.hash, header: d.block.header, nTx: d.block.txs.length, size: d.size, strippedSize: d.strippedSize,
      weight: d.weight, coinbaseOut: d.block.txs[0].outputs.reduce((s, o) => s + o.value, 0n),
    };
    const body = this.restoring ? null : contextualCheckBlock(d, prev);
    if (body) {
      // Core caches consensus failures as BLOCK_FAILED_VALID (a resubmission is "duplicate-invalid"), but not
      // mutations, which say nothing about the header.
      if (!body.mutated) {
        this.index.add({ ...entryData, bytes: null, txids: null, failed: { kind: 'invalid', reason: body.reason } }, prev);
      }
      return { result: body.reason, height };
    }
    const bytes = raw ? Buffer.from(raw) : serializeBlock(d.block);
    const entry = this.index.add({ ...entryData, bytes, txids: d.txids }, prev);
    this.parsed = { entry, txs: d.block.txs };
    const fees: number[] = [];
    const real: boolean[] = [];
    for (let i = 1; i < d.txids.length; i++) {
      const o = this.offered.get(hashToDisplay(d.txids[i]));
      o?.minedIn.push(entry);
      // -1: a transaction this chain never offered (the block fails its connect checks when it is connected).
      fees.push(o ? o.fee : -1);
      real.push(o?.real !== undefined);
    }
    this.persisted.add(entry);
    if (this.restoring) this.lastRestoreStored = true;
    else this.emit('stored', { bytes, fees, real });
    this.index.noteNewBlock(entry);
    const before = this.tip;
    const checked = this.activateBestChain();
    this.finishTipChange(before);
    return { result: checked.has(entry) ? (checked.get(entry) as string | null) : 'inconclusive', height };
  }

  /** ConnectBlock's checks that need the branch: offered, unspent transactions; coinbase within subsidy + fees. */
  private connectCheck(b: BlockEntry, view: OverlayView): string | null {
    if (b.connectError === undefined) {
      if (!b.txids) return null;
      const r = this.connectCheckTxs(b.txids, b.coinbaseOut, b.parent as BlockEntry, b);
      b.connectError = r.error ?? this.checkCoins(this.blockTxs(b), view);
      b.fees = r.fees;
      return b.connectError;
    }
    // Checked before (the result only depends on the block's ancestors): its coins still move in the view.
    if (b.connectError === null && b.bytes) tryApplyBlock(view, this.blockTxs(b));
    return b.connectError;
  }

  private isReal(txidDisplay: string): boolean {
    return this.offered.get(txidDisplay)?.real !== undefined;
  }

  /** The last block parsed (a block is connect-checked, then connected, right after it arrives). */
  private parsed: { entry: BlockEntry; txs: Tx[] } | null = null;

  private blockTxs(b: BlockEntry): BlockTxs {
    if (this.parsed?.entry !== b) this.parsed = { entry: b, txs: parseBlock(b.bytes as Buffer).txs };
    return { height: b.height, txs: this.parsed.txs, txids: b.txids ?? undefined, isReal: (id) => this.isReal(id) };
  }

  /** The real transactions of a block against the coins before it: present, mature, signed. Applies them to view. */
  private checkCoins(b: BlockTxs, view: OverlayView): string | null {
    return tryApplyBlock(view, b, (tx, i, coin) => {
      if (!coin) return 'bad-txns-inputs-missingorspent';
      if (coin.coinbase && b.height - coin.height < COINBASE_MATURITY) return 'bad-txns-premature-spend-of-coinbase';
      return checkInput(tx, i, coin);
    }).error;
  }

  /** The block joins the active chain: its coins move (undo kept for a reorg). */
  private connectCoins(b: BlockEntry): void {
    const r = tryApplyBlock(this.utxo, this.blockTxs(b));
    // Checked already on the way in; failing here would be a bug in the checks.
    if (r.error || !r.undo) throw new Error(`embedded chain: connecting block ${b.hashHex}: ${r.error}`);
    this.undos.set(b, r.undo);
    const cb = b.txids?.[0];
    if (cb) this.coinbaseTxs.set(hashToDisplay(cb), b);
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
      // The coins as they will be: the current tip rolled back to the fork, then each path block in turn.
      const view = new OverlayView(this.utxo);
      for (let t: BlockEntry = this.tip; t !== fork; t = t.parent as BlockEntry) view.rollBack(this.undos.get(t) as Undo);
      const bad = path.find((b) => this.connectCheck(b, view) !== null);
      if (bad) {
        checked.set(bad, bad.connectError as string);
        this.markInvalid(bad, { kind: 'invalid', reason: bad.connectError as string });
        if (!this.restoring) this.emit('invalid', { hash: bad.hash, reason: bad.connectError as string });
        continue;
      }
      while (this.tip !== fork) this.disconnectTip();
      for (const b of path) {
        this.index.active.push(b);
        this.connectCoins(b);
        for (const id of b.txids?.slice(1) ?? []) this.mempool.delete(hashToDisplay(id));
        checked.set(b, null);
      }
    }
  }

  /** The tip leaves the active chain; its transactions go back to the mempool. */
  private disconnectTip(): void {
    const t = this.index.active.pop() as BlockEntry;
    const undo = this.undos.get(t);
    if (undo) this.utxo.disconnect(undo);
    this.undos.delete(t);
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
    this.revalidateRealTxs();
    if (this.mempool.size < this.mempoolTxs) this.addSynthetic(this.mempoolTxs - this.mempool.size);
    if (!this.restoring) {
      this.log?.info({ height: this.tip.height, hash: this.tip.hashHex, reorg: !this.index.isActive(before) }, 'embedded chain: new tip');
    }
    if (this.pruneDepth > 0 && this.tip.height - this.pruneDepth - this.prunedTo >= PRUNE_EVERY) this.prune();
    this.emit('tip', this.tip, before);
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
      if (e.height > 0 && e.height <= cutoff) {
        if (e.txids?.[0]) this.coinbaseTxs.delete(hashToDisplay(e.txids[0]));
        e.bytes = null; e.txids = null;
        this.undos.delete(e);
      }
    }
    let unmined = 0;
    for (const [id, o] of this.offered) {
      if (o.minedIn.length > 0 || this.mempool.has(id)) continue;
      if (o.bornHeight < cutoff || ++unmined > MAX_FORGOTTEN_OFFERS) this.offered.delete(id);
    }
    this.prunedTo = cutoff;
    if (!this.restoring) this.emit('pruned', cutoff);
  }

  // ---------- mining ----------

  /** CPU-mines one block (by default on the tip with the template's transactions) and submits it. */
  async mineBlock(opts: MineBlockOptions = {}): Promise<MinedBlock> {
    const prev = opts.prevHash ? this.lookup(opts.prevHash) : this.tip;
    const scriptPubKey = opts.scriptPubKey ? Buffer.from(opts.scriptPubKey) : opts.address ? this.addressScript(opts.address) : OP_TRUE;
    const choice = opts.txs ?? (prev === this.tip ? 'mempool' : 'none');
    const txs = choice === 'none' ? [] : choice === 'mempool' ? selectTransactions(this.templateCandidates())
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
        coinbaseValue: opts.coinbaseValue ?? blockSubsidy(height) + fees - (opts.extraOutputs ?? []).reduce((s, o) => s + o.value, 0n),
        extraOutputs: opts.extraOutputs, txs, extranonce,
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

  // ---------- real transactions (the wallet's) ----------

  /** Real mempool transactions, parents before children. */
  private realMempool(): OfferedTx[] {
    const real = [...this.mempool.values()].filter((o) => o.real);
    const byId = new Map(real.map((o) => [o.txidHex, o]));
    const out: OfferedTx[] = [];
    const seen = new Set<string>();
    const visit = (o: OfferedTx): void => {
      if (seen.has(o.txidHex)) return;
      seen.add(o.txidHex);
      for (const k of o.real!.inputs) {
        const parent = byId.get(k.slice(0, 64));
        if (parent) visit(parent);
      }
      out.push(o);
    };
    for (const o of real) visit(o);
    return out;
  }

  /** What a block on the tip would carry, in order: real transactions (parents first), then synthetic by fee rate. */
  templateCandidates(): OfferedTx[] {
    return [...this.realMempool(), ...this.mempool.byFeeRate().filter((o) => !o.real)];
  }

  /** The coins a new transaction may spend: the active chain's and the mempool's real outputs; who spends what. */
  mempoolCoins(): { view: CoinView; spentBy: Map<string, string> } {
    const created = new Map<string, Coin>();
    const spentBy = new Map<string, string>();
    for (const o of this.realMempool()) {
      for (const k of o.real!.inputs) spentBy.set(k, o.txidHex);
      o.real!.tx.outputs.forEach((out, vout) => created.set(outKey(o.txidHex, vout), { value: out.value, script: out.scriptPubKey, height: this.tip.height + 1, coinbase: false }));
    }
    return { view: { get: (k) => this.utxo.get(k) ?? created.get(k) }, spentBy };
  }

  /**
   * sendrawtransaction: check a signed transaction against the coins (present, unspent or replaceable per BIP125,
   * coinbase mature, signatures valid, fee at least 1 sat/vB, no dust) and put it in the mempool. Returns the txid;
   * an answer already in the mempool is not an error (as Core).
   */
  acceptTransaction(bytes: Uint8Array): string {
    let tx: Tx;
    try {
      tx = parseTx(bytes);
      if (!serializeTx(tx, true).equals(Buffer.from(bytes))) throw new Error('non-canonical');
    } catch {
      throw new RpcFault(RPC_DESERIALIZATION_ERROR, 'TX decode failed. Make sure the tx has at least one input.');
    }
    if (isCoinbase(tx)) throw new RpcFault(RPC_VERIFY_REJECTED, 'coinbase');
    const bad = checkTransaction(tx);
    if (bad) throw new RpcFault(RPC_VERIFY_REJECTED, bad);
    const id = hashToDisplay(txid(tx));
    if (this.mempool.has(id)) return id;
    if (tx.outputs.some((_, vout) => this.utxo.get(outKey(id, vout)))) throw new RpcFault(RPC_VERIFY_ALREADY_IN_CHAIN, 'Transaction outputs already in utxo set');
    const { view, spentBy } = this.mempoolCoins();
    const conflicts = new Set<string>();
    let inSum = 0n;
    const inputs: string[] = [];
    for (let i = 0; i < tx.inputs.length; i++) {
      const k = inputKey(tx, i);
      inputs.push(k);
      const coin = view.get(k);
      if (!coin) throw new RpcFault(RPC_VERIFY_ERROR, 'bad-txns-inputs-missingorspent');
      const by = spentBy.get(k);
      if (by) conflicts.add(by);
      if (coin.coinbase && this.tip.height + 1 - coin.height < COINBASE_MATURITY) {
        throw new RpcFault(RPC_VERIFY_REJECTED, 'bad-txns-premature-spend-of-coinbase');
      }
      const sig = checkInput(tx, i, coin);
      if (sig) throw new RpcFault(RPC_VERIFY_REJECTED, sig);
      inSum += coin.value;
    }
    const outSum = tx.outputs.reduce((s, o) => s + o.value, 0n);
    if (inSum < outSum) throw new RpcFault(RPC_VERIFY_REJECTED, 'bad-txns-in-belowout');
    const fee = inSum - outSum;
    const weight = serializeTx(tx, false).length * (WITNESS_SCALE_FACTOR - 1) + Buffer.from(bytes).length;
    const vsize = BigInt(Math.ceil(weight / WITNESS_SCALE_FACTOR));
    if (fee < vsize) throw new RpcFault(RPC_VERIFY_REJECTED, `min relay fee not met, ${fee} < ${vsize}`);
    if (tx.outputs.some((o) => o.scriptPubKey[0] !== 0x6a && o.value < dustThreshold(o.scriptPubKey))) throw new RpcFault(RPC_VERIFY_REJECTED, 'dust');
    if (conflicts.size > 0) this.replace(conflicts, fee, vsize);
    const o: OfferedTx = { ...offer(tx, this.tip.height), fee: Number(fee), real: { tx, inputs } };
    this.admit(o);
    this.mempoolChanged();
    this.emit('tx', id);
    return id;
  }

  /** BIP125: the conflicting transactions (and their descendants) leave if they signal and pay less. */
  private replace(conflicts: Set<string>, fee: bigint, vsize: bigint): void {
    const evict = new Set(conflicts);
    for (let grew = true; grew;) {
      grew = false;
      for (const o of this.realMempool()) {
        if (!evict.has(o.txidHex) && o.real!.inputs.some((k) => evict.has(k.slice(0, 64)))) { evict.add(o.txidHex); grew = true; }
      }
    }
    let oldFees = 0n;
    for (const id of evict) {
      const o = this.offered.get(id) as OfferedTx;
      if (conflicts.has(id) && !o.real!.tx.inputs.some((i) => i.sequence < 0xfffffffe)) throw new RpcFault(RPC_VERIFY_REJECTED, 'txn-mempool-conflict');
      oldFees += BigInt(o.fee);
    }
    if (fee <= oldFees) throw new RpcFault(RPC_VERIFY_REJECTED, `insufficient fee, rejecting replacement; new fee ${fee} <= old fees ${oldFees}`);
    if (fee - oldFees < vsize) throw new RpcFault(RPC_VERIFY_REJECTED, `insufficient fee, rejecting replacement; not enough additional fees to relay; ${fee - oldFees} < ${vsize}`);
    for (const id of evict) this.mempool.delete(id);
  }

  /** After the tip moved: real mempool transactions whose coins are gone (a reorg) or not mature leave. */
  private revalidateRealTxs(): void {
    const view = new OverlayView(this.utxo);
    for (const o of this.realMempool()) {
      const ok = o.real!.inputs.every((k) => {
        const c = view.get(k);
        return c && !(c.coinbase && this.tip.height + 1 - c.height < COINBASE_MATURITY);
      });
      if (!ok) {
        this.mempool.delete(o.txidHex);
        this.log?.info({ txid: o.txidHex }, 'embedded chain: transaction left the mempool (its inputs are gone)');
        continue;
      }
      for (const k of o.real!.inputs) view.spend(k);
      o.real!.tx.outputs.forEach((out, vout) => view.add(outKey(o.txidHex, vout), { value: out.value, script: out.scriptPubKey, height: this.tip.height + 1, coinbase: false }));
    }
  }

  /** Where a transaction is: in the mempool, in an active block (with its entry), or neither. */
  locateTx(txidDisplay: string): { tx: Tx; bytes: Buffer; block: BlockEntry | null; inMempool: boolean } | null {
    const id = txidDisplay.toLowerCase();
    const o = this.offered.get(id);
    if (o) {
      const block = o.minedIn.find((m) => this.index.isActive(m)) ?? null;
      return { tx: o.real?.tx ?? parseTx(o.bytes), bytes: o.bytes, block, inMempool: this.mempool.has(id) };
    }
    const cbBlock = this.coinbaseTxs.get(id);
    if (cbBlock && this.index.isActive(cbBlock) && cbBlock.bytes) {
      const cb = parseBlock(cbBlock.bytes).txs[0];
      return { tx: cb, bytes: serializeTx(cb, true), block: cbBlock, inMempool: false };
    }
    return null;
  }

  private addressScript(address: string): Buffer {
    try {
      return addressToScript(address, this.network);
    } catch {
      throw new RpcFault(RPC_INVALID_ADDRESS_OR_KEY, 'Error: Invalid address');
    }
  }

}

/** Bitcoin Core's dust threshold at the default dust relay fee (3 sat/vB): the cost of spending the output. */
function dustThreshold(script: Buffer): bigint {
  const len = script.length;
  const witness = len >= 4 && len <= 42 && (script[0] === 0 || (script[0] >= 0x51 && script[0] <= 0x60)) && script[1] === len - 2;
  return BigInt((8 + 1 + len + (witness ? 67 : 148)) * 3);
}
