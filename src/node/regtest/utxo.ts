// The embedded chain's coins: every coinbase output and every output of a real (signed, checked) transaction on
// the active chain, with undo records so a reorg puts back exactly what a block spent. The synthetic transactions
// of the mempool spend made-up outpoints and stay outside (nobody can spend their outputs either).

import { type Tx, hashToDisplay, txid } from '../../chain/index.ts';

export interface Coin {
  value: bigint;
  script: Buffer;
  /** Height of the block that created it. */
  height: number;
  coinbase: boolean;
}

export interface CoinView {
  get(key: string): Coin | undefined;
}

/** "txid:vout" with the txid in display hex. */
export function outKey(txidDisplay: string, vout: number): string {
  return `${txidDisplay}:${vout}`;
}

export function inputKey(tx: Tx, i: number): string {
  return outKey(hashToDisplay(tx.inputs[i].prevTxid), tx.inputs[i].vout);
}

/** What a block did to the coins, to undo it. */
export interface Undo {
  created: string[];
  spent: [string, Coin][];
}

/** A block's transactions as the coin set sees them: the coinbase first, then which of the others are real. */
export interface BlockTxs {
  height: number;
  txs: Tx[];
  /** The transactions' ids (internal order), when known already. */
  txids?: readonly Buffer[];
  isReal: (txidDisplay: string) => boolean;
}

/** A writable view: the base set plus changes (null = spent), e.g. the chain as it would be after a reorg. */
export class OverlayView implements CoinView {
  private readonly changes = new Map<string, Coin | null>();
  constructor(private readonly base: CoinView) {}

  get(key: string): Coin | undefined {
    const c = this.changes.get(key);
    if (c === null) return undefined;
    return c ?? this.base.get(key);
  }
  add(key: string, coin: Coin): void { this.changes.set(key, coin); }
  spend(key: string): void { this.changes.set(key, null); }

  /** Roll a connected block back: remove what it created, restore what it spent. */
  rollBack(undo: Undo): void {
    for (const k of undo.created) this.changes.set(k, null);
    for (const [k, c] of undo.spent) this.changes.set(k, c);
  }
}

/**
 * Apply a block's effects to a view, transaction by transaction; `check` is called for each input of a real
 * transaction with the coin it spends (undefined = missing) and may return a reject reason, which stops the
 * application and is returned. The undo record is filled as it goes.
 */
export function applyBlock(view: OverlayView | UtxoSet, b: BlockTxs,
  check?: (tx: Tx, i: number, coin: Coin | undefined) => string | null): { error: string | null; undo: Undo } {
  const undo: Undo = { created: [], spent: [] };
  b.txs.forEach((tx, t) => {
    const id = hashToDisplay(b.txids?.[t] ?? txid(tx));
    if (t > 0 && !b.isReal(id)) return;
    if (t > 0) {
      for (let i = 0; i < tx.inputs.length; i++) {
        const k = inputKey(tx, i);
        const coin = view.get(k);
        const err = check ? check(tx, i, coin) : coin ? null : 'bad-txns-inputs-missingorspent';
        if (err) throw new ApplyError(err);
        undo.spent.push([k, coin as Coin]);
        view.spend(k);
      }
    }
    tx.outputs.forEach((o, vout) => {
      // OP_RETURN outputs (the witness commitment) can never be spent: not coins.
      if (o.scriptPubKey[0] === 0x6a) return;
      const k = outKey(id, vout);
      view.add(k, { value: o.value, script: o.scriptPubKey, height: b.height, coinbase: t === 0 });
      undo.created.push(k);
    });
  });
  return { error: null, undo };
}

class ApplyError extends Error {}

export function tryApplyBlock(view: OverlayView | UtxoSet, b: BlockTxs,
  check?: (tx: Tx, i: number, coin: Coin | undefined) => string | null): { error: string | null; undo: Undo | null } {
  try {
    return applyBlock(view, b, check);
  } catch (e) {
    if (e instanceof ApplyError) return { error: e.message, undo: null };
    throw e;
  }
}

/** The coins of the active chain. */
export class UtxoSet implements CoinView {
  private readonly coins = new Map<string, Coin>();

  get(key: string): Coin | undefined { return this.coins.get(key); }
  add(key: string, coin: Coin): void { this.coins.set(key, coin); }
  spend(key: string): void { this.coins.delete(key); }
  clear(): void { this.coins.clear(); }
  get size(): number { return this.coins.size; }
  entries(): IterableIterator<[string, Coin]> { return this.coins.entries(); }

  /** Undo a block: what it created goes, what it spent comes back. */
  disconnect(undo: Undo): void {
    for (const k of undo.created) this.coins.delete(k);
    for (const [k, c] of undo.spent) this.coins.set(k, c);
  }
}
