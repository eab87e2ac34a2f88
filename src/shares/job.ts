import {
  type CoinbaseOutput, assembleBlock, bitsToTarget, buildCoinbase, coinbaseMerkleBranch, coinbaseWithWitness, fromHex,
  hashFromDisplay, targetBytes, targetToDifficulty, toHex,
} from '../chain/index.ts';
import type { BlockTemplate } from '../node/types.ts';
import { WorkHasher, prevHashToStratum, u32Hex } from './work.ts';

/** One unit of work handed to miners: a template plus our coinbase, everything per job computed once. */
export interface Job {
  id: string;
  height: number;
  /** Internal byte order. */
  prevHash: Buffer;
  prevHashHex: string;
  version: number;
  bits: number;
  networkTarget: bigint;
  /** The same, 32 little-endian bytes, for the per-share compare. */
  networkTargetBytes: Buffer;
  /** Network difficulty: a session's share difficulty never goes above it (a miner only submits hashes that
   *  meet its share target, so a higher one would hide blocks). */
  networkDifficulty: number;
  /** Header time given to miners; shares may roll forward from it. */
  ntime: number;
  coinbaseValue: bigint;
  hasher: WorkHasher;
  /** Template transactions, serialized with witness, in block order. */
  txData: Buffer[];
  /** Whether the coinbase carries a BIP141 commitment (then the block's coinbase needs the reserved value). */
  segwit: boolean;
  createdAt: number;
  /** mining.notify line split around the job id, ntime and clean flag: head + id + body + ntime + clean. */
  notifyHead: string;
  notifyBody: string;
}

export interface JobSpec {
  id: string;
  extranonceSize: number;
  tag: Uint8Array;
  /** Payout outputs for a coinbase of the given value (seam for SOLO/PPLNS splits later). */
  outputs: (coinbaseValue: bigint) => CoinbaseOutput[];
  now: number;
}

export function buildJob(t: BlockTemplate, spec: JobSpec): Job {
  const coinbaseValue = BigInt(t.coinbasevalue);
  // Add the commitment only when the template's rules include segwit (bcoin returns one before activation).
  const segwit = t.rules.some((r) => r === 'segwit' || r === '!segwit') && !!t.default_witness_commitment;
  const parts = buildCoinbase({
    height: t.height,
    extranonceSize: spec.extranonceSize,
    tag: spec.tag,
    outputs: spec.outputs(coinbaseValue),
    witnessCommitmentScript: segwit ? fromHex(t.default_witness_commitment!) : undefined,
  });
  const txids = t.transactions.map((tx) => hashFromDisplay(tx.txid));
  const branch = coinbaseMerkleBranch(txids);
  const prevHash = hashFromDisplay(t.previousblockhash);
  const bits = parseInt(t.bits, 16) >>> 0;
  const ntime = Math.max(t.curtime, t.mintime);
  const branchJson = JSON.stringify(branch.map(toHex));
  const prevHashStratum = prevHashToStratum(prevHash);
  return {
    id: spec.id,
    height: t.height,
    prevHash,
    prevHashHex: t.previousblockhash,
    version: t.version >>> 0,
    bits,
    networkTarget: bitsToTarget(bits),
    networkTargetBytes: targetBytes(bitsToTarget(bits)),
    networkDifficulty: targetToDifficulty(bitsToTarget(bits)),
    ntime,
    coinbaseValue,
    hasher: new WorkHasher(parts.coinb1, parts.coinb2, spec.extranonceSize, branch, prevHash, bits),
    txData: t.transactions.map((tx) => fromHex(tx.data)),
    segwit,
    createdAt: spec.now,
    notifyHead: '{"id":null,"method":"mining.notify","params":["',
    notifyBody:
      `","${prevHashStratum}","${toHex(parts.coinb1)}","${toHex(parts.coinb2)}",${branchJson},` +
      `"${u32Hex(t.version)}","${u32Hex(bits)}","`,
  };
}

/**
 * The mining.notify line for this job under the given id and ntime. A session re-issues a job under its own id
 * with a later ntime when its difficulty changes: miners restart their search on a new id, and the same
 * header fields would only make them find the same (duplicate) shares again.
 */
export function notifyLine(job: Job, id: string, clean: boolean, ntime = job.ntime): string {
  return `${job.notifyHead}${id}${job.notifyBody}${u32Hex(ntime)}",${clean ? 'true' : 'false'}]}\n`;
}

/** The full block for a winning share: header ‖ coinbase (with witness reserved value if segwit) ‖ txs. */
export function assembleShareBlock(job: Job, extranonce1: Uint8Array, extranonce2: Uint8Array, header: Uint8Array): Buffer {
  const cb = job.hasher.coinbaseFor(extranonce1, extranonce2);
  return assembleBlock(header, job.segwit ? coinbaseWithWitness(cb) : cb, job.txData);
}
