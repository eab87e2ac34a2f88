// Which code `bin/hashhub.js` runs: the build in dist/ (`npm run build`) when it is there and was built from the
// sources as they are now, else the TypeScript sources through tsx. A build is what a production pool should
// run: tsx compiles in a loader thread of its own, a second V8 heap: about 40 MB more RSS in every pool process
// (and every Stratum process of a cluster) once settled, 70 MB while starting.
//
// "As they are now" is a hash of the sources' names and contents, written by the build (dist/.built) and
// compared at every start (a few ms): file times would miss a deleted source, a copy that keeps old times
// (rsync -a, cp -p, tar) and a clock stepped back. A build that does not match is never run: the sources are,
// with a warning. Anything that stops the check (an unreadable directory) runs the sources too, never nothing.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';

/** The file in dist/ that `npm run build` writes last (scripts/build.mjs): the hash of the sources built. */
export const BUILD_STAMP = '.built';

/** Files that are sources (compiled, or copied into dist/): not editors' lock, swap or backup files. */
const SOURCE = /^[^.#~][^/]*\.(?:ts|mts|mjs|js|sql|json)$/;

function collect(dir, rel, out) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    const r = rel === '' ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory()) collect(p, r, out);
    else if (SOURCE.test(e.name)) out.push([r, p]);
  }
}

/** SHA-256 over every source file under `srcDir`: its path, its length and its bytes, in path order. */
export function sourcesHash(srcDir) {
  const files = [];
  collect(srcDir, '', files);
  files.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const h = createHash('sha256');
  for (const [rel, p] of files) {
    let bytes;
    try {
      bytes = readFileSync(p);
    } catch (e) {
      if (e.code === 'ENOENT') continue; // deleted while we looked, or a dangling symlink: not a source
      throw e;
    }
    h.update(`${rel}\0${bytes.length}\0`);
    h.update(bytes);
  }
  return h.digest('hex');
}

/**
 * The entry to run under `root` (the repository): { kind: 'dist', file } for a build of the current sources,
 * else { kind: 'src', file, why } where `why` is null when there is no build at all, or says why the build
 * there is not run.
 */
export function chooseEntry(root) {
  const src = (why) => ({ kind: 'src', file: path.join(root, 'src', 'cli', 'main.ts'), why });
  const built = path.join(root, 'dist', 'cli', 'main.js');
  const stamp = path.join(root, 'dist', BUILD_STAMP);
  if (!existsSync(path.join(root, 'dist'))) return src(null);
  if (!existsSync(stamp) || !existsSync(built)) return src('dist/ holds no complete build');
  let current;
  try {
    current = sourcesHash(path.join(root, 'src'));
  } catch (e) {
    return src(`the sources could not be compared with the build (${e.message})`);
  }
  if (readFileSync(stamp, 'utf8').trim() !== current) return src('dist/ was built from other sources than src/ holds now');
  return { kind: 'dist', file: built };
}
