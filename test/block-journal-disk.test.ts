// The block journal on a really full filesystem (a small tmpfs; needs root to mount, skipped elsewhere): a block
// record that does not fit is written whole after the journal gives its reserve file back, and reads back after
// a restart. The disk fills in the middle of the record (a short write), which must not leave a torn prefix in
// front of the record's line.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { BlockJournal } from '../src/ingest/block-journal.ts';
import { tinyFs } from './helpers/tmpfs.ts';

/** Fill the filesystem to the last byte with a filler file. */
function fill(dir: string): void {
  const fd = fs.openSync(path.join(dir, 'filler'), 'w');
  const chunk = Buffer.alloc(4096, 1);
  try {
    for (;;) fs.writeSync(fd, chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  }
  // Byte by byte to the very end, so the next record's first bytes fit and the rest does not.
  try {
    for (;;) fs.writeSync(fd, chunk, 0, 1);
  } catch { /* full */ }
  fs.closeSync(fd);
}

test('a full disk: the block record is written whole from the released reserve and reads back after a restart', async (t) => {
  const dir = tinyFs(t, '2m');
  if (!dir) return t.skip('cannot mount a tmpfs here (not root)');
  const jdir = path.join(dir, 'blocks');
  const j = new BlockJournal(jdir, { reserveBytes: 512 * 1024 });
  assert.equal(fs.statSync(path.join(jdir, 'blocks.reserve')).size, 512 * 1024);
  fill(dir);
  // Free a few KB so the disk fills in the middle of the record (a short write), as a real disk would.
  fs.truncateSync(path.join(dir, 'filler'), fs.statSync(path.join(dir, 'filler')).size - 8192);
  const hex = 'ab'.repeat(150_000); // a 150 kB block: far more than is left
  const candidate = { hash: 'cd'.repeat(32), height: 7, prevHash: 'ee'.repeat(32), account: 'acct', worker: 'w1', reward: '312500000', hex, time: 1 };
  j.appendCandidate(candidate);
  assert.equal(fs.statSync(path.join(jdir, 'blocks.reserve')).size, 0, 'the reserve was given back');
  j.close();

  const again = new BlockJournal(jdir, { reserveBytes: 0 });
  const back = again.get(candidate.hash);
  assert.ok(back, 'the block is in the journal after a restart');
  assert.equal(back.candidate.hex.length, hex.length);
  assert.equal(back.candidate.hex, hex);
  const lines = fs.readFileSync(path.join(jdir, 'blocks.journal'), 'utf8').split('\n').filter(Boolean);
  for (const l of lines) assert.doesNotThrow(() => JSON.parse(l), 'every line is a whole record');
  again.close();
});
