import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Database } from './db.ts';

// Numbered SQL files (NNN_name.sql), applied in order, each in its own transaction together with its row in
// schema_migrations. An advisory lock makes concurrent starts (several pool processes, or `hashhub migrate`
// while a pool starts) apply each migration once.

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

/** Arbitrary constant: the advisory lock key for migrations (partition DDL uses another). */
const MIGRATION_LOCK = 4841526030;

const FILE_RE = /^(\d{3,})_([a-z0-9_]+)\.sql$/;

/**
 * Checksums of migration files as they were on main before they were changed, by version. A database that applied
 * one of these is brought to the current file's schema by a later migration (named here), so it is not a changed
 * migration for the operator to worry about. Never add to this without such a migration.
 */
export const RELEASED_EARLIER: ReadonlyMap<number, { checksums: readonly string[]; repairedBy: string }> = new Map([
  [22, { repairedBy: '025_route_meter_released_forms', checksums: [
    'e0ea491d29ef63c0a36979cea5f1be6f6015a907c70b3c1ec93e51bb38ba916c', // dfded21
    'e598d5e089061a3313486a66182561ce7e7ca4700a08be0224b1098e7703c20e', // 775e2df
  ] }],
  [23, { repairedBy: '025_route_meter_released_forms', checksums: ['72fe5fee1b86c2a35adca213f42880aed91292a3c251306dcca165c7d52f2309'] }], // f2f720c
  [24, { repairedBy: '025_route_meter_released_forms', checksums: ['3b5ec25f99556ec858fe31dbe5bf87edef6f386430b31cf183f52538eb9e1046'] }], // 8036ad7
]);

/**
 * Where the .sql files are: next to this module when run from source (tsx), or the sources' copy when run
 * from a tsc build (tsc does not copy .sql files into dist/).
 */
export function migrationsDir(): string {
  const here = fileURLToPath(new URL('./migrations/', import.meta.url));
  if (existsSync(here)) return here;
  const fromDist = fileURLToPath(new URL('../../src/store/migrations/', import.meta.url));
  if (existsSync(fromDist)) return fromDist;
  throw new Error(`migrations directory not found (looked in ${here} and ${fromDist})`);
}

export function loadMigrations(dir = migrationsDir()): Migration[] {
  const out: Migration[] = [];
  for (const file of readdirSync(dir).sort()) {
    if (!file.endsWith('.sql')) continue;
    const m = FILE_RE.exec(file);
    if (!m) throw new Error(`migration file name ${file} does not match NNN_name.sql`);
    const sql = readFileSync(`${dir}/${file}`, 'utf8');
    out.push({ version: Number(m[1]), name: m[2], sql, checksum: createHash('sha256').update(sql).digest('hex') });
  }
  for (let i = 1; i < out.length; i++) {
    if (out[i].version === out[i - 1].version) throw new Error(`two migrations numbered ${out[i].version}`);
  }
  return out;
}

const CREATE_TABLE = `
CREATE TABLE IF NOT EXISTS schema_migrations (
  version     integer PRIMARY KEY,
  name        text NOT NULL,
  checksum    text NOT NULL,
  applied_at  timestamptz NOT NULL DEFAULT now()
)`;

interface AppliedRow { version: number; name: string; checksum: string }

async function applied(db: Database): Promise<Map<number, AppliedRow>> {
  const exists = await db.query<{ t: string | null }>("SELECT to_regclass('schema_migrations')::text AS t");
  if (!exists.rows[0]?.t) return new Map();
  const r = await db.query<AppliedRow>('SELECT version, name, checksum FROM schema_migrations ORDER BY version');
  return new Map(r.rows.map((row) => [Number(row.version), row]));
}

/** Migrations not yet applied, in order (read-only: for `autoMigrate: false` start-up checks). */
export async function pendingMigrations(db: Database, all = loadMigrations()): Promise<Migration[]> {
  const done = await applied(db);
  return all.filter((m) => !done.has(m.version));
}

export interface MigrateResult {
  applied: string[];
  current: number;
}

/** Apply every pending migration. Safe to run concurrently and repeatedly. */
export async function migrate(db: Database, log?: Logger, all = loadMigrations()): Promise<MigrateResult> {
  const done: string[] = [];
  for (const m of all) {
    const label = `${String(m.version).padStart(3, '0')}_${m.name}`;
    const ran = await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await tx.exec(CREATE_TABLE);
      const row = await tx.query<AppliedRow>('SELECT version, name, checksum FROM schema_migrations WHERE version = $1', [m.version]);
      if (row.rows.length > 0) {
        if (row.rows[0].checksum !== m.checksum) {
          const earlier = RELEASED_EARLIER.get(m.version);
          if (earlier?.checksums.includes(row.rows[0].checksum)) {
            log?.debug({ migration: label, repairedBy: earlier.repairedBy }, 'applied in an earlier released form, brought up to date by a later migration');
          } else {
            // Not fatal: a comment edit changes the hash too. But an applied migration must not be rewritten.
            log?.warn({ migration: label }, 'an applied migration file has changed since it was applied; add a new migration instead');
          }
        }
        return false;
      }
      await tx.exec(m.sql);
      await tx.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [m.version, m.name, m.checksum]);
      return true;
    }).catch((e: Error) => {
      throw new Error(`migration ${label} failed: ${e.message}`, { cause: e });
    });
    if (ran) {
      done.push(label);
      log?.info({ migration: label }, 'migration applied');
    }
  }
  return { applied: done, current: all.length ? all[all.length - 1].version : 0 };
}
