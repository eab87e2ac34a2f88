import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { type Database, type Queryable, type Rows } from './db.ts';
import { acquireLock } from './lockfile.ts';

// PGlite: PostgreSQL compiled to WASM, running inside this process with its files in a data directory. One
// connection, serialized by PGlite itself; the same SQL as Postgres. Its queries run on the main thread, so
// it suits a newcomer's single box, not a pool at scale (that is what DATABASE_URL is for).

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
    async copyFrom(copySql: string, data: string): Promise<number> {
      const r = await t.query(blobCopy(copySql), [], { blob: new Blob([data]) });
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
  copyFrom(copySql: string, data: string): Promise<number> { return this.q.copyFrom(copySql, data); }

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
