import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chooseEntry } from '../bin/entry.mjs';

// The production path (README, Deploy): `npm run build`, then bin/hashhub.js runs dist/. The build must be
// complete (what tsc does not emit is copied: the SQL migrations, the PGlite worker), current, and what the CLI
// runs, from any directory. (It rebuilds this checkout's dist/: the build swaps it in only when complete.)
const ROOT = path.resolve(import.meta.dirname, '..');

test('npm run build makes a complete build, and bin/hashhub.js runs it (not the sources) from another directory', { timeout: 180_000 }, () => {
  execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs')], { cwd: tmpdir(), stdio: ['ignore', 'ignore', 'pipe'] });
  assert.equal(chooseEntry(ROOT).kind, 'dist');
  assert.ok(existsSync(path.join(ROOT, 'dist', 'store', 'migrations', '001_schema.sql')), 'migrations copied');
  assert.ok(existsSync(path.join(ROOT, 'dist', 'store', 'pglite-worker.mjs')), 'PGlite worker copied');
  const data = mkdtempSync(path.join(tmpdir(), 'hashhub-dist-'));
  try {
    // NODE_DEBUG=esm: Node names every ES module it loads, so the test sees which main ran. That is about 1 MB of
    // stderr, more the longer the checkout's path: past spawnSync's default maxBuffer (1 MiB) the child is killed
    // (ENOBUFS), which failed CI in a clone at /check/work/main. Hence the large buffer, and the error and signal
    // in the message.
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'hashhub.js'), 'migrate'], {
      cwd: data, encoding: 'utf8', timeout: 60_000, maxBuffer: 256 * 1024 * 1024,
      env: { ...process.env, NODE_DEBUG: 'esm', HASHHUB_DATA_DIR: data, DATABASE_URL: '', HASHHUB_CONFIG: '' },
    });
    const said = r.stderr.split('\n').filter((l) => l.startsWith('hashhub')).join('\n');
    assert.equal(r.status, 0, `status ${r.status}, signal ${r.signal}, error ${r.error?.message}, stderr ${r.stderr.length} chars: ${said}`);
    assert.match(r.stderr, /dist\/cli\/main\.js/);
    assert.doesNotMatch(r.stderr, /src\/cli\/main\.ts|running the sources/);
    assert.match(r.stderr, /applied 001_schema, .*\(schema version \d+\)/);
    // The template thread's worker is a module of the build too (dist/node/template-worker.js), started without
    // tsx: a template read there, not on the event loop (its fallback would hide a worker that cannot start).
    const thread = spawnSync(process.execPath, ['--input-type=module', '-e', `
      import { TemplateThread } from ${JSON.stringify(path.join(ROOT, 'dist', 'node', 'template-thread.js'))};
      const t = new TemplateThread();
      const tpl = { version: 536870912, rules: ['segwit'], previousblockhash: '11'.repeat(32), coinbasevalue: 1, target: 'ff'.repeat(32), mintime: 1, curtime: 2, bits: '207fffff', height: 5,
        transactions: [{ data: '0200', txid: '22'.repeat(32), hash: '22'.repeat(32), fee: 0 }] };
      const body = Buffer.from(JSON.stringify({ result: tpl, error: null, id: 1 }));
      const r = await t.read(200, [body], body.length);
      await t.close();
      console.log(JSON.stringify({ ok: r.ok, count: r.ok ? r.template.prepared.count : null, bytes: r.ok ? Buffer.from(r.template.prepared.bytes).toString('hex') : null, stats: t.stats }));
    `], { cwd: data, encoding: 'utf8', timeout: 60_000 });
    assert.equal(thread.status, 0, thread.stderr.slice(-2000));
    assert.deepEqual(JSON.parse(thread.stdout), { ok: true, count: 1, bytes: '0200', stats: { threaded: 1, fallback: 0 } });
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
});
