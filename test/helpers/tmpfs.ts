import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';

/**
 * A small tmpfs (`size` as mount takes it, e.g. '2m'): a real full filesystem. Needs root (mount); null where it
 * cannot be made (the caller skips). Unmounted and removed after the test: close files on it before the test ends.
 */
export function tinyFs(t: TestContext, size = '2m'): string | null {
  const dir = fs.mkdtempSync(path.join(tmpdir(), 'hashhub-tinyfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' });
  } catch {
    fs.rmdirSync(dir);
    return null;
  }
  t.after(() => {
    try { execFileSync('umount', [dir], { stdio: 'ignore' }); } catch { /* already gone */ }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}
