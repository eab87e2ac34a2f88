import { Reader, Writer, concat, encodeVarInt, hashToDisplay } from './bytes.ts';
import { sha256d } from './hash.ts';

export interface TxInput {
  /** Previous txid, internal byte order. */
  prevTxid: Buffer;
  vout: number;
  scriptSig: Buffer;
  sequence: number;
  /** BIP141 witness stack; empty when the input has none. */
  witness: Buffer[];
}

export interface TxOutput {
  /** Satoshis. */
  value: bigint;
  scriptPubKey: Buffer;
}

export interface Tx {
  version: number;
  inputs: TxInput[];
  outputs: TxOutput[];
  locktime: number;
}

export function hasWitness(tx: Tx): boolean {
  return tx.inputs.some((i) => i.witness.length > 0);
}

/** Parse one transaction, with or without BIP144 witness serialization (marker 0x00, flag 0x01). */
export function readTx(r: Reader): Tx {
  const version = r.i32();
  let inCount = r.varInt();
  let segwit = false;
  if (inCount === 0) {
    const flag = r.u8();
    if (flag !== 1) throw new Error(`bad segwit flag ${flag}`);
    segwit = true;
    inCount = r.varInt();
  }
  const inputs: TxInput[] = [];
  for (let i = 0; i < inCount; i++) {
    const prevTxid = r.bytes(32);
    const vout = r.u32();
    const scriptSig = r.varBytes();
    const sequence = r.u32();
    inputs.push({ prevTxid, vout, scriptSig, sequence, witness: [] });
  }
  const outCount = r.varInt();
  const outputs: TxOutput[] = [];
  for (let i = 0; i < outCount; i++) outputs.push({ value: r.u64(), scriptPubKey: r.varBytes() });
  if (segwit) {
    for (const input of inputs) {
      const items = r.varInt();
      for (let k = 0; k < items; k++) input.witness.push(r.varBytes());
    }
  }
  const locktime = r.u32();
  return { version, inputs, outputs, locktime };
}

export function parseTx(bytes: Uint8Array): Tx {
  const r = new Reader(bytes);
  const tx = readTx(r);
  if (r.remaining !== 0) throw new Error(`${r.remaining} trailing bytes after transaction`);
  return tx;
}

/** Serialize; `withWitness` gives the BIP144 form when the tx has witness data, else the legacy form. */
export function serializeTx(tx: Tx, withWitness = true): Buffer {
  const w = new Writer();
  const segwit = withWitness && hasWitness(tx);
  w.i32(tx.version);
  if (segwit) w.u8(0).u8(1);
  w.varInt(tx.inputs.length);
  for (const i of tx.inputs) w.bytes(i.prevTxid).u32(i.vout).varBytes(i.scriptSig).u32(i.sequence);
  w.varInt(tx.outputs.length);
  for (const o of tx.outputs) w.u64(o.value).varBytes(o.scriptPubKey);
  if (segwit) {
    for (const i of tx.inputs) {
      w.varInt(i.witness.length);
      for (const item of i.witness) w.varBytes(item);
    }
  }
  w.u32(tx.locktime);
  return w.finish();
}

/** txid: sha256d of the non-witness serialization (internal byte order). */
export function txid(tx: Tx): Buffer {
  return sha256d(serializeTx(tx, false));
}

/** wtxid: sha256d of the witness serialization (BIP141); equals txid for a tx without witness. */
export function wtxid(tx: Tx): Buffer {
  return sha256d(serializeTx(tx, true));
}

export function txidHex(tx: Tx): string {
  return hashToDisplay(txid(tx));
}

/**
 * The BIP144 form of a coinbase given its non-witness bytes: insert marker+flag after the version and the
 * one-item witness (the 32-byte reserved value, BIP141) before the locktime.
 */
export function coinbaseWithWitness(nonWitness: Uint8Array, reservedValue: Uint8Array = Buffer.alloc(32)): Buffer {
  const n = nonWitness.length;
  return concat([
    nonWitness.subarray(0, 4),
    Buffer.from([0x00, 0x01]),
    nonWitness.subarray(4, n - 4),
    Buffer.from([0x01]),
    encodeVarInt(reservedValue.length),
    reservedValue,
    nonWitness.subarray(n - 4),
  ]);
}
