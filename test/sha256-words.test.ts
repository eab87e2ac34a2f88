import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { coinbaseMerkleBranch, merkleRoot, merkleRootFromBranch, sha256d } from '../src/chain/index.ts';
import { SHA256_IV, midstate, sha256d80, sha256dFromMidstate, sha256dInto, sha256dPairLevel, sha256dPairWords, storeWords, wordsOf } from '../src/chain/sha256-words.ts';
import { WorkHasher } from '../src/shares/work.ts';
import { plainMerkleRoot } from './helpers/merkle.ts';

// The JS SHA-256 of the share hot path against node:crypto (OpenSSL), on random inputs of every length class.

const ref = (b: Uint8Array) => createHash('sha256').update(createHash('sha256').update(b).digest()).digest();
const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max }).map((a) => Buffer.from(a));

test('sha256dInto equals sha256d of node:crypto for lengths 0..300 (one and two padding blocks)', () => {
  fc.assert(fc.property(bytes(0, 300), (m) => {
    const out = Buffer.alloc(32);
    sha256dInto(m, out);
    assert.deepEqual(out, ref(m));
  }), { numRuns: 500 });
  for (let len = 0; len <= 200; len++) {
    const m = Buffer.alloc(len, len);
    const out = Buffer.alloc(32);
    sha256dInto(m, out);
    assert.deepEqual(out, ref(m), `length ${len}`);
  }
});

test('a merkle level in words equals sha256d(left ‖ right)', () => {
  fc.assert(fc.property(bytes(32, 32), bytes(32, 32), (l, r) => {
    const out = new Int32Array(8);
    sha256dPairWords(wordsOf(l), 0, wordsOf(r), 0, out, 0);
    const b = Buffer.alloc(32);
    storeWords(out, 0, b, 0);
    assert.deepEqual(b, ref(Buffer.concat([l, r])));
  }), { numRuns: 300 });
});

test('midstate of the whole blocks of a prefix, then the rest: the same digest', () => {
  fc.assert(fc.property(bytes(0, 400), fc.nat(), (m, k) => {
    const blocks = m.length === 0 ? 0 : k % (Math.floor(m.length / 64) + 1);
    const out = new Int32Array(8);
    sha256dFromMidstate(midstate(m, blocks), m, blocks * 64, out, 0);
    const b = Buffer.alloc(32);
    storeWords(out, 0, b, 0);
    assert.deepEqual(b, ref(m));
  }), { numRuns: 300 });
  assert.deepEqual(midstate(Buffer.alloc(0), 0), SHA256_IV);
});

test('sha256d80 (the header hash) equals sha256d', () => {
  fc.assert(fc.property(bytes(80, 80), (h) => assert.deepEqual(sha256d80(h), ref(h))), { numRuns: 300 });
});

test('WorkHasher.merkleRootFor equals the byte path (coinbase sha256d, then the branch), any coinb1 length and branch depth', () => {
  fc.assert(fc.property(bytes(0, 200), bytes(0, 150), fc.array(bytes(32, 32), { maxLength: 13 }), bytes(4, 4), bytes(8, 8),
    (coinb1, coinb2, branch, en1, en2) => {
      const h = new WorkHasher(coinb1, coinb2, 12, branch, Buffer.alloc(32, 7), 0x1d00ffff);
      const expected = merkleRootFromBranch(sha256d(Buffer.concat([coinb1, en1, en2, coinb2])), branch);
      assert.deepEqual(h.merkleRootFor(en1, en2), expected);
      // and again with another extranonce2 (the scratch state is reset per call)
      const en2b = Buffer.from(en2).reverse();
      assert.deepEqual(h.merkleRootFor(en1, en2b), merkleRootFromBranch(sha256d(Buffer.concat([coinb1, en1, en2b, coinb2])), branch));
    }), { numRuns: 200 });
});

test('merkle root and coinbase branch (level by level, native when built, JS words otherwise) equal the plain tree', () => {
  fc.assert(fc.property(fc.array(bytes(32, 32), { minLength: 1, maxLength: 70 }), (hashes) => {
    const root = plainMerkleRoot(hashes);
    assert.deepEqual(merkleRoot(hashes), root);
    assert.deepEqual(merkleRootFromBranch(hashes[0], coinbaseMerkleBranch(hashes.slice(1))), root);
  }), { numRuns: 300 });
});

test('a merkle level in place: node j from `from` on, while 2j < len; nodes before `from` and from len/2 on untouched', () => {
  fc.assert(fc.property(fc.array(bytes(32, 32), { minLength: 1, maxLength: 40 }), fc.nat(1), (hashes, from) => {
    const w = new Int32Array(8 * hashes.length);
    hashes.forEach((h, i) => w.set(wordsOf(h), 8 * i));
    const before = w.slice();
    sha256dPairLevel(w, from, hashes.length);
    const out = Buffer.alloc(32);
    for (let j = 0; j < hashes.length; j++) {
      storeWords(w, 8 * j, out, 0);
      const changed = j >= from && 2 * j < hashes.length;
      const want = changed ? ref(Buffer.concat([hashes[2 * j], hashes[2 * j + 1] ?? hashes[2 * j]])) : (() => { const b = Buffer.alloc(32); storeWords(before, 8 * j, b, 0); return b; })();
      assert.deepEqual(out, want, `node ${j}`);
    }
  }), { numRuns: 300 });
});
