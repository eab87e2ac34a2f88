import path from 'node:path';
import type { Logger } from 'pino';
import { type Database, isConnectionError } from './db.ts';
import { Maintenance, type RetentionOptions } from './maintenance.ts';
import { loadMigrations, migrate, pendingMigrations } from './migrate.ts';
import { PgDatabase } from './pg.ts';
import { PgliteDatabase } from './pglite.ts';
import { SqlShareWriter } from './share-writer.ts';
import { SqlStatsReader } from './stats-reader.ts';

export { type Database, isConnectionError } from './db.ts';
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
  return PgliteDatabase.open(o.dataDir.startsWith('memory://') ? o.dataDir : path.join(o.dataDir, 'pglite'));
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
}

export interface Store {
  db: Database;
  writer: SqlShareWriter;
  reader: SqlStatsReader;
  maintenance: Maintenance;
  /** Resolves once the schema is current (migrates when autoMigrate). Called before every write. */
  ensureSchema(): Promise<void>;
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
  const ensureSchema = async (): Promise<void> => {
    if (ready) return;
    inFlight ??= (async () => {
      if (o.autoMigrate) {
        await migrate(db, log.child({ mod: 'migrate' }), migrations);
      } else {
        const pending = await pendingMigrations(db, migrations);
        if (pending.length > 0) {
          throw new SchemaBehindError(`the database schema is missing ${pending.length} migration(s) (${pending.map((m) => m.version).join(', ')}): run \`hashhub migrate\` or enable database.autoMigrate`);
        }
      }
      ready = true;
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
  const writer = new SqlShareWriter(db, { timeoutMs: o.writeTimeoutMs, prepare: ensureSchema });
  const maintenance = new Maintenance(db, {
    ...o.retention,
    intervalMs: o.maintenanceIntervalMs,
    logger: log.child({ mod: 'maintenance' }),
    before: ensureSchema,
    after: (s) => { if (s.dropped || s.compacted) writer.forgetPartitions(); },
  });
  const reader = new SqlStatsReader(db, { onlineMinutes: o.onlineMinutes });
  return {
    db, writer, reader, maintenance, ensureSchema,
    async close() {
      await maintenance.stop();
      await db.close();
    },
  };
}
