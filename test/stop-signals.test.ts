import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { REPEAT_MS, StopSignals } from '../src/cli/stop-signals.ts';
import { exited } from './helpers/child-pool.ts';
import { freePort } from './helpers/free-port.ts';

const ROOT = path.resolve(import.meta.dirname, '..');

test('a stop signal delivered twice is one stop; a second one later, or another signal, stops at once', () => {
  let now = 1000;
  const s = new StopSignals(() => now);
  assert.equal(s.next('SIGTERM'), 'stop');
  now += 5;
  assert.equal(s.next('SIGTERM'), 'repeat', 'the same signal relayed by a wrapper');
  now += REPEAT_MS;
  assert.equal(s.next('SIGTERM'), 'now', 'the operator asking again');
  const t = new StopSignals(() => now);
  t.next('SIGINT');
  assert.equal(t.next('SIGTERM'), 'now', 'another signal is not a repeat');
});

// `npm start` runs tsx, which starts the pool as its child; systemd (KillMode control-group), `timeout` and a
// terminal's Ctrl-C signal the whole process group, and npm passes the signal on as well, so the pool gets it
// twice. It used to take the second for "stop now" and skip the graceful stop.
test('SIGTERM to the process group of `npm start`: one graceful stop, run to its end', { timeout: 120_000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(tmpdir(), 'hashhub-signal-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const env: NodeJS.ProcessEnv = {
    ...process.env, HASHHUB_DATA_DIR: dir, HASHHUB_STRATUM_HOST: '127.0.0.1', HASHHUB_STRATUM_PORT: String(await freePort()),
    HASHHUB_API_ENABLED: 'false', HASHHUB_LOG_LEVEL: 'info',
  };
  delete env.HASHHUB_CONFIG;
  delete env.DATABASE_URL;
  const child = spawn('npm', ['start', '--silent'], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { out += d; });
  t.after(() => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } });
  const deadline = Date.now() + 90_000;
  while (!out.includes('hashhub pool is running')) {
    if (child.exitCode !== null || Date.now() > deadline) assert.fail(`the pool did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  process.kill(-child.pid!, 'SIGTERM');
  await exited(child);
  // npm itself dies of the signal; the pool's own last line says how it ended.
  // The pipes are shared by npm, tsx and the pool: they close when the pool has exited (its graceful stop, with the
  // embedded database and chain, can take a while on a loaded machine). Bounded at 90 s.
  const closed = new Promise<void>((r) => { if (child.stdout!.closed && child.stderr!.closed) r(); else child.once('close', () => r()); });
  await Promise.race([closed, new Promise((r) => setTimeout(r, 90_000).unref())]);
  assert.match(out, /shutting down/);
  assert.doesNotMatch(out, /stopping now/, 'the relayed copy of the signal is not a second stop');
  assert.match(out, /"msg":"stopped"/, 'the graceful stop ran to its end');
});
