import { test } from 'node:test';
import assert from 'node:assert/strict';
import { difficultyToTarget, targetBytes } from '../src/chain/index.ts';
import { RouteJobs } from '../src/routing/route-jobs.ts';
import type { UpstreamNotify } from '../src/routing/upstream.ts';
import type { Job } from '../src/shares/job.ts';
import { type ShareContext, type SubmitParams, validateShare } from '../src/shares/validator.ts';

const COINB1 = '0100000001' + '00'.repeat(32) + 'ffffffff20';
const notify = (jobId: string, over: Partial<UpstreamNotify> = {}): UpstreamNotify => ({
  jobId, prevHash: '00'.repeat(32), coinb1: COINB1, coinb2: 'ffffffff0100f2052a01000000016a00000000', branch: [], version: '20000000',
  nbits: '207fffff', ntime: '66000000', clean: false, ...over,
});

test('routed shares: a duplicate on one upstream job, and on the same work the upstream sent again under another id', () => {
  const jobs = new RouteJobs('r1', 3);
  const en1 = Buffer.from('112233440001', 'hex'); // the upstream's extranonce1 and the route's prefix
  const ctx = (job: Job): ShareContext => ({ extranonce1: en1, extranonce2Size: 6, versionMask: 0, job, target: targetBytes(difficultyToTarget(1e-9)), nowSec: job.ntime, maxNtimeAheadSec: 600 });
  const share = (job: Job, nonce: number): SubmitParams => ({ worker: 'w', jobId: job.id, extranonce2: '00000000000a', ntime: '66000000', nonce: nonce.toString(16).padStart(8, '0') });
  /** A nonce whose share is accepted on this job (about one hash in four at difficulty 1e-9). */
  const accepted = (job: Job, from = 0): number => {
    for (let n = from; n < from + 200; n++) if (validateShare(jobs, ctx(job), share(job, n)).outcome === 'accepted') return n;
    throw new Error('no share accepted');
  };

  const a = jobs.add(notify('u1'), 1e-9, 12, 0);
  const n = accepted(a);
  assert.equal(validateShare(jobs, ctx(a), share(a, n)).outcome, 'duplicate', 'the same share again');
  assert.equal(validateShare(jobs, ctx(a), { ...share(a, n), extranonce2: '00000000000A' }).outcome, 'duplicate', 'in upper case');

  // The upstream sends the same work again under another job id (a refresh with nothing new): the same header.
  const b = jobs.add(notify('u2', { coinb1: COINB1.toUpperCase() }), 1e-9, 12, 1);
  assert.equal(jobs.isStale(a), false);
  assert.equal(validateShare(jobs, ctx(b), share(b, n)).outcome, 'duplicate', 'credited once, under either id');
  // Other work (another coinbase): the same extranonce2 and nonce make another header.
  const c = jobs.add(notify('u3', { coinb2: 'ffffffff0100f2052a01000000016a00000001' }), 1e-9, 12, 2);
  const m = accepted(c);
  assert.equal(validateShare(jobs, ctx(c), share(c, m)).outcome, 'duplicate');

  // a is dropped (3 jobs kept): b still holds their shares.
  assert.equal(jobs.keySetCount, 2);
  const d = jobs.add(notify('u4', { coinb2: 'ffffffff0100f2052a01000000016a00000002' }), 1e-9, 12, 3);
  assert.equal(jobs.get(a.id), undefined);
  assert.equal(validateShare(jobs, ctx(b), share(b, n)).outcome, 'duplicate', 'still, after a is dropped');
  assert.equal(jobs.keySetCount, 3, "a's went with b's use of it, c's and d's kept");
  // b dropped: their set goes; d's work sent again shares d's.
  jobs.add(notify('u5', { coinb2: 'ffffffff0100f2052a01000000016a00000002' }), 1e-9, 12, 4);
  assert.equal(jobs.get(b.id), undefined);
  assert.equal(jobs.keySetCount, 2);
  const k = accepted(d);
  const e = jobs.add(notify('u6', { coinb2: 'ffffffff0100f2052a01000000016a00000002', version: '20004000' }), 1e-9, 12, 5);
  assert.equal(jobs.get(c.id), undefined);
  assert.equal(validateShare(jobs, { ...ctx(e), versionMask: 0x1fffe000 }, { ...share(e, k), versionBits: '00000000' }).outcome, 'duplicate', 'the same work under another version: d\'s share');
  assert.equal(jobs.keySetCount, 1);
});

test('routed: the same work again after its last job was evicted, a share at or past the new job\'s ntime is a duplicate', () => {
  const jobs = new RouteJobs('r2', 2);
  const en1 = Buffer.from('112233440002', 'hex');
  const ctx = (job: Job): ShareContext => ({ extranonce1: en1, extranonce2Size: 6, versionMask: 0, job, target: targetBytes(difficultyToTarget(1e-9)), nowSec: 0x66000000, maxNtimeAheadSec: 600 });
  const share = (job: Job, nonce: number): SubmitParams => ({ worker: 'w', jobId: job.id, extranonce2: '00000000000b', ntime: '66000100', nonce: nonce.toString(16).padStart(8, '0') });
  const a = jobs.add(notify('u1'), 1e-9, 12, 0);
  let n = 0;
  while (validateShare(jobs, ctx(a), share(a, n)).outcome !== 'accepted') n++;
  // Two other works push a out; its set (a share at 0x66000100) is kept aside.
  jobs.add(notify('u2', { coinb2: 'ffffffff0100f2052a01000000016a00000003', ntime: '66000010' }), 1e-9, 12, 1);
  jobs.add(notify('u3', { coinb2: 'ffffffff0100f2052a01000000016a00000004', ntime: '66000020' }), 1e-9, 12, 2);
  assert.equal(jobs.get(a.id), undefined);
  // The upstream sends a's work again.
  const again = jobs.add(notify('u4', { ntime: '66000030' }), 1e-9, 12, 3);
  assert.equal(validateShare(jobs, ctx(again), share(again, n)).outcome, 'duplicate');
});
