// The market's four ports: the narrow interfaces through which it uses the ledger (accounting, issue 11) and
// routing (issue 12). The market defines them; those parts implement them. Everything the market decides is
// in its own tables first; the ports carry it out or report facts back.

import type { Queryable } from '../store/db.ts';

// ---- the ledger (accounting) ----

export type EscrowOutcome =
  | { kind: 'escrowed' }
  /** The account's available balance is below the amount: nothing was posted. */
  | { kind: 'insufficient-funds'; availableSat: bigint };

export interface EscrowOp {
  /** `market:escrow:bid:<bidId>`: escrowing twice with one key posts once (and answers 'escrowed' again). */
  key: string;
  accountId: number;
  bidId: number;
  amountSat: bigint;
}

export interface ReleaseOp {
  /** `market:release:bid:<bidId>:cancel` or `…:final`. */
  key: string;
  accountId: number;
  bidId: number;
  amountSat: bigint;
}

/**
 * One bid's settlement for one tick, as one journal entry: the buyer's escrow −buyerDebitSat, each seller's
 * earnings +amountSat, the market fee account +marketFeeSat. It sums to zero by construction
 * (marketFeeSat = buyerDebitSat − Σ seller credits). marketFeeSat is negative only when delivery went beyond the
 * escrow (overrunSat > 0): the market bears that, never the seller.
 */
export interface SettlementPosting {
  /** `market:settle:<bidId>:<tick>`: posting twice with one key changes nothing. */
  key: string;
  tick: number;
  bidId: number;
  buyerAccountId: number;
  buyerDebitSat: bigint;
  sellerCredits: readonly { accountId: number; askId: number; amountSat: bigint }[];
  marketFeeSat: bigint;
  overrunSat: bigint;
}

/**
 * Every method takes the market's open transaction: an implementation on the same database posts in it, so
 * the market's rows and the ledger's entry commit together (or neither does). Keys make retries no-ops.
 */
export interface MarketLedger {
  /** Balance the account may escrow (not already escrowed or in flight), sat. */
  available(accountId: number, tx: Queryable): Promise<bigint>;
  /** Buyer's balance → the bid's escrow. */
  escrow(op: EscrowOp, tx: Queryable): Promise<EscrowOutcome>;
  /** The bid's escrow → buyer's balance. */
  release(op: ReleaseOp, tx: Queryable): Promise<void>;
  settle(op: SettlementPosting, tx: Queryable): Promise<void>;
}

// ---- routing ----

export interface Destination {
  /** stratum+tcp://host:port or stratum+ssl://host:port */
  url: string;
  user: string;
  password: string;
}

/** A bid's destination as routing sees it. */
export type DestinationState =
  /** Probe under way (connect, subscribe, authorize, extranonce2 room, difficulty, first accepted share). */
  | { state: 'probing' }
  | { state: 'ready'; destinationIndex: number }
  /** The probe failed on every destination: the specific error (auth refused, too little extranonce2, …). */
  | { state: 'failed'; code: string; message: string }
  /** Was ready, now failing (no job for 60 s, unreachable, > X % rejects): its workers are back on pool work. */
  | { state: 'paused'; code: string; message: string; since: Date };

export interface OrderRoute {
  bidId: number;
  destinations: readonly Destination[];
  workerIds: readonly number[];
}

export interface RouteController {
  /** Start probing a bid's destinations (in order, backups after the first); states come from destinationStates. */
  probe(bidId: number, destinations: readonly Destination[]): Promise<void>;
  /**
   * Declarative: from tick `tick`, exactly these workers work for these bids; every worker in no route is on pool
   * work. Idempotent (the same tick applied twice changes nothing); a later tick supersedes an earlier one.
   * The routes are a lease: past `leaseUntil` without a newer apply (the market is down), every worker goes back
   * to pool work, so nothing is delivered that no clearing priced.
   */
  apply(tick: number, routes: readonly OrderRoute[], leaseUntil: Date): Promise<void>;
  /** Stop one bid's route now (cancel, expiry, exhaustion): its workers go back to pool work at once. */
  stop(bidId: number): Promise<void>;
  /** These workers go back to pool work now (their ask was cancelled or expired). */
  stopWorkers(workerIds: readonly number[]): Promise<void>;
  destinationStates(bidIds: readonly number[]): Promise<Map<number, DestinationState>>;
}

/** Work done for one bid by one worker in one interval, as metered by routing on the buyer pool's answers. */
export interface DeliveryRecord {
  bidId: number;
  workerId: number;
  /** Σ (buyer pool's share difficulty × 2^32) over shares the buyer's pool ACCEPTED. The only billed quantity. */
  acceptedHashes: bigint;
  acceptedShares: number;
  /** Shares the buyer's pool rejected (never billed), for the seller's and buyer's view. */
  rejectedShares: number;
  /** Stale because we moved the miner (never billed; a metric we keep low). */
  staleBySwitchShares: number;
}

export interface DeliveryMeter {
  /**
   * Per (bid, worker): shares submitted in [from, to), by submit time, so late answers count in their own
   * interval. Final only once watermark() >= to.
   */
  delivered(from: Date, to: Date): Promise<DeliveryRecord[]>;
  /** Every share submitted before this time has its buyer-pool answer (or its answer timeout) recorded. */
  watermark(): Promise<Date>;
  /**
   * The meter's writes after `after` that added to market routes, in the order they were applied (at most `limit`), for
   * finding work that arrived after its tick was settled (late-delivery.ts). Optional: without it, none is looked for.
   */
  marketFlushes?(after: FlushPosition, limit: number): Promise<MeterFlush[]>;
}

/** A place in the order of meter writes: applied at (a timestamptz as text, to the microsecond), then id. */
export interface FlushPosition {
  at: string;
  flushId: string;
}

/** One write of the delivery meter: when it was applied, by which process, and its oldest bucket of a market route. */
export interface MeterFlush {
  flushId: string;
  node: string;
  at: Date;
  oldestMinute: Date;
  position: FlushPosition;
}

/** One worker's measured work over a window: pool work and routed work together. */
export interface WorkerCapacity {
  workerId: number;
  /** Σ accepted difficulty × 2^32 over the window (hashes). Capacity = hashes / window seconds. */
  hashes: bigint;
  shares: number;
}

export interface CapacityMeter {
  /** Measurements over [windowEnd − windowSeconds, windowEnd) for these workers (missing = no shares). */
  capacities(workerIds: readonly number[], windowEnd: Date, windowSeconds: number): Promise<WorkerCapacity[]>;
}

/** The chain facts hashprice needs, at a moment (the node's tip). */
export interface ChainSnapshot {
  height: number;
  /** Compact nBits of the tip. */
  bits: number;
  subsidySat: bigint;
  /** Σ fees of the last `blocks` blocks (getblockstats totalfee). */
  feesSat: bigint;
  blocks: number;
}

export interface ChainStats {
  snapshot(): Promise<ChainSnapshot>;
}
