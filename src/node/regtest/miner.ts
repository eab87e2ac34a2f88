// CPU mining for generatetoaddress and for tests that need blocks (also on side branches). The difficulty of
// the embedded chain is low, so a few thousand sha256d calls usually find a block; the loop yields to the event
// loop between slices so the RPC server keeps answering.

import { setImmediate as yieldToLoop } from 'node:timers/promises';
import {
  type BlockHeader, assembleBlock, buildCoinbase, coinbaseWithWitness, concat, hashToBigInt, merkleRoot,
  serializeHeader, sha256d,
} from '../../chain/index.ts';
import type { OfferedTx } from './mempool.ts';
import { defaultWitnessCommitment } from './template.ts';

export interface CandidateSpec {
  prevHash: Buffer;
  height: number;
  version: number;
  bits: number;
  time: number;
  scriptPubKey: Buffer;
  /** Satoshis paid by the coinbase's main output (subsidy + fees unless a test wants otherwise). */
  coinbaseValue: bigint;
  /** Further coinbase outputs (e.g. a pool fee output). */
  extraOutputs?: { value: bigint; scriptPubKey: Uint8Array }[];
  txs: readonly OfferedTx[];
  /** Varies the coinbase (and so the merkle root) when a nonce range is exhausted. */
  extranonce: number;
}

export interface Candidate {
  header: BlockHeader;
  coinbase: Buffer;
  txs: Buffer[];
}

const TAG = Buffer.from('/hashhub-embedded/');

/** A block on `prevHash` paying `scriptPubKey`, with a BIP34 height, BIP141 commitment and witness reserved value. */
export function buildCandidate(spec: CandidateSpec): Candidate {
  const { coinb1, coinb2 } = buildCoinbase({
    height: spec.height,
    extranonceSize: 4,
    tag: TAG,
    outputs: [{ value: spec.coinbaseValue, scriptPubKey: spec.scriptPubKey },
      ...(spec.extraOutputs ?? []).map((o) => ({ value: o.value, scriptPubKey: Buffer.from(o.scriptPubKey) }))],
    witnessCommitmentScript: defaultWitnessCommitment(spec.txs),
  });
  const en = Buffer.alloc(4);
  en.writeUInt32LE(spec.extranonce >>> 0);
  const coinbaseNoWitness = concat([coinb1, en, coinb2]);
  const root = merkleRoot([sha256d(coinbaseNoWitness), ...spec.txs.map((t) => t.txid)]);
  return {
    header: { version: spec.version, prevHash: spec.prevHash, merkleRoot: root, time: spec.time, bits: spec.bits, nonce: 0 },
    coinbase: coinbaseWithWitness(coinbaseNoWitness),
    txs: spec.txs.map((t) => t.bytes),
  };
}

export function candidateBytes(c: Candidate): Buffer {
  return assembleBlock(serializeHeader(c.header), c.coinbase, c.txs);
}

export interface GrindOptions {
  /** Give up after this many hashes. */
  maxTries: number;
  signal?: AbortSignal;
  /** Hashes between yields to the event loop. */
  slice?: number;
}

/**
 * Searches nonces for a header hash that meets `target`; on success sets `header.nonce`. Stops after
 * `maxTries` hashes, at the end of the nonce range (the caller changes the extranonce) or when `signal` aborts.
 */
export async function grindNonce(header: BlockHeader, target: bigint, opts: GrindOptions): Promise<{ found: boolean; tries: number }> {
  const buf = serializeHeader(header);
  const slice = opts.slice ?? 20_000;
  let tries = 0;
  for (let nonce = 0; nonce <= 0xffffffff; nonce++) {
    if (tries >= opts.maxTries || opts.signal?.aborted) return { found: false, tries };
    buf.writeUInt32LE(nonce, 76);
    tries++;
    if (hashToBigInt(sha256d(buf)) <= target) {
      header.nonce = nonce;
      return { found: true, tries };
    }
    if (tries % slice === 0) await yieldToLoop();
  }
  return { found: false, tries };
}
