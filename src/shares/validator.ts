import { hashDifficulty, meetsTarget, sha256d } from '../chain/index.ts';
import type { Job } from './job.ts';
import type { JobSource } from './jobs.ts';
import type { RejectOutcome } from './outcome.ts';

/** mining.submit after parsing at the edge: strings as the miner sent them. */
export interface SubmitParams {
  worker: string;
  jobId: string;
  extranonce2: string;
  ntime: string;
  nonce: string;
  /** BIP310 rolled version bits (hex), when the miner sent a 6th param. */
  versionBits?: string;
}

/** What the session knows when the share arrives. */
export interface ShareContext {
  extranonce1: Buffer;
  extranonce2Size: number;
  /** Negotiated BIP310 mask (0 when version rolling was not negotiated). */
  versionMask: number;
  /** The job the id refers to, if still known. */
  job: Job | undefined;
  /** Target in force when this session was sent the job (not the current one: see README "difficulty change"),
   *  as 32 little-endian bytes (compared byte-wise with the hash, no bigint per share). */
  target: Buffer;
  /** Per-session cache of the last merkle root: miners keep one extranonce2 for many shares (ASICs roll nonce
   *  and version bits first), and the coinbase + merkle path is 14 of the 15 hash calls of a share. */
  rootCache?: MerkleRootCache;
  /** Unix seconds. */
  nowSec: number;
  /** How far past now a rolled ntime may go. */
  maxNtimeAheadSec: number;
}

export type ShareResult =
  | {
      outcome: 'accepted';
      job: Job;
      /** Difficulty the hash achieved (diff1 / hash). */
      shareDifficulty: number;
      /** Block hash, internal order. */
      hash: Buffer;
      /** Copy of the 80-byte header. */
      header: Buffer;
      extranonce2: Buffer;
      /** The hash also meets the network target: a block candidate. */
      block: boolean;
    }
  | {
      /** On a job whose tip was replaced: never credited, but still hashed, and a block candidate if it meets the
       *  network target (it may win a race against the block that replaced its tip). */
      outcome: 'stale';
      job: Job;
      shareDifficulty: number;
      block: { hash: Buffer; header: Buffer; extranonce2: Buffer } | null;
    }
  | { outcome: Exclude<RejectOutcome, 'stale'>; job?: Job; shareDifficulty?: number };

export interface MerkleRootCache {
  job: Job | null;
  /** The extranonce1 the root was built with: a session moved away from a route and back gets the same job again
   *  under another extranonce1 (compared by identity: each work assignment has its own Buffer). */
  extranonce1: Buffer;
  /** Bytes of the extranonce2 the root was built with, in `bytes` after the root (job null: nothing cached yet). */
  extranonce2Length: number;
  /**
   * The cache's own memory: the root (bytes 0-31, `root`), then the extranonce2. Copies, never the share's own
   * objects: its extranonce2 hex is a slice of the submit line and its buffers are slices of Node's shared 8 KB
   * pool, and a cache that holds them until the session's next share (half a second or more) keeps them alive
   * through two young-generation GCs, so every one of them was promoted to the old generation.
   */
  bytes: Buffer;
  root: Buffer;
}

/** Longest extranonce2 the cache holds (longer ones are hashed every time; miners use 4-8 bytes). */
const CACHED_EXTRANONCE2_MAX = 32;

/** The extranonce1 of an empty cache (no work assignment has it): one for all sessions. */
const NO_EXTRANONCE1 = Buffer.alloc(0);

export function newRootCache(): MerkleRootCache {
  const bytes = Buffer.alloc(32 + CACHED_EXTRANONCE2_MAX);
  return { job: null, extranonce1: NO_EXTRANONCE1, extranonce2Length: 0, bytes, root: bytes.subarray(0, 32) };
}

function cachedFor(cache: MerkleRootCache, job: Job, extranonce1: Buffer, extranonce2: Buffer): boolean {
  const n = extranonce2.length;
  if (cache.job !== job || cache.extranonce1 !== extranonce1 || cache.extranonce2Length !== n) return false;
  const b = cache.bytes;
  for (let i = 0; i < n; i++) if (b[32 + i] !== extranonce2[i]) return false;
  return true;
}

const HEX8 = /^[0-9a-fA-F]{8}$/;
const HEX_1_8 = /^[0-9a-fA-F]{1,8}$/;
const HEX = /^[0-9a-fA-F]*$/;

/**
 * Validate and classify one share. The hot path: per share only the coinbase hash, the merkle path and the
 * header hash are computed; everything per job was computed when the job was built.
 */
export function validateShare(jobs: JobSource, ctx: ShareContext, p: SubmitParams): ShareResult {
  const job = ctx.job;
  // A session may still hold a job the manager has pruned (with its duplicate set): unknown from then on,
  // or the same share could be resubmitted and credited again.
  if (!job || jobs.get(job.id) !== job) return { outcome: 'unknown-job' };
  if (p.extranonce2.length !== ctx.extranonce2Size * 2 || !HEX.test(p.extranonce2)) return { outcome: 'bad-extranonce2', job };
  if (!HEX8.test(p.ntime) || !HEX8.test(p.nonce)) return { outcome: 'malformed', job };
  const ntime = parseInt(p.ntime, 16);
  if (ntime < job.ntime || ntime > ctx.nowSec + ctx.maxNtimeAheadSec) return { outcome: 'bad-ntime', job };

  let version = job.version;
  if (p.versionBits !== undefined) {
    if (!HEX_1_8.test(p.versionBits)) return { outcome: 'malformed', job };
    const bits = parseInt(p.versionBits, 16) >>> 0;
    if ((bits & ~ctx.versionMask) >>> 0 !== 0) return { outcome: 'bad-version', job };
    version = ((job.version & ~ctx.versionMask) | (bits & ctx.versionMask)) >>> 0;
  }

  // Stale or not, the share is hashed: a stale share can still be a block (ckpool tests block solves whatever
  // the share's status).
  const stale = jobs.isStale(job);

  const extranonce2 = Buffer.from(p.extranonce2, 'hex');
  const cache = ctx.rootCache;
  let root: Buffer;
  if (!cache || extranonce2.length > CACHED_EXTRANONCE2_MAX) {
    root = job.hasher.merkleRootFor(ctx.extranonce1, extranonce2);
  } else if (cachedFor(cache, job, ctx.extranonce1, extranonce2)) {
    root = cache.root;
  } else {
    // Emptied first: should hashing throw, the cache must not pair the new extranonce with the old root.
    cache.job = null;
    root = job.hasher.merkleRootInto(ctx.extranonce1, extranonce2, cache.root);
    extranonce2.copy(cache.bytes, 32);
    cache.job = job; cache.extranonce1 = ctx.extranonce1; cache.extranonce2Length = extranonce2.length;
  }
  const header = job.hasher.header80(root, version, ntime, parseInt(p.nonce, 16));
  const hash = sha256d(header);
  const shareDifficulty = hashDifficulty(hash);
  if (stale) {
    const block = meetsTarget(hash, job.networkTargetBytes) ? { hash: Buffer.from(hash), header: Buffer.from(header), extranonce2 } : null;
    return { outcome: 'stale', job, shareDifficulty, block };
  }
  if (!meetsTarget(hash, ctx.target)) return { outcome: 'low-difficulty', job, shareDifficulty };
  // Only shares that pass are remembered: low-difficulty junk must not grow the duplicate set (memory). The
  // header hash stands for the share: its extranonces, ntime, nonce and version are all in the header.
  if (!jobs.markSeen(job.id, hash, ntime)) return { outcome: 'duplicate', job };
  return { outcome: 'accepted', job, shareDifficulty, hash, header: Buffer.from(header), extranonce2, block: meetsTarget(hash, job.networkTargetBytes) };
}
