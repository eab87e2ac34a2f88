import {
  type CoinbaseOutput, assembleBlockFromRaw, bitsToTarget, buildCoinbase, coinbaseWithWitness, fromHex,
  hashFromDisplay, targetBytes, targetToDifficulty, toHex,
} from '../chain/index.ts';
import { prepareTransactions } from '../node/template-reply.ts';
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
  /** Template transactions (all but the coinbase), serialized with witness, back to back in block order. */
  txs: { count: number; bytes: Buffer };
  /** Whether the coinbase carries a BIP141 commitment (then the block's coinbase needs the reserved value). */
  segwit: boolean;
  createdAt: number;
  /** mining.notify line split around the job id, ntime and clean flag: head + id + body + ntime + clean. */
  notifyHead: string;
  notifyBody: string;
  /** For a job from an upstream pool (routing): the upstream's own job id, which shares are forwarded under. */
  upstreamJobId?: string;
  /** What the coinbase is built from, so a variant with other outputs (a SOLO miner's) costs one coinbase. */
  coinbase: CoinbaseBasis;
  /** For a variant: the pool job it was made from (same template, tip and merkle branch); null for a pool job. */
  base: Job | null;
}

export interface CoinbaseBasis {
  height: number;
  extranonceSize: number;
  tag: Uint8Array;
  /** The job's own coinbase bytes (JobSpec.nonce); a variant keeps its pool job's. */
  nonce?: Uint8Array;
  witnessCommitmentScript: Buffer | undefined;
  branch: Buffer[];
  /** The notify fields after coinb2: branch JSON, version, bits (as in notifyBody). */
  notifyTail: string;
  prevHashStratum: string;
}

export interface JobSpec {
  id: string;
  extranonceSize: number;
  tag: Uint8Array;
  /**
   * Bytes pushed into the coinbase after the tag, unique to this job (JobManager gives each template's job fresh
   * random ones): without them two jobs of the same template (a refresh of an unchanged one, the same
   * transactions back on the same tip after a restart or a clock step) had the same coinbase, so a share found on
   * one was a valid share of the other, and only the duplicate key sets stood between it and a second credit.
   */
  nonce?: Uint8Array;
  /** Payout outputs for a coinbase of the given value (seam for SOLO/PPLNS splits later). */
  outputs: (coinbaseValue: bigint) => CoinbaseOutput[];
  now: number;
}

export function buildJob(t: BlockTemplate, spec: JobSpec): Job {
  const coinbaseValue = BigInt(t.coinbasevalue);
  // Add the commitment only when the template's rules include segwit (bcoin returns one before activation).
  const segwit = t.rules.some((r) => r === 'segwit' || r === '!segwit') && !!t.default_witness_commitment;
  // Made when the template was read (off the event loop, by the template thread), else here: the same function.
  const prepared = t.prepared ?? prepareTransactions(t.transactions);
  if (prepared.error !== undefined) throw new Error(prepared.error);
  const branch = prepared.branch;
  const prevHash = hashFromDisplay(t.previousblockhash);
  const bits = parseInt(t.bits, 16) >>> 0;
  const ntime = Math.max(t.curtime, t.mintime);
  const basis: CoinbaseBasis = {
    height: t.height,
    extranonceSize: spec.extranonceSize,
    tag: spec.tag,
    nonce: spec.nonce,
    witnessCommitmentScript: segwit ? fromHex(t.default_witness_commitment!) : undefined,
    branch,
    notifyTail: `${JSON.stringify(branch.map(toHex))},"${u32Hex(t.version)}","${u32Hex(bits)}","`,
    prevHashStratum: prevHashToStratum(prevHash),
  };
  const parts = coinbaseParts(basis, spec.outputs(coinbaseValue));
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
    txs: { count: prepared.count, bytes: prepared.bytes },
    segwit,
    createdAt: spec.now,
    notifyHead: '{"id":null,"method":"mining.notify","params":["',
    notifyBody: notifyBodyOf(basis, parts),
    coinbase: basis,
    base: null,
  };
}

function coinbaseParts(b: CoinbaseBasis, outputs: CoinbaseOutput[]) {
  return buildCoinbase({ height: b.height, extranonceSize: b.extranonceSize, tag: b.tag, jobNonce: b.nonce, outputs, witnessCommitmentScript: b.witnessCommitmentScript });
}

function notifyBodyOf(b: CoinbaseBasis, parts: { coinb1: Buffer; coinb2: Buffer }): string {
  return `","${b.prevHashStratum}","${toHex(parts.coinb1)}","${toHex(parts.coinb2)}",${b.notifyTail}`;
}

/**
 * The same work with other coinbase outputs (a SOLO miner's coinbase paying its own address): everything but
 * the coinbase is shared with the pool job (template, tip, merkle branch, transactions), so a variant costs one
 * coinbase serialization, and a share on it is validated exactly like a share on the pool job.
 */
export function jobVariant(base: Job, id: string, outputs: CoinbaseOutput[]): Job {
  const parts = coinbaseParts(base.coinbase, outputs);
  return {
    ...base,
    id,
    hasher: new WorkHasher(parts.coinb1, parts.coinb2, base.coinbase.extranonceSize, base.coinbase.branch, base.prevHash, base.bits),
    notifyBody: notifyBodyOf(base.coinbase, parts),
    base,
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

/** Each job's notify line under its own id and ntime, as bytes: [clean_jobs false, true]. */
const notifyBytesCache = new WeakMap<Job, [Buffer | undefined, Buffer | undefined]>();

/**
 * notifyLine(job, job.id, clean) as bytes, made once per job: a broadcast sends the same line to every connection,
 * and a string per connection (about 1 KB with a 12-level branch) was encoded and copied at each write, 10k times
 * per new job with 10k miners, and all of it was garbage for the GC.
 */
export function notifyBytes(job: Job, clean: boolean): Buffer {
  let cached = notifyBytesCache.get(job);
  if (!cached) notifyBytesCache.set(job, (cached = [undefined, undefined]));
  const i = clean ? 1 : 0;
  return (cached[i] ??= Buffer.from(notifyLine(job, job.id, clean), 'utf8'));
}

/** The full block for a winning share: header ‖ coinbase (with witness reserved value if segwit) ‖ txs. */
export function assembleShareBlock(job: Job, extranonce1: Uint8Array, extranonce2: Uint8Array, header: Uint8Array): Buffer {
  const cb = job.hasher.coinbaseFor(extranonce1, extranonce2);
  return assembleBlockFromRaw(header, job.segwit ? coinbaseWithWitness(cb) : cb, job.txs.count, job.txs.bytes);
}
