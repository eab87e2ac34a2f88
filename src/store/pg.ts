import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { Logger } from 'pino';
import { type Database, DatabaseTimeoutError, type Queryable, type Rows, redactUrl } from './db.ts';

export interface PgOptions {
  url: string;
  /** Connections in the pool (the ingest writer uses one at a time; the rest serve the API's reads). */
  maxConnections?: number;
  /** Give up on opening a connection after this long (a cut network must not hang the writer). */
  connectTimeoutMs?: number;
  /** Client-side limit for single queries outside transactions (reads); 0 = none. */
  queryTimeoutMs?: number;
  applicationName?: string;
  logger?: Logger;
}

type PgClient = pg.PoolClient;

/** Postgres through `pg`: a pool of connections, COPY through pg-copy-streams. */
export class PgDatabase implements Database {
  readonly kind = 'postgres' as const;
  readonly target: string;
  private readonly pool: pg.Pool;
  private readonly queryTimeoutMs: number;
  private closed = false;

  constructor(opts: PgOptions) {
    this.target = redactUrl(opts.url);
    this.queryTimeoutMs = opts.queryTimeoutMs ?? 30_000;
    this.pool = new pg.Pool({
      connectionString: opts.url,
      // The share writer, the books, the market, routing's meter and the API's reads share this pool: with 4,
      // dashboard reads queued behind the writer's and the books' work. Connections open only when needed.
      max: opts.maxConnections ?? 10,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
      idleTimeoutMillis: 30_000,
      application_name: opts.applicationName ?? 'hashhub',
      // Day boundaries and minute buckets are UTC in SQL already; this keeps ad-hoc output readable too.
      options: '-c TimeZone=UTC',
      keepAlive: true,
    });
    // An idle connection that dies (the server restarts, the network is cut) emits 'error' on the pool; with no
    // listener that would be an uncaught exception. The pool drops the connection; callers see errors on use.
    this.pool.on('error', (err) => opts.logger?.debug({ err: err.message }, 'idle database connection lost'));
  }

  async query<R>(sql: string, params: readonly unknown[] = []): Promise<Rows<R>> {
    const cfg: pg.QueryConfig = { text: sql, values: params as unknown[] };
    if (this.queryTimeoutMs > 0) (cfg as { query_timeout?: number }).query_timeout = this.queryTimeoutMs;
    const r = await this.pool.query(cfg);
    return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
  }

  async exec(sql: string): Promise<void> {
    await this.pool.query(sql);
  }

  async copyFrom(copySql: string, data: string | Uint8Array): Promise<number> {
    return this.transaction((tx) => tx.copyFrom(copySql, data));
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>, opts: { timeoutMs?: number } = {}): Promise<T> {
    const client = await this.pool.connect();
    // While we hold the connection, a socket error between two queries is emitted on the client itself; without
    // a listener it would crash the process. The failing query (or the next one) reports it to the caller.
    const onError = (): void => {};
    client.on('error', onError);
    let broken: Error | undefined;
    let timer: NodeJS.Timeout | undefined;
    const work = (async () => {
      await client.query('BEGIN');
      const r = await fn(wrapClient(client));
      await client.query('COMMIT');
      return r;
    })();
    try {
      if (!opts.timeoutMs) return await work;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          broken = new DatabaseTimeoutError(opts.timeoutMs!);
          // Destroying the socket is the only way to stop a statement stuck behind a dead network: the server
          // rolls the transaction back when it notices; if it had committed, the caller's retry is idempotent.
          destroySocket(client);
          reject(broken);
        }, opts.timeoutMs);
      });
      return await Promise.race([work, timeout]);
    } catch (e) {
      if (!broken) {
        try {
          await client.query('ROLLBACK');
        } catch (e2) {
          broken = e2 as Error;
        }
      }
      throw e;
    } finally {
      clearTimeout(timer);
      work.catch(() => undefined);
      client.off('error', onError);
      // release(err) discards the connection instead of returning a broken one to the pool.
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}

function destroySocket(client: PgClient): void {
  const stream = (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream;
  stream?.destroy();
}

function wrapClient(client: PgClient): Queryable {
  return {
    async query<R>(sql: string, params: readonly unknown[] = []): Promise<Rows<R>> {
      // No per-query timeout inside a transaction: the transaction's own timeout covers it.
      const r = await client.query({ text: sql, values: params as unknown[] });
      return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
    },
    async exec(sql: string): Promise<void> {
      await client.query(sql);
    },
    async copyFrom(copySql: string, data: string | Uint8Array): Promise<number> {
      const stream = client.query(copyFrom(copySql));
      // The text is in memory already: one end() instead of pipeline(Readable.from(...)), whose AbortController per
      // COPY was aborted at every completion (a DOMException with its stack trace). 'finish' comes once the server
      // has answered the COPY (pg-copy-streams' _final). As pipeline did, the error listener stays and destroys the
      // stream: an error while data is still queued (pg's query_timeout) would otherwise let the drain run _final on
      // a stream pg has let go, whose second 'error' had no listener and ended the process (test/pg-copy.test.ts).
      await new Promise<void>((resolve, reject) => {
        stream.on('error', (err: Error) => {
          stream.destroy(err);
          // A COPY the server has not started yet (its CopyInResponse still on the way) is failed by a CopyFail that
          // pg-copy-streams sends when that CopyInResponse comes: on a connection it has let go of by then if the
          // error was pg's (a query_timeout: handleError sets it to null), so the send threw a TypeError from the
          // socket's data handler, ending the process. The connection is discarded anyway: its ROLLBACK times out
          // too, as the query_timeout that can reach a COPY here comes with the connection (a per-COPY one would
          // leave that ROLLBACK queued). pg-copy-streams 7's own fields: test/pg-copy.test.ts fails if they change.
          const s = stream as unknown as { cb_CopyInResponse: (() => void) | null; connection: unknown };
          const failCopy = s.cb_CopyInResponse;
          if (failCopy) s.cb_CopyInResponse = () => { if (s.connection) failCopy(); };
          reject(err);
        });
        stream.once('finish', resolve);
        stream.end(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
      });
      return stream.rowCount;
    },
  };
}
