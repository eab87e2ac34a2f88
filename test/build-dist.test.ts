import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chooseEntry } from '../bin/entry.mjs';

// The production path (README, Deploy): `npm run build`, then bin/hashhub.js runs dist/. The build must be
// complete (what tsc does not emit, the SQL migrations, is copied) and current, and the CLI must run from it.
const ROOT = path.resolve(import.meta.dirname, '..');

test('npm run build makes a build bin/hashhub.js runs, migrations included', { timeout: 180_000 }, () => {
  execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  assert.equal(chooseEntry(ROOT).kind, 'dist');
  const data = mkdtempSync(path.join(tmpdir(), 'hashhub-dist-'));
  try {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'hashhub.js'), 'migrate'], {
      cwd: data, encoding: 'utf8', timeout: 60_000, env: { ...process.env, HASHHUB_DATA_DIR: data, DATABASE_URL: '', HASHHUB_CONFIG: '' },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /older than src/);
    assert.match(r.stderr, /applied 001_schema, .*\(schema version \d+\)/);
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
});
