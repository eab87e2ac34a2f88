import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** A new directory under the OS temp dir, removed when the test (or suite) that asked for it ends. */
export function tmpDir(t: { after: (fn: () => void) => void }, prefix = 'hashhub-'): string {
  const dir = fs.mkdtempSync(path.join(tmpdir(), prefix));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}
