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

function take(file: string, at: number): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/take-lock.ts', file, String(at)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  return new Promise((resolve) => child.once('exit', () => resolve(out.trim())));
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
    const at = Date.now() + 3000;
    const answers = await Promise.all(Array.from({ length: 6 }, () => take(file, at)));
    assert.equal(answers.filter((a) => a === 'taken').length, 1, `round ${round}: ${answers.join(', ')}`);
    fs.rmSync(file, { force: true });
  }
});
