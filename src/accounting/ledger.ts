import type { Database, Queryable } from '../store/db.ts';
import { IdempotencyConflictError, UnbalancedEntryError, ledgerError } from './errors.ts';
import {
  ACCOUNT_KINDS, type AccountKind, type EntryInput, type HistoryLine, type LedgerAccountBalance, type LedgerKind,
  type LedgerRef, POOL_KINDS, type PostResult,
} from './types.ts';

// The ledger's TypeScript face. The rules live in the database (migration 010): an entry that does not sum to
// zero is refused at COMMIT, a balance that may not go negative cannot, history cannot be edited. This module
// shapes entries, resolves ledger accounts, makes a repeated post a no-op, and reads balances and history.
//
// Every method takes the Queryable to run on, so a caller posts an entry in the same transaction as the state
// change it belongs to (a payout batch row and its reserve entry commit together or not at all).

const POOL = new Set<string>(POOL_KINDS);
const PER_ACCOUNT = new Set<string>(ACCOUNT_KINDS);

export const pool = (kind: (typeof POOL_KINDS)[number]): LedgerRef => ({ kind });
export const owned = (kind: AccountKind, accountId: bigint): LedgerRef => ({ kind, accountId });
/** A debit line (amount > 0 in the ledger's sign). */
export const debit = (ref: LedgerRef, sats: bigint) => ({ ref, amount: sats });
/** A credit line (amount < 0 in the ledger's sign). */
export const credit = (ref: LedgerRef, sats: bigint) => ({ ref, amount: -sats });

function refKey(r: LedgerRef): string {
  return 'accountId' in r ? `${r.kind}:${r.accountId}` : r.kind;
}

function checkRef(r: LedgerRef): void {
  if ('accountId' in r) {
    if (!PER_ACCOUNT.has(r.kind)) throw new TypeError(`ledger kind ${r.kind} is not per-account`);
    if (typeof r.accountId !== 'bigint' || r.accountId <= 0n) throw new TypeError(`bad account id ${String(r.accountId)} for ${r.kind}`);
  } else if (!POOL.has(r.kind)) {
    throw new TypeError(`ledger kind ${r.kind} needs an account id`);
  }
}

/** Merge lines per ledger account, drop zero nets, check the sum. Throws UnbalancedEntryError. */
export function normalizePostings(entry: EntryInput): { ref: LedgerRef; amount: bigint }[] {
  const byKey = new Map<string, { ref: LedgerRef; amount: bigint }>();
  let sum = 0n;
  for (const p of entry.postings) {
    if (typeof p.amount !== 'bigint') throw new TypeError(`posting amount must be a bigint (satoshis), got ${typeof p.amount}`);
    checkRef(p.ref);
    sum += p.amount;
    const k = refKey(p.ref);
    const cur = byKey.get(k);
    if (cur) cur.amount += p.amount;
    else byKey.set(k, { ref: p.ref, amount: p.amount });
  }
  if (sum !== 0n) throw new UnbalancedEntryError(`entry ${entry.key}: postings sum to ${sum}, not 0`);
  const lines = [...byKey.values()].filter((l) => l.amount !== 0n);
  if (lines.length < 2) throw new UnbalancedEntryError(`entry ${entry.key}: needs at least two non-zero lines`);
  return lines;
}

interface AccountRow { id: string; kind: LedgerKind; account_id: string | null; balance: string }

export class Ledger {
  /**
   * Post an entry on `tx` (inside the caller's transaction). A key already posted with the same lines returns
   * 'duplicate' and changes nothing; with other lines it throws IdempotencyConflictError. Breaches of the
   * ledger's rules come back typed (InsufficientBalanceError, UnbalancedEntryError, LedgerIntegrityError).
   * The balance check happens at the INSERT; the zero-sum check at COMMIT.
   */
  async post(tx: Queryable, entry: EntryInput): Promise<PostResult> {
    const lines = normalizePostings(entry);
    try {
      const ids = await this.resolve(tx, lines.map((l) => l.ref));
      const ins = await tx.query<{ id: string }>(
        `INSERT INTO journal_entries (idempotency_key, kind, effective_at, memo, refs)
         VALUES ($1, $2, $3::timestamptz, $4, $5::jsonb)
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id::text`,
        [entry.key, entry.kind, entry.effectiveAt.toISOString(), entry.memo ?? null, JSON.stringify(entry.refs ?? {})],
      );
      if (ins.rows.length === 0) return await this.sameAsPosted(tx, entry, lines, ids);
      const entryId = ins.rows[0].id;
      await tx.query(
        `INSERT INTO postings (entry_id, ledger_account_id, amount)
         SELECT $1::bigint, a, m FROM unnest($2::bigint[], $3::bigint[]) AS x(a, m)`,
        [entryId, ids.map(String), lines.map((l) => l.amount.toString())],
      );
      return { status: 'posted', entryId: BigInt(entryId) };
    } catch (e) {
      throw ledgerError(e);
    }
  }

  /** post() in a transaction of its own. */
  async postNow(db: Database, entry: EntryInput): Promise<PostResult> {
    try {
      return await db.transaction((tx) => this.post(tx, entry));
    } catch (e) {
      throw ledgerError(e);
    }
  }

  /** Ledger account ids for refs, in order, creating missing accounts (idempotent, concurrency-safe). */
  async resolve(q: Queryable, refs: readonly LedgerRef[]): Promise<bigint[]> {
    for (const r of refs) checkRef(r);
    const r = await q.query<{ ord: number; id: string }>(
      'SELECT ord, id::text AS id FROM hashhub_ledger_accounts($1::text[], $2::bigint[])',
      [refs.map((x) => x.kind), refs.map((x) => ('accountId' in x ? x.accountId.toString() : null))],
    );
    if (r.rows.length !== refs.length) throw new Error(`resolved ${r.rows.length} ledger accounts for ${refs.length} refs`);
    return r.rows.map((row) => BigInt(row.id));
  }

  private async sameAsPosted(q: Queryable, entry: EntryInput, lines: { amount: bigint }[], ids: bigint[]): Promise<PostResult> {
    const prev = await q.query<{ entry_id: string; kind: string; ledger_account_id: string; amount: string }>(
      `SELECT e.id::text AS entry_id, e.kind, p.ledger_account_id::text, p.amount::text
       FROM journal_entries e LEFT JOIN postings p ON p.entry_id = e.id WHERE e.idempotency_key = $1`,
      [entry.key],
    );
    if (prev.rows.length === 0) throw new Error(`entry ${entry.key} vanished after a conflict`);
    const entryId = BigInt(prev.rows[0].entry_id);
    if (prev.rows[0].kind !== entry.kind) throw new IdempotencyConflictError(entry.key, `kind ${prev.rows[0].kind}, not ${entry.kind}`);
    const want = new Map(ids.map((id, i) => [id.toString(), lines[i].amount]));
    const have = new Map(prev.rows.filter((r) => r.ledger_account_id !== null).map((r) => [r.ledger_account_id, BigInt(r.amount)]));
    const same = want.size === have.size && [...want].every(([id, amt]) => have.get(id) === amt);
    if (!same) throw new IdempotencyConflictError(entry.key, `${have.size} posted line(s) differ from the ${want.size} given`);
    return { status: 'duplicate', entryId };
  }

  /** Natural balance of one ledger account (0 when it was never used). */
  async balance(q: Queryable, ref: LedgerRef): Promise<bigint> {
    checkRef(ref);
    const r = await q.query<{ balance: string }>(
      'SELECT balance::text AS balance FROM ledger_accounts WHERE kind = $1 AND coalesce(account_id, -1) = $2::bigint',
      [ref.kind, 'accountId' in ref ? ref.accountId.toString() : '-1'],
    );
    return r.rows.length ? BigInt(r.rows[0].balance) : 0n;
  }

  /** Every ledger account of one account (balance, escrow, …). */
  async accountBalances(q: Queryable, accountId: bigint): Promise<LedgerAccountBalance[]> {
    const r = await q.query<AccountRow>(
      `SELECT id::text, kind, account_id::text, balance::text FROM ledger_accounts WHERE account_id = $1::bigint ORDER BY kind`,
      [accountId.toString()],
    );
    return r.rows.map(toBalance);
  }

  /** The pool-level ledger accounts. */
  async poolBalances(q: Queryable): Promise<LedgerAccountBalance[]> {
    const r = await q.query<AccountRow>(
      'SELECT id::text, kind, account_id::text, balance::text FROM ledger_accounts WHERE account_id IS NULL ORDER BY kind',
    );
    return r.rows.map(toBalance);
  }

  /** Totals per kind over all owners (e.g. Σ of all miner balances). */
  async totalsByKind(q: Queryable): Promise<Map<LedgerKind, bigint>> {
    const r = await q.query<{ kind: LedgerKind; total: string }>(
      'SELECT kind, sum(balance)::text AS total FROM ledger_accounts GROUP BY kind',
    );
    return new Map(r.rows.map((row) => [row.kind, BigInt(row.total)]));
  }

  /**
   * Postings of one ledger account, newest first, with the balance after each (from the current balance minus
   * the later postings: no scan of the whole history). `before` = a posting id to page from.
   */
  async history(q: Queryable, ref: LedgerRef, opts: { limit?: number; before?: bigint } = {}): Promise<HistoryLine[]> {
    checkRef(ref);
    const limit = Math.min(Math.max(opts.limit ?? 50, 1), 1000);
    const r = await q.query<{
      posting_id: string; entry_id: string; key: string; kind: string; effective_at: Date | string; created_at: Date | string;
      memo: string | null; refs: Record<string, unknown> | string; amount: string; change: string; balance_after: string;
    }>(
      `WITH acct AS (
         SELECT id, normal_sign, balance FROM ledger_accounts WHERE kind = $1 AND coalesce(account_id, -1) = $2::bigint
       ), page AS (
         SELECT p.id, p.entry_id, p.amount FROM postings p, acct
         WHERE p.ledger_account_id = acct.id AND ($3::bigint IS NULL OR p.id < $3::bigint)
         ORDER BY p.id DESC LIMIT $4
       ), later AS (
         SELECT coalesce(sum(p.amount), 0) AS s FROM postings p, acct
         WHERE p.ledger_account_id = acct.id AND p.id > coalesce((SELECT max(id) FROM page), 9223372036854775807)
       )
       SELECT page.id::text AS posting_id, e.id::text AS entry_id, e.idempotency_key AS key, e.kind, e.effective_at,
         e.created_at, e.memo, e.refs, page.amount::text, (acct.normal_sign * page.amount)::text AS change,
         (acct.balance - acct.normal_sign * ((SELECT s FROM later)
           + coalesce(sum(page.amount) OVER (ORDER BY page.id DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)))::bigint::text
           AS balance_after
       FROM page JOIN journal_entries e ON e.id = page.entry_id, acct
       ORDER BY page.id DESC`,
      [ref.kind, 'accountId' in ref ? ref.accountId.toString() : '-1', opts.before?.toString() ?? null, limit],
    );
    return r.rows.map((row) => ({
      postingId: BigInt(row.posting_id),
      entryId: BigInt(row.entry_id),
      key: row.key,
      entryKind: row.kind,
      effectiveAt: iso(row.effective_at),
      createdAt: iso(row.created_at),
      memo: row.memo,
      refs: typeof row.refs === 'string' ? (JSON.parse(row.refs) as Record<string, unknown>) : row.refs,
      amount: BigInt(row.amount),
      change: BigInt(row.change),
      balanceAfter: BigInt(row.balance_after),
    }));
  }

  /**
   * The ledger's self-check: every running balance equals its postings, every entry sums to zero, and debits
   * equal credits overall. Returns the problems found (empty = consistent). For tests and `accounting verify`.
   */
  async verify(q: Queryable): Promise<string[]> {
    const problems: string[] = [];
    const drift = await q.query<{ id: string; kind: string; balance: string; expected: string }>(
      `SELECT a.id::text, a.kind, a.balance::text, (a.normal_sign * coalesce(s.total, 0))::text AS expected
       FROM ledger_accounts a
       LEFT JOIN (SELECT ledger_account_id, sum(amount) AS total FROM postings GROUP BY 1) s ON s.ledger_account_id = a.id
       WHERE a.balance <> a.normal_sign * coalesce(s.total, 0)`,
    );
    for (const d of drift.rows) problems.push(`ledger account ${d.id} (${d.kind}): balance ${d.balance}, postings say ${d.expected}`);
    const unbalanced = await q.query<{ key: string; total: string; n: string }>(
      `SELECT e.idempotency_key AS key, coalesce(sum(p.amount), 0)::text AS total, count(p.id)::text AS n
       FROM journal_entries e LEFT JOIN postings p ON p.entry_id = e.id
       GROUP BY e.id HAVING coalesce(sum(p.amount), 0) <> 0 OR count(p.id) < 2`,
    );
    for (const u of unbalanced.rows) problems.push(`entry ${u.key}: ${u.n} postings summing to ${u.total}`);
    const negative = await q.query<{ id: string; kind: string; balance: string }>(
      'SELECT id::text, kind, balance::text FROM ledger_accounts WHERE NOT allow_negative AND balance < 0',
    );
    for (const n of negative.rows) problems.push(`ledger account ${n.id} (${n.kind}) is negative: ${n.balance}`);
    const total = await q.query<{ s: string }>('SELECT coalesce(sum(normal_sign * balance), 0)::text AS s FROM ledger_accounts');
    if (BigInt(total.rows[0].s) !== 0n) problems.push(`debits and credits differ by ${total.rows[0].s}`);
    return problems;
  }
}

function toBalance(r: AccountRow): LedgerAccountBalance {
  return { ledgerAccountId: BigInt(r.id), kind: r.kind, accountId: r.account_id === null ? null : BigInt(r.account_id), balance: BigInt(r.balance) };
}

function iso(v: Date | string): string {
  return (v instanceof Date ? v : new Date(v)).toISOString();
}

/**
 * Run fn inside a savepoint of tx: on error roll back to it (the outer transaction stays usable) and rethrow.
 * For a step that may fail on its own (one account in a batch) without aborting the rest.
 */
let savepointSeq = 0;
export async function withSavepoint<T>(tx: Queryable, fn: () => Promise<T>): Promise<T> {
  const name = `hh_sp_${++savepointSeq}`;
  await tx.query(`SAVEPOINT ${name}`);
  try {
    const r = await fn();
    await tx.query(`RELEASE SAVEPOINT ${name}`);
    return r;
  } catch (e) {
    await tx.query(`ROLLBACK TO SAVEPOINT ${name}`);
    throw e;
  }
}
