import path from 'node:path';
import type { Logger } from 'pino';
import { type Database, DatabaseUnavailableError, isConnectionError } from './db.ts';
import { Maintenance, type RetentionOptions } from './maintenance.ts';
import { loadMigrations, migrate, pendingMigrations } from './migrate.ts';
import { PgDatabase } from './pg.ts';
import { PgliteDatabase, PgliteThreadDatabase } from './pglite.ts';
import { SqlShareWriter } from './share-writer.ts';
import { SqlStatsReader } from './stats-reader.ts';

export { type Database, DatabaseUnavailableError, isConnectionError } from './db.ts';
export { migrate, pendingMigrations } from './migrate.ts';
export { SqlShareWriter } from './share-writer.ts';
export { SqlStatsReader } from './stats-reader.ts';
export { Maintenance } from './maintenance.ts';

export interface DatabaseOptions {
  /** Postgres connection URL; when absent, PGlite in `<dataDir>/pglite`. */
  url?: string;
  dataDir: string;
  maxConnections?: number;
  connectTimeoutMs?: number;
  queryTimeoutMs?: number;
  logger?: Logger;
}

/** Postgres when a URL is given, otherwise the embedded PGlite. Connects lazily (Postgres). */
export async function openDatabase(o: DatabaseOptions): Promise<Database> {
  if (o.url) {
    return new PgDatabase({ url: o.url, maxConnections: o.maxConnections, connectTimeoutMs: o.connectTimeoutMs, queryTimeoutMs: o.queryTimeoutMs, logger: o.logger });
  }
  return o.dataDir.startsWith('memory://') ? PgliteDatabase.open(o.dataDir) : PgliteThreadDatabase.open(path.join(o.dataDir, 'pglite'));
}

export interface StoreOptions extends DatabaseOptions {
  /** Apply pending migrations at start (and, if the database was unreachable then, before the first write). */
  autoMigrate: boolean;
  /** A batch transaction running longer than this is aborted and retried. */
  writeTimeoutMs: number;
  retention: RetentionOptions;
  maintenanceIntervalMs: number;
  onlineMinutes: number;
  logger: Logger;
  /** Unreachable at start: the schema step is retried from 1 s, doubling up to this, ms. Default 30 s. */
  schemaRetryMaxMs?: number;
}

export interface Store {
  db: Database;
  writer: SqlShareWriter;
  reader: SqlStatsReader;
  maintenance: Maintenance;
  /** Resolves once the schema is current (migrates when autoMigrate). Called before every write. */
  ensureSchema(): Promise<void>;
  /**
   * null once the schema is known to be current; otherwise why not (unreachable at start, migrations pending).
   * Readiness is never reported before this is null; reads answer DatabaseUnavailableError until then.
   */
  schemaStatus(): { reason: 'unreachable' | 'not-migrated'; message: string } | null;
  /** For readiness: resolves when the schema is current and the database answers; rejects with the reason. */
  ready(): Promise<void>;
  close(): Promise<void>;
}

export class SchemaBehindError extends Error {}

/**
 * Open the database and check or migrate its schema. A Postgres that cannot be reached at start is not fatal:
 * the pool runs, the ingest spools, and the schema step is retried before the first write. A schema error or
 * an unusable embedded database is fatal (thrown with the reason).
 */
export async function openStore(o: StoreOptions): Promise<Store> {
  const log = o.logger;
  const db = await openDatabase(o);
  const migrations = loadMigrations();
  let ready = false;
  let inFlight: Promise<void> | null = null;
  let status: { reason: 'unreachable' | 'not-migrated'; message: string } | null = { reason: 'not-migrated', message: 'migrations not checked yet' };
  const ensureSchema = async (): Promise<void> => {
    if (ready) return;
    inFlight ??= (async () => {
      try {
        if (o.autoMigrate) {
          await migrate(db, log.child({ mod: 'migrate' }), migrations);
        } else {
          const pending = await pendingMigrations(db, migrations);
          if (pending.length > 0) {
            throw new SchemaBehindError(`the database schema is missing ${pending.length} migration(s) (${pending.map((m) => m.version).join(', ')}): run \`hashhub migrate\` or enable database.autoMigrate`);
          }
        }
      } catch (e) {
        status = isConnectionError(e)
          ? { reason: 'unreachable', message: `database unreachable, migrations not applied yet: ${(e as Error).message}` }
          : { reason: 'not-migrated', message: (e as Error).message };
        throw e;
      }
      ready = true;
      status = null;
    })().finally(() => { inFlight = null; });
    return inFlight;
  };
  try {
    await ensureSchema();
  } catch (e) {
    if (!(db.kind === 'postgres' && isConnectionError(e))) {
      await db.close().catch(() => undefined);
      throw e;
    }
    log.warn({ db: db.target, err: (e as Error).message }, 'database unreachable at start: the pool runs and spools shares until it is back');
  }
  // Unreachable at start: keep trying in the background (not only before the next write, which may be long in
  // coming), so readiness and the API turn healthy as soon as the schema is current.
  const retry = ready ? null : schemaRetry(ensureSchema, () => ready, log, o.schemaRetryMaxMs ?? 30_000);
  const writer = new SqlShareWriter(db, { timeoutMs: o.writeTimeoutMs, prepare: ensureSchema });
  const maintenance = new Maintenance(db, {
    ...o.retention,
    intervalMs: o.maintenanceIntervalMs,
    logger: log.child({ mod: 'maintenance' }),
    before: ensureSchema,
    after: (s) => { if (s.dropped || s.compacted) writer.forgetPartitions(); },
  });
  const reader = new SqlStatsReader(guardReads(db, () => status), { onlineMinutes: o.onlineMinutes });
  return {
    db, writer, reader, maintenance, ensureSchema,
    schemaStatus: () => status,
    async ready() {
      const s = status;
      if (s) throw new Error(s.reason === 'unreachable' ? s.message : `database schema not current: ${s.message}`);
      await writer.ping();
    },
    async close() {
      retry?.stop();
      await maintenance.stop();
      await db.close();
    },
  };
}

/** ensureSchema() again and again (1 s doubling to 30 s) until it succeeds; a failure is logged once per kind. */
function schemaRetry(ensureSchema: () => Promise<void>, ready: () => boolean, log: Logger, maxMs: number): { stop(): void } {
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  let lastKind = '';
  const attempt = (delay: number) => {
    timer = setTimeout(() => {
      ensureSchema().then(
        () => log.info('database reachable: schema current'),
        (e: unknown) => {
          const kind = e instanceof SchemaBehindError ? 'behind' : isConnectionError(e) ? 'unreachable' : 'error';
          if (kind !== lastKind && kind !== 'unreachable') log.error({ err: (e as Error).message }, 'database schema not ready: retrying');
          lastKind = kind;
          if (!stopped && !ready()) attempt(Math.min(delay * 2, maxMs));
        },
      );
    }, delay);
    timer.unref();
  };
  attempt(Math.min(1000, maxMs));
  return { stop() { stopped = true; if (timer) clearTimeout(timer); } };
}

/**
 * The reader's view of the database: refuses reads until the schema is current, and turns "cannot reach it"
 * into DatabaseUnavailableError, so the API can tell a database outage (503) from a bug (500).
 */
function guardReads(db: Database, status: () => { reason: 'unreachable' | 'not-migrated'; message: string } | null): Database {
  return {
    kind: db.kind,
    target: db.target,
    async query(sql, params) {
      const s = status();
      if (s) throw new DatabaseUnavailableError(s.reason, s.message);
      try {
        return await db.query(sql, params);
      } catch (e) {
        if (isConnectionError(e) || /Query read timeout/i.test((e as Error).message)) {
          throw new DatabaseUnavailableError('unreachable', `database unreachable: ${(e as Error).message}`, { cause: e });
        }
        throw e;
      }
    },
    exec: (sql) => db.exec(sql),
    copyFrom: (copySql, data) => db.copyFrom(copySql, data),
    transaction: (fn, opts) => db.transaction(fn, opts),
    close: () => db.close(),
  };
}
