import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { NATIVE_SHA_PATH, merkleRootFromBranch, midstate, nativeSha, wordsOf } from '../src/chain/index.ts';

// The native SHA-256 (native/sha256.c, SHA-NI) against node:crypto, and the JS words with the native module
// switched off, so both ways a share can be hashed stay tested wherever the suite runs.

const ROOT = path.resolve(import.meta.dirname, '..');
const ref = (b: Uint8Array) => createHash('sha256').update(createHash('sha256').update(b).digest()).digest();
const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max }).map((a) => Buffer.from(a));
const SKIP = nativeSha ? false : existsSync(NATIVE_SHA_PATH) ? 'the CPU has no SHA extensions' : `not built (${NATIVE_SHA_PATH}: npm install builds it)`;

test('native sha256d equals node:crypto for lengths 0..300', { skip: SKIP }, () => {
  const n = nativeSha!;
  for (let len = 0; len <= 300; len++) {
    const m = Buffer.alloc(len, len * 7);
    const out = Buffer.alloc(32);
    n.sha256d(m, out);
    assert.deepEqual(out, ref(m), `length ${len}`);
  }
  fc.assert(fc.property(bytes(0, 1000), (m) => {
    const out = Buffer.alloc(32);
    n.sha256d(m, out);
    assert.deepEqual(out, ref(m));
  }), { numRuns: 300 });
});

test('native merkle root (coinbase from its midstate, then the branch) equals the plain tree', { skip: SKIP }, () => {
  const n = nativeSha!;
  fc.assert(fc.property(bytes(0, 400), fc.array(bytes(32, 32), { maxLength: 14 }), fc.nat(), (coinbase, branch, k) => {
    const blocks = k % (Math.floor(coinbase.length / 64) + 1);
    const mid = midstate(coinbase, blocks);
    const words = new Int32Array(8 * branch.length);
    branch.forEach((b, i) => words.set(wordsOf(b), 8 * i));
    const out = Buffer.alloc(32);
    n.merkleRoot(mid, coinbase, blocks * 64, words, out);
    assert.deepEqual(out, merkleRootFromBranch(ref(coinbase), branch));
  }), { numRuns: 300 });
});

test('native functions refuse arguments that are not typed arrays of the right size (a TypeError, no crash)', { skip: SKIP }, () => {
  const n = nativeSha!;
  assert.throws(() => n.sha256d('abc' as unknown as Uint8Array, Buffer.alloc(32)), TypeError);
  assert.throws(() => n.sha256d(Buffer.alloc(3), Buffer.alloc(31)), TypeError);
  assert.throws(() => n.merkleRoot(new Int32Array(8), Buffer.alloc(10), 64, new Int32Array(0), Buffer.alloc(32)), TypeError);
  assert.throws(() => n.merkleRoot(new Int32Array(8), Buffer.alloc(100), 0, new Int32Array(7), Buffer.alloc(32)), TypeError);
  assert.throws(() => n.pairLevel(new Int32Array(8 * 3), 0, 4), TypeError, 'a level longer than its array');
  assert.throws(() => n.pairLevel('abc' as unknown as Int32Array, 0, 1), TypeError);
});

test('with the native module switched off (HASHHUB_NATIVE_SHA=0) the JS words give the same hashes', async () => {
  const env: NodeJS.ProcessEnv = { ...process.env, HASHHUB_NATIVE_SHA: '0' };
  delete env.NODE_TEST_CONTEXT; // the child reports in TAP, not to this runner
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', 'test/sha256-words.test.ts'], { cwd: ROOT, env });
  assert.match(stdout, /# fail 0/);
  assert.doesNotMatch(stdout, /# pass 0\b/);
});
