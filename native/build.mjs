// Builds native/build/Release/hashhub_sha.node (SHA-256 with the x86 SHA extensions for the share path) when it
// is missing or older than its source. npm install runs this (prepare), as do npm start and npm test. Optional:
// without a C compiler, Node's headers or an x86-64 CPU, the pool says so once and runs the same hashing in JS.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = path.dirname(fileURLToPath(import.meta.url));
const out = path.join(dir, 'build', 'Release', 'hashhub_sha.node');
const src = ['sha256.c', 'binding.gyp'].map((f) => path.join(dir, f));
const stale = !fs.existsSync(out) || Math.max(...src.map((f) => fs.statSync(f).mtimeMs)) > fs.statSync(out).mtimeMs;

function nodeGyp() {
  if (process.env.npm_config_node_gyp && fs.existsSync(process.env.npm_config_node_gyp)) return process.env.npm_config_node_gyp;
  // npm's own copy, next to the npm that runs this or in the global prefix.
  const npmCli = process.env.npm_execpath;
  const candidates = [
    npmCli && path.join(path.dirname(npmCli), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ].filter(Boolean);
  return candidates.find((c) => fs.existsSync(c)) ?? null;
}

function nodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  // Node's own headers where Debian's nodejs (or a source install) puts them: no download needed.
  for (const d of [path.join(path.dirname(process.execPath), '..'), '/usr', '/usr/local']) {
    if (fs.existsSync(path.join(d, 'include', 'node', 'node_api.h'))) return d;
  }
  return null;
}

if (stale && process.env.HASHHUB_NATIVE_SHA !== '0') {
  const gyp = nodeGyp();
  const nd = nodeDir();
  if (process.arch !== 'x64') {
    process.stderr.write(`native SHA-256: not built on ${process.arch} (x86-64 only); the share path hashes in JS\n`);
  } else if (!gyp) {
    process.stderr.write('native SHA-256: node-gyp not found; the share path hashes in JS\n');
  } else {
    try {
      execFileSync(process.execPath, [gyp, 'rebuild', ...(nd ? [`--nodedir=${nd}`] : [])], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], timeout: 180_000 });
      process.stderr.write('native SHA-256: built native/build/Release/hashhub_sha.node\n');
    } catch (e) {
      const why = String(e.stderr ?? e.message).split('\n').filter((l) => /error/i.test(l)).slice(0, 2).join(' / ') || e.message;
      process.stderr.write(`native SHA-256: not built (${why.slice(0, 300)}); the share path hashes in JS\n`);
    }
  }
}
