// explainStartupError on the errors the start-up really throws: the store migrates first, and migrate() wraps a
// failure as "migration 001_schema failed: …" with the driver's error as its cause, so the one-line explanation
// must look through that wrapper (a refused login or a missing database is the operator's to fix, not a bug).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { explainStartupError } from '../src/cli/startup-errors.ts';
import { migrate } from '../src/store/migrate.ts';
import { PgDatabase } from '../src/store/pg.ts';
import { PG_ADMIN_URL, SKIP_PG } from './helpers/pg.ts';

async function migrateError(url: string): Promise<unknown> {
  const db = new PgDatabase({ url, maxConnections: 1, connectTimeoutMs: 5000 });
  try {
    await migrate(db);
  } catch (e) {
    return e;
  } finally {
    await db.close().catch(() => undefined);
  }
  return assert.fail('migrate should have failed');
}

test('a refused login or a missing database, seen through migrate\'s wrapper: one line with the fix', { skip: SKIP_PG }, async () => {
  const role = new URL(PG_ADMIN_URL);
  role.username = 'hashhub_no_such_role';
  const login = await migrateError(role.toString());
  assert.match((login as Error).message, /migration 001_schema failed/);
  assert.match(explainStartupError(login) ?? '(none)', /^the database refused the login \(role "hashhub_no_such_role" does not exist\): check the user and password in DATABASE_URL$/);

  const name = new URL(PG_ADMIN_URL);
  name.pathname = '/hashhub_no_such_database';
  const missing = await migrateError(name.toString());
  assert.match(explainStartupError(missing) ?? '(none)', /^database "hashhub_no_such_database" does not exist: create it \(e\.g\. createdb\) or fix the database name in DATABASE_URL$/);
});

test('an error with no known code anywhere in its causes stays unexplained (a bug: its stack is shown)', () => {
  assert.equal(explainStartupError(new Error('migration 001_schema failed: boom', { cause: new Error('boom') })), null);
});
