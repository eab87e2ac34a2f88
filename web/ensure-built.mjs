// Builds the dashboard when web/dist is missing or older than its sources (npm start / npm test run this first),
// so a clean clone, a pull or an edit never serves a stale page. npm install builds it too (prepare).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const web = path.dirname(fileURLToPath(import.meta.url));
const built = path.join(web, 'dist', 'index.html');

function newest(p) {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  let m = st.mtimeMs;
  for (const e of fs.readdirSync(p)) if (e !== 'dist' && e !== 'node_modules') m = Math.max(m, newest(path.join(p, e)));
  return m;
}

const vite = path.join(web, '..', 'node_modules', 'vite', 'bin', 'vite.js');
const stale = !fs.existsSync(built) || newest(web) > fs.statSync(built).mtimeMs;
if (stale && !fs.existsSync(vite)) {
  // A production install (npm ci --omit=dev) has no Vite: keep what is built, or let / say how to build it.
  process.stderr.write(`dashboard: ${fs.existsSync(built) ? 'web/dist may be stale' : 'web/dist is not built'} and Vite is not installed (a devDependency): run npm install, then npm run build:web\n`);
} else if (stale) {
  process.stderr.write('dashboard: building web/dist (npm run build:web)\n');
  execFileSync(process.execPath, [vite, 'build', '--config', path.join(web, 'vite.config.ts')], { stdio: 'inherit', cwd: path.join(web, '..') });
}
