// Which code `bin/hashhub.js` runs: the build in dist/ (`npm run build`) when it is there and current, else the
// TypeScript sources through tsx. A build is what a production pool should run: tsx compiles in a loader
// thread of its own, a second V8 heap: about 40 MB more RSS in every pool process (and every Stratum process of
// a cluster) once settled, 70 MB while starting. A build older than any source (a `git pull` or an edit since
// `npm run build`) is never run: the sources are, with a warning, so a stale build cannot run old code.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

/** The file `npm run build` writes last (scripts/build.mjs): its time is the build's. */
export const BUILD_STAMP = path.join('dist', '.built');

/** Newest modification time (ms) of the files under `dir` (the sources the build compiles or copies). */
function newestMtime(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    const t = e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs;
    if (t > newest) newest = t;
  }
  return newest;
}

/**
 * The entry to run under `root` (the repository): { kind: 'dist', file } for a current build, else
 * { kind: 'src', file, stale } where `stale` says a build exists but some source is newer than it.
 */
export function chooseEntry(root) {
  const src = { kind: 'src', file: path.join(root, 'src', 'cli', 'main.ts'), stale: false };
  const stamp = path.join(root, BUILD_STAMP);
  const built = path.join(root, 'dist', 'cli', 'main.js');
  if (!existsSync(stamp) || !existsSync(built)) return src;
  if (newestMtime(path.join(root, 'src')) > statSync(stamp).mtimeMs) return { ...src, stale: true };
  return { kind: 'dist', file: built };
}
