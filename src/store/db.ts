// The one seam between hashhub and a SQL engine: Postgres through `pg`, or PGlite embedded. Both speak the same
// SQL (the migrations and queries.ts are shared); only connection handling and COPY's data channel differ.

export interface Rows<R> {
  rows: R[];
  /** Rows affected by INSERT/UPDATE/DELETE/COPY, when the engine reports it. */
  rowCount: number;
}

export interface Queryable {
  /** One statement, $1… parameters. Pass timestamps as ISO strings and cast in SQL ($1::timestamptz). */
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<Rows<R>>;
  /** A script of statements without parameters (simple protocol), e.g. a migration file. */
  exec(sql: string): Promise<void>;
  /**
   * COPY … FROM STDIN with `data` in COPY text format. On PGlite the statement's `FROM STDIN` is rewritten to
   * its blob device. Returns the rows copied.
   */
  copyFrom(copySql: string, data: string | Uint8Array): Promise<number>;
}

export interface Database extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** A human-readable target for logs (no password). */
  readonly target: string;
  /**
   * Run fn in one transaction on one connection: COMMIT when it resolves, ROLLBACK when it throws. With
   * timeoutMs, a transaction still running after that long is aborted (Postgres: its connection is destroyed)
   * and the promise rejects with DatabaseTimeoutError.
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>, opts?: { timeoutMs?: number }): Promise<T>;
  close(): Promise<void>;
}

export class DatabaseTimeoutError extends Error {
  constructor(ms: number) {
    super(`database transaction did not finish within ${ms} ms`);
    this.name = 'DatabaseTimeoutError';
  }
}

/**
 * A read cannot be served because of the database itself, not the request: it is unreachable (or not answering
 * in time), or its schema is not migrated yet. The API answers 503 with a code naming the database.
 */
export class DatabaseUnavailableError extends Error {
  constructor(readonly reason: 'unreachable' | 'not-migrated', message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DatabaseUnavailableError';
  }
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
  // SQLSTATE class 08 (connection exception), 57P01..57P03 (admin shutdown, crash shutdown, cannot connect now)
  '08000', '08003', '08006', '08001', '08004', '57P01', '57P02', '57P03',
]);

/**
 * True when err means "the database is not reachable right now" (retry later) rather than "this SQL is wrong".
 * Start-up uses it to decide between "run and spool until it is back" and "refuse to start".
 */
export function isConnectionError(err: unknown): boolean {
  if (err instanceof DatabaseTimeoutError) return true;
  const e = err as { code?: unknown; message?: unknown; cause?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
  if (e.cause && e.cause !== err && isConnectionError(e.cause)) return true;
  if (typeof e.code === 'string' && CONNECTION_CODES.has(e.code)) return true;
  const msg = typeof e.message === 'string' ? e.message : '';
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable|server closed the connection/i.test(msg);
}

/** "postgres://user:***@host:port/db" for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    // libpq also takes the password as a query parameter.
    for (const k of [...u.searchParams.keys()]) if (/^(password|sslpassword)$/i.test(k)) u.searchParams.set(k, '***');
    return u.toString();
  } catch {
    return '(unparsable database URL)';
  }
}
