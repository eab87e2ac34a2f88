// Synthetic transactions and the mempool of the embedded chain.
//
// The transactions are real and parseable (BIP144 serialization for the segwit ones) but spend made-up
// outpoints with made-up signatures: the chain runs no scripts. What it does check is that a block only carries
// transactions it offered and that none is mined twice on one branch; so it remembers every offered
// transaction (`OfferedTx`, with its fee) until it is buried deep enough to be forgotten.

import { randomBytes, randomInt } from 'node:crypto';
import { type Tx, hashToDisplay, pushData, serializeTx, txid, wtxid } from '../../chain/index.ts';
import type { BlockEntry } from './block-index.ts';
import { WITNESS_SCALE_FACTOR } from './params.ts';
import { txLegacySigOps } from './validate.ts';

export interface OfferedTx {
  txid: Buffer;
  txidHex: string;
  /** Internal byte order. */
  wtxid: Buffer;
  wtxidHex: string;
  /** Witness serialization (what the template's `data` carries). */
  bytes: Buffer;
  /** Satoshis. */
  fee: number;
  weight: number;
  /** Sigop cost as Core's template reports it (legacy × 4 + witness). */
  sigops: number;
  /** Tip height when it was created (for forgetting unmined ones). */
  bornHeight: number;
  /** Blocks (any branch) that carry it. */
  minedIn: BlockEntry[];
  /** A real transaction (signed, spending real coins): the parsed form and the outpoints it spends. */
  real?: { tx: Tx; inputs: string[] };
}

export type SyntheticKind = 'p2wpkh' | 'p2tr' | 'p2pkh';

/** A DER-shaped ECDSA signature (random r, s below 2^255) with SIGHASH_ALL: looks real, verifies nothing. */
function fakeDerSig(): Buffer {
  const r = randomBytes(32);
  const s = randomBytes(32);
  r[0] &= 0x7f; r[0] |= 0x01;
  s[0] &= 0x7f; s[0] |= 0x01;
  return Buffer.concat([Buffer.from([0x30, 0x44, 0x02, 0x20]), r, Buffer.from([0x02, 0x20]), s, Buffer.from([0x01])]);
}

function fakePubkey(): Buffer {
  return Buffer.concat([Buffer.from([0x02 + randomInt(2)]), randomBytes(32)]);
}

const p2wpkh = (): Buffer => Buffer.concat([Buffer.from([0x00, 0x14]), randomBytes(20)]);
const p2tr = (): Buffer => Buffer.concat([Buffer.from([0x51, 0x20]), randomBytes(32)]);
const p2pkh = (): Buffer => Buffer.concat([Buffer.from([0x76, 0xa9, 0x14]), randomBytes(20), Buffer.from([0x88, 0xac])]);

/** One synthetic transaction; about two in three are segwit (P2WPKH or P2TR key-path spends). */
export function syntheticTx(kind: SyntheticKind = pickKind()): Tx {
  const nIn = 1 + randomInt(kind === 'p2pkh' ? 2 : 3);
  const nOut = 1 + randomInt(2);
  const inputs = Array.from({ length: nIn }, () => ({
    prevTxid: randomBytes(32),
    vout: randomInt(4),
    scriptSig: kind === 'p2pkh' ? Buffer.concat([pushData(fakeDerSig()), pushData(fakePubkey())]) : Buffer.alloc(0),
    sequence: kind === 'p2pkh' ? 0xffffffff : 0xfffffffd,
    witness: kind === 'p2wpkh' ? [fakeDerSig(), fakePubkey()] : kind === 'p2tr' ? [randomBytes(64)] : [],
  }));
  const script = kind === 'p2wpkh' ? p2wpkh : kind === 'p2tr' ? p2tr : p2pkh;
  const outputs = Array.from({ length: nOut }, () => ({ value: BigInt(1_000 + randomInt(100_000_000)), scriptPubKey: script() }));
  return { version: 2, inputs, outputs, locktime: 0 };
}

function pickKind(): SyntheticKind {
  const r = randomInt(100);
  return r < 50 ? 'p2wpkh' : r < 67 ? 'p2tr' : 'p2pkh';
}

/** A transaction's serializations and ids when already computed (a block read back from disk). */
export interface KnownTxForms { bytes: Buffer; strippedSize: number; txid: Buffer; wtxid: Buffer }

/** Wraps a transaction as an offer: ids, weight, sigop cost and a fee of 1–50 sat/vB. */
export function offer(tx: Tx, bornHeight: number, feeRate = 1 + randomInt(50), known?: KnownTxForms): OfferedTx {
  const bytes = known?.bytes ?? serializeTx(tx, true);
  const stripped = known?.strippedSize ?? serializeTx(tx, false).length;
  const weight = stripped * (WITNESS_SCALE_FACTOR - 1) + bytes.length;
  const vsize = Math.ceil(weight / WITNESS_SCALE_FACTOR);
  // Witness sigops: one per P2WPKH spend (two-item witness), none for taproot key paths.
  const witnessSigops = tx.inputs.filter((i) => i.witness.length === 2).length;
  const id = known?.txid ?? txid(tx);
  const wid = known?.wtxid ?? wtxid(tx);
  return {
    txid: id,
    txidHex: hashToDisplay(id),
    wtxid: wid,
    wtxidHex: hashToDisplay(wid),
    bytes,
    fee: feeRate * vsize,
    weight,
    sigops: txLegacySigOps(tx) * WITNESS_SCALE_FACTOR + witnessSigops,
    bornHeight,
    minedIn: [],
  };
}

/** Transactions waiting for a block on the active chain, oldest first. */
export class Mempool {
  private readonly txs = new Map<string, OfferedTx>();

  get size(): number { return this.txs.size; }
  has(txidHex: string): boolean { return this.txs.has(txidHex); }
  add(tx: OfferedTx): void { this.txs.set(tx.txidHex, tx); }
  delete(txidHex: string): boolean { return this.txs.delete(txidHex); }
  values(): IterableIterator<OfferedTx> { return this.txs.values(); }

  /** Drops the oldest until at most `max` remain; returns how many went. */
  trimTo(max: number): number {
    let dropped = 0;
    for (const key of this.txs.keys()) {
      if (this.txs.size <= max) break;
      this.txs.delete(key);
      dropped++;
    }
    return dropped;
  }

  /** Block-assembly order: highest fee rate first (no in-mempool dependencies exist here). */
  byFeeRate(): OfferedTx[] {
    return [...this.txs.values()].sort((a, b) => b.fee / b.weight - a.fee / a.weight);
  }
}
