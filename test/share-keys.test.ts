import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { ASIDE_MAX, ShareKeySet, WorkKeySets, workKeyOf } from '../src/shares/share-keys.ts';

/** What ShareKeySet keeps of a hash: bytes 0-11, the low bit of byte 8 set. */
const keptBits = (h: Uint8Array): string => {
  const k = Buffer.from(h.subarray(0, 12));
  k[8] |= 1;
  return k.toString('hex');
};

test('ShareKeySet answers as a set of the bits it keeps, through collisions on the slot and growth', () => {
  // Hashes from a small pool (repeats are common), some sharing their first word (the same slot: probing), some
  // differing only in the bit the empty-slot marker takes, and zeros.
  const base = Array.from({ length: 40 }, () => randomBytes(32));
  const variant = (i: number, how: number): Uint8Array => {
    const h = Buffer.from(base[i % base.length]);
    if (how === 1) h.writeUInt32LE(i, 4); // same first word as base[i], another second word
    if (how === 2) h[8] ^= 1; // differs only in the marker's bit: the same kept key
    if (how === 3) h.fill(0, 0, 12);
    if (how === 4) h.writeUInt32LE(i * 977, 8);
    return h;
  };
  fc.assert(fc.property(fc.array(fc.tuple(fc.nat(400), fc.nat(4)), { minLength: 1, maxLength: 3000 }), fc.nat(64), (picks, initial) => {
    const set = new ShareKeySet(initial);
    const model = new Set<string>();
    let added = 0;
    for (const [i, how] of picks) {
      const h = variant(i, how);
      const k = keptBits(h);
      assert.equal(set.add(h), !model.has(k));
      if (!model.has(k)) added++;
      model.add(k);
      assert.equal(set.add(h), false, 'just added');
    }
    assert.equal(set.size, model.size);
    assert.ok(added > 0);
  }), { numRuns: 60 });
});

test('ShareKeySet: 200,000 random hashes are all new, then all found again', () => {
  const set = new ShareKeySet();
  const hashes = Array.from({ length: 200_000 }, () => randomBytes(32));
  for (const h of hashes) assert.equal(set.add(h), true);
  assert.equal(set.size, 200_000);
  for (const h of hashes) assert.equal(set.add(h), false);
  assert.equal(set.size, 200_000);
});

test('ShareKeySet refuses a key shorter than the 12 bytes it keeps (a header hash is 32)', () => {
  const set = new ShareKeySet();
  assert.throws(() => set.add(new Uint8Array(11)), /a share key is a header hash, got 11 bytes/);
  assert.equal(set.add(new Uint8Array(12)), true);
  assert.equal(set.size, 1);
});

test('workKeyOf: a job\'s notify fields between the id and ntime, lowercased, without the version', () => {
  const body = (version: string, coinb1 = 'AB01') => `","00ff","${coinb1}","cd02",["aa","bb"],"${version}","1d00ffff","`;
  assert.equal(workKeyOf(body('20000000')), '","00ff","ab01","cd02",["aa","bb"]"1d00ffff","');
  assert.equal(workKeyOf(body('20002000')), workKeyOf(body('20000000')));
  assert.notEqual(workKeyOf(body('20000000', 'ab02')), workKeyOf(body('20000000')));
  assert.equal(workKeyOf(`","00ff","ab","cd",[],"20000000","1d00ffff","`), '","00ff","ab","cd",[]"1d00ffff","', 'an empty branch');
  assert.notEqual(workKeyOf(`","00ff","ab","cd",[],"20000000","1d00fffe","`), workKeyOf(`","00ff","ab","cd",[],"20000000","1d00ffff","`), 'bits kept');
});

test('WorkKeySets: one key set per work, kept while a job holds it', () => {
  const sets = new WorkKeySets();
  const w = `","00","ab","cd",[],"20000000","1d00ffff","`;
  const k1 = sets.acquire(w);
  const k2 = sets.acquire(w.toUpperCase());
  assert.equal(k1, k2);
  const other = sets.acquire(w.replace('ab', 'ac'));
  assert.notEqual(other, k1);
  assert.equal(sets.size, 2);
  sets.release(w, 1000);
  assert.equal(sets.size, 2, 'one job still holds it');
  assert.equal(sets.acquire(w), k1);
  sets.release(w, 1000);
  sets.release(w, 1000);
  assert.equal(sets.size, 1);
  assert.equal(sets.asideCount, 0, 'no share in it: nothing to keep');
  assert.notEqual(sets.acquire(w), k1, 'a fresh set once the last job let it go');
});

test('WorkKeySets keeps a set whose shares\' ntimes a later job could take, until the current job\'s time passes them', () => {
  const sets = new WorkKeySets();
  const w = `","00","ab","cd",[],"20000000","1d00ffff","`;
  const keys = sets.acquire(w);
  const h = randomBytes(32);
  assert.equal(keys.add(h, 1500), true); // rolled ahead of the job's time
  assert.equal(keys.add(randomBytes(32), 990), true);
  assert.equal(keys.maxNtime, 1500);
  sets.release(w, 1000);
  assert.equal(sets.size, 0);
  assert.equal(sets.asideCount, 1);
  sets.sweep(1499);
  assert.equal(sets.asideCount, 1, 'a job at 1499 could still take the share at 1500');
  const back = sets.acquire(w.toUpperCase());
  assert.equal(back, keys, 'the same work again: the same set');
  assert.equal(back.add(h, 1500), false, 'so the share is a duplicate');
  sets.release(w, 1500);
  assert.equal(sets.asideCount, 1, 'at the share\'s own ntime, still');
  sets.sweep(1500);
  assert.equal(sets.asideCount, 1, 'a job at 1500 could take it');
  sets.sweep(1501);
  assert.equal(sets.asideCount, 0);
  assert.notEqual(sets.acquire(w), keys);
});

test('WorkKeySets keeps at most ASIDE_MAX sets aside, the oldest going first; an empty set is never kept', () => {
  const sets = new WorkKeySets();
  const body = (i: number) => `","00","ab${i.toString(16).padStart(6, '0')}","cd",[],"20000000","1d00ffff","`;
  sets.acquire(body(0xffff));
  sets.release(body(0xffff), 0);
  assert.equal(sets.asideCount, 0, 'no share, nothing to keep, whatever the time');
  const first = sets.acquire(body(0));
  first.add(randomBytes(32), 5000);
  sets.release(body(0), 0);
  for (let i = 1; i <= ASIDE_MAX; i++) {
    sets.acquire(body(i)).add(randomBytes(32), 5000);
    sets.release(body(i), 0);
  }
  assert.equal(sets.asideCount, ASIDE_MAX);
  assert.notEqual(sets.acquire(body(0)), first, 'the oldest went');
  sets.acquire(body(1));
  assert.equal(sets.asideCount, ASIDE_MAX - 1, 'the next one was still there, taken back');
});
