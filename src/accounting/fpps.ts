import type { Queryable } from '../store/db.ts';
import { Ledger, credit, debit, owned, pool } from './ledger.ts';
import { type BooksFrame, FPPS_DENOM, paramsAt } from './params.ts';

// FPPS: every accepted share of an account on FPPS earns, whatever luck the pool has,
//
//   pool_difficulty / network_difficulty(the job's nbits) × block_value(the job's height) × (1 − fee)
//
// summed per (account, period, nbits, height) from the stored shares and rounded once per (account, period):
//
//   credited = floor((carry + exact) / FPPS_DENOM)      carry' = (carry + exact) mod FPPS_DENOM
//
// where exact is the period's amount in FPPS units (satoshis × 655,350,000, an exact numeric: see migration
// 012) and carry is the account's uncredited fraction of a satoshi, kept exactly in fpps_carry. So an account's
// credits up to any period equal the floor of the exact sum of its shares' values: nothing is dropped, nothing is
// invented, and the only rounding is down to the satoshi, with the remainder carried to the next period.
// The pool pays the credits out of pool_revenue, which may go negative (the pool bears the luck). The pool fee
// is what it does not credit (1 − fee); it is not posted separately under FPPS.
//
// Exactly once: a period is credited in one transaction that records fpps_periods (primary key) and the ledger
// entry "fpps:<period start>" (unique key). Shares that reach the database after their period was credited
// (a pool process unknown to the watermark at the time) are found by comparing the period's stored share count,
// and credited by an adjustment revision that pays only the difference.

export type PeriodOutcome =
  | { kind: 'credited'; periodStart: number; shares: number; fppsShares: number; credited: bigint; accounts: number; revision: number }
  | { kind: 'already'; periodStart: number }
  | { kind: 'missing-values'; periodStart: number; heights: number[] }
  | { kind: 'no-params'; periodStart: number };

interface CalcRow { account_id: string; credited: string }

/**
 * Per-connection work tables, emptied at every COMMIT (and explicitly before use, for callers that credit several
 * periods in one outer transaction). Created once per connection: no catalog churn per period.
 */
const WORK_TABLES = `
CREATE TEMP TABLE IF NOT EXISTS fpps_groups (account_id bigint, nbits integer, height integer, d numeric, n bigint) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS fpps_calc (account_id bigint, n bigint, d numeric, exact numeric, carry_in numeric, credited numeric,
  carry_out numeric) ON COMMIT DELETE ROWS;
DELETE FROM fpps_groups;
DELETE FROM fpps_calc`;

/**
 * One period's shares grouped per (account, nbits, height), from the period's share sums (migration 014): each
 * distinct float difficulty converted to numeric once and multiplied by its count, the same exact sum as
 * converting every share. nbits 0 there = stored without the job's nbits.
 */
const GROUP_SUMS = `
INSERT INTO fpps_groups (account_id, nbits, height, d, n)
SELECT account_id, nullif(nbits, 0), height, sum(pool_difficulty::numeric * n), sum(n)
FROM share_sums_period WHERE period_start = $1::timestamptz
GROUP BY 1, 2, 3`;

/** The same from the raw shares: for an adjustment (shares stored after the sums passed their time). */
const GROUP_SHARES = `
INSERT INTO fpps_groups (account_id, nbits, height, d, n)
SELECT account_id, nbits, height, sum(pool_difficulty::numeric * n), sum(n)
FROM (
  SELECT account_id, nbits, height, pool_difficulty, count(*) AS n
  FROM shares WHERE time >= $1::timestamptz AND time < $2::timestamptz
  GROUP BY 1, 2, 3, 4
) x
GROUP BY 1, 2, 3`;

const MISSING_HEIGHTS = `
SELECT DISTINCT g.height FROM fpps_groups g
WHERE NOT EXISTS (SELECT 1 FROM chain_block_values v WHERE v.height = g.height) ORDER BY 1`;

/**
 * The exact amount per FPPS account: Σ d × ratio(bits) × value × (10000 − fee), with the carry in and the split
 * into whole satoshis and the new carry. $1 = period start (scheme and params in force), $2 = fee bps.
 * $3 = revision: 0 takes every share; n > 0 takes what the previous revisions did not (exact − already).
 */
const CALC = `
INSERT INTO fpps_calc (account_id, n, d, exact, carry_in, credited, carry_out)
WITH gv AS (
  SELECT g.account_id, g.n, g.d, v.value, coalesce(g.nbits, v.bits) AS bits
  FROM fpps_groups g JOIN chain_block_values v ON v.height = g.height
), ratios AS (
  SELECT bits, hashhub_bits_ratio(bits) AS ratio FROM (SELECT DISTINCT bits FROM gv) b
), acct AS (
  SELECT gv.account_id, sum(gv.n) AS n, sum(gv.d) AS d, sum(gv.d * r.ratio * gv.value) * (10000 - $2::integer) AS total
  FROM gv JOIN ratios r ON r.bits = gv.bits
  WHERE hashhub_scheme_at(gv.account_id, $1::timestamptz) = 'fpps'
  GROUP BY gv.account_id
), prev AS (
  SELECT account_id, sum(exact) AS exact, sum(shares) AS shares, sum(difficulty) AS d
  FROM fpps_credits WHERE period_start = $1::timestamptz GROUP BY account_id
), x AS (
  SELECT a.account_id, a.n - coalesce(p.shares, 0) AS n, a.d - coalesce(p.d, 0) AS d, a.total - coalesce(p.exact, 0) AS exact,
    coalesce(c.carry, 0) AS carry_in
  FROM acct a LEFT JOIN prev p ON p.account_id = a.account_id LEFT JOIN fpps_carry c ON c.account_id = a.account_id
  WHERE $3::integer = 0 OR a.total > coalesce(p.exact, 0)
)
SELECT account_id, n, d, exact, carry_in, div(carry_in + exact, ${FPPS_DENOM}) AS credited,
  mod(carry_in + exact, ${FPPS_DENOM}) AS carry_out
FROM x`;

const STORE_CREDITS = `
INSERT INTO fpps_credits (period_start, account_id, revision, shares, difficulty, exact, carry_in, credited, carry_out)
SELECT $1::timestamptz, account_id, $2::integer, n, d, exact, carry_in, credited, carry_out FROM fpps_calc`;

const STORE_CARRY = `
INSERT INTO fpps_carry AS c (account_id, carry, updated_at)
SELECT account_id, carry_out, now() FROM fpps_calc
ON CONFLICT (account_id) DO UPDATE SET carry = EXCLUDED.carry, updated_at = now()`;

export class Fpps {
  constructor(private readonly ledger: Ledger = new Ledger()) {}

  /**
   * Credit one period in `tx` (revision 0, from the share sums: the caller has folded them past the period's
   * end), or the shares that arrived after it was credited (revision n, from the raw shares). The caller holds
   * the accounting lock. Returns 'missing-values' (nothing
   * written) when a share's height has no block value recorded yet: the caller records them and retries.
   */
  async creditPeriod(tx: Queryable, frame: BooksFrame, start: number, revision = 0): Promise<PeriodOutcome> {
    const end = start + frame.periodSeconds * 1000;
    const startIso = new Date(start).toISOString();
    const existing = await tx.query<{ revisions: number }>('SELECT revisions FROM fpps_periods WHERE period_start = $1::timestamptz', [startIso]);
    if (revision === 0 && existing.rows.length > 0) return { kind: 'already', periodStart: start };
    if (revision > 0 && (existing.rows.length === 0 || Number(existing.rows[0].revisions) !== revision - 1)) {
      return { kind: 'already', periodStart: start };
    }
    const params = await paramsAt(tx, start);
    if (!params) return { kind: 'no-params', periodStart: start };
    const fee = params.fppsFeeBps;

    await tx.exec(WORK_TABLES);
    const grouped = revision === 0
      ? await tx.query(GROUP_SUMS, [startIso])
      : await tx.query(GROUP_SHARES, [startIso, new Date(end).toISOString()]);
    if (grouped.rowCount > 0) {
      const missing = await tx.query<{ height: number }>(MISSING_HEIGHTS);
      if (missing.rows.length > 0) {
        await tx.query('DELETE FROM fpps_groups');
        return { kind: 'missing-values', periodStart: start, heights: missing.rows.map((r) => Number(r.height)) };
      }
    }
    let allShares = 0;
    let calc: { rows: (CalcRow & { n: string })[] } = { rows: [] };
    if (grouped.rowCount > 0) {
      const totals = await tx.query<{ n: string }>('SELECT coalesce(sum(n), 0)::text AS n FROM fpps_groups');
      allShares = Number(totals.rows[0].n);
      await tx.query(CALC, [startIso, fee, revision]);
      await tx.query(STORE_CREDITS, [startIso, revision]);
      await tx.query(STORE_CARRY);
      calc = await tx.query<CalcRow & { n: string }>('SELECT account_id::text, credited::text, n::text FROM fpps_calc');
    }
    let sum = 0n;
    let fppsShares = 0;
    const lines = [];
    for (const r of calc.rows) {
      fppsShares += Number(r.n);
      const c = BigInt(r.credited);
      if (c > 0n) {
        sum += c;
        lines.push(credit(owned('balance', BigInt(r.account_id)), c));
      }
    }
    if (sum > 0n) {
      await this.ledger.post(tx, {
        key: revision === 0 ? `fpps:${startIso}` : `fpps:${startIso}:rev${revision}`,
        kind: revision === 0 ? 'fpps_credit' : 'fpps_adjustment',
        effectiveAt: new Date(end),
        memo: revision === 0 ? `FPPS credits for ${startIso}` : `FPPS credits for shares of ${startIso} stored after it was credited`,
        refs: { periodStart: startIso, revision },
        postings: [debit(pool('pool_revenue'), sum), ...lines],
      });
    }
    if (revision === 0) {
      // Credited: its sums are not needed any more (an adjustment reads the raw shares).
      await tx.query('DELETE FROM share_sums_period WHERE period_start = $1::timestamptz', [startIso]);
      await tx.query(
        `INSERT INTO fpps_periods (period_start, period_end, fee_bps, shares, fpps_shares, credited)
         VALUES ($1::timestamptz, $2::timestamptz, $3, $4, $5, $6::bigint)`,
        [startIso, new Date(end).toISOString(), fee, allShares, fppsShares, sum.toString()],
      );
    } else {
      // fpps_periods is bookkeeping, not the ledger: the adjustment updates its counters (the history is in
      // fpps_credits, one row per account and revision).
      await tx.query(
        `UPDATE fpps_periods SET shares = $2, fpps_shares = fpps_shares + $3, credited = credited + $4::bigint, revisions = $5
         WHERE period_start = $1::timestamptz`,
        [startIso, allShares, fppsShares, sum.toString(), revision],
      );
    }
    return { kind: 'credited', periodStart: start, shares: allShares, fppsShares, credited: sum, accounts: lines.length, revision };
  }

  /**
   * Periods credited since `since` whose accepted-share count has changed since (late shares). Minute-aligned
   * periods compare with the per-minute rollups (a few rows per period) and the hour rows compaction folded older
   * minutes into: compaction folds the minutes of days older than a few into hours, and daily periods look back
   * 24 days (compared with the minutes alone, every folded period looked changed and got a revision on every pass).
   * A period shorter than an hour (or not whole hours) whose hour was folded has no rollup of its own left: it
   * counts its raw shares, as shorter periods always do.
   */
  async latePeriods(q: Queryable, frame: BooksFrame, since: number): Promise<{ periodStart: number; revision: number }[]> {
    const sinceIso = new Date(since).toISOString();
    const raw = '(SELECT count(*) FROM shares s WHERE s.time >= p.period_start AND s.time < p.period_end)';
    const minutes = '(SELECT coalesce(sum(r.accepted), 0) FROM pool_rollups_minute r WHERE r.bucket >= p.period_start AND r.bucket < p.period_end)';
    const hours = '(SELECT coalesce(sum(h.accepted), 0) FROM pool_rollups_hour h WHERE h.bucket >= p.period_start AND h.bucket < p.period_end)';
    // An hour row that reaches outside the period: the period's part of it is not known from the rollups.
    const straddled = `EXISTS (SELECT 1 FROM pool_rollups_hour h WHERE h.bucket > p.period_start - interval '1 hour'
      AND h.bucket < p.period_end AND (h.bucket < p.period_start OR h.bucket + interval '1 hour' > p.period_end))`;
    // Raw shares only ever grow by late shares; fewer than credited means retention dropped them (nothing to
    // credit: a revision would find nothing, and come back on every pass).
    const changed = frame.periodSeconds % 3600 === 0
      ? `p.shares <> ${minutes} + ${hours}`
      : frame.periodSeconds % 60 === 0
        ? `CASE WHEN ${straddled} THEN p.shares < ${raw} ELSE p.shares <> ${minutes} + ${hours} END`
        : `p.shares < ${raw}`;
    const sql = `SELECT p.period_start, p.revisions FROM fpps_periods p
      WHERE p.period_start >= $1::timestamptz AND ${changed}
      ORDER BY p.period_start`;
    const r = await q.query<{ period_start: Date | string; revisions: number }>(sql, [sinceIso]);
    return r.rows.map((row) => ({ periodStart: new Date(row.period_start).getTime(), revision: Number(row.revisions) + 1 }));
  }
}
