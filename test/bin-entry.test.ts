import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chooseEntry, sourcesHash } from '../bin/entry.mjs';

// bin/hashhub.js runs dist/ only while it was built from the sources as they are: a build of other sources must
// never run (old code after a `git pull`, a deleted migration still applied), a clone without a build runs the
// sources, and nothing in src/ may stop it from running at all.

function tree(): string {
  const root = mkdtempSync(path.join(tmpdir(), 'hashhub-entry-'));
  mkdirSync(path.join(root, 'src', 'cli'), { recursive: true });
  mkdirSync(path.join(root, 'src', 'store', 'migrations'), { recursive: true });
  writeFileSync(path.join(root, 'src', 'cli', 'main.ts'), 'main');
  writeFileSync(path.join(root, 'src', 'store', 'migrations', '001.sql'), 'create');
  return root;
}

/** What scripts/build.mjs leaves: the entry and the stamp with the sources' hash. */
function build(root: string): void {
  mkdirSync(path.join(root, 'dist', 'cli'), { recursive: true });
  writeFileSync(path.join(root, 'dist', 'cli', 'main.js'), '');
  writeFileSync(path.join(root, 'dist', '.built'), `${sourcesHash(path.join(root, 'src'))}\n`);
}

function withTree(fn: (root: string) => void): void {
  const root = tree();
  try { fn(root); } finally { rmSync(root, { recursive: true, force: true }); }
}

test('a clone without a build runs the sources, saying nothing', () => withTree((root) => {
  assert.deepEqual(chooseEntry(root), { kind: 'src', file: path.join(root, 'src', 'cli', 'main.ts'), why: null });
}));

test('a build of the sources as they are runs', () => withTree((root) => {
  build(root);
  assert.deepEqual(chooseEntry(root), { kind: 'dist', file: path.join(root, 'dist', 'cli', 'main.js') });
}));

test('a build of other sources is not run: an edit however deep, a deletion, an added file, an edit with an old file time', () => {
  const changes: [string, (root: string) => void][] = [
    ['edit two levels down', (r) => writeFileSync(path.join(r, 'src', 'store', 'migrations', '001.sql'), 'create2')],
    ['deleted migration', (r) => rmSync(path.join(r, 'src', 'store', 'migrations', '001.sql'))],
    ['added source', (r) => writeFileSync(path.join(r, 'src', 'cli', 'extra.ts'), '')],
    ['edit keeping the old time (rsync -a, cp -p)', (r) => {
      const f = path.join(r, 'src', 'cli', 'main.ts');
      writeFileSync(f, 'mainX');
      utimesSync(f, new Date(2000, 0, 1), new Date(2000, 0, 1));
    }],
  ];
  for (const [what, change] of changes) withTree((root) => {
    build(root);
    change(root);
    const e = chooseEntry(root);
    assert.equal(e.kind, 'src', what);
    assert.match(e.kind === 'src' ? e.why ?? '' : '', /other sources/, what);
  });
});

test('editors\' lock and swap files and a dangling symlink neither stale the build nor stop the start', () => withTree((root) => {
  build(root);
  writeFileSync(path.join(root, 'src', 'cli', '.main.ts.swp'), 'x');
  symlinkSync('/nonexistent/hashhub', path.join(root, 'src', 'cli', '.#main.ts'));
  symlinkSync('/nonexistent/hashhub', path.join(root, 'src', 'cli', 'gone.ts'));
  assert.equal(chooseEntry(root).kind, 'dist');
}));

test('a source that cannot be read runs the sources with the reason, never stops the start', () => withTree((root) => {
  build(root);
  const loop = path.join(root, 'src', 'cli', 'loop.ts');
  symlinkSync(loop, loop); // ELOOP on read (an unreadable file or directory fails the same way)
  const e = chooseEntry(root);
  assert.equal(e.kind, 'src');
  assert.match(e.kind === 'src' ? e.why ?? '' : '', /could not be compared/);
}));

test('a build interrupted before its stamp, or without its entry, is not run, and says so', () => withTree((root) => {
  build(root);
  rmSync(path.join(root, 'dist', '.built'));
  assert.deepEqual(chooseEntry(root), { kind: 'src', file: path.join(root, 'src', 'cli', 'main.ts'), why: 'dist/ holds no complete build' });
  build(root);
  rmSync(path.join(root, 'dist', 'cli', 'main.js'));
  assert.equal(chooseEntry(root).kind, 'src');
}));
