import type { Queryable } from '../store/db.ts';
import { FPPS_DENOM } from './params.ts';

// Read models of the books for the API and the CLI: an account's money (what it holds, what is on the way, what
// was paid), its earnings per credit period and per block with what they came from, blocks with their credits,
// and the pool's public totals. Plain SQL over the ledger and the scheme tables; amounts as bigint.

const iso = (v: Date | string | null): string | null => (v === null ? null : new Date(v).toISOString());

export interface AccountMoney {
  /** Spendable balance owed by the pool. */
  balance: bigint;
  /** Credits from blocks found but not yet confirmed (not money yet: an orphan takes them back). */
  immature: bigint;
  /** Reserved in payout transactions not yet confirmed. */
  inFlight: bigint;
  /** Paid in confirmed payouts, all time. */
  paid: bigint;
  /** SOLO blocks paid to the account by the coinbase itself. */
  soloEarnings: bigint;
  /** The FPPS fraction of a satoshi carried to the next period, in millisatoshis (rounded down, for display). */
  fppsCarryMsat: bigint;
}

export async function accountMoney(q: Queryable, accountId: bigint): Promise<AccountMoney> {
  const id = accountId.toString();
  const r = await q.query<Record<string, string>>(
    `SELECT
       coalesce((SELECT balance FROM ledger_accounts WHERE kind = 'balance' AND account_id = $1::bigint), 0)::text AS balance,
       coalesce((SELECT balance FROM ledger_accounts WHERE kind = 'solo_earnings' AND account_id = $1::bigint), 0)::text AS solo,
       coalesce((SELECT sum(l.amount) FROM block_split_lines l JOIN blocks b ON b.hash = l.block_hash JOIN block_splits s ON s.block_hash = l.block_hash
         WHERE l.account_id = $1::bigint AND b.status IN ('submitted', 'unconfirmed', 'pending')
           AND NOT (s.kind = 'solo' AND s.paid_in_coinbase)), 0)::text AS immature,
       coalesce((SELECT sum(l.amount) FROM payout_lines l JOIN payout_batches b ON b.id = l.batch_id
         WHERE l.account_id = $1::bigint AND b.status IN ('signed', 'broadcast', 'awaiting_signature')), 0)::text AS in_flight,
       coalesce((SELECT sum(l.amount) FROM payout_lines l JOIN payout_batches b ON b.id = l.batch_id
         WHERE l.account_id = $1::bigint AND b.status = 'confirmed'), 0)::text AS paid,
       coalesce((SELECT div(carry * 1000, ${FPPS_DENOM}) FROM fpps_carry WHERE account_id = $1::bigint), 0)::text AS carry`,
    [id],
  );
  const x = r.rows[0];
  return {
    balance: BigInt(x.balance), immature: BigInt(x.immature), inFlight: BigInt(x.in_flight), paid: BigInt(x.paid),
    soloEarnings: BigInt(x.solo), fppsCarryMsat: BigInt(x.carry),
  };
}

export type Earning =
  | { kind: 'fpps'; time: string; periodStart: string; periodEnd: string; revision: number; shares: number; difficulty: string; amount: bigint }
  | { kind: 'block'; time: string; hash: string; height: number; blockStatus: string; split: 'pooled' | 'solo'; shares: number; amount: bigint;
      /** The block is confirmed and its amount is in the balance (or, SOLO paid in the coinbase, recorded). */
      inBalance: boolean; paidInCoinbase: boolean };

/**
 * An account's earnings, newest first: FPPS credits per period (and revision) and block split lines. A page holds
 * `limit` items, more when items after the limit share the last one's time (a period's revisions): `before` = the
 * last item's time then gives the next page without skipping any.
 */
export async function earnings(q: Queryable, accountId: bigint, opts: { limit: number; before?: string }): Promise<Earning[]> {
  const r = await q.query<{ kind: string; t: Date | string; period_end: Date | string | null; revision: number | null; shares: string; difficulty: string | null;
    amount: string; hash: string | null; height: number | null; status: string | null; split: string | null; credited: boolean | null; pic: boolean | null }>(
    `WITH x AS NOT MATERIALIZED (
       SELECT 'fpps' AS kind, c.period_start AS t, p.period_end, c.revision, c.shares::text, c.difficulty::text, c.credited::text AS amount,
         NULL::text AS hash, NULL::integer AS height, NULL::text AS status, NULL::text AS split, NULL::boolean AS credited, NULL::boolean AS pic
       FROM fpps_credits c JOIN fpps_periods p ON p.period_start = c.period_start WHERE c.account_id = $1::bigint
       UNION ALL
       SELECT 'block', s.block_time, NULL, NULL, l.shares::text, NULL, l.amount::text, s.block_hash, s.height, b.status, s.kind,
         EXISTS (SELECT 1 FROM journal_entries e WHERE e.idempotency_key = 'block:' || s.block_hash || ':credit'), s.paid_in_coinbase
       FROM block_split_lines l JOIN block_splits s ON s.block_hash = l.block_hash JOIN blocks b ON b.hash = s.block_hash
       WHERE l.account_id = $1::bigint
     ),
     older AS NOT MATERIALIZED (SELECT * FROM x WHERE $2::timestamptz IS NULL OR x.t < $2::timestamptz)
     -- The page ends at a time, not inside it: every item of its last time is in it (the next page is strictly
     -- before that time, so items tied with the last one were skipped when the limit cut between them). Inlined in
     -- both places (NOT MATERIALIZED), so each can stop early on the account's indexes.
     SELECT * FROM older o WHERE o.t >= (SELECT min(t) FROM (SELECT t FROM older ORDER BY t DESC LIMIT $3) p)
     ORDER BY o.t DESC, o.kind, o.revision DESC, o.hash`,
    [accountId.toString(), opts.before ?? null, opts.limit],
  );
  return r.rows.map((e): Earning => e.kind === 'fpps'
    ? { kind: 'fpps', time: iso(e.t)!, periodStart: iso(e.t)!, periodEnd: iso(e.period_end)!, revision: Number(e.revision), shares: Number(e.shares), difficulty: e.difficulty!, amount: BigInt(e.amount) }
    : { kind: 'block', time: iso(e.t)!, hash: e.hash!, height: Number(e.height), blockStatus: e.status!, split: e.split as 'pooled' | 'solo', shares: Number(e.shares),
        amount: BigInt(e.amount), inBalance: !!e.credited, paidInCoinbase: !!e.pic });
}

export interface PeriodShares {
  periodStart: string;
  periodEnd: string;
  credits: { revision: number; shares: number; difficulty: string; credited: bigint; exactSat: string }[];
  /** The shares the period's credit came from, per (height, nbits): still available within share retention. */
  groups: { height: number; nbits: number | null; shares: number; difficulty: string; blockValue: bigint | null; networkDifficulty: string | null }[];
}

export async function periodShares(q: Queryable, accountId: bigint, periodStart: string): Promise<PeriodShares | null> {
  const p = await q.query<{ period_start: Date | string; period_end: Date | string }>('SELECT period_start, period_end FROM fpps_periods WHERE period_start = $1::timestamptz', [periodStart]);
  if (p.rows.length === 0) return null;
  const start = iso(p.rows[0].period_start)!;
  const end = iso(p.rows[0].period_end)!;
  const credits = await q.query<{ revision: number; shares: string; difficulty: string; credited: string; exact: string }>(
    `SELECT revision, shares::text, difficulty::text, credited::text, round(exact / ${FPPS_DENOM}, 8)::text AS exact FROM fpps_credits
     WHERE period_start = $1::timestamptz AND account_id = $2::bigint ORDER BY revision`, [start, accountId.toString()]);
  const groups = await q.query<{ height: number; nbits: number | null; n: string; d: string; value: string | null; netdiff: string | null }>(
    `SELECT s.height, s.nbits, count(*)::text AS n, sum(s.pool_difficulty::numeric)::text AS d, v.value::text,
       round(65535 / hashhub_bits_ratio(coalesce(s.nbits, v.bits)), 4)::text AS netdiff
     FROM shares s LEFT JOIN chain_block_values v ON v.height = s.height
     WHERE s.account_id = $1::bigint AND s.time >= $2::timestamptz AND s.time < $3::timestamptz
     GROUP BY s.height, s.nbits, v.value, v.bits ORDER BY s.height, s.nbits`, [accountId.toString(), start, end]);
  return {
    periodStart: start, periodEnd: end,
    credits: credits.rows.map((c) => ({ revision: Number(c.revision), shares: Number(c.shares), difficulty: c.difficulty, credited: BigInt(c.credited), exactSat: c.exact })),
    groups: groups.rows.map((g) => ({ height: Number(g.height), nbits: g.nbits === null ? null : Number(g.nbits), shares: Number(g.n), difficulty: g.d,
      blockValue: g.value === null ? null : BigInt(g.value), networkDifficulty: g.netdiff })),
  };
}

export interface BlockAccountingView {
  hash: string;
  height: number;
  time: string;
  status: string;
  confirmations: number;
  reward: bigint | null;
  split: 'pooled' | 'solo' | null;
  fee: bigint | null;
  toPoolRevenue: bigint | null;
  lines: number;
  windowShares: number | null;
  cappedByTime: boolean | null;
  credited: boolean;
}

export async function blocksView(q: Queryable, opts: { limit: number; offset: number }): Promise<{ total: number; items: BlockAccountingView[] }> {
  const r = await q.query<{ hash: string; height: number; time: Date | string; status: string; confirmations: number; reward: string | null; kind: string | null;
    fee: string | null; rev: string | null; lines: string; window_shares: string | null; capped: boolean | null; credited: boolean; n: string }>(
    `SELECT b.hash, b.height, b.time, b.status, b.confirmations, b.reward::text, s.kind, s.fee::text, s.to_pool_revenue::text AS rev,
       (SELECT count(*) FROM block_split_lines l WHERE l.block_hash = b.hash)::text AS lines, s.window_shares::text, s.capped_by_time AS capped,
       EXISTS (SELECT 1 FROM journal_entries e WHERE e.idempotency_key = 'block:' || b.hash || ':credit') AS credited,
       count(*) OVER ()::text AS n
     FROM blocks b LEFT JOIN block_splits s ON s.block_hash = b.hash
     ORDER BY b.time DESC, b.height DESC LIMIT $1 OFFSET $2`, [opts.limit, opts.offset]);
  return {
    total: r.rows.length ? Number(r.rows[0].n) : 0,
    items: r.rows.map((b) => ({
      hash: b.hash, height: Number(b.height), time: iso(b.time)!, status: b.status, confirmations: Number(b.confirmations),
      reward: b.reward === null ? null : BigInt(b.reward), split: b.kind as 'pooled' | 'solo' | null, fee: b.fee === null ? null : BigInt(b.fee),
      toPoolRevenue: b.rev === null ? null : BigInt(b.rev), lines: Number(b.lines), windowShares: b.window_shares === null ? null : Number(b.window_shares),
      cappedByTime: b.capped, credited: b.credited,
    })),
  };
}

/** Per-account credits of one block (operator view: these are accounts' earnings). */
export async function blockLines(q: Queryable, hash: string): Promise<{ account: string; shares: number; weight: string; amount: bigint }[]> {
  const r = await q.query<{ name: string; shares: string; weight: string; amount: string }>(
    `SELECT a.name, l.shares::text, l.weight::text, l.amount::text FROM block_split_lines l JOIN accounts a ON a.id = l.account_id
     WHERE l.block_hash = $1 ORDER BY l.amount DESC, a.name`, [hash]);
  return r.rows.map((x) => ({ account: x.name, shares: Number(x.shares), weight: x.weight, amount: BigInt(x.amount) }));
}

/** What anybody may see: totals, never an account's. */
export async function poolTotals(q: Queryable): Promise<{ blocksCredited: number; rewardsCredited: bigint; paid: bigint; payouts: number; accountsPaid: number }> {
  const r = await q.query<{ blocks: string; rewards: string; paid: string; payouts: string; accounts: string }>(
    `SELECT (SELECT count(*) FROM journal_entries WHERE kind IN ('block_credit', 'solo_block'))::text AS blocks,
       (SELECT coalesce(sum(s.reward), 0) FROM block_splits s JOIN journal_entries e ON e.idempotency_key = 'block:' || s.block_hash || ':credit')::text AS rewards,
       (SELECT coalesce(sum(total), 0) FROM payout_batches WHERE status = 'confirmed')::text AS paid,
       (SELECT count(*) FROM payout_batches WHERE status = 'confirmed')::text AS payouts,
       (SELECT count(DISTINCT l.account_id) FROM payout_lines l JOIN payout_batches b ON b.id = l.batch_id WHERE b.status = 'confirmed')::text AS accounts`);
  const x = r.rows[0];
  return { blocksCredited: Number(x.blocks), rewardsCredited: BigInt(x.rewards), paid: BigInt(x.paid), payouts: Number(x.payouts), accountsPaid: Number(x.accounts) };
}

/** An account's payouts: its line in each batch, with the batch's transaction and confirmations. */
export async function accountPayouts(q: Queryable, accountId: bigint, opts: { limit: number; offset: number }): Promise<{ batchId: bigint; amount: bigint; address: string;
  status: string; txid: string | null; confirmations: number; createdAt: string; confirmedAt: string | null }[]> {
  const r = await q.query<{ id: string; amount: string; address: string; status: string; txid: string | null; confirmed_txid: string | null; confirmations: number;
    created_at: Date | string; confirmed_at: Date | string | null }>(
    `SELECT b.id::text, l.amount::text, l.address, b.status, b.txid, b.confirmed_txid, b.confirmations, b.created_at, b.confirmed_at
     FROM payout_lines l JOIN payout_batches b ON b.id = l.batch_id WHERE l.account_id = $1::bigint AND b.status <> 'pending'
     ORDER BY b.id DESC LIMIT $2 OFFSET $3`, [accountId.toString(), opts.limit, opts.offset]);
  return r.rows.map((x) => ({
    batchId: BigInt(x.id), amount: BigInt(x.amount), address: x.address, status: x.status, txid: x.confirmed_txid ?? x.txid,
    confirmations: Number(x.confirmations), createdAt: iso(x.created_at)!, confirmedAt: iso(x.confirmed_at),
  }));
}
