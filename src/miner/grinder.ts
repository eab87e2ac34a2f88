// The hashing: real sha256d over real headers built with the pool's own Stratum work encoding (WorkHasher), so a
// share our miner finds is exactly what a real miner would send.
//
// Work is ground in small batches from one shared timer (GrindScheduler) rather than per-miner loops: a fleet of
// 10,000 miners in one process then shares the event loop fairly and I/O (submits, notifies) is never held up by
// more than one slice (a few ms).

import { performance } from 'node:perf_hooks';
import { bitsToTarget, difficultyToTarget, hashDifficulty, hashToBigInt, sha256d } from '../chain/index.ts';
import { WorkHasher } from '../shares/work.ts';
import type { NotifyParams } from './messages.ts';

/** A job as the miner works it: the notify fields plus what was in force when it arrived. */
export interface MinerJob extends Omit<NotifyParams, 'prevHashHex'> {
  /** Header prev-hash bytes (internal order), already converted from the notify form. */
  prevHash: Buffer;
  /** Share difficulty for this job: the last set_difficulty received before this notify. */
  difficulty: number;
  extranonce1: Buffer;
  extranonce2Size: number;
  /** Date.now() when the notify arrived (ntime rolling counts from here). */
  receivedAtMs: number;
}

export interface FoundShare {
  job: MinerJob;
  extranonce2: Buffer;
  ntime: number;
  nonce: number;
  /** Full header version used. */
  version: number;
  /** The rolled bits (within the mask) to send as the 6th submit param; null without version rolling. */
  versionBits: number | null;
  /** sha256d of the header, internal byte order. */
  hash: Buffer;
  /** Difficulty the hash achieves (diff1 / hash). */
  difficulty: number;
  /** The hash also meets the network target from the job's nbits. */
  isBlock: boolean;
}

/** Scatter the low bits of `value` into the set bits of `mask`, lowest first (x86 PDEP). */
export function depositBits(value: number, mask: number): number {
  let out = 0;
  let bit = 1;
  for (let m = mask >>> 0; m !== 0; m = (m & (m - 1)) >>> 0) {
    if (value & bit) out |= m & -m;
    bit <<= 1;
  }
  return out >>> 0;
}

export interface GrinderOptions {
  /** Target rate in H/s; 0 = as fast as the scheduler's slices allow. */
  hashrate: number;
  /** Roll ntime forward by the seconds elapsed since the notify (bounded by maxNtimeRollSec). Default false. */
  rollNtime?: boolean;
  /** Upper bound of ntime rolling, seconds. Default 60 (pools accept ntime up to ~now + 2 h, many far less). */
  maxNtimeRollSec?: number;
  /** Called synchronously for every hash at or below the job's share target. */
  onShare: (share: FoundShare) => void;
}

interface ActiveWork {
  job: MinerJob;
  hasher: WorkHasher;
  shareTarget: bigint;
  /** Top 32 bits of the share target: a cheap pre-check before the exact bigint compare. */
  shareTop32: number;
  networkTarget: bigint;
  extranonce2: Buffer;
  merkleRoot: Buffer;
  /** Next nonce to try; 2^32 means this extranonce2 is used up. */
  nonce: number;
  exhausted: boolean;
}

const NONCE_SPACE = 0x1_0000_0000;

/** One miner's hashing state. Not thread-safe (nothing here is): driven by a GrindScheduler. */
export class Grinder {
  hashrate: number;
  /** Hashes computed so far (all jobs). */
  hashes = 0;
  /** Hash allowance accrued by the scheduler (throttled grinders only). */
  budget = 0;
  /** Position in the scheduler's list; -1 when not scheduled. */
  slot = -1;
  private work: ActiveWork | null = null;
  private versionMask = 0;
  private versionCounter = 0;
  private readonly rollNtime: boolean;
  private readonly maxNtimeRollSec: number;
  private readonly onShare: (share: FoundShare) => void;

  constructor(opts: GrinderOptions) {
    if (!(opts.hashrate >= 0) || !Number.isFinite(opts.hashrate)) throw new Error(`hashrate must be a finite number >= 0, got ${opts.hashrate}`);
    this.hashrate = opts.hashrate;
    this.rollNtime = opts.rollNtime ?? false;
    this.maxNtimeRollSec = opts.maxNtimeRollSec ?? 60;
    this.onShare = opts.onShare;
  }

  get job(): MinerJob | null {
    return this.work?.job ?? null;
  }

  /** True when there is work to grind. */
  get active(): boolean {
    return this.work !== null && !this.work.exhausted;
  }

  /** Switch to a job at once (the next batch uses it). Throws on a job whose bits or difficulty are unusable. */
  setJob(job: MinerJob): void {
    const hasher = new WorkHasher(job.coinb1, job.coinb2, job.extranonce1.length + job.extranonce2Size, job.branch, job.prevHash, job.bits);
    const shareTarget = difficultyToTarget(job.difficulty);
    const extranonce2 = Buffer.alloc(job.extranonce2Size);
    this.work = {
      job,
      hasher,
      shareTarget,
      shareTop32: Number(shareTarget >> 224n),
      networkTarget: bitsToTarget(job.bits),
      extranonce2,
      // Once per (job, extranonce2): the nonce loop below only rewrites header words.
      merkleRoot: hasher.merkleRootFor(job.extranonce1, extranonce2),
      nonce: 0,
      exhausted: false,
    };
  }

  clearJob(): void {
    this.work = null;
  }

  /** BIP310 mask in force (null or 0: no version rolling). Applies from the next batch. */
  setVersionMask(mask: number | null): void {
    this.versionMask = (mask ?? 0) >>> 0;
  }

  /**
   * Compute up to `maxHashes` hashes of the current job; returns how many were done. `nowMs` (Date.now()) is
   * only used for ntime rolling.
   */
  grind(maxHashes: number, nowMs: number): number {
    const w = this.work;
    if (w === null || w.exhausted || maxHashes <= 0) return 0;
    const mask = this.versionMask;
    let versionBits = 0;
    if (mask !== 0) {
      // A new point in the version space per batch: spreads work over the rolled bits as ASICs do. Uniqueness
      // of (extranonce2, ntime, nonce, version) already holds because the nonce never repeats per extranonce2.
      this.versionCounter = (this.versionCounter + 1) >>> 0;
      versionBits = depositBits(this.versionCounter, mask);
    }
    const version = ((w.job.version & ~mask) | versionBits) >>> 0;
    const ntime = this.ntimeFor(w.job, nowMs);
    let done = 0;
    while (done < maxHashes) {
      if (w.nonce >= NONCE_SPACE && !this.nextExtranonce2(w)) break;
      const nonce = w.nonce++;
      const hash = sha256d(w.hasher.header80(w.merkleRoot, version, ntime, nonce));
      done++;
      const top = hash.readUInt32LE(28);
      if (top > w.shareTop32) continue;
      if (top === w.shareTop32 && hashToBigInt(hash) > w.shareTarget) continue;
      this.onShare({
        job: w.job,
        extranonce2: Buffer.from(w.extranonce2),
        ntime,
        nonce,
        version,
        versionBits: mask !== 0 ? versionBits : null,
        hash,
        difficulty: hashDifficulty(hash),
        isBlock: hashToBigInt(hash) <= w.networkTarget,
      });
      // The share callback may have dropped or replaced the work (e.g. the miner was stopped).
      if (this.work !== w) break;
    }
    this.hashes += done;
    return done;
  }

  private ntimeFor(job: MinerJob, nowMs: number): number {
    if (!this.rollNtime) return job.ntime;
    const elapsed = Math.floor((nowMs - job.receivedAtMs) / 1000);
    return (job.ntime + Math.max(0, Math.min(this.maxNtimeRollSec, elapsed))) >>> 0;
  }

  /** Next extranonce2 (a little-endian counter) and its merkle root; false when there is no extranonce2 space. */
  private nextExtranonce2(w: ActiveWork): boolean {
    const en2 = w.extranonce2;
    let i = 0;
    for (; i < en2.length; i++) {
      en2[i] = (en2[i] + 1) & 0xff;
      if (en2[i] !== 0) break;
    }
    if (i === en2.length) {
      // Wrapped (or size 0): every (extranonce2, nonce) was tried; wait for the next job rather than repeat.
      w.exhausted = true;
      return false;
    }
    w.merkleRoot = w.hasher.merkleRootFor(w.job.extranonce1, en2);
    w.nonce = 0;
    return true;
  }
}

export interface SchedulerOptions {
  /** Pause between ticks when every grinder is within its rate, ms. Default 20. */
  tickMs?: number;
  /** Longest stretch of hashing per tick before yielding to I/O, ms. Default 4. */
  sliceMs?: number;
  /** Most hashes per grinder per visit (the round-robin unit). Default 256 (~0.3 ms). */
  chunk?: number;
  /** Allowance a throttled grinder may bank when the CPU falls behind, in seconds of its rate. Default 1. */
  maxBacklogSec?: number;
}

/**
 * Drives many grinders from one timer: each tick accrues every throttled grinder's allowance (rate × elapsed),
 * then visits grinders round-robin in chunks until the allowances are spent or the slice is over. When work is
 * left (unthrottled grinders, or a CPU that cannot keep up) the next tick follows at once via setImmediate, so
 * I/O still runs between slices; otherwise it waits tickMs. No timer is held while no grinder is registered.
 */
export class GrindScheduler {
  private readonly grinders: Grinder[] = [];
  private cursor = 0;
  private lastTick = 0;
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private readonly tickMs: number;
  private readonly sliceMs: number;
  private readonly chunk: number;
  private readonly maxBacklogSec: number;

  constructor(opts: SchedulerOptions = {}) {
    this.tickMs = opts.tickMs ?? 20;
    this.sliceMs = opts.sliceMs ?? 4;
    this.chunk = opts.chunk ?? 256;
    this.maxBacklogSec = opts.maxBacklogSec ?? 1;
  }

  get size(): number {
    return this.grinders.length;
  }

  add(g: Grinder): void {
    if (g.slot !== -1) return;
    g.slot = this.grinders.length;
    g.budget = 0;
    this.grinders.push(g);
    if (this.grinders.length === 1) {
      this.lastTick = performance.now();
      this.schedule(false);
    }
  }

  /** O(1) swap-remove (a fleet of 10k stopping must not be quadratic). */
  remove(g: Grinder): void {
    const at = g.slot;
    if (at === -1 || this.grinders[at] !== g) return;
    const last = this.grinders.pop() as Grinder;
    if (last !== g) {
      this.grinders[at] = last;
      last.slot = at;
    }
    g.slot = -1;
    if (this.grinders.length === 0) this.cancel();
  }

  private schedule(now: boolean): void {
    if (now) this.immediate = setImmediate(this.tick);
    else this.timer = setTimeout(this.tick, this.tickMs);
  }

  private cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = null;
    this.immediate = null;
  }

  private readonly tick = (): void => {
    this.timer = null;
    this.immediate = null;
    const list = this.grinders;
    if (list.length === 0) return;
    const start = performance.now();
    // Cap dt: after a long stall (debugger, suspended VM) do not try to make up for it.
    const dt = Math.min(start - this.lastTick, 1000) / 1000;
    this.lastTick = start;
    for (const g of list) {
      if (g.hashrate <= 0) continue;
      // No banking while idle: a miner waiting for work must not burst when a job arrives.
      g.budget = g.active ? Math.min(g.budget + g.hashrate * dt, Math.max(g.hashrate * this.maxBacklogSec, 1)) : 0;
    }
    const deadline = start + this.sliceMs;
    const nowMs = Date.now();
    let behind = false;
    let sinceWork = 0; // grinders visited since one last did any work: a full lap of none ends the tick
    let i = this.cursor;
    for (;;) {
      if (list.length === 0) break;
      if (i >= list.length) i = 0;
      const g = list[i];
      i++;
      const quota = g.hashrate > 0 ? Math.min(Math.floor(g.budget), this.chunk) : g.active ? this.chunk : 0;
      const done = quota > 0 ? g.grind(quota, nowMs) : 0;
      if (g.hashrate > 0) g.budget -= done;
      sinceWork = done > 0 ? 0 : sinceWork + 1;
      if (sinceWork >= list.length) break;
      if (performance.now() >= deadline) {
        behind = true;
        break;
      }
    }
    this.cursor = i;
    if (list.length > 0) this.schedule(behind);
  };
}

/** The process-wide scheduler miners use unless given their own. */
export const defaultScheduler = new GrindScheduler();
