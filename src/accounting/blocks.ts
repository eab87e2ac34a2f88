import { fromHex, parseBlock } from '../chain/index.ts';
import type { Queryable } from '../store/db.ts';
import { apportion, commonScale } from './exact.ts';
import { Ledger, credit, debit, owned, pool } from './ledger.ts';
import { type BooksFrame, paramsAt } from './params.ts';
import { pplnsWindow } from './pplns.ts';
import type { Resum } from './sums.ts';
import type { Posting, Scheme } from './types.ts';

// Block-driven accounting, from the block rows (the block state machine of the block path owns their status:
// submitted, unconfirmed, pending, confirmed, orphaned, rejected; one row per hash).
//
// 1. Split, once, when the block is found (any status but orphaned/rejected, its coinbase known, and the ingest
//    watermark past its time so every share before it is stored):
//    - pooled (the finder mines FPPS or PPLNS): the PPLNS window's weights, apportioned exactly (largest
//      remainder) over the reward among: each PPLNS account (its weight × (1 − fee)), the pool fee (PPLNS
//      weight × fee) and pool_revenue (the FPPS accounts' weight: the pool already paid them per share).
//      lines + fee + pool revenue = reward, to the satoshi (the database checks it at COMMIT).
//    - solo (the finder mines SOLO): the coinbase pays the finder's address itself (the finder's output is its
//      line, the rest the fee); if it paid the pool's address instead, the pool owes the finder reward − fee.
// 2. Credit at maturity: when the row is 'confirmed', one ledger entry "block:<hash>:credit" moves the split into
//    balances (wallet ← reward). An orphaned block is never credited; a block that returns from orphaned and
//    confirms is credited then, once (the key).

export interface FoundBlock {
  hash: string;
  height: number;
  time: number;
  accountId: bigint;
  reward: bigint;
  status: string;
  blockHex: string;
}

export type SplitOutcome =
  | { kind: 'split'; hash: string; split: 'pooled' | 'solo'; lines: number; fee: bigint; toPoolRevenue: bigint;
      /** Ranges of the window re-summed for shares stored late, and ranges kept as summed (raw shares gone). */
      late?: Resum }
  | { kind: 'already'; hash: string }
  | { kind: 'no-params'; hash: string };

export type CreditOutcome =
  | { kind: 'credited'; hash: string; entryId: bigint }
  | { kind: 'already'; hash: string }
  | { kind: 'nothing'; hash: string };

/** Statuses of a block that may still become the pool's (the split is computed for them). */
export const FOUND_STATUSES = ['submitted', 'unconfirmed', 'pending', 'confirmed'] as const;

export function blockBits(blockHex: string): number {
  // bits: header bytes 72..75, little-endian.
  return Buffer.from(blockHex.slice(144, 152), 'hex').readUInt32LE(0) | 0;
}

export class BlockAccounting {
  constructor(private readonly ledger: Ledger = new Ledger()) {}

  /** Blocks ready to be split: found, coinbase known, inside the books, every share before them stored. */
  async splittable(q: Queryable, frame: BooksFrame, watermark: number, limit = 20): Promise<FoundBlock[]> {
    const r = await q.query<{ hash: string; height: number; time: Date | string; account_id: string; reward: string; status: string; block_hex: string }>(
      `SELECT b.hash, b.height, b.time, b.account_id::text, b.reward::text, b.status, b.block_hex
       FROM blocks b
       WHERE b.status = ANY($1::text[]) AND b.reward IS NOT NULL AND b.block_hex IS NOT NULL
         AND b.time >= $2::timestamptz AND b.time < $3::timestamptz
         AND NOT EXISTS (SELECT 1 FROM block_splits s WHERE s.block_hash = b.hash)
       ORDER BY b.time, b.hash LIMIT $4`,
      [[...FOUND_STATUSES], new Date(frame.startedAt).toISOString(), new Date(watermark).toISOString(), limit],
    );
    return r.rows.map((b) => ({
      hash: b.hash, height: Number(b.height), time: new Date(b.time).getTime(), accountId: BigInt(b.account_id),
      reward: BigInt(b.reward), status: b.status, blockHex: b.block_hex,
    }));
  }

  /** Compute and store the split of one block (in the caller's transaction, under the accounting lock). */
  async split(tx: Queryable, frame: BooksFrame, b: FoundBlock): Promise<SplitOutcome> {
    const done = await tx.query('SELECT 1 FROM block_splits WHERE block_hash = $1', [b.hash]);
    if (done.rows.length > 0) return { kind: 'already', hash: b.hash };
    const params = await paramsAt(tx, b.time);
    if (!params) return { kind: 'no-params', hash: b.hash };
    const bits = blockBits(b.blockHex);
    // A block recorded without a finder (account 0: recovered from the chain at start, with no record of who found
    // it) is split by its coinbase alone: the pool's coinbase over the PPLNS window like any pooled block (the
    // finder plays no part in that), a SOLO coinbase as SOLO: the pool's fee is booked, and what the coinbase paid
    // its finder is noted in the split only (no account to note it against). Left unsplit, as before, the pool
    // kept its PPLNS miners' part of the reward.
    const finderScheme = b.accountId === 0n ? null : (await tx.query<{ s: Scheme }>('SELECT hashhub_scheme_at($1::bigint, $2::timestamptz) AS s',
      [b.accountId.toString(), new Date(b.time).toISOString()])).rows[0].s;
    // The coinbase is the truth about where the reward went: a block mined on a SOLO coinbase (the miner's work
    // was sent before its switch back to a pooled scheme took effect) paid the finder, so the pool has only its
    // fee to split: booked as SOLO, never split over a reward the pool did not receive.
    const toFinder = this.soloCoinbasePaid(b);
    if (finderScheme === 'solo' || toFinder !== null) return this.splitSolo(tx, b, bits, params.soloFeeBps, toFinder ?? 0n);

    const w = await pplnsWindow(tx, frame, { time: b.time, bits }, params);
    const fee = params.pplnsFeeBps;
    // Parties: each PPLNS account, then the pool fee, then pool revenue (FPPS accounts' part).
    const pplns = w.lines.filter((l) => l.scheme === 'pplns');
    const fpps = w.lines.filter((l) => l.scheme === 'fpps');
    const { values, scale } = commonScale([...pplns.map((l) => l.weight), ...fpps.map((l) => l.weight), '0']);
    const pw = values.slice(0, pplns.length);
    const fw = values.slice(pplns.length, pplns.length + fpps.length);
    const sumP = pw.reduce((s, x) => s + x, 0n);
    const sumF = fw.reduce((s, x) => s + x, 0n);
    const weights = [...pw.map((x) => x * BigInt(10_000 - fee)), sumP * BigInt(fee), sumF * 10_000n];
    // An empty window (every share lost?) leaves the whole reward with the pool: fallback = pool revenue.
    const amounts = apportion(b.reward, weights, weights.length - 1);
    const feeAmount = amounts[pplns.length];
    const revenue = amounts[pplns.length + 1];
    const sharesOf = new Map<bigint, number>();
    for (const l of w.lines) sharesOf.set(l.accountId, (sharesOf.get(l.accountId) ?? 0) + l.shares);

    await tx.query(
      `INSERT INTO block_splits (block_hash, kind, finder_account, height, block_time, reward, bits, fee_bps, window_target,
         window_weight, window_shares, window_start, capped_by_time, fee, to_pool_revenue)
       VALUES ($1, 'pooled', $2::bigint, $3, $4::timestamptz, $5::bigint, $6, $7, $8::numeric, $9::numeric, $10, $11::timestamptz, $12, $13::bigint, $14::bigint)`,
      [b.hash, b.accountId.toString(), b.height, new Date(b.time).toISOString(), b.reward.toString(), bits, fee, w.target, w.weight,
        w.shares, w.start === null ? null : new Date(w.start).toISOString(), w.cappedByTime, feeAmount.toString(), revenue.toString()],
    );
    if (pplns.length > 0) {
      await tx.query(
        `INSERT INTO block_split_lines (block_hash, account_id, weight, shares, amount)
         SELECT $1, a, w, n, m FROM unnest($2::bigint[], $3::numeric[], $4::bigint[], $5::bigint[]) AS x(a, w, n, m)`,
        [b.hash, pplns.map((l) => l.accountId.toString()), pplns.map((l) => l.weight), pplns.map((l) => sharesOf.get(l.accountId) ?? l.shares),
          pplns.map((_, i) => amounts[i].toString())],
      );
    }
    return { kind: 'split', hash: b.hash, split: 'pooled', lines: pplns.length, fee: feeAmount, toPoolRevenue: revenue, late: w.late };
  }

  /**
   * What a SOLO coinbase paid the finder, or null for the pool's coinbase. The pool builds exactly two layouts:
   * its own (one payout output, plus the witness commitment) and a SOLO miner's (the finder's output first, the
   * pool's fee second: src/pool/solo.ts). The layout, not the finder's payout script today, decides: the
   * address may have changed since the block was mined, and the coins went where the coinbase says.
   */
  private soloCoinbasePaid(b: FoundBlock): bigint | null {
    const outputs = parseBlock(fromHex(b.blockHex)).txs[0].outputs.filter((o) => o.scriptPubKey[0] !== 0x6a); // not OP_RETURN
    return outputs.length >= 2 ? outputs[0].value : null;
  }

  /** `toFinder`: what the coinbase paid the finder (soloCoinbasePaid), 0 when it paid the pool. */
  private async splitSolo(tx: Queryable, b: FoundBlock, bits: number, feeBps: number, toFinder: bigint): Promise<SplitOutcome> {
    const paidInCoinbase = toFinder > 0n;
    // Paid in the coinbase: the finder's outputs are its line, the pool's output is the fee (whatever it was).
    // Paid to the pool: the pool owes the finder reward − fee (fee rounded down: the finder keeps the fraction).
    const fee = paidInCoinbase ? b.reward - toFinder : (b.reward * BigInt(feeBps)) / 10_000n;
    const line = b.reward - fee;
    await tx.query(
      `INSERT INTO block_splits (block_hash, kind, finder_account, height, block_time, reward, bits, fee_bps, fee, to_pool_revenue,
         paid_in_coinbase, coinbase_to_finder)
       VALUES ($1, 'solo', $2::bigint, $3, $4::timestamptz, $5::bigint, $6, $7, $8::bigint, 0, $9, $10::bigint)`,
      [b.hash, b.accountId.toString(), b.height, new Date(b.time).toISOString(), b.reward.toString(), bits, feeBps, fee.toString(),
        paidInCoinbase, toFinder.toString()],
    );
    await tx.query('INSERT INTO block_split_lines (block_hash, account_id, weight, shares, amount) VALUES ($1, $2::bigint, 1, 1, $3::bigint)',
      [b.hash, b.accountId.toString(), line.toString()]);
    return { kind: 'split', hash: b.hash, split: 'solo', lines: 1, fee, toPoolRevenue: 0n };
  }

  /** Split blocks whose row is 'confirmed' and whose credit entry does not exist yet. */
  async creditable(q: Queryable, limit = 50): Promise<string[]> {
    const r = await q.query<{ hash: string }>(
      `SELECT s.block_hash AS hash FROM block_splits s JOIN blocks b ON b.hash = s.block_hash
       WHERE b.status = 'confirmed'
         AND NOT EXISTS (SELECT 1 FROM journal_entries e WHERE e.idempotency_key = 'block:' || s.block_hash || ':credit')
       ORDER BY s.block_time, s.block_hash LIMIT $1`,
      [limit],
    );
    return r.rows.map((x) => x.hash);
  }

  /** Post the credit of a confirmed block's split (idempotent on "block:<hash>:credit"). */
  async credit(tx: Queryable, hash: string, now: number): Promise<CreditOutcome> {
    const s = await tx.query<{ kind: 'pooled' | 'solo'; finder_account: string; height: number; reward: string; fee: string;
      to_pool_revenue: string; paid_in_coinbase: boolean; coinbase_to_finder: string; status: string }>(
      `SELECT s.kind, s.finder_account::text, s.height, s.reward::text, s.fee::text, s.to_pool_revenue::text, s.paid_in_coinbase,
         s.coinbase_to_finder::text, b.status
       FROM block_splits s JOIN blocks b ON b.hash = s.block_hash WHERE s.block_hash = $1 FOR UPDATE OF b`,
      [hash],
    );
    const split = s.rows[0];
    // Re-checked under the row lock: only a confirmed block is money.
    if (!split || split.status !== 'confirmed') return { kind: 'nothing', hash };
    const lines = await tx.query<{ account_id: string; amount: string }>(
      'SELECT account_id::text, amount::text FROM block_split_lines WHERE block_hash = $1 AND amount > 0 ORDER BY account_id', [hash]);
    const reward = BigInt(split.reward);
    const fee = BigInt(split.fee);
    const revenue = BigInt(split.to_pool_revenue);
    const postings: Posting[] = [];
    if (split.kind === 'solo' && split.paid_in_coinbase) {
      // The pool never held the finder's coins: a memo pair for traceability, and the fee output it did receive.
      const toFinder = BigInt(split.coinbase_to_finder);
      const finder = BigInt(split.finder_account);
      // Finder unknown (account 0, a block recovered from the chain): no account to note it against.
      if (finder !== 0n) postings.push(debit(pool('solo_coinbase'), toFinder), credit(owned('solo_earnings', finder), toFinder));
      if (fee > 0n) postings.push(debit(pool('wallet'), fee), credit(pool('pool_fee'), fee));
    } else {
      postings.push(debit(pool('wallet'), reward));
      for (const l of lines.rows) postings.push(credit(owned('balance', BigInt(l.account_id)), BigInt(l.amount)));
      if (fee > 0n) postings.push(credit(pool('pool_fee'), fee));
      if (revenue > 0n) postings.push(credit(pool('pool_revenue'), revenue));
    }
    if (postings.filter((p) => p.amount !== 0n).length < 2) return { kind: 'nothing', hash };
    const r = await this.ledger.post(tx, {
      key: `block:${hash}:credit`,
      kind: split.kind === 'solo' ? 'solo_block' : 'block_credit',
      effectiveAt: new Date(now),
      memo: `${split.kind === 'solo' ? 'SOLO' : 'pooled'} block ${split.height} confirmed`,
      refs: { block: hash, height: Number(split.height) },
      postings,
    });
    return r.status === 'posted' ? { kind: 'credited', hash, entryId: r.entryId } : { kind: 'already', hash };
  }

  /** Blocks credited as confirmed whose row says they left the chain since: for an operator alert. */
  async creditedButOrphaned(q: Queryable): Promise<string[]> {
    const r = await q.query<{ hash: string }>(
      `SELECT b.hash FROM blocks b JOIN journal_entries e ON e.idempotency_key = 'block:' || b.hash || ':credit'
       WHERE b.status IN ('orphaned', 'rejected') ORDER BY b.time`,
    );
    return r.rows.map((x) => x.hash);
  }
}
