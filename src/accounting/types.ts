// Names and shapes of the accounting domain, shared by the ledger, the schemes, payouts, the API and the market.

/** Ledger account kinds without an owner (one each for the pool). Seeded by migration 010. */
export const POOL_KINDS = [
  'wallet', 'network_fees', 'solo_coinbase', 'pool_revenue', 'pool_fee', 'payouts_in_flight', 'market_fee',
  'operator_adjustments',
] as const;
/** Ledger account kinds that belong to one account (accounts.id). */
export const ACCOUNT_KINDS = ['balance', 'solo_earnings', 'buyer_escrow', 'seller_earnings', 'deposits_pending', 'deposit_shortfall'] as const;

/**
 * The most satoshis any amount a caller gives may be: every bitcoin there will ever be (21,000,000 BTC). It also
 * keeps such amounts, and sums of a few of them, well inside the database's bigint.
 */
export const MAX_SATS = 2_100_000_000_000_000n;

export type PoolKind = (typeof POOL_KINDS)[number];
export type AccountKind = (typeof ACCOUNT_KINDS)[number];
export type LedgerKind = PoolKind | AccountKind;

/** Which ledger account: a pool-level kind, or a per-account kind with its owner (accounts.id). */
export type LedgerRef = { kind: PoolKind } | { kind: AccountKind; accountId: bigint };

/** One line of an entry: amount > 0 debits the account, < 0 credits it (satoshis, never 0). */
export interface Posting {
  ref: LedgerRef;
  amount: bigint;
}

/** What kind of money event an entry records (free text in the database; these are ours). */
export type EntryKind =
  | 'fpps_credit' | 'fpps_adjustment' | 'block_credit' | 'solo_block' | 'payout_reserve' | 'payout_settle'
  | 'payout_cancel' | 'operator_adjustment' | 'deposit_credit' | 'deposit_reversal' | 'operator_credit' | `market_${string}`;

export interface EntryInput {
  /** The natural idempotency key of the event (e.g. "block:<hash>:credit"). Posting it twice changes nothing. */
  key: string;
  kind: EntryKind;
  /** When the event happened (period end, block time, signing time). */
  effectiveAt: Date;
  memo?: string;
  /** Links to what the entry came from, e.g. { block: hash } or { batch: id }. */
  refs?: Record<string, string | number | boolean | null>;
  postings: Posting[];
}

/** Outcome of posting an entry: new, or already there under the same key with the same postings. */
export type PostResult =
  | { status: 'posted'; entryId: bigint }
  | { status: 'duplicate'; entryId: bigint };

export interface LedgerAccountBalance {
  ledgerAccountId: bigint;
  kind: LedgerKind;
  accountId: bigint | null;
  /** In the account's natural sign: what it holds of its kind (may be negative only for pool_revenue etc.). */
  balance: bigint;
}

export interface HistoryLine {
  postingId: bigint;
  entryId: bigint;
  key: string;
  entryKind: string;
  effectiveAt: string;
  createdAt: string;
  memo: string | null;
  refs: Record<string, unknown>;
  /** Raw posting amount: > 0 debit, < 0 credit. */
  amount: bigint;
  /** The change to the account's natural balance (normal_sign × amount). */
  change: bigint;
  /** The account's natural balance right after this posting. */
  balanceAfter: bigint;
}

export type Scheme = 'fpps' | 'pplns' | 'solo';
export const SCHEMES: readonly Scheme[] = ['fpps', 'pplns', 'solo'];
