import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { type Database, type Queryable, type Rows } from './db.ts';
import { acquireLock } from './lockfile.ts';

// PGlite: PostgreSQL compiled to WASM, running inside this process with its files in a data directory. One
// connection; the same SQL as Postgres. PgliteThreadDatabase (the one the pool uses) runs it in a worker thread
// so its queries never stall miners; PgliteDatabase runs it on the calling thread (in-memory test databases).
// It suits a newcomer's single box, not a pool at scale (that is what DATABASE_URL is for).

type Target = Pick<Transaction, 'query' | 'exec'>;

/** PGlite's COPY reads its data from the /dev/blob device instead of the client's stream. */
function blobCopy(copySql: string): string {
  const out = copySql.replace(/\bFROM\s+STDIN\b/i, "FROM '/dev/blob'");
  if (out === copySql) throw new Error(`copyFrom expects "COPY … FROM STDIN", got: ${copySql.slice(0, 80)}`);
  return out;
}

function wrap(t: Target): Queryable {
  return {
    async query<R>(sql: string, params: readonly unknown[] = []): Promise<Rows<R>> {
      const r = await t.query<R>(sql, params as unknown[]);
      return { rows: r.rows, rowCount: r.affectedRows ?? 0 };
    },
    async exec(sql: string): Promise<void> {
      await t.exec(sql);
    },
    async copyFrom(copySql: string, data: string | Uint8Array): Promise<number> {
      const r = await t.query(blobCopy(copySql), [], { blob: new Blob([data as string | Uint8Array<ArrayBuffer>]) });
      return r.affectedRows ?? 0;
    },
  };
}

export class PgliteDatabase implements Database {
  readonly kind = 'pglite' as const;
  private readonly q: Queryable;

  private constructor(private readonly db: PGlite, readonly target: string, private readonly unlock: () => void) {
    this.q = wrap(db);
  }

  /** Open (creating on first use) the database in dataDir; 'memory://' keeps it in memory (tests). */
  static async open(dataDir: string): Promise<PgliteDatabase> {
    let unlock = () => {};
    if (!dataDir.startsWith('memory://')) {
      const dir = path.resolve(dataDir);
      mkdirSync(dir, { recursive: true });
      // The lock is taken before PGlite opens: a second process must be told, not corrupt the files.
      // Two processes on one PGlite directory would corrupt it: PGlite itself does not check.
      unlock = acquireLock(`${dir}.lock`, `the embedded database ${dir}`);
    }
    let db: PGlite;
    try {
      db = await PGlite.create(dataDir);
      await db.exec("SET TimeZone = 'UTC'");
    } catch (e) {
      unlock();
      throw new Error(`cannot open the embedded database (PGlite) in ${dataDir}: ${(e as Error).message}`, { cause: e });
    }
    return new PgliteDatabase(db, `pglite:${dataDir}`, unlock);
  }

  query<R>(sql: string, params?: readonly unknown[]): Promise<Rows<R>> { return this.q.query<R>(sql, params); }
  exec(sql: string): Promise<void> { return this.q.exec(sql); }
  copyFrom(copySql: string, data: string | Uint8Array): Promise<number> { return this.q.copyFrom(copySql, data); }

  // No timeout: PGlite runs in this process; there is no network to hang on.
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.db.transaction((tx) => fn(wrap(tx)));
  }

  async close(): Promise<void> {
    if (this.db.closed) return;
    try {
      await this.db.close();
    } finally {
      this.unlock();
    }
  }
}

type Reply = { id: number; ok: true; rows?: unknown[]; rowCount?: number } | { id: number; ok: false; error: Record<string, string> };

/** An error from the worker, with PostgreSQL's fields (code = SQLSTATE) as pg and PGlite errors carry them. */
function fromWorker(e: Record<string, string>): Error {
  return Object.assign(new Error(e.message), e);
}

/**
 * PGlite in a worker thread: the same database, but its (synchronous, WASM) query execution no longer runs on
 * the thread that serves miners and the API. Requests are serialized here, a transaction holds the line from
 * BEGIN to COMMIT (PGlite has one connection), and a worker that dies is replaced at the next request (its
 * transaction is gone; the caller sees a connection error and retries, as with Postgres).
 */
export class PgliteThreadDatabase implements Database {
  readonly kind = 'pglite' as const;
  private worker: Worker | null = null;
  private starting: Promise<void> | null = null;
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  /** Tail of the queue of exclusive sections (a transaction, or one statement outside one). */
  private line: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly raw: Queryable;

  private constructor(private readonly dataDir: string, readonly target: string, private readonly unlock: () => void) {
    this.raw = {
      query: async <R>(sql: string, params: readonly unknown[] = []) => {
        const r = await this.call({ op: 'query', sql, params });
        return { rows: ((r.ok && r.rows) || []) as R[], rowCount: (r.ok && r.rowCount) || 0 };
      },
      exec: async (sql: string) => { await this.call({ op: 'exec', sql }); },
      copyFrom: async (copySql: string, data: string | Uint8Array) => {
        const r = await this.call({ op: 'copy', sql: blobCopy(copySql), data });
        return (r.ok && r.rowCount) || 0;
      },
    };
  }

  static async open(dataDir: string): Promise<PgliteThreadDatabase> {
    const dir = path.resolve(dataDir);
    mkdirSync(dir, { recursive: true });
    // The lock is taken before PGlite opens: two processes on one PGlite directory would corrupt it.
    const unlock = acquireLock(`${dir}.lock`, `the embedded database ${dir}`);
    const db = new PgliteThreadDatabase(dir, `pglite:${dataDir}`, unlock);
    try {
      await db.spawn();
    } catch (e) {
      unlock();
      throw new Error(`cannot open the embedded database (PGlite) in ${dataDir}: ${(e as Error).message}`, { cause: e });
    }
    return db;
  }

  private spawn(): Promise<void> {
    this.starting ??= new Promise<void>((resolve, reject) => {
      const w = new Worker(new URL('./pglite-worker.mjs', import.meta.url), { workerData: { dataDir: this.dataDir } });
      const onMessage = (r: Reply) => {
        if (r.id === 0) {
          if (r.ok) { this.worker = w; resolve(); } else reject(fromWorker(r.error));
          return;
        }
        const p = this.pending.get(r.id);
        if (!p) return;
        this.pending.delete(r.id);
        if (r.ok) p.resolve(r); else p.reject(fromWorker(r.error));
      };
      w.on('message', onMessage);
      const died = (why: string) => {
        if (this.worker === w) this.worker = null;
        this.starting = null;
        // 57P01 (admin shutdown) is a connection error to every caller: retried like a lost Postgres link.
        const err = Object.assign(new Error(`the embedded database worker stopped: ${why}`), { code: '57P01' });
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
        reject(err);
      };
      w.on('error', (e) => died(e.message));
      w.on('exit', (code) => died(`exit code ${code}`));
    }).catch((e: unknown) => { this.starting = null; throw e; });
    return this.starting;
  }

  private async call(msg: { op: string; sql?: string; params?: readonly unknown[]; data?: string | Uint8Array }): Promise<Reply> {
    if (this.closed) throw Object.assign(new Error('the embedded database is closed'), { code: '57P01' });
    if (!this.worker) await this.spawn();
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker!.postMessage({ id, ...msg });
    });
  }

  /** Run fn alone on the connection (after everything queued before it). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.line.then(fn, fn);
    this.line = run.catch(() => undefined);
    return run;
  }

  query<R>(sql: string, params?: readonly unknown[]): Promise<Rows<R>> { return this.exclusive(() => this.raw.query<R>(sql, params)); }
  exec(sql: string): Promise<void> { return this.exclusive(() => this.raw.exec(sql)); }
  copyFrom(copySql: string, data: string | Uint8Array): Promise<number> { return this.exclusive(() => this.raw.copyFrom(copySql, data)); }

  // No timeout: the database runs in this process; there is no network to hang on.
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.exclusive(async () => {
      await this.raw.exec('BEGIN');
      let result: T;
      try {
        result = await fn(this.raw);
      } catch (e) {
        await this.raw.exec('ROLLBACK').catch(() => undefined);
        throw e;
      }
      await this.raw.exec('COMMIT');
      return result;
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.exclusive(async () => {
        if (this.worker) await this.call({ op: 'close' }).catch(() => undefined);
        this.closed = true;
        const w = this.worker;
        this.worker = null;
        await w?.terminate();
      });
    } finally {
      this.closed = true;
      this.unlock();
    }
  }
}
