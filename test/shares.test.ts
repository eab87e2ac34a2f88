import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as bitcoin from 'bitcoinjs-lib';
import {
  bitsToTarget, coinbaseMerkleBranch, difficultyToTarget, targetBytes, meetsTarget, fromHex, hashToBigInt, hashToDisplay, parseBlock, serializeTx,
  sha256d, toHex, txid,
} from '../src/chain/index.ts';
import { type Job, assembleShareBlock, buildJob, notifyBytes, notifyLine } from '../src/shares/job.ts';
import { JOB_NONCE_BYTES, JobManager } from '../src/shares/jobs.ts';
import { type ShareContext, type SubmitParams, newRootCache, validateShare } from '../src/shares/validator.ts';
import { WorkHasher, prevHashFromStratum, prevHashToStratum, u32Hex } from '../src/shares/work.ts';
import { loadBlockVectors } from './helpers/vectors.ts';
import { fakeTemplate } from './helpers/template.ts';
import type { BlockTemplate } from '../src/node/types.ts';

const P2WPKH = Buffer.from('0014751e76e8199196d454941c45d1b3a323f1433bd6', 'hex');

describe('share path on real blocks', () => {
  for (const v of loadBlockVectors()) {
    test(`${v.description}: coinb1|en1|en2|coinb2 split inside the scriptSig rebuilds the real block`, () => {
      const block = parseBlock(fromHex(v.hex));
      const cb = block.txs[0];
      const nonWitness = serializeTx(cb, false);
      const scriptSigStart = 4 + 1 + 36 + 1; // version, vin count, prevout, 1-byte length (scriptSig < 253)
      const ids = block.txs.map(txid);
      const branch = coinbaseMerkleBranch(ids.slice(1));
      for (const [offset, en2Size] of [[0, 4], [1, 2], [cb.inputs[0].scriptSig.length - 8, 4]] as const) {
        const pos = scriptSigStart + offset;
        const coinb1 = nonWitness.subarray(0, pos);
        const en1 = nonWitness.subarray(pos, pos + 4);
        const en2 = nonWitness.subarray(pos + 4, pos + 4 + en2Size);
        const coinb2 = nonWitness.subarray(pos + 4 + en2Size);
        const h = block.header;
        // Through the Stratum wire form of prevhash, like a miner would receive it.
        const prev = prevHashFromStratum(prevHashToStratum(h.prevHash));
        assert.ok(prev.equals(h.prevHash));
        const hasher = new WorkHasher(Buffer.from(coinb1), Buffer.from(coinb2), 4 + en2Size, branch, prev, h.bits);
        const header = hasher.header80(hasher.merkleRootFor(en1, en2), h.version, h.time, h.nonce);
        assert.equal(hashToDisplay(sha256d(header)), v.hash, `split at +${offset}`);

        // The validator on the same share classifies it as a block and assembles the real block.
        const job: Job = {
          id: '1', height: v.height ?? 0, prevHash: h.prevHash, prevHashHex: hashToDisplay(h.prevHash), version: h.version, bits: h.bits,
          networkTarget: bitsToTarget(h.bits), networkTargetBytes: targetBytes(bitsToTarget(h.bits)), networkDifficulty: 1, ntime: h.time, coinbaseValue: 0n, hasher, segwit: cb.inputs[0].witness.length > 0,
          txs: { count: block.txs.length - 1, bytes: Buffer.concat(block.txs.slice(1).map((t) => serializeTx(t))) }, createdAt: 0, notifyHead: '', notifyBody: '',
          coinbase: { height: v.height ?? 0, extranonceSize: 4 + en2Size, tag: Buffer.alloc(0), witnessCommitmentScript: undefined, branch, notifyTail: '', prevHashStratum: '' }, base: null,
        };
        const jobs = new JobManager({ extranonceSize: 4 + en2Size, tag: Buffer.alloc(0), outputs: () => [] });
        jobs.addJob(job, 0);
        const ctx: ShareContext = {
          extranonce1: Buffer.from(en1), extranonce2Size: en2Size, versionMask: 0, job,
          target: targetBytes(difficultyToTarget(1)), nowSec: h.time, maxNtimeAheadSec: 600,
        };
        const r = validateShare(jobs, ctx, { worker: 'a.b', jobId: '1', extranonce2: toHex(en2), ntime: u32Hex(h.time), nonce: u32Hex(h.nonce) });
        assert.equal(r.outcome, 'accepted');
        if (r.outcome !== 'accepted') return;
        assert.equal(r.block, true);
        assert.equal(toHex(assembleShareBlock(job, en1, en2, r.header)), v.hex);
      }
    });
  }
});

/** Grind nonces (real sha256d) until the header hash is at or below `target` (or, with `above`, above it). */
function grind(job: Job, en1: Buffer, en2: Buffer, target: bigint, opts: { above?: boolean; version?: number; ntime?: number } = {}): string {
  const root = job.hasher.merkleRootFor(en1, en2);
  for (let nonce = 0; nonce < 50_000_000; nonce++) {
    const h = hashToBigInt(sha256d(job.hasher.header80(root, opts.version ?? job.version, opts.ntime ?? job.ntime, nonce)));
    if (opts.above ? h > target : h <= target) return u32Hex(nonce);
  }
  throw new Error('no nonce found');
}

describe('share classification', () => {
  const en1 = Buffer.from('00000001', 'hex');
  const setup = (bits = 0x1d00ffff, difficulty = 1e-6) => {
    const jobs = new JobManager({ extranonceSize: 12, tag: Buffer.from('/t/'), outputs: (v) => [{ value: v, scriptPubKey: P2WPKH }] });
    const { job } = jobs.addTemplate(fakeTemplate({ bits }), Date.now());
    const ctx = (over: Partial<ShareContext> = {}): ShareContext => ({
      extranonce1: en1, extranonce2Size: 8, versionMask: 0x1fffe000, job,
      target: targetBytes(difficultyToTarget(difficulty)), nowSec: Math.floor(Date.now() / 1000), maxNtimeAheadSec: 600, ...over,
    });
    const submit = (nonce: string, over: Partial<SubmitParams> = {}): SubmitParams => ({
      worker: 'acct.w', jobId: job.id, extranonce2: '0000000000000001', ntime: u32Hex(job.ntime), nonce, ...over,
    });
    return { jobs, job, ctx, submit, target: difficultyToTarget(difficulty) };
  };
  const en2 = Buffer.from('0000000000000001', 'hex');

  test('accepted (not a block at mainnet-like bits), then duplicate', () => {
    const { jobs, job, ctx, submit, target } = setup();
    const nonce = grind(job, en1, en2, target);
    const r = validateShare(jobs, ctx(), submit(nonce));
    assert.equal(r.outcome, 'accepted');
    assert.equal(r.outcome === 'accepted' && r.block, false);
    assert.ok((r.shareDifficulty ?? 0) >= 1e-6);
    assert.equal(validateShare(jobs, ctx(), submit(nonce)).outcome, 'duplicate');
    // Same nonce with upper-case hex is the same share.
    assert.equal(validateShare(jobs, ctx(), submit(nonce.toUpperCase())).outcome, 'duplicate');
  });

  test('a share resubmitted in any hex case is a duplicate; one differing in any field from an accepted one is not', () => {
    // At difficulty 1e-9 about one hash in four passes: the same nonce is accepted under several variants.
    const { jobs, job, ctx, submit } = setup(0x1d00ffff, 1e-9);
    const other = Buffer.from('00000002', 'hex');
    const variants: { name: string; ctx: ShareContext; p: (nonce: string) => SubmitParams }[] = [
      { name: 'base', ctx: ctx(), p: (n) => submit(n, { extranonce2: '00aabbccddeeff01' }) },
      { name: 'another extranonce1', ctx: ctx({ extranonce1: other }), p: (n) => submit(n, { extranonce2: '00aabbccddeeff01' }) },
      { name: 'another extranonce2', ctx: ctx(), p: (n) => submit(n, { extranonce2: '00aabbccddeeff02' }) },
      { name: 'another ntime', ctx: ctx(), p: (n) => submit(n, { extranonce2: '00aabbccddeeff01', ntime: u32Hex(job.ntime + 1) }) },
      { name: 'rolled version', ctx: ctx(), p: (n) => submit(n, { extranonce2: '00aabbccddeeff01', versionBits: '00002000' }) },
    ];
    const accepted = new Map<string, number>();
    for (let i = 0; i < 64; i++) {
      const nonce = u32Hex(i * 0x01010101 + 0xa0);
      for (const v of variants) {
        const first = validateShare(jobs, v.ctx, v.p(nonce)).outcome;
        assert.ok(first === 'accepted' || first === 'low-difficulty', `${v.name}, nonce ${nonce}: ${first}`);
        if (first !== 'accepted') continue;
        accepted.set(v.name, (accepted.get(v.name) ?? 0) + 1);
        const p = v.p(nonce.toUpperCase());
        assert.equal(validateShare(jobs, v.ctx, { ...p, extranonce2: p.extranonce2.toUpperCase(), ntime: p.ntime.toUpperCase(), versionBits: p.versionBits?.toUpperCase() }).outcome, 'duplicate', v.name);
      }
    }
    for (const v of variants) assert.ok((accepted.get(v.name) ?? 0) >= 3, `${v.name} accepted ${accepted.get(v.name) ?? 0} times`);
  });

  test('a share meeting the network target is a block candidate whose block the independent library validates', () => {
    const { jobs, job, ctx, submit, target } = setup(0x207fffff);
    const nonce = grind(job, en1, en2, target < job.networkTarget ? target : job.networkTarget);
    const r = validateShare(jobs, ctx(), submit(nonce));
    assert.equal(r.outcome, 'accepted');
    if (r.outcome !== 'accepted') return;
    assert.equal(r.block, true);
    const blk = bitcoin.Block.fromBuffer(assembleShareBlock(job, en1, r.extranonce2, r.header));
    assert.equal(blk.getId(), hashToDisplay(r.hash));
    assert.equal(blk.checkProofOfWork(), true);
    assert.equal(blk.checkTxRoots(), true);
  });

  test('low difficulty', () => {
    const { jobs, job, ctx, submit, target } = setup();
    const r = validateShare(jobs, ctx(), submit(grind(job, en1, en2, target, { above: true })));
    assert.equal(r.outcome, 'low-difficulty');
    assert.ok((r.shareDifficulty ?? 1) < 1e-6);
  });

  test('stale after a new tip; unknown job', () => {
    const { jobs, job, ctx, submit, target } = setup();
    const nonce = grind(job, en1, en2, target);
    const { clean } = jobs.addTemplate(fakeTemplate({ height: 201 }), Date.now());
    assert.equal(clean, true);
    assert.equal(validateShare(jobs, ctx(), submit(nonce)).outcome, 'stale');
    assert.equal(validateShare(jobs, ctx({ job: undefined }), submit(nonce, { jobId: 'ffff' })).outcome, 'unknown-job');
  });

  test('a refreshed job on the same tip keeps older jobs valid', () => {
    const { jobs, job, ctx, submit, target } = setup();
    const nonce = grind(job, en1, en2, target);
    const { clean } = jobs.addTemplate(fakeTemplate({ prevHash: job.prevHashHex }), Date.now());
    assert.equal(clean, false);
    assert.equal(validateShare(jobs, ctx(), submit(nonce)).outcome, 'accepted');
  });

  test('bad ntime: before the job, too far ahead', () => {
    const { jobs, job, ctx, submit } = setup();
    assert.equal(validateShare(jobs, ctx(), submit('00000000', { ntime: u32Hex(job.ntime - 1) })).outcome, 'bad-ntime');
    assert.equal(validateShare(jobs, ctx(), submit('00000000', { ntime: u32Hex(Math.floor(Date.now() / 1000) + 3600) })).outcome, 'bad-ntime');
  });

  test('rolled ntime within the bound is fine', () => {
    const { jobs, job, ctx, submit, target } = setup();
    const nonce = grind(job, en1, en2, target, { ntime: job.ntime + 5 });
    assert.equal(validateShare(jobs, ctx({ nowSec: job.ntime + 5 }), submit(nonce, { ntime: u32Hex(job.ntime + 5) })).outcome, 'accepted');
  });

  test('version rolling: bits inside the mask accepted, outside rejected, none without negotiation', () => {
    const { jobs, job, ctx, submit, target } = setup();
    const bits = 0x00002000 << 3;
    const version = ((job.version & ~0x1fffe000) | bits) >>> 0;
    const nonce = grind(job, en1, en2, target, { version });
    assert.equal(validateShare(jobs, ctx(), submit(nonce, { versionBits: u32Hex(bits) })).outcome, 'accepted');
    // The same nonce without the bits hashes another header: with high probability low difficulty.
    assert.equal(validateShare(jobs, ctx(), submit('00000000', { versionBits: '20000000' })).outcome, 'bad-version');
    assert.equal(validateShare(jobs, ctx({ versionMask: 0 }), submit('00000000', { versionBits: '00004000' })).outcome, 'bad-version');
  });

  test('bad extranonce2 size and malformed fields', () => {
    const { jobs, ctx, submit } = setup();
    assert.equal(validateShare(jobs, ctx(), submit('00000000', { extranonce2: '00' })).outcome, 'bad-extranonce2');
    assert.equal(validateShare(jobs, ctx(), submit('00000000', { extranonce2: 'zz00000000000000' })).outcome, 'bad-extranonce2');
    assert.equal(validateShare(jobs, ctx(), submit('zz000000')).outcome, 'malformed');
    assert.equal(validateShare(jobs, ctx(), submit('00000000', { ntime: '123' })).outcome, 'malformed');
  });

  test('old jobs are pruned after retention; the current job never is', () => {
    const jobs = new JobManager({ extranonceSize: 12, tag: Buffer.alloc(0), outputs: (v) => [{ value: v, scriptPubKey: P2WPKH }], retentionMs: 1000 });
    const a = jobs.addTemplate(fakeTemplate(), 0).job;
    const b = jobs.addTemplate(fakeTemplate(), 1500).job;
    jobs.addTemplate(fakeTemplate(), 2000);
    assert.equal(jobs.get(a.id), undefined);
    assert.ok(jobs.get(b.id));
    assert.equal(jobs.size, 2);
  });
});

test('notify prevhash is the header prev-hash with each 4-byte word swapped', () => {
  // Block 1's prev hash (genesis), as every pool sends it.
  const internal = fromHex('6fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000');
  assert.equal(prevHashToStratum(internal), '0a8ce26f72b3f1b646a2a6c14ff763ae65831e939c085ae10019d66800000000');
});

test('byte-wise target compare agrees with bigint compare', () => {
  const rnd = () => Buffer.from(Array.from({ length: 32 }, () => Math.floor(Math.random() * 256)));
  for (let i = 0; i < 2000; i++) {
    const h = rnd();
    // Targets near the hash too, so equal prefixes are exercised.
    const t = i % 2 ? rnd() : Buffer.from(h);
    if (i % 4 === 0) t[0] ^= 1;
    assert.equal(meetsTarget(h, t), hashToBigInt(h) <= hashToBigInt(t));
  }
  assert.equal(meetsTarget(Buffer.alloc(32), Buffer.alloc(32)), true);
  assert.equal(toHex(targetBytes(1n)), '01' + '00'.repeat(31));
});

test('merkle root cache: same job and extranonce2 reuse the root; another job or extranonce2 does not', () => {
  const en1 = Buffer.from('0000000a', 'hex');
  const jobs = new JobManager({ extranonceSize: 12, tag: Buffer.from('/t/'), outputs: (v) => [{ value: v, scriptPubKey: P2WPKH }] });
  const a = jobs.addTemplate(fakeTemplate({ bits: 0x1d00ffff }), Date.now()).job;
  const target = difficultyToTarget(1e-6);
  const cache = newRootCache();
  const ctx = (job: Job): ShareContext => ({ extranonce1: en1, extranonce2Size: 8, versionMask: 0, job, target: targetBytes(target), nowSec: Math.floor(Date.now() / 1000), maxNtimeAheadSec: 600, rootCache: cache });
  const en2 = Buffer.from('00000000000000aa', 'hex');
  // Two different valid shares on the same extranonce2: both accepted through the cache.
  // Roots the cache computed, per job (it writes into its own buffer, so the root's identity says nothing).
  const hashed = new Map<Job, number>();
  for (const j of [a]) {
    const into = j.hasher.merkleRootInto.bind(j.hasher);
    j.hasher.merkleRootInto = (e1, e2, out) => {
      if (out.buffer === cache.bytes.buffer) hashed.set(j, (hashed.get(j) ?? 0) + 1); // not grind's own roots
      return into(e1, e2, out);
    };
  }
  const n1 = grind(a, en1, en2, target);
  assert.equal(validateShare(jobs, ctx(a), { worker: 'w', jobId: a.id, extranonce2: toHex(en2), ntime: u32Hex(a.ntime), nonce: n1 }).outcome, 'accepted');
  const cachedRoot = Buffer.from(cache.root);
  const n2 = grind(a, en1, en2, target, { ntime: a.ntime + 1 });
  assert.equal(validateShare(jobs, ctx(a), { worker: 'w', jobId: a.id, extranonce2: toHex(en2), ntime: u32Hex(a.ntime + 1), nonce: n2 }).outcome, 'accepted');
  assert.equal(hashed.get(a), 1, 'root reused');
  // Another extranonce2 on the same job: hashed again, and a share on it is accepted.
  const en2b = Buffer.from('00000000000000ab', 'hex');
  const n4 = grind(a, en1, en2b, target);
  assert.equal(validateShare(jobs, ctx(a), { worker: 'w', jobId: a.id, extranonce2: toHex(en2b), ntime: u32Hex(a.ntime), nonce: n4 }).outcome, 'accepted');
  assert.equal(hashed.get(a), 2);
  // Back to the first extranonce2 (the cache's copy was overwritten in place): the first root again.
  const n5 = grind(a, en1, en2, target, { ntime: a.ntime + 2 });
  assert.equal(validateShare(jobs, ctx(a), { worker: 'w', jobId: a.id, extranonce2: toHex(en2), ntime: u32Hex(a.ntime + 2), nonce: n5 }).outcome, 'accepted');
  assert.equal(hashed.get(a), 3);
  assert.deepEqual(cache.root, cachedRoot);
  // A job on the same tip with other transactions: its own root, so a share solved for it is accepted.
  const b = jobs.addTemplate(fakeTemplate({ bits: 0x1d00ffff, prevHash: a.prevHashHex }), Date.now()).job;
  const n3 = grind(b, en1, en2, target);
  assert.equal(validateShare(jobs, ctx(b), { worker: 'w', jobId: b.id, extranonce2: toHex(en2), ntime: u32Hex(b.ntime), nonce: n3 }).outcome, 'accepted');
  assert.notDeepEqual(cache.root, cachedRoot);
});

test('the merkle root cache holds copies: not the submit line, not a slice of a shared buffer pool', () => {
  const en1 = Buffer.from('0000000d', 'hex');
  const jobs = new JobManager({ extranonceSize: 12, tag: Buffer.from('/t/'), outputs: (v) => [{ value: v, scriptPubKey: P2WPKH }] });
  const a = jobs.addTemplate(fakeTemplate({ bits: 0x1d00ffff }), Date.now()).job;
  const cache = newRootCache();
  const before = cache.bytes;
  const line = `{"id":1,"method":"mining.submit","params":["w","${a.id}","00000000000000aa","${u32Hex(a.ntime)}","00000000"]}` + ' '.repeat(4096);
  const extranonce2 = line.slice(line.indexOf('00000000000000aa'), line.indexOf('00000000000000aa') + 16);
  const ctx: ShareContext = { extranonce1: en1, extranonce2Size: 8, versionMask: 0, job: a, target: targetBytes(difficultyToTarget(1e-6)), nowSec: a.ntime, maxNtimeAheadSec: 600, rootCache: cache };
  validateShare(jobs, ctx, { worker: 'w', jobId: a.id, extranonce2, ntime: u32Hex(a.ntime), nonce: '00000000' });
  assert.equal(cache.job, a);
  // Nothing but the job, the session's extranonce1 and the cache's own bytes (a 64-byte buffer of its own, not a
  // view into an 8 KB pool slab): no string field that could be a slice of the line.
  assert.equal(cache.bytes, before);
  assert.equal(cache.bytes.buffer.byteLength, cache.bytes.length);
  assert.equal(cache.root.buffer, cache.bytes.buffer);
  for (const v of Object.values(cache)) assert.notEqual(typeof v, 'string');
  assert.deepEqual(cache.bytes.subarray(32, 40), Buffer.from('00000000000000aa', 'hex'));
});

test('a share for a job the manager has pruned is unknown, never credited again (same tip)', () => {
  const en1 = Buffer.from('0000000b', 'hex');
  const jobs = new JobManager({ extranonceSize: 12, tag: Buffer.from('/t/'), outputs: (v) => [{ value: v, scriptPubKey: P2WPKH }], retentionMs: 1000 });
  const a = jobs.addTemplate(fakeTemplate({ bits: 0x1d00ffff }), 0).job;
  const target = difficultyToTarget(1e-6);
  const en2 = Buffer.from('0000000000000001', 'hex');
  const ctx: ShareContext = { extranonce1: en1, extranonce2Size: 8, versionMask: 0, job: a, target: targetBytes(target), nowSec: a.ntime, maxNtimeAheadSec: 600 };
  const p: SubmitParams = { worker: 'w', jobId: a.id, extranonce2: toHex(en2), ntime: u32Hex(a.ntime), nonce: grind(a, en1, en2, target) };
  assert.equal(validateShare(jobs, ctx, p).outcome, 'accepted');
  assert.equal(validateShare(jobs, ctx, p).outcome, 'duplicate');
  jobs.addTemplate(fakeTemplate({ bits: 0x1d00ffff, prevHash: a.prevHashHex }), 5000); // same tip, a is pruned
  for (let i = 0; i < 3; i++) assert.equal(validateShare(jobs, ctx, p).outcome, 'unknown-job');
});

/**
 * A job of `t` as JobManager.addJob takes one built elsewhere, without the coinbase nonce addTemplate gives each
 * template's job: two jobs of the same template are then the same work (as an upstream's re-sent jobs can be), and
 * only the key sets (WorkKeySets) keep a share from being credited under both.
 */
let plainJobs = 0;
function addPlain(jobs: JobManager, t: BlockTemplate, now: number): Job {
  const job = plainJob(t, `p${++plainJobs}`, now);
  jobs.addJob(job, now);
  return job;
}

/** A job of `t` built outside the manager under the given id, without a coinbase nonce (for addJob). */
function plainJob(t: BlockTemplate, id: string, now = 0): Job {
  return buildJob(t, { id, extranonceSize: 12, tag: Buffer.from('/t/'), outputs: (v) => [{ value: v, scriptPubKey: P2WPKH }], now });
}

test('each template job has a coinbase of its own: a share found on one job is another header under any other job of the same template, in this process or the next', async () => {
  const en1 = Buffer.from('00000011', 'hex');
  const en2 = Buffer.from('0000000000000001', 'hex');
  const opts = { extranonceSize: 12, tag: Buffer.from('/t/'), outputs: (v: bigint) => [{ value: v, scriptPubKey: P2WPKH }], retentionMs: 60_000 };
  const jobs = new JobManager(opts);
  const T = Math.floor(Date.now() / 1000);
  const t = fakeTemplate({ bits: 0x1d00ffff, curtime: T });
  const a = jobs.addTemplate(t, 0).job;
  // Every hash is a share at this difficulty, so the outcome shows whether the header is the one credited before.
  const ctx = (job: Job, nowSec: number): ShareContext => ({ extranonce1: en1, extranonce2Size: 8, versionMask: 0, job, target: targetBytes(difficultyToTarget(2 ** -32)), nowSec, maxNtimeAheadSec: 600 });
  const share = (job: Job): SubmitParams => ({ worker: 'w', jobId: job.id, extranonce2: toHex(en2), ntime: u32Hex(T + 500), nonce: '00000001' });
  const first = validateShare(jobs, ctx(a, T), share(a));
  assert.equal(first.outcome, 'accepted');
  const hashes = new Set([toHex((first as { hash: Buffer }).hash)]);
  const onOther = (j: JobManager, job: Job, nowSec: number) => {
    const r = validateShare(j, ctx(job, nowSec), share(job));
    assert.equal(r.outcome, 'accepted', 'another header, not a duplicate of the one credited');
    const hex = toHex((r as { hash: Buffer }).hash);
    assert.ok(!hashes.has(hex), 'a header of its own');
    hashes.add(hex);
  };
  // The template refreshed unchanged (the 30 s refresh on a quiet mempool).
  const b = jobs.addTemplate({ ...t, curtime: T + 30 }, 30_000).job;
  assert.notEqual(b.notifyBody, a.notifyBody);
  assert.equal(jobs.keySetCount, 2);
  onOther(jobs, b, T + 30);
  // A SOLO miner's variants of the two keep their jobs' nonces: their coinbases differ too.
  const { soloOutputs } = await import('../src/pool/solo.ts');
  const payout = { key: 'k1', script: Buffer.concat([Buffer.from([0x00, 0x14]), Buffer.alloc(20, 9)]), feeBps: 100 };
  const va = jobs.variant(a, 'k1', (v) => soloOutputs(v, payout, P2WPKH));
  const vb = jobs.variant(b, 'k1', (v) => soloOutputs(v, payout, P2WPKH));
  assert.notEqual(va.notifyBody, vb.notifyBody);
  assert.equal(jobs.keySetCount, 4);
  onOther(jobs, va, T + 30);
  onOther(jobs, vb, T + 30);
  // The node's clock stepped back (helper 58's window): other work until a and b are pruned and the current
  // job's time has passed T+500 (their key sets swept), then exactly t again on the same tip, its time behind.
  const x = fakeTemplate({ bits: 0x1d00ffff, prevHash: a.prevHashHex, curtime: T + 501 });
  jobs.addTemplate(x, 100_000);
  assert.equal(jobs.get(b.id), undefined);
  assert.equal(jobs.keySetsAside, 0);
  onOther(jobs, jobs.addTemplate({ ...t, curtime: T + 20 }, 110_000).job, T + 20);
  // A restart: a new process's first job of the same template.
  const next = new JobManager(opts);
  onOther(next, next.addTemplate(t, 0).job, T);
  // The nonce is one push after the tag: the coinbase stays a parseable script of at most 100 bytes.
  const cb = bitcoin.Transaction.fromBuffer(a.hasher.coinbaseFor(en1, en2));
  const chunks = bitcoin.script.decompile(cb.ins[0]!.script)!;
  assert.equal(Buffer.from(chunks.at(-2) as Buffer).toString(), '/t/');
  assert.equal((chunks.at(-1) as Buffer).length, 8, 'collisions at odds of 2^-64');
  assert.equal(JOB_NONCE_BYTES, 8);
  assert.equal(cb.ins[0]!.script.length, 3 + 13 + 4 + 1 + JOB_NONCE_BYTES, "height 200, the extranonce, the tag, the nonce: each a push");
});

test('jobs of the same work (no coinbase nonce: an upstream\'s, addJob\'s) share a key set: a share accepted under one job id is a duplicate under the other, and under either SOLO variant', async () => {
  const { soloOutputs } = await import('../src/pool/solo.ts');
  const en1 = Buffer.from('0000000d', 'hex');
  const jobs = new JobManager({ extranonceSize: 12, tag: Buffer.from('/t/'), outputs: (v) => [{ value: v, scriptPubKey: P2WPKH }], retentionMs: 60_000 });
  const t = fakeTemplate({ bits: 0x1d00ffff });
  const a = addPlain(jobs, t, 0);
  // The refresh timer's next read: same transactions and fees, a later curtime.
  const b = addPlain(jobs, { ...t, curtime: t.curtime + 30 }, 30_000);
  assert.notEqual(a.id, b.id);
  assert.equal(jobs.isStale(a), false, 'same tip');
  assert.equal(jobs.keySetCount, 1, 'one key set for the two');
  const target = difficultyToTarget(1e-6);
  const ctx = (job: Job): ShareContext => ({ extranonce1: en1, extranonce2Size: 8, versionMask: 0, job, target: targetBytes(target), nowSec: b.ntime, maxNtimeAheadSec: 600 });
  const en2 = Buffer.from('0000000000000001', 'hex');
  const nonce = grind(b, en1, en2, target, { ntime: b.ntime });
  const share = (job: Job): SubmitParams => ({ worker: 'w', jobId: job.id, extranonce2: toHex(en2), ntime: u32Hex(b.ntime), nonce });
  assert.equal(validateShare(jobs, ctx(a), share(a)).outcome, 'accepted');
  // Before: accepted again (one duplicate set per job id).
  assert.equal(validateShare(jobs, ctx(b), share(b)).outcome, 'duplicate');

  // A SOLO miner's variants of the two jobs are the same work too (its own coinbase, the same under both).
  const payout = { key: 'k1', script: Buffer.concat([Buffer.from([0x00, 0x14]), Buffer.alloc(20, 9)]), feeBps: 100 };
  const va = jobs.variant(a, 'k1', (v) => soloOutputs(v, payout, P2WPKH));
  const vb = jobs.variant(b, 'k1', (v) => soloOutputs(v, payout, P2WPKH));
  assert.equal(jobs.keySetCount, 2);
  const vNonce = grind(vb, en1, en2, target, { ntime: b.ntime });
  const vShare = (job: Job): SubmitParams => ({ worker: 'w', jobId: job.id, extranonce2: toHex(en2), ntime: u32Hex(b.ntime), nonce: vNonce });
  assert.equal(validateShare(jobs, ctx(vb), vShare(vb)).outcome, 'accepted');
  assert.equal(validateShare(jobs, ctx(va), vShare(va)).outcome, 'duplicate');

  // Another template on the tip is other work: its own key set. The set lives while a job of that work does.
  const c = addPlain(jobs, fakeTemplate({ bits: 0x1d00ffff, prevHash: a.prevHashHex }), 61_000); // a is pruned
  assert.equal(jobs.get(a.id), undefined);
  assert.equal(jobs.keySetCount, 3, "b's set (and its variant's) kept for b");
  assert.equal(validateShare(jobs, ctx(b), share(b)).outcome, 'duplicate', 'still a duplicate under b');
  assert.equal(validateShare(jobs, ctx(c), { ...share(c), nonce: grind(c, en1, en2, target, { ntime: b.ntime }) }).outcome, 'accepted');
  const d = addPlain(jobs, fakeTemplate({ bits: 0x1d00ffff, prevHash: a.prevHashHex }), 122_000); // b (with its variant) and c pruned
  assert.equal(jobs.keySetCount, 1, 'only the current job\'s');
  assert.throws(() => jobs.addJob(d, 122_000), /already exists/);
  assert.equal(jobs.keySetCount, 1, 'a job refused takes no key set');
});

/** A share found on `job` at difficulty 1e-6 with its ntime rolled to `ntime`, to submit under `job` or others. */
function rolledShare(job: Job, en1: Buffer, en2: Buffer, ntime: number) {
  const target = difficultyToTarget(1e-6);
  const nonce = grind(job, en1, en2, target, { ntime });
  return {
    ctx: (j: Job, nowSec: number): ShareContext => ({ extranonce1: en1, extranonce2Size: 8, versionMask: 0, job: j, target: targetBytes(target), nowSec, maxNtimeAheadSec: 600 }),
    share: (j: Job): SubmitParams => ({ worker: 'w', jobId: j.id, extranonce2: toHex(en2), ntime: u32Hex(ntime), nonce }),
  };
}

test('the same work back after its last job was pruned: a share whose ntime was rolled up to the new job\'s is still a duplicate', () => {
  const en1 = Buffer.from('0000000f', 'hex');
  const jobs = new JobManager({ extranonceSize: 12, tag: Buffer.from('/t/'), outputs: (v) => [{ value: v, scriptPubKey: P2WPKH }], retentionMs: 60_000 });
  const T = Math.floor(Date.now() / 1000);
  const t = fakeTemplate({ bits: 0x1d00ffff, curtime: T });
  const w1 = addPlain(jobs, t, 0);
  // ntime rolled 500 s ahead of the job's (up to 600 past now is allowed).
  const { ctx, share } = rolledShare(w1, en1, Buffer.from('0000000000000001', 'hex'), T + 500);
  assert.equal(validateShare(jobs, ctx(w1, T), share(w1)).outcome, 'accepted');
  // Other transactions on the tip for a minute: w1 is pruned; its work's set is kept aside (a share at T+500 is at or
  // past the current job's time, T+61).
  const x = fakeTemplate({ bits: 0x1d00ffff, prevHash: w1.prevHashHex, curtime: T + 30 });
  addPlain(jobs, x, 30_000);
  addPlain(jobs, { ...x, curtime: T + 61 }, 61_000);
  assert.equal(jobs.get(w1.id), undefined);
  assert.equal(jobs.keySetsAside, 1);
  // The node back on exactly w1's transactions: the same header under the new job. Before: accepted again.
  const w2 = addPlain(jobs, { ...t, curtime: T + 70 }, 70_000);
  assert.equal(jobs.keySetsAside, 0, 'taken back');
  assert.equal(validateShare(jobs, ctx(w2, T + 70), share(w2)).outcome, 'duplicate');
  // Once the current job's time is past every share's ntime, a work's set goes with its last job.
  addPlain(jobs, { ...x, curtime: T + 501 }, 140_000); // w2 and x's older jobs pruned
  assert.equal(jobs.get(w2.id), undefined);
  assert.equal(jobs.keySetsAside, 0);
  assert.equal(jobs.keySetCount, 1);
});

test('a SOLO variant\'s key set is kept aside like its pool job\'s, and swept when the current job\'s time passes its shares', async () => {
  const { soloOutputs } = await import('../src/pool/solo.ts');
  const en1 = Buffer.from('00000010', 'hex');
  const jobs = new JobManager({ extranonceSize: 12, tag: Buffer.from('/t/'), outputs: (v) => [{ value: v, scriptPubKey: P2WPKH }], retentionMs: 60_000 });
  const T = Math.floor(Date.now() / 1000);
  const t = fakeTemplate({ bits: 0x1d00ffff, curtime: T });
  const payout = { key: 'k1', script: Buffer.concat([Buffer.from([0x00, 0x14]), Buffer.alloc(20, 9)]), feeBps: 100 };
  const solo = (v: bigint) => soloOutputs(v, payout, P2WPKH);
  const w1 = addPlain(jobs, t, 0);
  const v1 = jobs.variant(w1, 'k1', solo);
  const { ctx, share } = rolledShare(v1, en1, Buffer.from('0000000000000002', 'hex'), T + 300);
  assert.equal(validateShare(jobs, ctx(v1, T), share(v1)).outcome, 'accepted');
  const x = fakeTemplate({ bits: 0x1d00ffff, prevHash: w1.prevHashHex, curtime: T + 30 });
  addPlain(jobs, x, 30_000);
  addPlain(jobs, { ...x, curtime: T + 61 }, 61_000); // w1 and v1 pruned
  assert.equal(jobs.get(v1.id), undefined);
  assert.equal(jobs.keySetsAside, 1, "v1's (w1's holds no share)");
  const w2 = addPlain(jobs, { ...t, curtime: T + 70 }, 70_000);
  const v2 = jobs.variant(w2, 'k1', solo);
  assert.equal(validateShare(jobs, ctx(v2, T + 70), share(v2)).outcome, 'duplicate', 'the same coinbase and work: the same header');
  // w2 and v2 pruned while the current job's time is before the share's: kept aside; swept once it is past.
  addPlain(jobs, { ...x, curtime: T + 140 }, 140_000);
  assert.equal(jobs.get(v2.id), undefined);
  assert.equal(jobs.keySetsAside, 1);
  addPlain(jobs, { ...x, curtime: T + 301 }, 150_000);
  assert.equal(jobs.keySetsAside, 0, 'swept: no job from now on can take an ntime of T+300');
});

test('two templates that differ only in their version: a share rolling the version bits is the same header under both, credited once', () => {
  const en1 = Buffer.from('0000000e', 'hex');
  const jobs = new JobManager({ extranonceSize: 12, tag: Buffer.from('/t/'), outputs: (v) => [{ value: v, scriptPubKey: P2WPKH }] });
  const t = fakeTemplate({ bits: 0x1d00ffff });
  const a = addPlain(jobs, { ...t, version: 0x20000000 }, 0);
  // Another node, or another signal, on the same tip with the same transactions.
  const b = addPlain(jobs, { ...t, version: 0x20002000, curtime: t.curtime + 30 }, 30_000);
  assert.equal(jobs.isStale(a), false);
  const target = difficultyToTarget(1e-6);
  const ctx = (job: Job): ShareContext => ({ extranonce1: en1, extranonce2Size: 8, versionMask: 0x1fffe000, job, target: targetBytes(target), nowSec: b.ntime, maxNtimeAheadSec: 600 });
  const en2 = Buffer.from('0000000000000001', 'hex');
  const nonce = grind(b, en1, en2, target, { ntime: b.ntime, version: 0x20002000 });
  const share = (job: Job, versionBits?: string): SubmitParams => ({ worker: 'w', jobId: job.id, extranonce2: toHex(en2), ntime: u32Hex(b.ntime), nonce, versionBits });
  assert.equal(validateShare(jobs, ctx(a), share(a, '00002000')).outcome, 'accepted', 'a with the bit rolled');
  // Before: accepted again (the key kept the version the miners roll).
  assert.equal(validateShare(jobs, ctx(b), share(b)).outcome, 'duplicate', 'b as it came: the same header');
  assert.equal(validateShare(jobs, ctx(b), share(b, '00002000')).outcome, 'duplicate');
  assert.equal(jobs.keySetCount, 1);
});

test('a job given to addJob never shares an id with a SOLO variant, either way round (each id, its own job and key set)', async () => {
  const { soloOutputs } = await import('../src/pool/solo.ts');
  const jobs = new JobManager({ extranonceSize: 12, tag: Buffer.from('/t/'), outputs: (v) => [{ value: v, scriptPubKey: P2WPKH }] });
  const t = fakeTemplate({ bits: 0x1d00ffff });
  const a = jobs.addTemplate(t, 0).job;
  const solo = (k: number) => (v: bigint) => soloOutputs(v, { key: `k${k}`, script: Buffer.concat([Buffer.from([0x00, 0x14]), Buffer.alloc(20, k)]), feeBps: 100 }, P2WPKH);
  const v1 = jobs.variant(a, 'k1', solo(1));
  assert.equal(v1.id, `${a.id}s1`);
  // Before: the outside job took the variant's entry of the duplicate sets.
  assert.throws(() => jobs.addJob(plainJob(t, v1.id), 0), /already exists/);
  assert.equal(jobs.get(v1.id), v1);
  // An outside job holding the id the next variant would take: the variants take others.
  const o2 = plainJob(t, `${a.id}s2`);
  jobs.addJob(o2, 0);
  const v2 = jobs.variant(a, 'k2', solo(2));
  const v3 = jobs.variant(a, 'k3', solo(3));
  assert.deepEqual([v2.id, v3.id], [`${a.id}s3`, `${a.id}s4`]);
  assert.equal(jobs.get(o2.id), o2);
  const hash = randomBytes(32);
  assert.equal(jobs.markSeen(v2.id, hash, 0), true);
  assert.equal(jobs.markSeen(o2.id, hash, 0), true, "the outside job's own set");
  assert.equal(jobs.markSeen(v2.id, hash, 0), false);
});

test('low-difficulty shares are not remembered (no duplicate-set growth from junk)', () => {
  const en1 = Buffer.from('0000000c', 'hex');
  const jobs = new JobManager({ extranonceSize: 12, tag: Buffer.from('/t/'), outputs: (v) => [{ value: v, scriptPubKey: P2WPKH }] });
  const a = jobs.addTemplate(fakeTemplate({ bits: 0x1d00ffff }), Date.now()).job;
  const target = difficultyToTarget(1e-6);
  const en2 = Buffer.from('0000000000000001', 'hex');
  const ctx: ShareContext = { extranonce1: en1, extranonce2Size: 8, versionMask: 0, job: a, target: targetBytes(target), nowSec: a.ntime, maxNtimeAheadSec: 600 };
  const low = grind(a, en1, en2, target, { above: true });
  const p: SubmitParams = { worker: 'w', jobId: a.id, extranonce2: toHex(en2), ntime: u32Hex(a.ntime), nonce: low };
  assert.equal(validateShare(jobs, ctx, p).outcome, 'low-difficulty');
  assert.equal(validateShare(jobs, ctx, p).outcome, 'low-difficulty', 'still low, not duplicate: it was never recorded');
  const lowHash = sha256d(a.hasher.header80(a.hasher.merkleRootFor(en1, en2), a.version, a.ntime, parseInt(low, 16)));
  assert.equal(jobs.markSeen(a.id, lowHash, a.ntime), true, 'the set only holds what was accepted');
  assert.equal(jobs.markSeen(a.id, lowHash, a.ntime), false, 'and now holds it');
});

test('a template whose transaction data is not hex is refused with a clear error; the current job stays', () => {
  const jobs = new JobManager({ extranonceSize: 12, tag: Buffer.from('/t/'), outputs: (v) => [{ value: v, scriptPubKey: P2WPKH }] });
  const { job } = jobs.addTemplate(fakeTemplate(), Date.now());
  const t = fakeTemplate({ txs: 4 });
  const badChar = { ...t, transactions: t.transactions.map((x, i) => (i === 2 ? { ...x, data: `${x.data.slice(0, -2)}zz` } : x)) };
  assert.throws(() => jobs.addTemplate(badChar, Date.now()), /not hex/);
  const odd = { ...t, transactions: t.transactions.map((x, i) => (i === 1 ? { ...x, data: x.data.slice(0, -1) } : x)) };
  assert.throws(() => jobs.addTemplate(odd, Date.now()), /transaction 1 .* odd-length hex/);
  assert.equal(jobs.current?.id, job.id);
  // The good template's bytes are every transaction back to back.
  const { job: good } = jobs.addTemplate(t, Date.now());
  assert.equal(good.txs.count, 4);
  assert.equal(good.txs.bytes.toString('hex'), t.transactions.map((x) => x.data).join(''));
});

test('a job as broadcast is one set of bytes for every miner: its notify line under its own id and ntime', () => {
  const jobs = new JobManager({ extranonceSize: 12, tag: Buffer.from('/t/'), outputs: (v) => [{ value: v, scriptPubKey: P2WPKH }] });
  const a = jobs.addTemplate(fakeTemplate({ bits: 0x1d00ffff }), Date.now()).job;
  const b = jobs.addTemplate(fakeTemplate({ bits: 0x1d00ffff, height: 2 }), Date.now()).job;
  for (const clean of [false, true]) {
    assert.equal(notifyBytes(a, clean).toString('utf8'), notifyLine(a, a.id, clean));
    assert.equal(notifyBytes(a, clean), notifyBytes(a, clean), 'made once per job, not per miner');
  }
  assert.notEqual(notifyBytes(a, true).toString(), notifyBytes(a, false).toString());
  assert.notEqual(notifyBytes(b, true).toString(), notifyBytes(a, true).toString());
});
