// `npm run build`: the sources compiled (tsc, tsconfig.build.json) with what tsc does not emit copied beside them
// (the SQL migrations, the PGlite worker) and dist/.built written last, holding the hash of the sources built
// (bin/entry.mjs runs the build only while src/ still hashes to it). Built in a directory beside dist/ and
// swapped in only when complete: a failed build leaves the last good one in place.
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { BUILD_STAMP, sourcesHash } from '../bin/entry.mjs';

const root = path.resolve(import.meta.dirname, '..');
const dist = path.join(root, 'dist');
const next = path.join(root, 'dist.next');
const old = path.join(root, 'dist.old');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

const hash = sourcesHash(path.join(root, 'src')); // before compiling: a source edited meanwhile makes it stale
rmSync(next, { recursive: true, force: true });
try {
  execFileSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json'), '--outDir', next], { cwd: root, stdio: 'inherit' });
} catch {
  rmSync(next, { recursive: true, force: true });
  process.stderr.write('build: tsc failed (above); dist/ is unchanged\n');
  process.exit(1);
}
cpSync(path.join(root, 'src', 'store', 'migrations'), path.join(next, 'store', 'migrations'), { recursive: true });
copyFileSync(path.join(root, 'src', 'store', 'pglite-worker.mjs'), path.join(next, 'store', 'pglite-worker.mjs'));
writeFileSync(path.join(next, BUILD_STAMP), `${hash}\n`);
rmSync(old, { recursive: true, force: true });
if (existsSync(dist)) renameSync(dist, old);
renameSync(next, dist);
rmSync(old, { recursive: true, force: true });
