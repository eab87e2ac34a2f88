import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { Database } from '../../src/store/db.ts';
import { PgDatabase } from '../../src/store/pg.ts';
import { PgliteDatabase } from '../../src/store/pglite.ts';

// Test databases: each test run creates its own Postgres database (hashhub_test_<random>) on the server at
// HASHHUB_TEST_PG_URL (default: the local one, trust auth) and drops it at the end, so runs never collide.
// HASHHUB_TEST_NO_PG=1 skips the Postgres variants on a machine without a server.

export const PG_ADMIN_URL = process.env.HASHHUB_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const SKIP_PG = process.env.HASHHUB_TEST_NO_PG === '1' ? 'HASHHUB_TEST_NO_PG=1' : false;

export interface TestPg {
  name: string;
  url: string;
  /** Same database, through another host:port (e.g. a proxy). */
  urlVia(host: string, port: number): string;
  drop(): Promise<void>;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  try {
    await c.connect();
  } catch (e) {
    throw new Error(`cannot reach the test Postgres at ${PG_ADMIN_URL} (${(e as Error).message}); start it, or set HASHHUB_TEST_NO_PG=1 to skip`);
  }
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function createTestPg(): Promise<TestPg> {
  const name = `hashhub_test_${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    urlVia(host, port) {
      const u = new URL(url.toString());
      u.hostname = host;
      u.port = String(port);
      return u.toString();
    },
    async drop() {
      // FORCE (PG 13+) closes connections a failed test may have left open.
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

export interface Backend {
  name: 'postgres' | 'pglite';
  open(): Promise<{ db: Database; cleanup(): Promise<void> }>;
}

/** Both backends, for store tests that must behave the same on each. */
export const BACKENDS: Backend[] = [
  {
    name: 'postgres',
    async open() {
      const t = await createTestPg();
      const db = new PgDatabase({ url: t.url, maxConnections: 4 });
      return { db, async cleanup() { await db.close(); await t.drop(); } };
    },
  },
  {
    name: 'pglite',
    async open() {
      const dir = mkdtempSync(path.join(tmpdir(), 'hashhub-pglite-'));
      const db = await PgliteDatabase.open(dir);
      return { db, async cleanup() { await db.close(); rmSync(dir, { recursive: true, force: true }); } };
    },
  },
];
