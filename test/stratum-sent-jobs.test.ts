import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { JobManager } from '../src/shares/jobs.ts';
import type { Job } from '../src/shares/job.ts';
import { DEFAULT_STRATUM_OPTIONS } from '../src/stratum/options.ts';
import { RouteJobs } from '../src/routing/route-jobs.ts';
import { SentJobs } from '../src/stratum/sent-jobs.ts';
import { StratumSession, type RoutedWork, type StratumHost, type WorkAssignment } from '../src/stratum/session.ts';
import { FakeSocket } from './helpers/fake-socket.ts';
import { solveShare } from './helpers/pool.ts';
import { fakeTemplate } from './helpers/template.ts';
import { until } from './helpers/until.ts';
import type { Msg } from './helpers/line-client.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
/** Full GCs with turns between them, so what nothing references is gone before WeakRefs are read. */
async function collectGarbage(): Promise<void> {
  for (let i = 0; i < 5; i++) { gc(); await new Promise((r) => setImmediate(r)); }
}

const P2WPKH = Buffer.from('0014751e76e8199196d454941c45d1b3a323f1433bd6', 'hex');
const MINUTE = 60_000;

test('a session forgets the jobs its source has dropped: a pruned job (and its template) is not kept alive by the miners it was sent to', async () => {
  let now = 1_700_000_000_000;
  const jobs = new JobManager({ extranonceSize: 12, tag: Buffer.alloc(0), outputs: (v) => [{ value: v, scriptPubKey: P2WPKH }], retentionMs: 10 * MINUTE });
  const answers: string[] = [];
  const host = {
    jobs, now: () => now,
    authorize: () => ({ ok: false, reason: '' }),
    onShare(_s: unknown, _w: unknown, _d: unknown, r: { outcome: string }) { answers.push(r.outcome); },
    onAbuse() {}, onClose() {},
  } as unknown as StratumHost;
  const sock = new FakeSocket();
  const s = new StratumSession('1', sock as never, Buffer.from('aabbccdd', 'hex'), host, { ...DEFAULT_STRATUM_OPTIONS, initialDifficulty: 1e-6 });
  s.subscribed = true;
  s.workers.set({ name: 'acct.w1', account: 'acct', worker: 'w1' });
  const prevHash = '11'.repeat(32);
  const curtime = Math.floor(now / 1000);
  // One job every 30 s, on one tip, for 40 minutes: 80 jobs, more than the session's 64 slots.
  const refs: WeakRef<Job>[] = [];
  const send = () => {
    const job = jobs.addTemplate(fakeTemplate({ prevHash, curtime, txs: 50 }), now).job;
    refs.push(new WeakRef(job));
    s.sendJob(job, refs.length === 1);
  };
  for (let i = 0; i < 80; i++) { send(); now += 30_000; }
  send();
  // The manager keeps 10 minutes of jobs (and the current one): 21 of the 81.
  assert.equal(jobs.size, 21);
  const notifies = sock.out.join('').split('\n').filter((l) => l.includes('mining.notify')).map((l) => JSON.parse(l) as Msg);
  assert.equal(notifies.length, 81);
  const submit = (n: Msg, id: number) => {
    const p = solveShare(n, 'aabbccdd', 8, 1e-6, { en2: '0000000000000001' });
    sock.emit('data', Buffer.from(JSON.stringify({ id, method: 'mining.submit', params: p }) + '\n'));
  };
  // The oldest job the manager still has is still the miner's: its share is credited.
  submit(notifies[60], 1);
  // One it has dropped is unknown, as before.
  submit(notifies[59], 2);
  // A line that took more than the session's 5 ms turn budget (a loaded machine) holds the next for a later turn.
  await until(() => answers.length >= 2, 5_000, 'both answers');
  assert.deepEqual(answers, ['accepted', 'unknown-job']);
  // And nothing of the session keeps a dropped job alive. Before: the session held the last 64 sent (jobs 17-80),
  // so jobs 17-59 lived on, templates and all, 43 jobs past the manager's retention.
  await collectGarbage();
  const alive = refs.map((r, i) => (r.deref() ? i : -1)).filter((i) => i >= 0);
  assert.ok(alive.length > 0, 'the retained jobs are alive');
  assert.deepEqual(alive, Array.from({ length: 21 }, (_, k) => 60 + k), 'alive: exactly the jobs the manager retains');
  s.close('test');
});

test('a session whose oldest entries are another source\'s, still known, also forgets the pool jobs behind them once its list is half full', async () => {
  let now = 1_700_000_000_000;
  const jobs = new JobManager({ extranonceSize: 12, tag: Buffer.alloc(0), outputs: (v) => [{ value: v, scriptPubKey: P2WPKH }], retentionMs: 10 * MINUTE });
  const host = { jobs, now: () => now, authorize: () => ({ ok: false, reason: '' }), onShare() {}, onAbuse() {}, onClose() {} } as unknown as StratumHost;
  const sock = new FakeSocket();
  const s = new StratumSession('1', sock as never, Buffer.from('aabbccdd', 'hex'), host, { ...DEFAULT_STRATUM_OPTIONS, initialDifficulty: 1e-6 });
  s.subscribed = true; s.extranonceSubscribed = true;
  s.workers.set({ name: 'acct.w1', account: 'acct', worker: 'w1' });
  // A route the session worked on and left: its one job stays known (nobody prunes a route that sends nothing).
  const routeJobs = new RouteJobs('r1');
  const rjob = routeJobs.add({ jobId: 'u1', prevHash: '00'.repeat(32), coinb1: '0100000001' + '00'.repeat(32) + 'ffffffff20', coinb2: 'ffffffff0100f2052a01000000016a00000000', branch: [], version: '20000000', nbits: '207fffff', ntime: '66000000', clean: true }, 1e-6, 12, now);
  const route: RoutedWork = { routeId: '1', jobs: routeJobs, versionMask: 0, current: () => ({ job: rjob, difficulty: 1e-6 }), onShare() {} };
  const e = Buffer.from('1122334455', 'hex');
  s.switchWork({ route, extranonce1: e, extranonce1Hex: e.toString('hex'), extranonce2Size: 7 });
  s.switchWork(s.poolWork);
  const refs: WeakRef<Job>[] = [];
  // 60 jobs: fewer than the 64 slots, so the cap alone never pushes the route's entry out.
  for (let i = 0; i < 60; i++) {
    const job = jobs.addTemplate(fakeTemplate({ prevHash: '22'.repeat(32), curtime: Math.floor(now / 1000), txs: 5 }), now).job;
    refs.push(new WeakRef(job));
    s.sendJob(job, i === 0);
    now += 30_000;
  }
  // Retained by the manager: the last 21 (10 minutes at one per 30 s).
  const retained = refs.map((r) => r.deref()).filter((j): j is Job => j !== undefined && jobs.get(j.id) === j).length;
  assert.equal(retained, 21);
  await collectGarbage();
  const alive = refs.map((r, i) => (r.deref() ? i : -1)).filter((i) => i >= 0);
  // Before: the route's entry at the head kept the list from being trimmed, so all 60 jobs stayed alive.
  assert.ok(alive.length >= 21 && alive.length <= 31, `alive: ${alive.length} jobs`);
  s.close('test');
});

test('heap per idle connection in a long-running pool: 21 jobs sent and kept cost each session a few hundred bytes, not 1.7 KB', async () => {
  // A job per template refresh every 30 s and 10 minutes kept: every miner holds 21 sends. As an object per send
  // (its difficulty boxed) that was 1,691-1,817 B per session here (4 runs); as SentJobs' slots, 61-295 (3 runs), the
  // 21 jobs themselves included.
  let now = 1_700_000_000_000;
  const jobs = new JobManager({ extranonceSize: 12, tag: Buffer.alloc(0), outputs: (v) => [{ value: v, scriptPubKey: P2WPKH }], retentionMs: 10 * MINUTE });
  const host = { jobs, now: () => now, authorize: () => ({ ok: false, reason: '' }), onShare() {}, onAbuse() {}, onClose() {} } as unknown as StratumHost;
  const prevHash = '33'.repeat(32);
  const template = fakeTemplate({ prevHash, curtime: Math.floor(now / 1000), txs: 5 });
  let job = jobs.addTemplate(template, now).job;
  // Notify lines written are dropped (the test helper's socket keeps them all).
  class QuietSocket extends FakeSocket { override write(_s: string | Buffer, cb?: () => void): boolean { cb?.(); return true; } }
  const sessions: StratumSession[] = [];
  for (let i = 0; i < 2000; i++) {
    const e = Buffer.alloc(4);
    e.writeUInt32BE(i);
    const s = new StratumSession(String(i), new QuietSocket() as never, e, host, { ...DEFAULT_STRATUM_OPTIONS, initialDifficulty: 1e-6 });
    s.subscribed = true;
    s.workers.set({ name: 'acct.w1', account: 'acct', worker: 'w1' });
    s.sendJob(job, true);
    sessions.push(s);
  }
  await collectGarbage();
  const before = process.memoryUsage().heapUsed;
  for (let r = 1; r <= 25; r++) {
    now += 30_000;
    job = jobs.addTemplate({ ...template, curtime: template.curtime + r, coinbasevalue: template.coinbasevalue + r }, now).job;
    for (const s of sessions) s.sendJob(job, false);
  }
  assert.equal(jobs.size, 21);
  await collectGarbage();
  const perSession = (process.memoryUsage().heapUsed - before) / sessions.length;
  assert.ok(perSession < 1000, `${perSession.toFixed(0)} B per session for 21 jobs sent (an object per send: ~1,700)`);
  // The measurement is of what it claims: every session holds the 21 jobs.
  const held = sessions.map((s) => (s as unknown as { sent: { length: number } }).sent.length);
  assert.deepEqual([Math.min(...held), Math.max(...held)], [21, 21]);
  for (const s of sessions) s.close('test');
});

/**
 * SentJobs' surroundings: the pool's jobs (`known`; `job` adds one) and a route's (`routeJobs`), their works, and
 * a view of the optional columns.
 */
function sentJobsFixture() {
  const known = new Map<string, Job>();
  const pool = { get: (id: string) => known.get(id), isStale: () => false, markSeen: () => true };
  const job = (id: string): Job => { const j = { id } as Job; known.set(id, j); return j; };
  const poolWork: WorkAssignment = { route: null, extranonce1: Buffer.from('aabbccdd', 'hex'), extranonce1Hex: 'aabbccdd', extranonce2Size: 8 };
  const routeJobs = new Map<string, Job>();
  const route = { routeId: 'r', jobs: { get: (id: string) => routeJobs.get(id), isStale: () => false, markSeen: () => true }, versionMask: 0, current: () => null, onShare() {} } as RoutedWork;
  const routed: WorkAssignment = { route, extranonce1: Buffer.from('1122334455', 'hex'), extranonce1Hex: '1122334455', extranonce2Size: 7 };
  const cols = (s: SentJobs) => s as unknown as { ids: unknown[] | null; works: unknown[] | null; difficulties: unknown[] | null; targets: unknown[] | null };
  return { known, pool, job, poolWork, routeJobs, routed, cols };
}

test('SentJobs: ids and works kept only while one differs from the default, then dropped; newest first; what each entry was sent with', () => {
  const { known, pool, job, poolWork, routeJobs, routed, cols: columns } = sentJobsFixture();
  const t1 = Buffer.alloc(32, 1);
  const t2 = Buffer.alloc(32, 2);
  const s = new SentJobs(8);
  const cols = () => columns(s);
  const a = job('a');
  s.add('a', a, 0.5, t1, poolWork, pool);
  assert.deepEqual([cols().ids, cols().works, cols().difficulties, cols().targets], [null, null, null, null], 'one plain send: only the job');
  s.add('a-2', a, 0.25, t2, poolWork, pool); // a re-issue of a at a new difficulty, under its own id
  assert.deepEqual(cols().ids, ['a', 'a-2']);
  assert.deepEqual(cols().difficulties, [0.5, 0.25]);
  assert.deepEqual(cols().targets, [t1, t2]);
  assert.equal(cols().works, null);
  const u = { id: 'u1' } as Job;
  routeJobs.set('u1', u);
  s.add('u1', u, 4096, t1, routed, pool);
  assert.equal(cols().works?.length, 3);
  assert.deepEqual(s.entry(s.find('a')), { id: 'a', job: a, difficulty: 0.5, target: t1, work: poolWork });
  assert.deepEqual(s.entry(s.find('a-2')), { id: 'a-2', job: a, difficulty: 0.25, target: t2, work: poolWork });
  assert.deepEqual(s.entry(s.find('u1')), { id: 'u1', job: u, difficulty: 4096, target: t1, work: routed });
  assert.equal(s.find('zz'), -1);
  // The same id sent twice: the newer send counts.
  s.add('a', a, 2, t2, poolWork, pool);
  assert.equal(s.difficultyAt(s.find('a')), 2);
  // Once the re-issue and the routed job are gone from their sources, the next send drops them and both columns.
  known.delete('a');
  routeJobs.delete('u1');
  const b = job('b');
  s.add('b', b, 1, t1, poolWork, pool);
  assert.equal(s.length, 1);
  assert.deepEqual([cols().ids, cols().works, cols().difficulties, cols().targets], [null, null, null, null], 'back to the compact form');
  assert.deepEqual(s.entry(0), { id: 'b', job: b, difficulty: 1, target: t1, work: poolWork });
  // The cap: 8 sends kept, the oldest leaves first.
  for (let i = 0; i < 9; i++) s.add(`c${i}`, job(`c${i}`), 1, t1, poolWork, pool);
  assert.equal(s.length, 8);
  assert.equal(s.find('b'), -1);
  assert.equal(s.find('c0'), -1);
  assert.equal(s.idAt(0), 'c1');
  assert.equal(s.idAt(7), 'c8');
});

test('SentJobs: a compaction that keeps entries from the middle, the cap with the id column, an id sent for two jobs, a routed entry kept behind pool sends', () => {
  const { known, pool, job, poolWork, routeJobs, routed, cols } = sentJobsFixture();
  const t = (n: number) => Buffer.alloc(32, n);

  // 40 sends (max 64): odd ones re-issued under their own ids, every fifth routed; then every third job dropped.
  const s = new SentJobs(64);
  const sent: { id: string; job: Job; difficulty: number; work: WorkAssignment }[] = [];
  for (let i = 0; i < 40; i++) {
    const r = i % 5 === 0;
    const j = r ? ({ id: `u${i}` } as Job) : job(`j${i}`);
    if (r) routeJobs.set(j.id, j);
    const id = !r && i % 2 === 1 ? `${j.id}-x` : j.id;
    const e = { id, job: j, difficulty: i + 0.5, work: r ? routed : poolWork };
    s.add(e.id, e.job, e.difficulty, t(i), e.work, pool);
    sent.push(e);
  }
  for (let i = 1; i < 40; i += 3) { known.delete(`j${i}`); routeJobs.delete(`u${i}`); }
  const last = { id: 'n', job: job('n'), difficulty: 7, work: poolWork };
  s.add(last.id, last.job, last.difficulty, t(99), last.work, pool); // 40 entries >= 32: one pass keeps the known ones
  const expect = [...sent.filter((_, i) => i % 3 !== 1), last];
  assert.equal(s.length, expect.length);
  expect.forEach((e, k) => {
    const { target, ...rest } = s.entry(k);
    assert.deepEqual(rest, e, `entry ${k}`);
    assert.ok(target.equals(t(e === last ? 99 : sent.indexOf(e))), `target of entry ${k}`);
  });

  // The cap reached with the id column present: the re-issue leaves first, and the column with it.
  const c = new SentJobs(4);
  c.add('p-re', job('p'), 1, t(1), poolWork, pool);
  for (let i = 0; i < 3; i++) c.add(`q${i}`, job(`q${i}`), 1, t(1), poolWork, pool);
  assert.deepEqual(cols(c).ids, ['p-re', 'q0', 'q1', 'q2']);
  c.add('q3', job('q3'), 1, t(1), poolWork, pool);
  assert.equal(c.find('p-re'), -1);
  assert.equal(cols(c).ids, null);

  // A re-issue sent under another live job's id: the newest send under that id is the one a share names.
  const d = new SentJobs(8);
  const a = job('a'); const b = job('b');
  d.add('a', a, 1, t(1), poolWork, pool);
  d.add('a', b, 2, t(2), poolWork, pool);
  assert.equal(d.jobAt(d.find('a')), b);
  assert.equal(d.difficultyAt(d.find('a')), 2);

  // A routed entry its route still knows, behind later pool sends: it keeps its route and extranonce.
  const e = new SentJobs(8);
  const u = { id: 'u' } as Job; routeJobs.set('u', u);
  e.add('u', u, 3, t(3), routed, pool);
  e.add('p1', job('p1'), 1, t(1), poolWork, pool);
  e.add('p2', job('p2'), 1, t(1), poolWork, pool);
  assert.equal(e.workAt(e.find('u')), routed);
  assert.equal(e.workAt(e.find('p2')), poolWork);
  routeJobs.delete('u');
  e.add('p3', job('p3'), 1, t(1), poolWork, pool);
  assert.equal(e.find('u'), -1);
  assert.equal(cols(e).works, null, 'the works column goes with the last routed entry');
  // A session on one route throughout: one work for every entry, no column.
  const f = new SentJobs(8);
  for (const id of ['r1', 'r2', 'r3']) { const j = { id } as Job; routeJobs.set(id, j); f.add(id, j, 3, t(3), routed, pool); }
  assert.equal(cols(f).works, null);
  assert.equal(f.workAt(f.find('r1')), routed);
  assert.equal(f.difficultyAt(f.find('r2')), 3);
  assert.ok(f.targetAt(f.find('r3')).equals(t(3)));
});
