// Errors of the accounting domain. The database enforces the ledger's rules and reports a breach with an
// SQLSTATE of its own (migration 010: HH001..HH005) or a CHECK violation (23514) naming the constraint; these
// classes turn them into something a caller can switch on.

export class AccountingError extends Error {
  override readonly name: string = 'AccountingError';
}

/** The postings of an entry do not sum to zero (refused before the database, or by its deferred trigger). */
export class UnbalancedEntryError extends AccountingError {
  override readonly name = 'UnbalancedEntryError';
}

/** A posting would take a ledger account that may not go negative below zero. */
export class InsufficientBalanceError extends AccountingError {
  override readonly name = 'InsufficientBalanceError';
  constructor(message: string, readonly ledgerAccountId: string | null) {
    super(message);
  }
}

/** An idempotency key already names an entry with different postings: a bug in the caller, never retried. */
export class IdempotencyConflictError extends AccountingError {
  override readonly name = 'IdempotencyConflictError';
  constructor(readonly key: string, detail: string) {
    super(`idempotency key "${key}" already names a different entry: ${detail}`);
  }
}

/** The ledger refused an edit of history (append-only) or a direct balance change. */
export class LedgerIntegrityError extends AccountingError {
  override readonly name = 'LedgerIntegrityError';
  constructor(message: string, readonly code: string) {
    super(message);
  }
}

/** Bad user input (settings, addresses, thresholds): `field` names what was wrong; nothing was stored. */
export class ValidationError extends AccountingError {
  override readonly name = 'ValidationError';
  constructor(readonly field: string, message: string) {
    super(`${field}: ${message}`);
  }
}

export class NotFoundError extends AccountingError {
  override readonly name = 'NotFoundError';
}

/** A state transition that is not allowed (e.g. confirming a payout that was never broadcast). */
export class ConflictError extends AccountingError {
  override readonly name = 'ConflictError';
}

interface PgErrorLike { code?: unknown; constraint?: unknown; message?: unknown; detail?: unknown }

/** Map a database error raised by the ledger's rules to its typed error; anything else is returned as is. */
export function ledgerError(err: unknown): unknown {
  const e = err as PgErrorLike | null;
  if (!e || typeof e !== 'object') return err;
  const code = typeof e.code === 'string' ? e.code : '';
  const message = typeof e.message === 'string' ? e.message : String(err);
  if (code === '23514' && (e.constraint === 'ledger_balance_not_negative' || /ledger_balance_not_negative/.test(message))) {
    // "Failing row contains (id, kind, …)": the first column is the ledger account id.
    const detail = typeof e.detail === 'string' ? e.detail : '';
    const id = /Failing row contains \((\d+),/.exec(detail)?.[1] ?? null;
    return new InsufficientBalanceError(`a ledger account would go below zero${id ? ` (ledger account ${id})` : ''}`, id);
  }
  if (code === 'HH001') return new UnbalancedEntryError(message);
  if (code === 'HH002' || code === 'HH003' || code === 'HH004' || code === 'HH005') return new LedgerIntegrityError(message, code);
  return err;
}
