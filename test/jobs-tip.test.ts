// JobManager.markTip: the node's new best block, known before a template on it, makes every job on another
// tip stale at once; the next job (a template is the node's latest word) takes over.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { JobManager } from '../src/shares/jobs.ts';
import { fakeTemplate } from './helpers/template.ts';

const P2WPKH = Buffer.concat([Buffer.from([0x00, 0x14]), Buffer.alloc(20, 7)]);
const newJobs = () => new JobManager({ extranonceSize: 12, tag: Buffer.alloc(0), outputs: (v) => [{ value: v, scriptPubKey: P2WPKH }] });

test('markTip: jobs on the old tip are stale at once; the template on the new tip is clean and current', () => {
  const jobs = newJobs();
  const w = randomBytes(32).toString('hex');
  const x = randomBytes(32).toString('hex');
  const a = jobs.addTemplate(fakeTemplate({ prevHash: w, height: 10 }), 0).job;
  const a2 = jobs.addTemplate(fakeTemplate({ prevHash: w, height: 10 }), 1).job; // a refresh on the same tip
  assert.equal(jobs.isStale(a), false);

  jobs.markTip(x);
  assert.equal(jobs.isStale(a), true);
  assert.equal(jobs.isStale(a2), true, 'the current job too: it builds on the old tip');
  assert.equal(jobs.current, a2, 'miners keep the job until new work exists');

  const added = jobs.addTemplate(fakeTemplate({ prevHash: x, height: 11 }), 2);
  assert.equal(added.clean, true, 'miners must drop their old work');
  assert.equal(jobs.isStale(added.job), false);
  assert.equal(jobs.isStale(a2), true);
});

test('markTip of the tip the jobs already build on changes nothing; a template clears a tip that went back', () => {
  const jobs = newJobs();
  const w = randomBytes(32).toString('hex');
  const a = jobs.addTemplate(fakeTemplate({ prevHash: w }), 0).job;
  jobs.markTip(w);
  assert.equal(jobs.isStale(a), false);
  // The node moved to x, then (a reorg) back to w before any template on x came.
  jobs.markTip(randomBytes(32).toString('hex'));
  assert.equal(jobs.isStale(a), true);
  jobs.markTip(w);
  assert.equal(jobs.isStale(a), false);
  // A template always wins: it is the node's latest answer.
  jobs.markTip(randomBytes(32).toString('hex'));
  const b = jobs.addTemplate(fakeTemplate({ prevHash: w }), 1);
  assert.equal(b.clean, false);
  assert.equal(jobs.isStale(a), false);
});

test('coinbase variants (SOLO): one per key and job, the same work but their own coinbase; stale with, and forgotten with, their pool job', async () => {
  const { validateShare } = await import('../src/shares/validator.ts');
  const { soloOutputs } = await import('../src/pool/solo.ts');
  const { assembleShareBlock } = await import('../src/shares/job.ts');
  const { targetBytes, difficultyToTarget, sha256d, parseBlock } = await import('../src/chain/index.ts');
  const jobs = new JobManager({ extranonceSize: 12, tag: Buffer.alloc(0), outputs: (v) => [{ value: v, scriptPubKey: P2WPKH }], retentionMs: 1000 });
  const w = randomBytes(32).toString('hex');
  const job = jobs.addTemplate(fakeTemplate({ prevHash: w, height: 10, txs: 20 }), 0).job;
  const solo = Buffer.concat([Buffer.from([0x00, 0x14]), Buffer.alloc(20, 9)]);
  const payout = { key: 'k1', script: solo, feeBps: 100 };
  let built = 0;
  const make = (v: bigint) => { built++; return soloOutputs(v, payout, P2WPKH); };
  const v = jobs.variant(job, 'k1', make);
  assert.notEqual(v.id, job.id);
  assert.equal(jobs.variant(job, 'k1', make), v, 'made once per key');
  assert.equal(jobs.variant(v, 'k1', make), v, 'a variant of a variant is the variant of its pool job');
  assert.equal(built, 1);
  assert.equal(jobs.get(v.id), v);
  assert.equal(v.base, job);
  assert.notEqual(v.notifyBody, job.notifyBody, 'its own coinb2');
  // Same work otherwise: the merkle branch, tip and transactions are the pool job's.
  assert.equal(v.coinbase.branch, job.coinbase.branch);
  assert.equal(v.prevHashHex, job.prevHashHex);

  // A share on the variant is validated like any other and its block's coinbase pays the SOLO script first.
  const en1 = Buffer.from('00000001', 'hex');
  const ctx = { extranonce1: en1, extranonce2Size: 8, versionMask: 0, job: v, target: targetBytes(difficultyToTarget(1e-12)), nowSec: v.ntime, maxNtimeAheadSec: 600 };
  const share = { worker: 'sol.w', jobId: v.id, extranonce2: '0000000000000001', ntime: v.ntime.toString(16).padStart(8, '0'), nonce: '00000000' };
  const r = validateShare(jobs, ctx, share);
  assert.equal(r.outcome, 'accepted');
  assert.equal(validateShare(jobs, ctx, share).outcome, 'duplicate', 'its own duplicate set');
  if (r.outcome !== 'accepted') return;
  const block = parseBlock(assembleShareBlock(v, en1, r.extranonce2, r.header));
  assert.ok(block.txs[0].outputs[0].scriptPubKey.equals(solo));
  assert.equal(block.txs[0].outputs[0].value + block.txs[0].outputs[1].value, job.coinbaseValue);
  assert.equal(block.txs[0].outputs[1].value, job.coinbaseValue / 100n);
  assert.ok(sha256d(r.header).equals(r.hash));

  // Stale with its pool job; pruned with it.
  jobs.markTip(randomBytes(32).toString('hex'));
  assert.equal(jobs.isStale(v), true);
  jobs.addTemplate(fakeTemplate({ prevHash: randomBytes(32).toString('hex'), height: 11 }), 5000);
  assert.equal(jobs.get(job.id), undefined);
  assert.equal(jobs.get(v.id), undefined, 'forgotten with its pool job');
  assert.equal(validateShare(jobs, ctx, { ...share, nonce: '00000001' }).outcome, 'unknown-job');
});
