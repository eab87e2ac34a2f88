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
          // Not fatal: a comment edit changes the hash too. But an applied migration must not be rewritten.
          log?.warn({ migration: label }, 'an applied migration file has changed since it was applied; add a new migration instead');
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
