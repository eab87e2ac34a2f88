// `npm run build`: the sources compiled into a clean dist/ (tsc, tsconfig.build.json), what tsc does not emit
// copied beside them (the SQL migrations, the PGlite worker), then dist/.built written last: bin/entry.mjs
// runs the build only while no source is newer than that file.
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
rmSync('dist', { recursive: true, force: true }); // no file of a source since deleted survives a build
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
cpSync('src/store/migrations', 'dist/store/migrations', { recursive: true });
copyFileSync('src/store/pglite-worker.mjs', 'dist/store/pglite-worker.mjs');
writeFileSync('dist/.built', `${new Date().toISOString()}\n`);
