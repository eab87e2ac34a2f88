import { Transaction } from '@scure/btc-signer';
import { dustLimit } from '../settings.ts';

// Building a payout transaction: coin selection, size and fee, change. Pure functions over the wallet's coins,
// so the same code pays from Core, bcoin or the embedded wallet, and an RBF replacement is built over exactly
// the inputs of the transaction it replaces.

export interface Coin {
  txid: string;
  vout: number;
  value: bigint;
  script: Buffer;
  confirmations: number;
  address?: string;
}

export interface Output {
  script: Buffer;
  value: bigint;
}

export interface BuiltTx {
  inputs: Coin[];
  outputs: Output[];
  /** Index of the change output in `outputs`, or -1. */
  changeIndex: number;
  fee: bigint;
  /** Estimated virtual size (the signed transaction's is measured after signing). */
  vsize: number;
  /** Unsigned, with witness UTXOs: what the wallet (or an external signer) signs. */
  psbt: Uint8Array;
}

export type BuildResult =
  | { kind: 'built'; tx: BuiltTx }
  | { kind: 'insufficient-funds'; need: bigint; have: bigint };

/** Signals BIP125 replaceability, so a fee bump can replace the transaction. */
export const RBF_SEQUENCE = 0xfffffffd;

/** Input vsize by the script it spends (signature sizes at their usual maximum). */
function inputVsize(script: Buffer): number {
  if (script.length === 22 && script[0] === 0x00) return 68; // P2WPKH
  if (script.length === 34 && script[0] === 0x51) return 58; // P2TR key path
  if (script.length === 23 && script[0] === 0xa9) return 91; // P2SH-P2WPKH (the usual P2SH wallet coin)
  if (script.length === 34 && script[0] === 0x00) return 105; // P2WSH (single key)
  return 148; // P2PKH
}

function outputVsize(script: Buffer): number {
  return 8 + (script.length < 253 ? 1 : 3) + script.length;
}

function varIntSize(n: number): number {
  return n < 253 ? 1 : n <= 0xffff ? 3 : 5;
}

export function estimateVsize(inputs: readonly Buffer[], outputs: readonly Buffer[]): number {
  const anyWitness = inputs.some((s) => s[0] === 0x00 || s[0] === 0x51 || s[0] === 0xa9);
  const base = 4 + 4 + varIntSize(inputs.length) + varIntSize(outputs.length) + (anyWitness ? 0.5 : 0);
  return Math.ceil(base + inputs.reduce((s, x) => s + inputVsize(x), 0) + outputs.reduce((s, x) => s + outputVsize(x), 0));
}

export function feeFor(vsize: number, satPerVb: number): bigint {
  return BigInt(Math.ceil(vsize * satPerVb));
}

function psbtOf(inputs: readonly Coin[], outputs: readonly Output[], lockTime = 0): Uint8Array {
  const tx = new Transaction({ allowUnknownOutputs: true, version: 2, lockTime });
  for (const c of inputs) tx.addInput({ txid: c.txid, index: c.vout, sequence: RBF_SEQUENCE, witnessUtxo: { script: c.script, amount: c.value } });
  for (const o of outputs) tx.addOutput({ script: o.script, amount: o.value });
  return tx.toPSBT();
}

/**
 * Pay `outputs` from `coins` at `satPerVb`: the largest coins first until the outputs and the fee are covered;
 * the rest to `changeScript`, unless it would be dust (then it goes to the fee).
 */
export function buildPayout(coins: readonly Coin[], outputs: readonly Output[], changeScript: Buffer, satPerVb: number): BuildResult {
  const need = outputs.reduce((s, o) => s + o.value, 0n);
  const sorted = [...coins].sort((a, b) => (a.value === b.value ? (a.txid === b.txid ? a.vout - b.vout : a.txid < b.txid ? -1 : 1) : a.value > b.value ? -1 : 1));
  const chosen: Coin[] = [];
  let have = 0n;
  const outScripts = outputs.map((o) => o.script);
  for (const c of sorted) {
    chosen.push(c);
    have += c.value;
    const withChange = estimateVsize(chosen.map((x) => x.script), [...outScripts, changeScript]);
    const feeWith = feeFor(withChange, satPerVb);
    const noChange = estimateVsize(chosen.map((x) => x.script), outScripts);
    const feeWithout = feeFor(noChange, satPerVb);
    if (have < need + feeWithout) continue;
    const change = have - need - feeWith;
    if (change >= dustLimit(changeScript)) {
      const outs = [...outputs, { script: changeScript, value: change }];
      return { kind: 'built', tx: { inputs: chosen, outputs: outs, changeIndex: outs.length - 1, fee: feeWith, vsize: withChange, psbt: psbtOf(chosen, outs) } };
    }
    // No change worth keeping: the remainder is fee.
    return { kind: 'built', tx: { inputs: chosen, outputs: [...outputs], changeIndex: -1, fee: have - need, vsize: noChange, psbt: psbtOf(chosen, outputs) } };
  }
  const total = coins.reduce((s, c) => s + c.value, 0n);
  return { kind: 'insufficient-funds', need: need + feeFor(estimateVsize(coins.map((c) => c.script), [...outScripts, changeScript]), satPerVb), have: total };
}

/**
 * An RBF replacement: the same inputs and payee outputs, the change lowered to reach `newFee`. Refused (null)
 * when there is no change to take it from or the change would fall below dust.
 */
export function bumpPayout(prev: { inputs: Coin[]; outputs: Output[]; changeIndex: number; fee: bigint; lockTime?: number }, newFee: bigint): BuiltTx | null {
  if (prev.changeIndex < 0 || newFee <= prev.fee) return null;
  const extra = newFee - prev.fee;
  const change = prev.outputs[prev.changeIndex];
  if (change.value - extra < dustLimit(change.script)) return null;
  const outputs = prev.outputs.map((o, i) => (i === prev.changeIndex ? { script: o.script, value: o.value - extra } : o));
  const vsize = estimateVsize(prev.inputs.map((c) => c.script), outputs.map((o) => o.script));
  return { inputs: prev.inputs, outputs, changeIndex: prev.changeIndex, fee: newFee, vsize, psbt: psbtOf(prev.inputs, outputs, prev.lockTime ?? 0) };
}

/**
 * The same payment with another nLockTime, so another txid. A small height is long past on any chain a payout
 * can run on (its coins matured 100 blocks), so the transaction stays final. Used when the transaction built
 * is byte for byte one already on record (a cancelled, never-sent batch paid again from the same coins to the
 * same change address), since a txid names one transaction of one batch.
 */
export function withLockTime(tx: BuiltTx, lockTime: number): BuiltTx {
  return { ...tx, psbt: psbtOf(tx.inputs, tx.outputs, lockTime) };
}
