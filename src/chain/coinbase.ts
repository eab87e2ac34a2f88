import { Writer, concat } from './bytes.ts';
import { pushData, pushHeight } from './script.ts';

export interface CoinbaseOutput {
  /** Satoshis. */
  value: bigint;
  scriptPubKey: Buffer;
}

export interface CoinbaseSpec {
  height: number;
  /** extranonce1 + extranonce2 bytes reserved inside the scriptSig. */
  extranonceSize: number;
  /** Pool tag, e.g. "/hashhub/". */
  tag: Uint8Array;
  /**
   * Bytes unique to this coinbase's job (pushed after the tag), so no two jobs share a coinbase: a header found on
   * one job is never a header of another (see JobManager.addTemplate).
   */
  jobNonce?: Uint8Array;
  /** GBT coinbaseaux flags, concatenated (pushed after the height when present). */
  auxFlags?: Uint8Array;
  /** Payout outputs, in order. */
  outputs: CoinbaseOutput[];
  /** Full BIP141 commitment script (OP_RETURN aa21a9ed…), appended as a zero-value output when given. */
  witnessCommitmentScript?: Buffer;
  txVersion?: number;
  locktime?: number;
}

/** The coinbase split around the extranonce: coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2 (non-witness form). */
export interface CoinbaseParts {
  coinb1: Buffer;
  coinb2: Buffer;
}

export const MAX_SCRIPTSIG = 100; // consensus: coinbase scriptSig is 2..100 bytes

export function buildCoinbase(spec: CoinbaseSpec): CoinbaseParts {
  if (!Number.isInteger(spec.extranonceSize) || spec.extranonceSize < 1 || spec.extranonceSize > 75) {
    throw new Error(`extranonce size must be 1..75 bytes, got ${spec.extranonceSize}`);
  }
  // scriptSig: BIP34 height ‖ aux flags ‖ push(extranonce) ‖ push(tag) ‖ push(job nonce). Pushes keep it a
  // parseable script.
  const head = concat([pushHeight(spec.height), spec.auxFlags?.length ? pushData(spec.auxFlags) : Buffer.alloc(0), Buffer.from([spec.extranonceSize])]);
  const tail = concat([spec.tag.length ? pushData(spec.tag) : Buffer.alloc(0), spec.jobNonce?.length ? pushData(spec.jobNonce) : Buffer.alloc(0)]);
  const scriptSigLen = head.length + spec.extranonceSize + tail.length;
  if (scriptSigLen > MAX_SCRIPTSIG) {
    throw new Error(`coinbase scriptSig would be ${scriptSigLen} bytes (max ${MAX_SCRIPTSIG}): shorten the pool tag or the extranonce`);
  }
  const outputs = [...spec.outputs];
  if (spec.witnessCommitmentScript) outputs.push({ value: 0n, scriptPubKey: spec.witnessCommitmentScript });
  if (outputs.length === 0) throw new Error('coinbase needs at least one output');

  const coinb1 = new Writer()
    .i32(spec.txVersion ?? 2)
    .varInt(1) // one input (non-witness serialization: this is what the txid hashes)
    .bytes(Buffer.alloc(32)) // null prevout hash
    .u32(0xffffffff) // null prevout index
    .varInt(scriptSigLen)
    .bytes(head)
    .finish();
  const w = new Writer().bytes(tail).u32(0xffffffff).varInt(outputs.length);
  for (const o of outputs) {
    if (o.value < 0n) throw new Error('negative output value');
    w.u64(o.value).varBytes(o.scriptPubKey);
  }
  const coinb2 = w.u32(spec.locktime ?? 0).finish();
  return { coinb1, coinb2 };
}
