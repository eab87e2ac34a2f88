import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { LockHeldError, acquireLock } from '../src/store/lockfile.ts';
import { tmpDir } from './helpers/tmp-dir.ts';

// A lock left by a process that died (SIGKILL, power loss) is taken over; when several processes start on the
// same data dir at once (systemd's restart and an operator's start), exactly one of them may take it. Two holders
// of one spool append to the same segment, each counting offsets of its own: lines are read back at the wrong
// places and segments deleted under the other's unread lines.

const ROOT = path.resolve(import.meta.dirname, '..');

/**
 * A process that takes the lock when told: `ready` resolves once it is loaded, `go()` makes it try and resolves
 * with its answer ('taken' or 'refused'), and `release()` lets it exit (a holder holds until then).
 */
function taker(file: string) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/take-lock.ts', file], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  let onLine: (() => void) | null = null;
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => { out += d; onLine?.(); });
  const line = (n: number) => new Promise<string>((resolve, reject) => {
    // Whole lines only: the last piece of the split is what follows the last newline.
    const check = () => { const lines = out.split('\n'); if (lines.length - 1 > n) { onLine = null; resolve(lines[n]); } };
    onLine = check;
    child.once('exit', () => reject(new Error(`lock taker exited before line ${n + 1}: ${JSON.stringify(out)}`)));
    check();
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return {
    ready: line(0),
    go: () => { child.stdin.write('go\n'); return line(1); },
    release: () => { child.stdin.end(); return exited; },
    kill: () => child.kill('SIGKILL'),
  };
}

test('a stale lock another process takes over between our read of it and our takeover: refused, that process holds it', async (t) => {
  const dir = tmpDir(t, 'hashhub-lock-');
  const file = path.join(dir, 'spool.lock');
  const other = spawn('sleep', ['30']); // a live process: the one that takes the lock over first
  t.after(() => other.kill());
  fs.writeFileSync(file, '999999999'); // left by a process that died
  // Just after this process has read the stale pid, the other one completes its takeover.
  const read = fs.readFileSync;
  let interleaved = false;
  t.after(() => { fs.readFileSync = read; });
  fs.readFileSync = ((...args: Parameters<typeof read>) => {
    const out = read(...args);
    if (!interleaved && args[0] === file) {
      interleaved = true;
      fs.rmSync(file);
      fs.writeFileSync(file, String(other.pid));
    }
    return out;
  }) as typeof read;
  assert.throws(() => acquireLock(file, 'the spool'), (e: unknown) => e instanceof LockHeldError && e.pid === other.pid);
  fs.readFileSync = read;
  assert.equal(fs.readFileSync(file, 'utf8'), String(other.pid), 'the lock is still the other process\'s');
});

test('a stale lock taken over by processes starting at once: one holder, never two', { timeout: 180_000 }, async (t) => {
  const dir = tmpDir(t, 'hashhub-lock-');
  const file = path.join(dir, 'spool.lock');
  for (let round = 0; round < 4; round++) {
    fs.writeFileSync(file, '999999999'); // a pid no process has
    // All six loaded first, then told at once: none may come late (after a holder exited, leaving a stale lock of
    // its own, which is then rightly taken over: failed so on a loaded machine when they lined up on a clock).
    const takers = Array.from({ length: 6 }, () => taker(file));
    t.after(() => { for (const k of takers) k.kill(); });
    await Promise.all(takers.map((k) => k.ready));
    const answers = await Promise.all(takers.map((k) => k.go()));
    await Promise.all(takers.map((k) => k.release()));
    assert.equal(answers.filter((a) => a === 'taken').length, 1, `round ${round}: ${answers.join(', ')}`);
    fs.rmSync(file, { force: true });
  }
});
