// The market's error catalogue: every refusal has a code, an HTTP status and a one-line message naming the
// field (complaint 10: errors in the body, with a code, never hidden in headers). The API maps these as they are.

export const MARKET_ERRORS = {
  INVALID_ORDER: 400,
  INVALID_PRICE: 400,
  INVALID_HASHRATE: 400,
  INVALID_BUDGET: 400,
  INVALID_DESTINATION: 400,
  INVALID_END_TIME: 400,
  INVALID_WORKERS: 400,
  INVALID_DAY: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  ACCOUNT_NOT_FOUND: 404,
  ORDER_NOT_FOUND: 404,
  WORKER_NOT_FOUND: 404,
  INDEX_NOT_FOUND: 404,
  /** The same client_order_id was used before with different parameters. */
  IDEMPOTENCY_CONFLICT: 409,
  /** The order is cancelled, expired or exhausted: nothing to edit or cancel. */
  ORDER_CLOSED: 409,
  WORKER_IN_ANOTHER_ASK: 409,
  INDEX_NOT_READY: 409,
  /** The buyer's available balance does not cover the budget: nothing was stored or escrowed. */
  INSUFFICIENT_FUNDS: 422,
  RATE_LIMITED: 429,
} as const satisfies Record<string, number>;

export type MarketErrorCode = keyof typeof MARKET_ERRORS;

export class MarketError extends Error {
  readonly status: number;
  constructor(readonly code: MarketErrorCode, message: string, readonly field?: string, readonly extra?: Record<string, unknown>) {
    super(message);
    this.name = 'MarketError';
    this.status = MARKET_ERRORS[code];
  }
}
