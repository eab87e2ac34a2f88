import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chooseEntry } from '../bin/entry.mjs';

// bin/hashhub.js runs dist/ only while it is current: a build older than any source must never run (it would
// run old code after a `git pull`), and a clone without a build runs the sources.

function tree(): string {
  const root = mkdtempSync(path.join(tmpdir(), 'hashhub-entry-'));
  mkdirSync(path.join(root, 'src', 'cli'), { recursive: true });
  mkdirSync(path.join(root, 'src', 'store', 'migrations'), { recursive: true });
  writeFileSync(path.join(root, 'src', 'cli', 'main.ts'), '');
  writeFileSync(path.join(root, 'src', 'store', 'migrations', '001.sql'), '');
  return root;
}

function build(root: string): void {
  mkdirSync(path.join(root, 'dist', 'cli'), { recursive: true });
  writeFileSync(path.join(root, 'dist', 'cli', 'main.js'), '');
  writeFileSync(path.join(root, 'dist', '.built'), '');
}

function age(file: string, secondsAgo: number): void {
  const t = new Date(Date.now() - secondsAgo * 1000);
  utimesSync(file, t, t);
}

test('a clone without a build runs the sources', () => {
  const root = tree();
  try {
    assert.deepEqual(chooseEntry(root), { kind: 'src', file: path.join(root, 'src', 'cli', 'main.ts'), stale: false });
  } finally { rmSync(root, { recursive: true, force: true }); }
});

test('a build newer than every source runs', () => {
  const root = tree();
  try {
    age(path.join(root, 'src', 'cli', 'main.ts'), 60);
    age(path.join(root, 'src', 'store', 'migrations', '001.sql'), 60);
    build(root);
    assert.deepEqual(chooseEntry(root), { kind: 'dist', file: path.join(root, 'dist', 'cli', 'main.js') });
  } finally { rmSync(root, { recursive: true, force: true }); }
});

test('a source changed after the build, however deep, sends it back to the sources, marked stale', () => {
  const root = tree();
  try {
    age(path.join(root, 'src', 'cli', 'main.ts'), 60);
    build(root);
    age(path.join(root, 'dist', '.built'), 30);
    // the migration (two levels down) is newer than the build
    const e = chooseEntry(root);
    assert.equal(e.kind, 'src');
    assert.equal(e.kind === 'src' && e.stale, true);
  } finally { rmSync(root, { recursive: true, force: true }); }
});

test('a build interrupted before its stamp, or without its entry, is not run', () => {
  const root = tree();
  try {
    age(path.join(root, 'src', 'cli', 'main.ts'), 60);
    age(path.join(root, 'src', 'store', 'migrations', '001.sql'), 60);
    build(root);
    rmSync(path.join(root, 'dist', '.built'));
    assert.equal(chooseEntry(root).kind, 'src');
    build(root);
    rmSync(path.join(root, 'dist', 'cli', 'main.js'));
    assert.equal(chooseEntry(root).kind, 'src');
  } finally { rmSync(root, { recursive: true, force: true }); }
});
