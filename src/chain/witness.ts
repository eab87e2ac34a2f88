import { concat, fromHex } from './bytes.ts';
import { sha256d } from './hash.ts';
import { merkleRoot } from './merkle.ts';
import type { Tx } from './tx.ts';

// BIP141 witness commitment: OP_RETURN 0x24 aa21a9ed ‖ sha256d(witness merkle root ‖ witness reserved value).
export const WITNESS_COMMITMENT_HEADER = fromHex('6a24aa21a9ed');

/** Witness root over wtxids, with the coinbase's wtxid taken as 32 zero bytes. */
export function witnessMerkleRoot(wtxidsWithoutCoinbase: readonly Uint8Array[]): Buffer {
  return merkleRoot([Buffer.alloc(32), ...wtxidsWithoutCoinbase]);
}

export function witnessCommitment(witnessRoot: Uint8Array, reservedValue: Uint8Array = Buffer.alloc(32)): Buffer {
  return sha256d(concat([witnessRoot, reservedValue]));
}

export function witnessCommitmentScript(commitment: Uint8Array): Buffer {
  return concat([WITNESS_COMMITMENT_HEADER, commitment]);
}

/** The commitment a coinbase carries: the last output whose script starts with the BIP141 header. */
export function findWitnessCommitment(coinbase: Tx): Buffer | null {
  for (let i = coinbase.outputs.length - 1; i >= 0; i--) {
    const s = coinbase.outputs[i].scriptPubKey;
    if (s.length >= 38 && s.subarray(0, 6).equals(WITNESS_COMMITMENT_HEADER)) return Buffer.from(s.subarray(6, 38));
  }
  return null;
}
